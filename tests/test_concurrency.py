"""Concurrent writers on one PostgreSQL store, and the retry helper behind them.

Several writer processes save (and overwrite) different scenarios that share
patients and encounters by UUID: every save must commit, every shared row
must be one writer's version whole, and every scenario must link all of its
entities. DuckDB admits one writing process per file, so the process test is
PostgreSQL's; the retry helper's tests run on both backends.
"""

from __future__ import annotations

import multiprocessing
import random
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from healthsim_models.engine import create_store_engine, session_scope

WRITERS = 4
ROUNDS = 8  # saves per writer; rounds 2.. overwrite the scenario of round - 2
SHARED = 200  # patients (and one encounter each) every save holds
PRIVATE = 5  # patients only one save holds: orphans once its scenario is overwritten
NAMESPACE = uuid.UUID("5d0c6a52-3c1e-4c55-9a55-0d6f1f6b7c11")


def _uuid(text: str) -> str:
    return str(uuid.uuid5(NAMESPACE, text))


def _entities(tag: str) -> dict[str, list[dict[str, Any]]]:
    """A save's documents: the shared entities carry ``tag`` in several columns
    and in an extension, in an order of their own (as independent writers would)."""
    order = list(range(SHARED))
    random.Random(tag).shuffle(order)
    patients = [
        {
            "id": _uuid(f"patient-{i}"), "mrn": f"MRN{i:04d}",
            "name": {"given_name": tag, "family_name": tag}, "address": {"city": tag},
            "birth_date": "1980-02-03", "gender": "F", "writer": tag,
        }
        for i in order
    ]
    patients += [
        {
            "id": _uuid(f"private-{tag}-{i}"), "mrn": f"PRIV{i}",
            "name": {"given_name": tag, "family_name": tag}, "birth_date": "1990-01-01", "gender": "M",
        }
        for i in range(PRIVATE)
    ]
    encounters = [
        {
            "id": _uuid(f"encounter-{i}"), "encounter_id": f"E{i:04d}", "patient_mrn": f"MRN{i:04d}",
            "class_code": "O", "status": "finished", "admission_time": "2024-01-02T10:00:00Z",
            "facility": tag, "chief_complaint": tag, "writer": tag,
        }
        for i in reversed(order)
    ]
    return {"patient": patients, "encounter": encounters}


def _writer(url: str, writer: int, barrier: Any, results: Any) -> None:
    """One writer process: ROUNDS saves through the module-level API, failures collected."""
    from healthsim_state.state_manager import save_scenario

    errors = []
    barrier.wait()
    for round_ in range(ROUNDS):
        name = f"w{writer}-{round_ % 2}"
        try:
            save_scenario(name, _entities(f"w{writer}r{round_}"), overwrite=True, database_url=url)
        except Exception as exc:  # reported to the parent, which fails the test with it
            errors.append(f"{name} round {round_}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    results.put((writer, errors))


def test_concurrent_writers_sharing_entities_all_commit(postgresql_url: str) -> None:
    create_store_engine(postgresql_url).dispose()  # the schema exists before the writers start
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS)
    results = context.Queue()
    processes = [
        context.Process(target=_writer, args=(postgresql_url, w, barrier, results)) for w in range(WRITERS)
    ]
    for process in processes:
        process.start()
    outcome = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    assert all(process.exitcode == 0 for process in processes)
    assert [e for errors in outcome.values() for e in errors] == []

    engine = create_store_engine(postgresql_url)
    try:
        with engine.connect() as connection:
            patients = connection.execute(
                sa.text("SELECT given_name, family_name, city, extensions FROM patients WHERE mrn LIKE 'MRN%'")
            ).all()
            encounters = connection.execute(
                sa.text("SELECT facility, chief_complaint, extensions FROM encounters")
            ).all()
            links = dict(
                connection.execute(
                    sa.text(
                        "SELECT s.name, count(*) FROM scenario_entities e JOIN scenarios s ON s.id = e.scenario_id "
                        "GROUP BY s.name"
                    )
                ).all()
            )
            private = connection.execute(sa.text("SELECT count(*) FROM patients WHERE mrn LIKE 'PRIV%'")).scalar_one()
            dangling = connection.execute(
                sa.text(
                    "SELECT count(*) FROM scenario_entities e WHERE NOT EXISTS "
                    "(SELECT 1 FROM patients p WHERE p.id = e.entity_id) AND NOT EXISTS "
                    "(SELECT 1 FROM encounters c WHERE c.id = e.entity_id)"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    # Each shared row is one save's version, every column of it.
    assert len(patients) == SHARED and len(encounters) == SHARED
    for given, family, city, extensions in patients:
        assert given == family == city == extensions["writer"], (given, family, city, extensions)
    for facility, complaint, extensions in encounters:
        assert facility == complaint == extensions["writer"], (facility, complaint, extensions)
    # Every scenario links all its entities; overwritten saves left no orphans behind.
    names = {f"w{w}-{r}" for w in range(WRITERS) for r in range(2)}
    assert links == {name: 2 * SHARED + PRIVATE for name in names}
    assert private == PRIVATE * len(names)
    assert dangling == 0
