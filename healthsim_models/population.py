"""PopulationSim reference data: CDC PLACES, CDC/ATSDR SVI and Neighborhood Atlas ADI.

The tables live in the ``population`` schema, apart from scenario data. Each
holds one release of one public file (which release, from which file, is in
``reference_datasets``); ``healthsim_state.reference`` loads them.

Every documented measure has its own typed column, so analysts query
``diabetes_crude_prev`` rather than digging in a JSON blob. The column lists
are derived from the measure and variable names below, which are the
published ones (``PLACES_MEASURES``, ``SVI_VARIABLES``); a measure that a
loaded release does not publish stays NULL. Column names are the published
headers in lower snake case (:func:`snake_case`), and each PLACES 95%
confidence interval, published as text like ``( 8.7, 14.2)``, is stored as
two numbers, ``<measure>_crude95_ci_low`` and ``_high``.

Geographic codes (FIPS, GEOID) are text with their leading zeros: ``01001``,
never 1001. Suppressed values are NULL; where the source uses a marker
(SVI's -999, ADI's GQ, PH, GQ-PH, QDI) the marker is kept beside the value
(``suppressed_columns`` on SVI rows, ``adi_*_suppression`` on ADI rows).
"""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models.base import PopulationBase, Timestamp

SCHEMA = "population"


