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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg.errors
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from healthsim_models.engine import create_store_engine, session_scope
from healthsim_models.errors import ScenarioExistsError, ValidationError, WriteConflictError
from healthsim_state import state_manager
from healthsim_state.store.dialects import dialect_of
from healthsim_state.store.repository import ScenarioRepository
from healthsim_state.store.transaction import BACKOFF, conflict_reason, run_in_transaction
from tests.helpers import wait_for_a_lock_wait

WRITERS = 4
ROUNDS = 8  # saves per writer; rounds 2.. overwrite the scenario of round - 2
SHARED = 200  # patients (and one encounter each) every save holds
PRIVATE = 5  # patients only one save holds: orphans once its scenario is overwritten
WANDERING = 40  # patients each save holds or not at random: overwrites drop what others save
NAMESPACE = uuid.UUID("5d0c6a52-3c1e-4c55-9a55-0d6f1f6b7c11")


def _uuid(text: str) -> str:
    return str(uuid.uuid5(NAMESPACE, text))


def _wanderers(tag: str) -> list[int]:
    chance = random.Random(f"wandering-{tag}")
    return [i for i in range(WANDERING) if chance.random() < 0.5]


def _entities(tag: str) -> dict[str, list[dict[str, Any]]]:
    """A save's documents: the shared entities carry ``tag`` in several columns
    and in an extension, in an order of their own (as independent writers would)."""
    order = [("MRN", i) for i in range(SHARED)] + [("WAN", i) for i in _wanderers(tag)]
    random.Random(tag).shuffle(order)
    patients = [
        {
            "id": _uuid(f"patient-{kind}-{i}"),
            "mrn": f"{kind}{i:04d}",
            "name": {"given_name": tag, "family_name": tag},
            "address": {"city": tag},
            "birth_date": "1980-02-03",
            "gender": "F",
            "writer": tag,
        }
        for kind, i in order
    ]
    patients += [
        {
            "id": _uuid(f"private-{tag}-{i}"),
            "mrn": f"PRIV{i}",
            "name": {"given_name": tag, "family_name": tag},
            "birth_date": "1990-01-01",
            "gender": "M",
        }
        for i in range(PRIVATE)
    ]
    encounters = [
        {
            "id": _uuid(f"encounter-{i}"),
            "encounter_id": f"E{i:04d}",
            "patient_mrn": f"MRN{i:04d}",
            "class_code": "O",
            "status": "finished",
            "admission_time": "2024-01-02T10:00:00Z",
            "facility": tag,
            "chief_complaint": tag,
            "writer": tag,
        }
        for kind, i in reversed(order)
        if kind == "MRN"
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
    processes = [context.Process(target=_writer, args=(postgresql_url, w, barrier, results)) for w in range(WRITERS)]
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
                sa.text(
                    "SELECT given_name, family_name, city, extensions FROM patients "
                    "WHERE mrn LIKE 'MRN%' OR mrn LIKE 'WAN%'"
                )
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
            unlinked = connection.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM patients p WHERE NOT EXISTS "
                    "(SELECT 1 FROM scenario_entities e WHERE e.entity_id = p.id)) + (SELECT count(*) "
                    "FROM encounters c WHERE NOT EXISTS (SELECT 1 FROM scenario_entities e WHERE e.entity_id = c.id))"
                )
            ).scalar_one()
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
    names = {f"w{w}-{r}": f"w{w}r{ROUNDS - 2 + r}" for w in range(WRITERS) for r in range(2)}  # name: last tag
    wandering = {i for tag in names.values() for i in _wanderers(tag)}
    assert len(patients) == SHARED + len(wandering) and len(encounters) == SHARED
    for given, family, city, extensions in patients:
        assert given == family == city == extensions["writer"], (given, family, city, extensions)
    for facility, complaint, extensions in encounters:
        assert facility == complaint == extensions["writer"], (facility, complaint, extensions)
    # Every scenario links all its entities; overwritten saves left no orphans behind.
    assert links == {name: 2 * SHARED + PRIVATE + len(_wanderers(tag)) for name, tag in names.items()}
    assert private == PRIVATE * len(names)
    assert (unlinked, dangling) == (0, 0)


# -- the retry helper ------------------------------------------------------------------


def _deadlock() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", None, psycopg.errors.DeadlockDetected("deadlock detected"))


def _patient(mrn: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": extra.pop("id", f"PAT-{mrn}"),
        "mrn": mrn,
        "name": {"given_name": "Ada", "family_name": "Lovelace"},
        "birth_date": "1980-02-03",
        "gender": "F",
        **extra,
    }


def _names(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text("SELECT name FROM scenarios ORDER BY name")).scalars())


