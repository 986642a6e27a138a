"""The schema: every table, column, type, nullability and index is where the models say,
on both backends, whether created by the Alembic revisions or not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from healthsim_models import ENTITY_TYPES, Base, create_store_engine
from healthsim_models.base import index_created_on
from tests.catalog import database_shapes, model_shape

REPO = Path(__file__).resolve().parent.parent
PROVENANCE = ("created_at", "updated_at", "source_type", "source_system", "skill_used", "generation_seed")


def test_every_table_column_type_and_index_matches_the_models(engine) -> None:
    shapes = database_shapes(engine)
    assert set(shapes) == set(Base.metadata.tables) | {"alembic_version"}
    for name, table in Base.metadata.tables.items():
        expected = model_shape(table, engine.dialect)
        actual = shapes[name]
        assert actual.columns == expected.columns, name
        assert actual.primary_key == expected.primary_key, name
        assert actual.indexes == expected.indexes, name
        assert actual.unique == expected.unique, name


def test_revisions_and_create_all_build_the_same_duckdb_schema(tmp_path: Path) -> None:
    migrated = create_store_engine(f"duckdb:///{tmp_path / 'migrated.duckdb'}")
    direct = create_store_engine(f"duckdb:///{tmp_path / 'direct.duckdb'}", upgrade=False)
    with direct.begin() as connection:
        for schema in {t.schema for t in Base.metadata.tables.values()} - {None}:
            connection.execute(sa.schema.CreateSchema(schema))
    Base.metadata.create_all(direct)
    try:
        from_revisions = database_shapes(migrated)
        from_revisions.pop("alembic_version")
        assert from_revisions == database_shapes(direct)
    finally:
        migrated.dispose()
        direct.dispose()


def test_postgresql_autogenerate_finds_no_difference(postgresql_url: str) -> None:
    engine = create_store_engine(postgresql_url)
    try:
        with engine.connect() as connection:
            schemas = {None} | {t.schema for t in Base.metadata.tables.values()}
            opts = {
                "compare_type": True,
                "include_schemas": True,
                "include_name": lambda name, type_, parents: type_ != "schema" or name in schemas,
            }
            context = MigrationContext.configure(connection, opts=opts)
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_alembic_check_command_on_postgresql(postgresql_url: str) -> None:
    """The documented `alembic check`, run from the repository root through alembic.ini."""
    alembic = [sys.executable, "-m", "alembic", "-x", f"url={postgresql_url}"]
    subprocess.run([*alembic, "upgrade", "head"], cwd=REPO, check=True, capture_output=True)
    result = subprocess.run([*alembic, "check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


@pytest.mark.parametrize("et", ENTITY_TYPES, ids=lambda et: et.name)
def test_every_canonical_table_has_identity_provenance_and_extensions(et, duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    try:
        columns = database_shapes(engine)[et.table_name].columns
    finally:
        engine.dispose()
    for name in PROVENANCE:
        assert name in columns, f"{et.table_name}.{name}"
    assert columns["id"] == ("UUID", False)
    assert columns["external_id"] == ("VARCHAR", True)
    assert columns["extensions"] == ("JSON", True)
    assert columns["generation_seed"] == ("BIGINT", True)
    assert columns["created_at"] == ("TIMESTAMPTZ", False)


def test_money_columns_are_exact_decimals(duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    try:
        shapes = database_shapes(engine)
    finally:
        engine.dispose()
    for table, column in [
        ("claims", "total_charge"),
        ("claim_lines", "charge_amount"),
        ("pharmacy_claims", "patient_pay_amount"),
    ]:
        assert shapes[table].columns[column][0] == "DECIMAL(12,2)"


def test_lookup_indexes_exist_on_postgresql_only(store_url: str) -> None:
    """PostgreSQL indexes business keys, parent links and common filters; DuckDB
    keeps only the constraint indexes on the tables a save writes in bulk."""
    engine = create_store_engine(store_url)
    try:
        shapes = database_shapes(engine)
    finally:
        engine.dispose()
    indexed = {(t, cols) for t, s in shapes.items() for cols in s.indexes.values()}
    bulk_tables = {et.table_name for et in ENTITY_TYPES} | {"scenario_entities"}
    if store_url.startswith("duckdb"):
        assert {t for t, _ in indexed} & bulk_tables == set()
    else:
        for et in ENTITY_TYPES:
            if et.business_key:
                assert (et.table_name, et.business_key) in indexed, f"business key of {et.name}"
            for ref in et.references:
                assert (et.table_name, (ref.uuid_column,)) in indexed, f"{et.table_name}.{ref.uuid_column}"
        assert ("scenario_entities", ("entity_id", "entity_type")) in indexed
        assert ("encounters", ("admission_time",)) in indexed
    assert ("scenario_tags", ("tag",)) in indexed
    for et in ENTITY_TYPES:
        assert shapes[et.table_name].primary_key == ("id",)
    assert shapes["scenario_entities"].primary_key == ("scenario_id", "entity_type", "entity_id")
    assert shapes["scenarios"].unique == frozenset({("name",)})


def _row_counts(engine: sa.Engine, tables: list[str]) -> dict[str, int]:
    with engine.connect() as connection:
        return {t: connection.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def test_revision_0003_moves_duckdb_indexes_both_ways_and_keeps_the_data(store_url: str) -> None:
    """0003 drops the bulk tables' secondary indexes on DuckDB (and recreates
    them on downgrade), changes nothing on PostgreSQL, and keeps every row."""
    from healthsim_models import schema_version, session_scope
    from healthsim_state import ScenarioRepository
    from healthsim_state.demo import scenario

    later = schema_version.script_directory().get_revision("0004").module  # what 0003 never saw
    added_by_later = set(later.NEW_TYPES) | {
        (table, f"ix_{table}_{column}") for table, column, _, indexed in later.ADDED if indexed
    }
    engine = create_store_engine(store_url)
    try:
        # Data saved at head, then taken down to 0002 (the revisions after it keep the older types' rows).
        with session_scope(engine) as session:
            ScenarioRepository(session).save("kept", scenario(3))
        schema_version.downgrade(engine, "0002")
        at_0002 = database_shapes(engine)
        tables = [t for t in at_0002 if "." not in t and t != "alembic_version"]
        saved = _row_counts(engine, tables)
        assert saved["lab_results"] > 0 and saved["scenario_entities"] > 0
        schema_version.upgrade(engine, "0003")
        at_0003 = database_shapes(engine)
        dropped = {
            (name, index)
            for name, shape in at_0002.items()
            for index in shape.indexes
            if index not in at_0003[name].indexes
        }
        if store_url.startswith("duckdb"):
            assert ("lab_results", "ix_lab_results_patient_uuid") in dropped
            assert ("scenario_entities", "ix_scenario_entities_entity_id_entity_type") in dropped
            assert dropped == {
                (table.name, index.name)
                for table in Base.metadata.tables.values()
                for index in table.indexes
                if not index_created_on(index, "duckdb")
                and table.name in at_0002  # not a table of a later revision
                and table.name not in added_by_later
                and (table.name, index.name) not in added_by_later
            }
        else:
            assert dropped == set()
        counts = _row_counts(engine, tables)
        assert counts.pop("schema_migrations") == saved.pop("schema_migrations") + 1
        assert counts == saved
        schema_version.downgrade(engine, "0002")
        assert database_shapes(engine) == at_0002
        counts = _row_counts(engine, tables)
        counts.pop("schema_migrations")
        assert counts == saved
    finally:
        engine.dispose()


def test_column_defaults_apply(store_url: str) -> None:
    """Columns documented with a default get it when the value is absent."""
    import datetime as dt
    import uuid

    engine = create_store_engine(store_url)
    try:
        patients = Base.metadata.tables["patients"]
        pid = uuid.uuid4()
        with engine.begin() as connection:
            connection.execute(
                patients.insert().values(
                    id=pid,
                    mrn="MRN-1",
                    given_name="Ada",
                    family_name="Byron",
                    birth_date=dt.date(1990, 1, 2),
                    gender="F",
                )
            )
            row = connection.execute(sa.select(patients).where(patients.c.id == pid)).one()
    finally:
        engine.dispose()
    assert (row.country, row.language, row.deceased) == ("US", "en", False)
    assert (row.source_type, row.source_system) == ("loaded", "import")
    assert row.created_at is not None and row.created_at.tzinfo is not None


def test_population_tables_are_in_their_own_schema_with_typed_measures(store_url: str) -> None:
    """Reference data sits in the population schema: text FIPS keys, numeric measures."""
    engine = create_store_engine(store_url)
    try:
        shapes = database_shapes(engine)
    finally:
        engine.dispose()
    population = {name for name in shapes if name.startswith("population.")}
    assert population == {
        "population.places_tract",
        "population.places_county",
        "population.svi_tract",
        "population.svi_county",
        "population.adi_blockgroup",
        "population.reference_datasets",
    }
    assert not {"places_tract", "svi_county"} & set(shapes)  # not in the default schema
    tract = shapes["population.places_tract"]
    assert tract.primary_key == ("tract_fips",)
    assert tract.columns["tract_fips"] == ("VARCHAR", False)
    assert tract.columns["diabetes_crude_prev"] == ("DECIMAL(4,1)", True)
    assert tract.columns["diabetes_crude95_ci_high"] == ("DECIMAL(4,1)", True)
    assert shapes["population.places_county"].columns["obesity_adj_prev"] == ("DECIMAL(4,1)", True)
    svi = shapes["population.svi_county"]
    assert svi.columns["fips"] == ("VARCHAR", False)
    assert svi.columns["e_totpop"] == ("INTEGER", True)
    assert svi.columns["rpl_themes"] == ("DOUBLE", True)
    assert svi.indexes == {"ix_svi_county_st_abbr_county": ("st_abbr", "county")}
    adi = shapes["population.adi_blockgroup"]
    assert adi.columns["adi_natrank"] == ("INTEGER", True)
    assert adi.columns["adi_natrank_suppression"] == ("VARCHAR", True)
    assert shapes["population.reference_datasets"].columns["loaded_at"] == ("TIMESTAMPTZ", False)
