"""Revision 0008 (the links' entity_type in byte order on PostgreSQL) on a store holding data:
both ways on both backends, every row kept, DuckDB's schema untouched."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from healthsim_models import create_store_engine, schema_version, session_scope
from healthsim_state import ScenarioRepository
from healthsim_state.demo import scenario
from tests.catalog import database_shapes

LINK_TABLES = ("scenario_entities", "scenario_entities_history")


def _links(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the link tables, sorted in Python (byte order, whatever the database's)."""
    with engine.connect() as connection:
        return {
            table: sorted(tuple(map(str, row)) for row in connection.execute(sa.text(f"SELECT * FROM {table}")))
            for table in LINK_TABLES
        }


def _collations(engine: sa.Engine) -> dict[str, str | None]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT table_name, collation_name FROM information_schema.columns "
                "WHERE column_name = 'entity_type' AND table_schema = current_schema() AND table_name IN :tables"
            ).bindparams(sa.bindparam("tables", expanding=True)),
            {"tables": list(LINK_TABLES)},
        )
        return dict(rows.all())


def test_revision_0008_sets_byte_order_on_postgresql_only_and_keeps_the_links(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        with session_scope(engine) as session:
            repository = ScenarioRepository(session)
            repository.save("kept", scenario(3))
            repository.save("kept", scenario(2), overwrite=True)  # links history rows too
        with session_scope(engine) as session:
            expected = ScenarioRepository(session).load("kept").entities
        links = _links(engine)
        assert all(links.values())
        at_head = database_shapes(engine)
        on_postgresql = engine.dialect.name == "postgresql"
        if on_postgresql:
            assert _collations(engine) == dict.fromkeys(LINK_TABLES, "C")

        schema_version.downgrade(engine, "0007")
        at_0007 = database_shapes(engine)
        changed = {
            (table, column)
            for table, shape in at_head.items()
            for column, kind in shape.columns.items()
            if at_0007[table].columns[column] != kind
        }
        if on_postgresql:
            assert changed == {(table, "entity_type") for table in LINK_TABLES}
            assert all(at_0007[table].columns["entity_type"] == ("VARCHAR", False) for table in LINK_TABLES)
            assert _collations(engine) == dict.fromkeys(LINK_TABLES)  # the database's default
        else:
            assert at_0007 == at_head
        assert _links(engine) == links

        schema_version.upgrade(engine)
        assert database_shapes(engine) == at_head
        assert _links(engine) == links
        with session_scope(engine) as session:
            assert ScenarioRepository(session).load("kept").entities == expected
    finally:
        engine.dispose()
