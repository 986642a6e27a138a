"""Population reference data: PLACES, SVI and ADI tables in the population schema.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Frozen copy of the schema as of this revision: the measure and variable
lists are written out here rather than imported from the models, which will
change after it. Runs the same on DuckDB and PostgreSQL: a plain schema,
no foreign keys, DOUBLE and DECIMAL measures, text FIPS codes.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "population"

PLACES_MEASURES = (
    "access2",
    "arthritis",
    "binge",
    "bphigh",
    "bpmed",
    "cancer",
    "casthma",
    "chd",
    "checkup",
    "cholscreen",
    "colon_screen",
    "copd",
    "csmoking",
    "dental",
    "depression",
    "diabetes",
    "ghlth",
    "highchol",
    "lpa",
    "mammouse",
    "mhlth",
    "obesity",
    "phlth",
    "sleep",
    "stroke",
    "teethlost",
    "hearing",
    "vision",
    "cognition",
    "mobility",
    "selfcare",
    "indeplive",
    "disability",
    "isolation",
    "foodstamp",
    "foodinsecu",
    "housinsecu",
    "shututility",
    "lacktrpt",
    "emotionspt",
)
SVI_THEMES = {
    1: ("pov150", "unemp", "hburd", "nohsdp", "uninsur"),
    2: ("age65", "age17", "disabl", "sngpnt", "limeng"),
    3: ("minrty",),
    4: ("munit", "mobile", "crowd", "noveh", "groupq"),
}
SVI_RANKED = tuple(v for theme in SVI_THEMES.values() for v in theme)
SVI_ADJUNCT = ("noint", "afam", "hisp", "asian", "aian", "nhpi", "twomore", "otherrace")

# Created in this order, dropped in the reverse.
TABLES = ("reference_datasets", "places_tract", "places_county", "svi_tract", "svi_county", "adi_blockgroup")


def _places_measure_columns(kinds: tuple[str, ...]) -> list[sa.Column]:
    columns = []
    for measure in PLACES_MEASURES:
        for kind in kinds:
            columns += [
                sa.Column(f"{measure}_{kind}_prev", sa.Numeric(4, 1)),
                sa.Column(f"{measure}_{kind}95_ci_low", sa.Numeric(4, 1)),
                sa.Column(f"{measure}_{kind}95_ci_high", sa.Numeric(4, 1)),
            ]
    return columns


def _svi_columns() -> list[sa.Column]:
    columns = [
        sa.Column("st", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("st_abbr", sa.String(), nullable=False),
        sa.Column("stcnty", sa.String(), nullable=False),
        sa.Column("county", sa.String(), nullable=False),
        sa.Column("fips", sa.String(), nullable=False),
        sa.Column("location", sa.String()),
        sa.Column("area_sqmi", sa.Double()),
    ]
    for var in ("totpop", "hu", "hh", *SVI_RANKED):
        columns += [sa.Column(f"e_{var}", sa.Integer()), sa.Column(f"m_{var}", sa.Double())]
    for var in SVI_RANKED:
        columns += [sa.Column(f"ep_{var}", sa.Double()), sa.Column(f"mp_{var}", sa.Double())]
    for number, variables in SVI_THEMES.items():
        columns += [sa.Column(f"epl_{var}", sa.Double()) for var in variables]
        columns += [sa.Column(f"spl_theme{number}", sa.Double()), sa.Column(f"rpl_theme{number}", sa.Double())]
    columns += [sa.Column("spl_themes", sa.Double()), sa.Column("rpl_themes", sa.Double())]
    for number, variables in SVI_THEMES.items():
        columns += [sa.Column(f"f_{var}", sa.Integer()) for var in variables]
        columns.append(sa.Column(f"f_theme{number}", sa.Integer()))
    columns.append(sa.Column("f_total", sa.Integer()))
    columns.append(sa.Column("e_daypop", sa.Integer()))
    for var in SVI_ADJUNCT:
        columns += [sa.Column(f"e_{var}", sa.Integer()), sa.Column(f"m_{var}", sa.Double())]
    for var in SVI_ADJUNCT:
        columns += [sa.Column(f"ep_{var}", sa.Double()), sa.Column(f"mp_{var}", sa.Double())]
    columns.append(sa.Column("suppressed_columns", sa.String()))
    return columns


def _index(table: str, *columns: str) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns), schema=SCHEMA)


def upgrade() -> None:
    op.execute(sa.schema.CreateSchema(SCHEMA))

    op.create_table(
        "reference_datasets",
        sa.Column("dataset", sa.String(), nullable=False),
        sa.Column("release", sa.String(), nullable=False),
        sa.Column("source_file", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset", name=op.f("pk_reference_datasets")),
        schema=SCHEMA,
    )

    op.create_table(
        "places_tract",
        sa.Column("state_abbr", sa.String(), nullable=False),
        sa.Column("state_desc", sa.String(), nullable=False),
        sa.Column("county_name", sa.String(), nullable=False),
        sa.Column("county_fips", sa.String(), nullable=False),
        sa.Column("tract_fips", sa.String(), nullable=False),
        sa.Column("total_population", sa.Integer()),
        sa.Column("total_pop18plus", sa.Integer()),
        *_places_measure_columns(("crude",)),
        sa.Column("geolocation", sa.String()),
        sa.PrimaryKeyConstraint("tract_fips", name=op.f("pk_places_tract")),
        schema=SCHEMA,
    )
    _index("places_tract", "county_fips")

    op.create_table(
        "places_county",
        sa.Column("state_abbr", sa.String(), nullable=False),
        sa.Column("state_desc", sa.String(), nullable=False),
        sa.Column("county_name", sa.String(), nullable=False),
        sa.Column("county_fips", sa.String(), nullable=False),
        sa.Column("total_population", sa.Integer()),
        sa.Column("total_pop18plus", sa.Integer()),
        *_places_measure_columns(("crude", "adj")),
        sa.Column("geolocation", sa.String()),
        sa.PrimaryKeyConstraint("county_fips", name=op.f("pk_places_county")),
        schema=SCHEMA,
    )
    _index("places_county", "state_abbr")

    for table in ("svi_tract", "svi_county"):
        op.create_table(
            table,
            *_svi_columns(),
            sa.PrimaryKeyConstraint("fips", name=op.f(f"pk_{table}")),
            schema=SCHEMA,
        )
    _index("svi_tract", "stcnty")
    _index("svi_county", "st_abbr", "county")

    op.create_table(
        "adi_blockgroup",
        sa.Column("gisjoin", sa.String(), nullable=False),
        sa.Column("fips", sa.String(), nullable=False),
        sa.Column("adi_natrank", sa.Integer()),
        sa.Column("adi_natrank_suppression", sa.String()),
        sa.Column("adi_staternk", sa.Integer()),
        sa.Column("adi_staternk_suppression", sa.String()),
        sa.PrimaryKeyConstraint("fips", name=op.f("pk_adi_blockgroup")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    # Dropping a table drops its indexes, on DuckDB and PostgreSQL alike.
    for table in reversed(TABLES):
        op.drop_table(table, schema=SCHEMA)
    op.execute(sa.schema.DropSchema(SCHEMA))
