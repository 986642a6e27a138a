"""Values whose text form is a trap for the bulk paths (PostgreSQL's CSV
COPY both ways, DuckDB's Arrow): the empty text against NULL, separators,
quotes, line breaks, backslashes, NULL markers, non-ASCII, decimals at their
column's precision, date-times before 1970 and far ahead. On both backends
they come back as given by load, entities_frame and iter_entities, from dicts
and from Arrow tables, on a first save and on an overwrite."""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from healthsim_models import create_store_engine, entity_type, session_scope
from healthsim_state import ScenarioRepository
from healthsim_state.demo import scenario
from healthsim_state.store.batches import arrow_schema
from healthsim_state.store.dialects import dialect_of
from tests.helpers import wait_for_a_lock_wait

TEXTS = [
    "",
    None,
    "a,b",
    'say "hi"',
    "two\nlines\r\nand a return\r",
    "back\\slash \\N \\\\",
    "\\N",
    "\\.",
    "NULL",
    "null",
    "NA",
    "é 漢字 😀",
    " spaced ",
    "tab\there",
    '"',
    ",",
    '""',
]

TIMES = [
    "1900-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999Z",
    "2024-07-16T09:15:00-05:00",
    "0001-01-01T00:00:00Z",
]

DATES = ["0001-01-01", "1900-02-28", "1969-12-31", "9999-12-31"]
MONEY = [Decimal("9999999999.99"), Decimal("-9999999999.99"), Decimal("0.01"), Decimal("0.00")]


def _labs(tag: str) -> list[dict[str, Any]]:
    labs = []
    for i, text in enumerate(TEXTS):
        lab = {
            "id": f"LAB-{i}",
            "test_name": f"{tag} {i}",
            "value": "1",
            "patient_mrn": "MRN-0000000",
            "collected_time": TIMES[i % len(TIMES)],
        }
        if text is not None:
            lab["performing_lab"] = text
        labs.append(lab)
    return labs


def _claims(tag: str) -> list[dict[str, Any]]:
    return [
        {
            "claim_id": f"CLM-{i}",
            "claim_type": "PROFESSIONAL",
            "member_id": "MEM-0",
            "provider_npi": "1234567893",
            "service_date": DATES[i % len(DATES)],
            "total_charge": money,
            "principal_diagnosis": tag,
        }
        for i, money in enumerate(MONEY)
    ]


def _entities(tag: str) -> dict[str, list[dict[str, Any]]]:
    people = {name: docs for name, docs in scenario(1).items() if name in ("patient", "member")}
    return {**{name: list(docs) for name, docs in people.items()}, "lab_result": _labs(tag), "claim": _claims(tag)}


def _arrow(entities: dict[str, list[dict[str, Any]]]) -> dict[str, pa.Table]:
    return {
        name: pa.table({k: [doc.get(k) for doc in docs] for k in dict.fromkeys(k for doc in docs for k in doc)})
        for name, docs in entities.items()
    }


def _check(repo: ScenarioRepository, name: str, tag: str, *, as_arrow: bool = False) -> None:
    loaded = repo.load(name).entities
    assert [lab.get("performing_lab") for lab in loaded["lab_result"]] == TEXTS
    # An Arrow table has a null where a document has no key: the null is kept.
    assert ["performing_lab" in lab for lab in loaded["lab_result"]] == [as_arrow or t is not None for t in TEXTS]
    assert [lab["collected_time"] for lab in loaded["lab_result"]] == [TIMES[i % len(TIMES)] for i in range(len(TEXTS))]
    assert [lab["test_name"] for lab in loaded["lab_result"]] == [f"{tag} {i}" for i in range(len(TEXTS))]
    assert [c["total_charge"] for c in loaded["claim"]] == MONEY
    assert [c["service_date"] for c in loaded["claim"]] == [DATES[i % len(DATES)] for i in range(len(MONEY))]
    assert list(repo.iter_entities(name, "lab_result", batch_size=4)) == loaded["lab_result"]

    labs = repo.entities_frame(name, "lab_result")
    assert labs.schema.names == arrow_schema(entity_type("lab_result").model.__table__).names
    assert labs.column("performing_lab").to_pylist() == TEXTS
    times = labs.column("collected_time").to_pylist()
    assert [t.isoformat() for t in times[:3]] == [
        "1900-01-01T00:00:00+00:00",
        "1969-12-31T23:59:59.999999+00:00",
        "9999-12-31T23:59:59.999999+00:00",
    ]
    assert times[3] == dt.datetime(2024, 7, 16, 14, 15, tzinfo=dt.UTC)
    assert all(uuid.UUID(i) for i in labs.column("id").to_pylist())
    # JSON as compact text on both backends (PostgreSQL's jsonb prints it spaced).
    assert all(e is None or (", " not in e and '": ' not in e) for e in labs.column("extensions").to_pylist())
    claims = repo.entities_frame(name, "claim")
    assert claims.column("total_charge").to_pylist() == MONEY
    assert claims.column("total_charge").type == pa.decimal128(12, 2)
    assert [d.isoformat() for d in claims.column("service_date").to_pylist()] == [
        DATES[i % len(DATES)] for i in range(len(MONEY))
    ]