def snake_case(header: str) -> str:
    """A published column header in lower snake case: ``CountyFIPS`` -> ``county_fips``,
    ``ACCESS2_Crude95CI`` -> ``access2_crude95_ci``, ``E_TOTPOP`` -> ``e_totpop``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", header.strip())
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", text)
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()


# CDC PLACES measure ids, in the order of the GIS-friendly files of the 2024
# release (BRFSS 2022/2021): health outcomes, prevention, risk behaviours,
# health status, disability and health-related social needs.
PLACES_MEASURES: tuple[str, ...] = (
    "ACCESS2",
    "ARTHRITIS",
    "BINGE",
    "BPHIGH",
    "BPMED",
    "CANCER",
    "CASTHMA",
    "CHD",
    "CHECKUP",
    "CHOLSCREEN",
    "COLON_SCREEN",
    "COPD",
    "CSMOKING",
    "DENTAL",
    "DEPRESSION",
    "DIABETES",
    "GHLTH",
    "HIGHCHOL",
    "LPA",
    "MAMMOUSE",
    "MHLTH",
    "OBESITY",
    "PHLTH",
    "SLEEP",
    "STROKE",
    "TEETHLOST",
    "HEARING",
    "VISION",
    "COGNITION",
    "MOBILITY",
    "SELFCARE",
    "INDEPLIVE",
    "DISABILITY",
    "ISOLATION",
    "FOODSTAMP",
    "FOODINSECU",
    "HOUSINSECU",
    "SHUTUTILITY",
    "LACKTRPT",
    "EMOTIONSPT",
)

# CDC/ATSDR SVI variables of the 2020 and 2022 editions. Each has an estimate
# (E_) and margin (M_), a percentage (EP_) and its margin (MP_); the sixteen
# ranked ones also a percentile (EPL_) and a flag (F_). Adjunct variables
# (E_DAYPOP and the NOINT/race group) are published but not ranked.
SVI_THEMES: dict[int, tuple[str, ...]] = {
    1: ("POV150", "UNEMP", "HBURD", "NOHSDP", "UNINSUR"),  # socioeconomic status
    2: ("AGE65", "AGE17", "DISABL", "SNGPNT", "LIMENG"),  # household characteristics
    3: ("MINRTY",),  # racial and ethnic minority status
    4: ("MUNIT", "MOBILE", "CROWD", "NOVEH", "GROUPQ"),  # housing type and transportation
}
SVI_RANKED: tuple[str, ...] = tuple(v for theme in SVI_THEMES.values() for v in theme)
SVI_ADJUNCT: tuple[str, ...] = (
    "NOINT",
    "AFAM",
    "HISP",
    "ASIAN",
    "AIAN",
    "NHPI",
    "TWOMORE",
    "OTHERRACE",
)

ADI_SUPPRESSION_MARKERS: tuple[str, ...] = ("GQ", "PH", "GQ-PH", "QDI")
SVI_SUPPRESSION_MARKER = "-999"

# Published to one decimal; four digits hold 0.0 to 100.0.
Prevalence = sa.Numeric(4, 1)


def _places_measure_columns(adjusted: bool) -> list[sa.Column]:
    columns = []
    kinds = ("crude", "adj") if adjusted else ("crude",)
    for measure in PLACES_MEASURES:
        stem = snake_case(measure)
        for kind in kinds:
            columns += [
                sa.Column(f"{stem}_{kind}_prev", Prevalence),
                sa.Column(f"{stem}_{kind}95_ci_low", Prevalence),
                sa.Column(f"{stem}_{kind}95_ci_high", Prevalence),
            ]
    return columns


def _svi_columns() -> list[sa.Column]:
    """The published SVI columns, typed: counts INTEGER, flags INTEGER, the rest DOUBLE."""
    columns = [
        sa.Column("st", sa.String, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("st_abbr", sa.String, nullable=False),
        sa.Column("stcnty", sa.String, nullable=False),
        sa.Column("county", sa.String, nullable=False),
        sa.Column("fips", sa.String, primary_key=True),
        sa.Column("location", sa.String),
        sa.Column("area_sqmi", sa.Double),
    ]
    counted = ("TOTPOP", "HU", "HH", *SVI_RANKED)
    for var in counted:
        columns += [sa.Column(f"e_{var.lower()}", sa.Integer), sa.Column(f"m_{var.lower()}", sa.Double)]
    for var in SVI_RANKED:
        columns += [sa.Column(f"ep_{var.lower()}", sa.Double), sa.Column(f"mp_{var.lower()}", sa.Double)]
    for number, variables in SVI_THEMES.items():
        columns += [sa.Column(f"epl_{var.lower()}", sa.Double) for var in variables]
        columns += [sa.Column(f"spl_theme{number}", sa.Double), sa.Column(f"rpl_theme{number}", sa.Double)]
    columns += [sa.Column("spl_themes", sa.Double), sa.Column("rpl_themes", sa.Double)]
    for number, variables in SVI_THEMES.items():
        columns += [sa.Column(f"f_{var.lower()}", sa.Integer) for var in variables]
        columns.append(sa.Column(f"f_theme{number}", sa.Integer))
    columns.append(sa.Column("f_total", sa.Integer))
    columns.append(sa.Column("e_daypop", sa.Integer))
    for var in SVI_ADJUNCT:
        columns += [sa.Column(f"e_{var.lower()}", sa.Integer), sa.Column(f"m_{var.lower()}", sa.Double)]
    for var in SVI_ADJUNCT:
        columns += [sa.Column(f"ep_{var.lower()}", sa.Double), sa.Column(f"mp_{var.lower()}", sa.Double)]
    columns.append(
        # Comma-separated columns that held the -999 marker (now NULL); NULL when none.
        sa.Column("suppressed_columns", sa.String)
    )
    return columns


class PlacesTract(PopulationBase):
    """CDC PLACES model-based estimates per census tract (GIS-friendly format)."""

    __table__ = sa.Table(
        "places_tract",
        PopulationBase.metadata,
        sa.Column("state_abbr", sa.String, nullable=False),
        sa.Column("state_desc", sa.String, nullable=False),
        sa.Column("county_name", sa.String, nullable=False),
        sa.Column("county_fips", sa.String, nullable=False, index=True),
        sa.Column("tract_fips", sa.String, primary_key=True),
        sa.Column("total_population", sa.Integer),
        sa.Column("total_pop18plus", sa.Integer),
        *_places_measure_columns(adjusted=False),
        sa.Column("geolocation", sa.String),
        schema=SCHEMA,
    )


class PlacesCounty(PopulationBase):
    """CDC PLACES model-based estimates per county: crude and age-adjusted prevalence."""

    __table__ = sa.Table(
        "places_county",
        PopulationBase.metadata,
        sa.Column("state_abbr", sa.String, nullable=False, index=True),
        sa.Column("state_desc", sa.String, nullable=False),
        sa.Column("county_name", sa.String, nullable=False),
        sa.Column("county_fips", sa.String, primary_key=True),
        sa.Column("total_population", sa.Integer),
        sa.Column("total_pop18plus", sa.Integer),
        *_places_measure_columns(adjusted=True),
        sa.Column("geolocation", sa.String),
        schema=SCHEMA,
    )


class SviTract(PopulationBase):
    """CDC/ATSDR Social Vulnerability Index per census tract."""

    __table__ = sa.Table(
        "svi_tract",
        PopulationBase.metadata,
        *_svi_columns(),
        sa.Index(None, "stcnty"),
        schema=SCHEMA,
    )


class SviCounty(PopulationBase):
    """CDC/ATSDR Social Vulnerability Index per county."""

    __table__ = sa.Table(
        "svi_county",
        PopulationBase.metadata,
        *_svi_columns(),
        sa.Index(None, "st_abbr", "county"),
        schema=SCHEMA,
    )


class AdiBlockGroup(PopulationBase):
    """Neighborhood Atlas Area Deprivation Index per census block group."""

    __table__ = sa.Table(
        "adi_blockgroup",
        PopulationBase.metadata,
        sa.Column("gisjoin", sa.String, nullable=False),
        sa.Column("fips", sa.String, primary_key=True),
        sa.Column("adi_natrank", sa.Integer),
        sa.Column("adi_natrank_suppression", sa.String),
        sa.Column("adi_staternk", sa.Integer),
        sa.Column("adi_staternk_suppression", sa.String),
        schema=SCHEMA,
    )


class ReferenceDataset(PopulationBase):
    """Which release of which file each reference table holds."""

    __tablename__ = "reference_datasets"
    __table_args__ = ({"schema": SCHEMA},)

    dataset: Mapped[str] = mapped_column(sa.String, primary_key=True)
    release: Mapped[str] = mapped_column(sa.String, nullable=False)
    source_file: Mapped[str] = mapped_column(sa.String, nullable=False)
    sha256: Mapped[str] = mapped_column(sa.String, nullable=False)
    row_count: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    loaded_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)


REFERENCE_TABLES: dict[str, sa.Table] = {
    model.__table__.name: model.__table__ for model in (PlacesTract, PlacesCounty, SviTract, SviCounty, AdiBlockGroup)
}