def test_a_conflict_is_run_again_until_the_work_succeeds(engine: Engine) -> None:
    runs: list[int] = []
    pauses: list[float] = []

    def work(session: Session) -> str:
        runs.append(len(runs))
        ScenarioRepository(session).save(f"run-{len(runs)}", {"patient": [_patient("MRN-1")]})
        if len(runs) == 1:
            raise _deadlock()  # through SQLAlchemy
        if len(runs) == 2:
            raise psycopg.errors.SerializationFailure("could not serialize access")  # straight from the driver
        return "done"

    assert run_in_transaction(engine, work, sleep=pauses.append) == "done"
    assert len(runs) == 3
    assert _names(engine) == ["run-3"]  # the failed runs wrote nothing
    # Jittered (±50%) and doubling.
    assert BACKOFF * 0.5 <= pauses[0] <= BACKOFF * 1.5 and BACKOFF <= pauses[1] <= BACKOFF * 3


def test_a_conflict_that_persists_ends_as_write_conflict_error(engine: Engine) -> None:
    runs: list[int] = []

    def work(session: Session) -> None:
        runs.append(1)
        ScenarioRepository(session).save("never", {"patient": [_patient("MRN-1")]})
        raise _deadlock()

    with pytest.raises(WriteConflictError) as info:
        run_in_transaction(engine, work, attempts=3, what="the save of 'never'", sleep=lambda _: None)
    assert len(runs) == 3
    assert str(info.value) == (
        "the save of 'never' collided with another writer 3 times (deadlock detected, the last time) and was "
        "rolled back, nothing of it was written; run it again"
    )
    assert _names(engine) == []


def test_other_errors_are_not_run_again(engine: Engine) -> None:
    runs: list[int] = []

    def work(session: Session) -> None:
        runs.append(1)
        ScenarioRepository(session).save("bad", {"patient": [{"mrn": "MRN-1"}]})

    with pytest.raises(ValidationError):
        run_in_transaction(engine, work, sleep=lambda _: None)
    unique = sa.exc.IntegrityError("INSERT ...", None, psycopg.errors.UniqueViolation("duplicate key"))
    with pytest.raises(sa.exc.IntegrityError):
        run_in_transaction(engine, lambda session: (runs.append(1), _raise(unique)), sleep=lambda _: None)
    assert len(runs) == 2
    assert conflict_reason(unique) is None and conflict_reason(ValueError("40P01")) is None


def test_which_duckdb_errors_are_collisions() -> None:
    import duckdb

    def reason(message: str) -> str | None:
        return conflict_reason(sa.exc.OperationalError("COMMIT", None, duckdb.TransactionException(message)))

    assert reason("TransactionContext Error: Conflict on update!") == "write-write conflict"
    assert (
        reason(
            'TransactionContext Error: Failed to commit: PRIMARY KEY or UNIQUE constraint violation: duplicate key "n"'
        )
        == "write-write conflict"
    )
    assert reason("TransactionContext Error: Failed to commit: could not write to the WAL") is None
    assert reason("TransactionContext Error: cannot start a transaction within a transaction") is None
    assert conflict_reason(duckdb.ConstraintException("Constraint Error: Duplicate key")) is None


def _raise(exc: BaseException) -> None:
    raise exc


