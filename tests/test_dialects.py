"""The backend dialects: one per supported backend, found by the database's
name, refused by name when missing, and the only way the store reaches a
backend (a dialect registered under a new name is the one a save uses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from healthsim_models.engine import create_store_engine, session_scope
from healthsim_models.errors import ConfigurationError
from healthsim_models.location import BACKENDS
from healthsim_state import ScenarioRepository
from healthsim_state.store.dialects import DIALECTS, DuckDBDialect, StoreDialect, dialect_of
from healthsim_state.store.messages import database_message
from healthsim_state.store.transaction import conflict_reason


def test_every_backend_has_its_dialect() -> None:
    assert set(BACKENDS) <= set(DIALECTS)
    for name, dialect in DIALECTS.items():
        assert isinstance(dialect, StoreDialect) and dialect.name == name


def test_the_dialect_is_found_from_a_session_connection_engine_or_url(engine: sa.Engine) -> None:
    expected = DIALECTS[engine.dialect.name]
    with Session(engine) as session, engine.connect() as connection:
        assert dialect_of(session) is dialect_of(connection) is dialect_of(engine) is dialect_of(engine.url) is expected


def test_an_unknown_backend_is_refused_naming_the_supported_ones() -> None:
    message = r"the store does not run on 'sqlite' databases; supported backends: duckdb, postgresql"
    with pytest.raises(ConfigurationError, match=message):
        dialect_of(make_url("sqlite:///store.db"))
    engine = sa.create_engine("sqlite://")
    with pytest.raises(ConfigurationError, match=message):
        dialect_of(engine)
    with Session(engine) as session, pytest.raises(ConfigurationError, match=message):
        ScenarioRepository(session).save("s", {})


class _RecordingDuckDB(DuckDBDialect):
    """DuckDB under another name, noting the operations the store asks of it."""

    name = "recordingduck"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def upsert(
        self, session: Session, table: sa.Table, rows: Sequence[dict[str, Any]], *, versioning: Any = None
    ) -> None:
        self.calls.append(f"upsert {table.name}")
        super().upsert(session, table, rows, versioning=versioning)

    def upsert_arrow(self, session: Session, table: sa.Table, data: Any, *, versioning: Any = None) -> None:
        self.calls.append(f"upsert {table.name}")  # the column path's upsert
        super().upsert_arrow(session, table, data, versioning=versioning)

    def link(self, session: Session, scenario_id: Any, links: Any) -> None:
        self.calls.append("link")
        super().link(session, scenario_id, links)

    def lock_keys(self, session: Session, keys: Sequence[str]) -> None:
        self.calls.append(f"lock_keys {', '.join(keys)}")

    def scenario_table(self, session: Session, table: sa.Table, scenario: Any, entity_type: str) -> Any:
        self.calls.append(f"scenario_table {table.name}")  # what a load decodes, column by column
        return super().scenario_table(session, table, scenario, entity_type)


def test_a_registered_dialect_is_the_one_saves_and_loads_go_through(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_store_engine(duckdb_url)
    recording = _RecordingDuckDB()
    monkeypatch.setattr(engine.dialect, "name", recording.name)  # the database now goes by the new name
    patient = {"id": "P-1", "mrn": "MRN-1", "name": {"given_name": "Ada", "family_name": "L"}}
    patient |= {"birth_date": "1815-12-10", "gender": "F"}
    with session_scope(engine) as session, pytest.raises(ConfigurationError, match="'recordingduck'"):
        ScenarioRepository(session).save("s", {"patient": [patient]})

    monkeypatch.setitem(DIALECTS, recording.name, recording)
    with session_scope(engine) as session:
        assert ScenarioRepository(session).save("s", {"patient": [patient]}).counts == {"patient": 1}
    with session_scope(engine) as session:
        loaded = ScenarioRepository(session).load("s").entities["patient"]
    assert [p["mrn"] for p in loaded] == ["MRN-1"]
    assert recording.calls == ["lock_keys name:s", "upsert patients", "link", "scenario_table patients"]
    engine.dispose()


def test_a_collision_is_recognised_by_any_registered_dialect(monkeypatch: pytest.MonkeyPatch) -> None:
    class Collided(Exception):
        pass

    class Colliding(_RecordingDuckDB):
        name = "collidingduck"

        def conflict_reason(self, error: BaseException) -> str | None:
            return "its own conflict" if isinstance(error, Collided) else None

    assert conflict_reason(Collided()) is None
    monkeypatch.setitem(DIALECTS, Colliding.name, Colliding())
    assert conflict_reason(Collided()) == "its own conflict"
    assert conflict_reason(sa.exc.OperationalError("COMMIT", None, Collided())) == "its own conflict"
    assert conflict_reason(ValueError("conflict")) is None


def test_the_database_message_is_its_first_line_or_everything_before_the_sql_echo() -> None:
    error = Exception('Catalog Error: Table "patient" does not exist!\nDid you mean "patients"?\n\nLINE 1: SELECT')
    assert database_message(error) == 'Catalog Error: Table "patient" does not exist!'
    assert database_message(error, with_hint=True) == (
        'Catalog Error: Table "patient" does not exist! Did you mean "patients"?'
    )
    wrapped = sa.exc.OperationalError("SELECT", None, error)
    assert database_message(wrapped) == 'Catalog Error: Table "patient" does not exist!'
    assert database_message(ValueError()) == database_message(ValueError(), with_hint=True) == "ValueError"
