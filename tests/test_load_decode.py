"""A load's column-wise decode (``document.decode_table``) and its tables in
turn (``dialect.scenario_tables``; PostgreSQL fetches the next type while one
is decoded), on both backends: the same documents as row by row."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from healthsim_models import ENTITY_TYPES, entity_type, session_scope
from healthsim_state import ScenarioRepository
from healthsim_state.codec.document import decode, decode_table
from healthsim_state.codec.layout import layout
from healthsim_state.store.dialects import dialect_of
from tests.helpers import fixture


def _patients() -> list[dict[str, Any]]:
    plain = [
        {
            "id": f"PAT-{i}",
            "mrn": f"MRN-{i}",
            "name": {"given_name": "Ada", "family_name": "Lovelace"},
            "birth_date": "1980-02-03",
            "gender": "F",
            "_provenance": {
                "source_type": "generated",
                "source_system": "patientsim",
                "created_at": "2024-01-02T03:04:05+02:00",
            },
        }
        for i in range(30)
    ]
    name = {"given_name": "Bo", "family_name": "Ng"}
    odd = [
        # explicit nulls (a field, a group), no provenance
        {
            "id": "PAT-null",
            "mrn": "MRN-null",
            "name": name,
            "gender": "M",
            "birth_date": "1990-01-01",
            "race": None,
            "address": None,
        },
        # an unknown field, a group member null
        {
            "id": "PAT-x",
            "mrn": "MRN-x",
            "name": {**name, "middle_name": None},
            "gender": "F",
            "birth_date": "1970-05-06",
            "hobby": ["chess"],
        },
        # a default (deceased), a date-time-free row
        {
            "id": "PAT-d",
            "mrn": "MRN-d",
            "name": name,
            "gender": "F",
            "birth_date": "2000-01-01",
            "deceased": False,
            "contact": {"email": "a@b.c"},
        },
    ]
    return plain[:10] + odd + plain[10:]


def _encounters() -> list[dict[str, Any]]:
    return [
        {
            "encounter_id": f"ENC-{i}",
            "patient_mrn": f"MRN-{i % 30}",
            "class_code": "O",
            "status": "finished",
            "admission_time": "2024-01-02T10:00:00-05:00" if i % 2 else "2024-01-02T10:00:00Z",
            "discharge_time": None if i % 3 else "2024-01-02T18:00:00.5+01:00",
        }
        for i in range(40)
    ]


def _in_order(value: Any) -> Any:
    """``value`` with every object as its list of items: equal only in the same key order."""
    if isinstance(value, dict):
        return [(k, _in_order(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_in_order(v) for v in value]
    return value


@pytest.mark.parametrize("source", ["mixed", "canonical"])
def test_the_column_wise_decode_gives_decodes_documents_in_its_key_order(engine: sa.Engine, source: str) -> None:
    entities = (
        {"patient": _patients(), "encounter": _encounters()}
        if source == "mixed"
        else fixture("scenario-canonical.json")["entities"]
    )
    with session_scope(engine) as session:
        ScenarioRepository(session).save("s", entities)
    with session_scope(engine) as session:
        scenario_id = ScenarioRepository(session).scenario_summary("s").id
        dialect = dialect_of(session)
        compared = 0
        for et in ENTITY_TYPES:
            lay, table = layout(et.name), et.model.__table__
            # The row-wise oracle: the stream's rows (on PostgreSQL the driver's, not the COPY's).
            rows = dialect.iter_scenario_rows(session, table, scenario_id, et.name, 1_000)
            by_row = [decode(lay, row) for batch in rows for row in batch]
            by_column = decode_table(lay, dialect.scenario_table(session, table, scenario_id, et.name))
            assert _in_order(by_column) == _in_order(by_row), et.name
            compared += len(by_row)
    assert compared >= (73 if source == "mixed" else 10)


def test_a_loads_tables_come_in_turn_and_leaving_early_frees_the_session(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("s", {"patient": _patients(), "encounter": _encounters()})
    with session_scope(engine) as session:
        scenario_id = ScenarioRepository(session).scenario_summary("s").id
        dialect = dialect_of(session)
        tables = [(name, entity_type(name).model.__table__) for name in ("patient", "encounter", "patient")]
        one_by_one = [dialect.scenario_table(session, table, scenario_id, name) for name, table in tables]
        assert list(dialect.scenario_tables(session, scenario_id, tables)) == one_by_one
        fetched = dialect.scenario_tables(session, scenario_id, tables)
        assert next(fetched) == one_by_one[0]  # the next is being fetched meanwhile (PostgreSQL)
        fetched.close()
        assert session.execute(sa.text("SELECT count(*) FROM encounters")).scalar_one() == 40
