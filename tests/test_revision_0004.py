"""Revision 0004 (the types of Synthea import) on a store holding data, on DuckDB and PostgreSQL:
upgrade keeps every row and value, downgrade removes what 0004 added and keeps the rest, and
refuses while a claim names its provider by practitioner_id only."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from healthsim_models import Base, SchemaVersionError, create_store_engine, schema_version, session_scope
from healthsim_models.registry import BY_NAME
from healthsim_state import ScenarioRepository, demo
from healthsim_state.interfaces.cli import main
from tests.catalog import database_shapes
from tests.conftest import BACKENDS, throwaway_postgresql_database
from tests.helpers import normalise

REVISION = schema_version.script_directory().get_revision("0004").module
NEW_TABLES: dict[str, str] = REVISION.NEW_TYPES  # table -> entity type
ADDED: dict[str, set[str]] = {}  # table -> columns 0004 adds to it
for _table, _column, _, _ in REVISION.ADDED:
    ADDED.setdefault(_table, set()).add(_column)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


@contextmanager
def _engine(url: str) -> Iterator[sa.Engine]:
    engine = create_store_engine(url, upgrade=False)
    try:
        yield engine
    finally:
        engine.dispose()


def _contents(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the default schema (but the schema history and the audit trail,
    where even a refused downgrade leaves its event), in primary key order."""
    shapes = database_shapes(engine)
    contents = {}
    with engine.connect() as connection:
        for name, shape in shapes.items():
            if "." in name or name in ("alembic_version", "schema_migrations", "audit_log"):
                continue
            order = ", ".join(shape.primary_key)
            rows = connection.execute(sa.text(f"SELECT * FROM {name} ORDER BY {order}")).mappings()
            contents[name] = [dict(row) for row in rows]
    return contents


def _load(engine: sa.Engine, name: str) -> dict[str, list[dict[str, Any]]]:
    with session_scope(engine) as session:
        return ScenarioRepository(session).load(name).entities