@pytest.mark.parametrize("as_arrow", [False, True], ids=["dicts", "arrow"])
def test_trap_values_round_trip_on_a_first_save_and_an_overwrite(engine: sa.Engine, as_arrow: bool) -> None:
    def given(tag: str) -> Any:
        entities = _entities(tag)
        return _arrow(entities) if as_arrow else entities

    with session_scope(engine) as session:
        ScenarioRepository(session).save("s", given("first"))
    with session_scope(engine) as session:
        _check(ScenarioRepository(session), "s", "first", as_arrow=as_arrow)
    # Overwritten: the same entities (the same ids) with other values, each kept in the history.
    with session_scope(engine) as session:
        ScenarioRepository(session).save("s", given("second"), overwrite=True)
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        _check(repo, "s", "second", as_arrow=as_arrow)
        assert [v.document["test_name"] for v in repo.history("lab_result", "LAB-1")] == ["first 1", "second 1"]


def test_frames_and_loads_leave_the_sessions_time_zone_and_date_style_alone(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("DuckDB has neither setting")
    with session_scope(engine) as session:
        ScenarioRepository(session).save("s", _entities("first"))
    with session_scope(engine) as session:
        session.execute(sa.text("SET TIME ZONE 'America/Chicago'"))
        session.execute(sa.text("SET LOCAL DateStyle = 'ISO, DMY'"))
        repo = ScenarioRepository(session)
        # iter_entities too: its rows come through the driver, which would read date-times
        # in the session's time zone, where year 1 in UTC is a year BC.
        _check(repo, "s", "first")
        settings = session.execute(sa.text("SELECT current_setting('TimeZone'), current_setting('DateStyle')")).one()
        assert tuple(settings) == ("America/Chicago", "ISO, DMY")


def test_an_id_stored_by_another_writer_meanwhile_is_upserted(postgresql_url: str) -> None:
    """The rows of a batch none of whose ids is stored go straight into the
    table; when another writer stores one of them before this one commits,
    the batch is upserted as ever (after that writer commits)."""
    engine = create_store_engine(postgresql_url)
    table = entity_type("lab_result").model.__table__
    row_id = str(uuid.uuid4())

    def batch(value: str) -> pa.Table:
        schema = arrow_schema(table)
        row: dict[str, Any] = dict.fromkeys(schema.names)
        now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        row.update(
            id=row_id,
            patient_mrn="MRN-1",
            patient_uuid=row_id,
            test_name="t",
            value=value,
            collected_time=now,
            created_at=now,
            updated_at=now,
            source_type="loaded",
            source_system="import",
        )
        return pa.Table.from_pylist([row], schema=schema)

    try:
        with engine.connect() as first:
            session = sa.orm.Session(bind=first)
            dialect_of(session).upsert_arrow(session, table, batch("first"))

            def second() -> None:
                with session_scope(engine) as other:
                    dialect_of(other).upsert_arrow(other, table, batch("second"))

            with ThreadPoolExecutor(1) as pool:
                future = pool.submit(second)
                wait_for_a_lock_wait(engine)  # the second waits for the first's row
                session.commit()
                future.result(timeout=60)  # raises what the second writer raised
        with engine.connect() as connection:
            values = connection.execute(sa.text("SELECT value FROM lab_results")).scalars().all()
        assert values == ["second"]
    finally:
        engine.dispose()