def _deadlock_once(monkeypatch: pytest.MonkeyPatch, store_url: str) -> list[int]:
    """Make the first upsert (of rows or, on the column path, of an Arrow batch) on the store's
    backend fail as a deadlock would; returns the calls."""
    calls: list[int] = []
    dialect = dialect_of(make_url(store_url))
    for method in ("upsert", "upsert_arrow"):
        write = getattr(dialect, method)

        def failing_once(session: Session, table: sa.Table, rows: Any, *, _write: Any = write, **options: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise psycopg.errors.DeadlockDetected("deadlock detected")
            _write(session, table, rows, **options)

        monkeypatch.setattr(dialect, method, failing_once)
    return calls


def test_state_manager_runs_a_save_again_when_its_input_can_be_read_again(
    engine: Engine, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _deadlock_once(monkeypatch, store_url)
    summary = state_manager.save_scenario(
        "again", {"patient": [_patient("MRN-1")]}, tags=iter(["t"]), database_url=store_url
    )
    assert summary.counts == {"patient": 1} and len(calls) == 2
    assert state_manager.list_scenarios(database_url=store_url)[0].tags == ["t"]


def test_state_manager_does_not_run_a_save_of_a_generator_again(
    engine: Engine, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _deadlock_once(monkeypatch, store_url)
    with pytest.raises(WriteConflictError) as info:
        state_manager.save_scenario(
            "once", {"patient": (_patient(f"MRN-{i}") for i in range(3))}, database_url=store_url
        )
    assert len(calls) == 1
    assert str(info.value) == (
        "the save of scenario 'once' collided with another writer (deadlock detected) and was rolled back, "
        "nothing of it was written; run it again"
    )
    assert _names(engine) == []


# -- real collisions ---------------------------------------------------------------------


@contextmanager
def _in_thread(call: Callable[[], Any]) -> Iterator[Any]:
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(call)


P_ID, E_ID = str(uuid.uuid4()), str(uuid.uuid4())


def _pair(tag: str) -> dict[str, list[dict[str, Any]]]:
    """A patient and an encounter of it, both with UUID ids (shared by every save of them)."""
    encounter = {
        "id": E_ID,
        "encounter_id": "E1",
        "patient_mrn": "MRN-1",
        "class_code": "O",
        "status": "finished",
        "admission_time": "2024-01-02T10:00:00Z",
        "facility": tag,
    }
    return {"patient": [_patient("MRN-1", id=P_ID, address={"city": tag})], "encounter": [encounter]}


def _deadlock_with(engine: Engine, save: Callable[[], Any]) -> Any:
    """Run ``save`` (a save of :func:`_pair`) in a thread while this one holds
    the encounter, then ask for the patient that save holds by then: a
    deadlock, which the save finds first (it waits longer) and gives way to."""
    with engine.connect() as blocker:
        blocker.execute(sa.text("SET deadlock_timeout = '60s'"))  # the other side detects it
        blocker.execute(sa.text("UPDATE encounters SET facility = 'blocker' WHERE id = :id"), {"id": E_ID})
        with _in_thread(save) as future:
            wait_for_a_lock_wait(engine)  # the save holds the patient and waits for the encounter
            blocker.execute(sa.text("UPDATE patients SET city = 'blocker' WHERE id = :id"), {"id": P_ID})
            blocker.commit()
            return future.result(timeout=60)


@pytest.fixture
def pg_engine(postgresql_url: str) -> Iterator[Engine]:
    engine = create_store_engine(postgresql_url)
    with session_scope(engine) as session:
        ScenarioRepository(session).save("base", _pair("base"))
    yield engine
    engine.dispose()


def test_a_deadlock_in_the_callers_session_is_a_write_conflict_error(pg_engine: Engine) -> None:
    def save() -> Exception | None:
        with Session(pg_engine) as session:
            try:
                ScenarioRepository(session).save("other", _pair("other"))
            except WriteConflictError as exc:
                return exc
            session.commit()
        return None

    error = _deadlock_with(pg_engine, save)
    assert str(error) == (
        "the save of scenario 'other' collided with another writer (deadlock detected) and was rolled back, "
        "nothing of it was written; run it again"
    )
    assert _names(pg_engine) == ["base"]


def test_state_manager_runs_a_deadlocked_save_again(pg_engine: Engine, postgresql_url: str) -> None:
    summary = _deadlock_with(
        pg_engine, lambda: state_manager.save_scenario("other", _pair("other"), database_url=postgresql_url)
    )
    assert summary.counts == {"patient": 1, "encounter": 1}
    assert _names(pg_engine) == ["base", "other"]
    with pg_engine.connect() as connection:  # the save ran after the blocker: its version won, whole
        assert connection.execute(sa.text("SELECT city FROM patients")).scalar_one() == "other"
        assert connection.execute(sa.text("SELECT facility FROM encounters")).scalar_one() == "other"


def test_state_manager_cannot_run_a_deadlocked_save_of_generators_again(pg_engine: Engine, postgresql_url: str) -> None:
    def save() -> Exception:
        entities = {k: (doc for doc in docs) for k, docs in _pair("other").items()}
        with pytest.raises(WriteConflictError) as info:
            state_manager.save_scenario("other", entities, database_url=postgresql_url)
        return info.value

    assert "(deadlock detected)" in str(_deadlock_with(pg_engine, save))
    assert _names(pg_engine) == ["base"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_creators_of_one_new_name_take_turns(pg_engine: Engine, overwrite: bool) -> None:
    def second() -> Any:
        with Session(pg_engine) as session:
            try:
                summary = ScenarioRepository(session).save(
                    "same", {"patient": [_patient("MRN-B")]}, overwrite=overwrite
                )
            except ScenarioExistsError as exc:
                return exc
            session.commit()
            return summary

    with Session(pg_engine) as first:
        ScenarioRepository(first).save("same", {"patient": [_patient("MRN-A")]})
        with _in_thread(second) as future:
            wait_for_a_lock_wait(pg_engine)  # the second waits for the first to end
            first.commit()
            outcome = future.result(timeout=60)
    with session_scope(pg_engine) as session:
        kept = [p["mrn"] for p in ScenarioRepository(session).load("same").entities["patient"]]
    if overwrite:
        assert outcome.counts == {"patient": 1} and kept == ["MRN-B"]
    else:
        assert isinstance(outcome, ScenarioExistsError) and "overwrite=True" in str(outcome)
        assert kept == ["MRN-A"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_name_created_after_the_snapshot_of_a_repeatable_read_save(pg_engine: Engine, overwrite: bool) -> None:
    with Session(pg_engine.execution_options(isolation_level="REPEATABLE READ")) as late:
        assert late.execute(sa.text("SELECT count(*) FROM scenarios")).scalar_one() == 1  # its snapshot
        with session_scope(pg_engine) as session:
            ScenarioRepository(session).save("same", {"patient": [_patient("MRN-A")]})
        expected = WriteConflictError if overwrite else ScenarioExistsError
        with pytest.raises(expected, match="another writer created"):
            ScenarioRepository(late).save("same", {"patient": [_patient("MRN-B")]}, overwrite=overwrite)
    assert _names(pg_engine) == ["base", "same"]


def test_a_duckdb_write_conflict_is_a_write_conflict_error(duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    try:
        with session_scope(engine) as session:
            ScenarioRepository(session).save("s", {"patient": [_patient("MRN-1")]})
        with Session(engine) as first, Session(engine) as second:
            ScenarioRepository(first).add_tags("s", ["a"])
            with pytest.raises(WriteConflictError, match="tagging scenario 's' collided with another writer"):
                ScenarioRepository(second).add_tags("s", ["b"])
            first.commit()
        with session_scope(engine) as session:
            assert ScenarioRepository(session).scenario_summary("s").tags == ["a"]
    finally:
        engine.dispose()


def _deadlocking_once(method: Any, calls: list[int]) -> Any:
    """A repository ``method`` that, on its first call, does its work and then fails as a deadlock would."""

    def deadlocking(repo: ScenarioRepository, *args: Any) -> Any:
        calls.append(1)
        result = method(repo, *args)
        if len(calls) == 1:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return result

    return deadlocking


def test_the_cli_and_mcp_writes_run_a_collided_write_again(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from healthsim_state.interfaces.cli import app
    from healthsim_state.interfaces.mcp import tools
    from tests.helpers import FIXTURES

    document = FIXTURES / "scenario-canonical.json"
    calls = _deadlock_once(monkeypatch, store_url)
    result = CliRunner().invoke(app, ["scenario", "import", str(document), "--as", "file", "--database-url", store_url])
    assert result.exit_code == 0, result.output
    assert "imported 'file'" in result.stdout and len(calls) > 1  # the file was read again
    calls.clear()
    piped = CliRunner().invoke(
        app, ["scenario", "import", "-", "--as", "piped", "--database-url", store_url], input=document.read_bytes()
    )
    assert isinstance(piped.exception, WriteConflictError), piped.output  # standard input is read once
    assert "the save of scenario 'piped' collided with another writer" in str(piped.exception)
    store = tools.Store(store_url)
    try:
        calls.clear()
        assert tools.save_scenario(store, "tool", {"patient": [_patient("MRN-1")]})["counts"] == {"patient": 1}
        assert len(calls) == 2
        calls.clear()
        copied = tools.import_scenario(store, document=document.read_text(), name="copy")
        assert sum(copied["counts"].values()) == 77 and len(calls) > 1
        assert sorted(s["name"] for s in tools.list_scenarios(store)["scenarios"]) == ["copy", "file", "tool"]
        calls.clear()
        added = tools.add_entities(store, "tool", {"patient": [_patient("MRN-2")]})
        assert added["counts"] == {"patient": 2} and len(calls) == 2
        calls.clear()
        monkeypatch.setattr(ScenarioRepository, "delete", _deadlocking_once(ScenarioRepository.delete, calls))
        assert tools.delete_scenario(store, "tool", confirm=True)["deleted"]["name"] == "tool"
        assert len(calls) == 2
        assert sorted(s["name"] for s in tools.list_scenarios(store)["scenarios"]) == ["copy", "file"]
    finally:
        store.close()
    calls.clear()
    deleted = CliRunner().invoke(app, ["scenario", "delete", "file", "--yes", "--database-url", store_url])
    assert deleted.exit_code == 0 and "deleted 'file'" in deleted.stdout, deleted.output
    assert len(calls) == 2
    calls.clear()
    monkeypatch.setattr(ScenarioRepository, "add_tags", _deadlocking_once(ScenarioRepository.add_tags, calls))
    tagged = CliRunner().invoke(app, ["scenario", "tag", "copy", "--add", "x", "--database-url", store_url])
    assert tagged.exit_code == 0 and tagged.stdout.startswith("copy: ") and ", x\n" in tagged.stdout, tagged.output
    assert len(calls) == 2