def _before_0004(type_name: str, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the fields that revision 0004 made columns of its type's table."""
    plural = {"encounter": "encounters", "diagnosis": "diagnoses", "claim": "claims", "claim_line": "claim_lines"}
    dropped = ADDED.get(plural.get(type_name, ""), set())
    return {k: v for k, v in doc.items() if k not in dropped}


def _add_to_extensions(engine: sa.Engine, table: str, entity_id: uuid.UUID, key: str, value: Any) -> None:
    """Put ``key`` into one row's extensions, as the store kept a field it had no column for."""
    rows = sa.table(table, sa.column("id", sa.Uuid()), sa.column("extensions", JSON))
    with engine.begin() as connection:
        extensions = connection.execute(sa.select(rows.c.extensions).where(rows.c.id == entity_id)).scalar_one()
        extensions = {**(extensions or {}), key: value}
        connection.execute(rows.update().where(rows.c.id == entity_id).values(extensions=extensions))


def test_the_revision_adds_what_the_models_declare() -> None:
    """The frozen lists of the revision name the registry's new tables and the columns added since 0003."""
    assert set(NEW_TABLES) == {
        "organizations",
        "practitioners",
        "payers",
        "observations",
        "allergies",
        "immunizations",
        "care_plans",
        "devices",
        "supplies",
        "imaging_studies",
        "coverages",
    }
    for table, type_name in NEW_TABLES.items():
        assert BY_NAME[type_name].table_name == table
    for table, columns in ADDED.items():
        assert columns <= set(Base.metadata.tables[table].columns.keys()), table


def test_down_to_0003_and_up_again_keeps_the_older_data(blank_store_url: str) -> None:
    """A store at head holding the demo goes down to 0003 (the new tables, columns and links go;
    the rest stays), back up (every row and value kept, the new columns NULL) and round again."""
    generated = {name: list(docs) for name, docs in demo.scenario(6, 3).items()}
    with _engine(blank_store_url) as engine:
        schema_version.upgrade(engine, "0003")
        at_0003 = database_shapes(engine)
        schema_version.upgrade(engine)
        at_head = database_shapes(engine)
        with session_scope(engine) as session:
            ScenarioRepository(session).save("demo", generated, tags=["kept"])

        schema_version.downgrade(engine, "0003")
        assert database_shapes(engine) == at_0003  # provider_npi NOT NULL again, on both backends
        with engine.connect() as connection:
            linked = set(connection.execute(sa.text("SELECT DISTINCT entity_type FROM scenario_entities")).scalars())
            counts = connection.execute(sa.select(sa.column("entity_counts", JSON)).select_from(sa.table("scenarios")))
            counts = counts.scalar_one()
        older = {name for name in generated if name not in NEW_TABLES.values()}
        assert linked == older
        assert set(counts) == older
        # A field kept in extensions while it had no column (an old document's own payer_id).
        encounter = _contents(engine)["encounters"][0]
        _add_to_extensions(engine, "encounters", encounter["id"], "payer_id", "PAY-FROM-BEFORE")
        before = _contents(engine)

        schema_version.upgrade(engine)
        assert database_shapes(engine) == at_head
        after = _contents(engine)
        for table, rows in before.items():
            added = ADDED.get(table, set())
            assert [{k: v for k, v in row.items() if k not in added} for row in after[table]] == rows, table
            assert all(row[column] is None for row in after[table] for column in added), table
        assert all(after[table] == [] for table in NEW_TABLES)
        # The documents load as they were saved, without what the downgrade removed.
        expected = {
            name: [] if name in NEW_TABLES.values() else [_before_0004(name, doc) for doc in docs]
            for name, docs in generated.items()
        }
        moved = next(doc for doc in expected["encounter"] if doc["encounter_id"] == encounter["encounter_id"])
        moved["payer_id"] = "PAY-FROM-BEFORE"
        assert normalise(_load(engine, "demo")) == normalise(expected)

        schema_version.downgrade(engine, "0003")
        assert _contents(engine) == before
        schema_version.upgrade(engine)
        with session_scope(engine) as session:
            ScenarioRepository(session).save("demo", generated, overwrite=True)
        assert normalise(_load(engine, "demo")) == normalise(generated)


def test_a_downgrade_refuses_claims_without_an_npi_and_changes_nothing(
    blank_store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0003 requires provider_npi: while a claim names its provider by practitioner_id only,
    the downgrade stops before any change, saying which claims and scenarios hold it up."""
    documents = {name: list(docs) for name, docs in demo.scenario(1, 3).items()}
    by_practitioner = copy.deepcopy(documents)
    (claim,) = by_practitioner["claim"]
    assert claim["practitioner_id"]
    del claim["provider_npi"]
    with _engine(blank_store_url) as engine:
        schema_version.upgrade(engine)
        with session_scope(engine) as session:
            ScenarioRepository(session).save("by-practitioner", by_practitioner)
        before = _contents(engine)
        with pytest.raises(SchemaVersionError) as info:
            schema_version.downgrade(engine, "0003")
        assert str(info.value) == (
            "cannot downgrade below revision 0004: revision 0003 requires provider_npi on every claim, and 1 claim "
            "has none (naming the provider by practitioner_id only): claim_id 'CLM-0', in the scenarios "
            "'by-practitioner'. Give those claims a provider_npi (save them again) or delete their scenarios, "
            "then downgrade again; the database was not changed"
        )
        assert schema_version.current_revision(engine) == schema_version.head_revision()  # the run rolled back whole
        assert _contents(engine) == before

    with pytest.raises(SystemExit) as exit_info:
        main(["db", "downgrade", "0003", "--database-url", blank_store_url])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot downgrade below revision 0004: ") and len(err.splitlines()) == 1

    with _engine(blank_store_url) as engine:
        assert _contents(engine) == before
        with session_scope(engine) as session:
            ScenarioRepository(session).save("by-practitioner", documents, overwrite=True)  # the NPI given again
        schema_version.downgrade(engine, "0003")
        assert schema_version.current_revision(engine) == "0003"


def _defaults(engine: sa.Engine) -> dict[tuple[str, str], str | None]:
    """(table, column) -> the column's default as the database shows it, for the default schema."""
    with engine.connect() as connection:
        if engine.dialect.name == "duckdb":
            rows = connection.exec_driver_sql(
                "SELECT table_name, column_name, column_default FROM duckdb_columns() "
                "WHERE database_name = current_database() AND schema_name = 'main'"
            )
        else:
            rows = connection.exec_driver_sql(
                "SELECT table_name, column_name, column_default FROM information_schema.columns "
                "WHERE table_schema = 'public'"
            )
        return {(table, column): default for table, column, default in rows if table != "alembic_version"}


def _created_directly(url: str) -> dict[tuple[str, str], str | None]:
    engine = create_store_engine(url, upgrade=False)
    try:
        with engine.begin() as connection:
            for schema in {t.schema for t in Base.metadata.tables.values()} - {None}:
                connection.execute(sa.schema.CreateSchema(schema))
        Base.metadata.create_all(engine)
        return _defaults(engine)
    finally:
        engine.dispose()


@contextmanager
def _two_databases(backend: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty databases of ``backend``: one for the revisions, one for create_all."""
    if backend == "duckdb":
        yield f"duckdb:///{tmp_path / 'migrated.duckdb'}", f"duckdb:///{tmp_path / 'direct.duckdb'}"
        return
    with throwaway_postgresql_database() as migrated, throwaway_postgresql_database() as direct:
        yield migrated, direct


@pytest.mark.parametrize("backend", BACKENDS)
def test_revisions_and_models_give_the_same_column_defaults(backend: str, tmp_path: Path) -> None:
    """Server defaults (which the schema comparison does not look at) as create_all makes them;
    the ICD-10-CM defaults of 0004 apply to rows written after it."""
    with _two_databases(backend, tmp_path) as (migrated_url, direct_url):
        with _engine(migrated_url) as engine:
            schema_version.upgrade(engine)
            migrated = _defaults(engine)
            diagnoses = Base.metadata.tables["diagnoses"]
            with engine.begin() as connection:
                connection.execute(
                    diagnoses.insert().values(
                        id=uuid.uuid4(),
                        patient_mrn="MRN-1",
                        patient_uuid=uuid.uuid4(),
                        code="E11.9",
                        diagnosed_date=dt.date(2024, 1, 2),
                    )
                )
                assert connection.execute(sa.select(diagnoses.c.code_system)).scalar_one() == "ICD-10-CM"
        assert migrated == _created_directly(direct_url)
    assert "ICD-10-CM" in (migrated[("claims", "diagnosis_code_system")] or "")
    assert migrated[("claim_lines", "procedure_code_system")] is None
    assert "CVX" in (migrated[("immunizations", "vaccine_code_system")] or "")
