"""Entity history on DuckDB and PostgreSQL: versions kept by overwrites, adds and deletes, in the
same transaction as the write; reads as of a past time; restore of a deleted scenario; retention;
the history switch; the CLI; a killed save; revision 0005 up and down."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from healthsim_models import HISTORY, InvalidArgumentError, create_store_engine, schema_version, session_scope
from healthsim_models.errors import ScenarioNotFoundError
from healthsim_state import ScenarioRepository, demo
from healthsim_state.interfaces.cli import app
from healthsim_state.store import settings as store_settings
from tests.catalog import database_shapes
from tests.helpers import normalise
from tests.test_revision_0004 import _engine  # an engine that does not upgrade, disposed after

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = uuid.UUID("0b5e7c84-7f43-4a55-8d3e-6c1b2f9a4e10")
runner = CliRunner(env={"COLUMNS": "250"})


def _patient(number: int, given: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(NAMESPACE, f"patient-{number}")),
        "mrn": f"M{number:03d}",
        "name": {"given_name": given, "family_name": "Rivers"},
        "birth_date": "1980-01-01",
        "gender": "F",
    }


def _encounter(number: int, reason: str) -> dict[str, Any]:
    return {
        "encounter_id": f"E{number:03d}",
        "patient_mrn": f"M{number:03d}",
        "class_code": "O",
        "status": "finished",
        "admission_time": "2024-01-02T10:00:00Z",
        "chief_complaint": reason,
    }


def _now() -> dt.datetime:
    """A time strictly between the write before and the write after."""
    time.sleep(0.002)
    at = dt.datetime.now(dt.UTC)
    time.sleep(0.002)
    return at


def _count(engine: sa.Engine, table: str, where: str = "") -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one()


def _repo_call(engine: sa.Engine, method: str, *args: Any, **kwargs: Any) -> Any:
    with session_scope(engine) as session:
        return getattr(ScenarioRepository(session), method)(*args, **kwargs)


def _given_names(loaded: Any) -> list[tuple[str, str]]:
    return [(p["mrn"], p["name"]["given_name"]) for p in loaded.entities["patient"]]


# -- versions ---------------------------------------------------------------------


def test_overwrites_add_and_delete_keep_each_replaced_version(engine: sa.Engine) -> None:
    _repo_call(
        engine,
        "save",
        "s",
        {"patients": [_patient(1, "Ann"), _patient(2, "Bea")], "encounters": [_encounter(1, "cough")]},
    )
    _repo_call(engine, "save", "s", {"patients": [_patient(1, "Anna"), _patient(2, "Bea")]}, overwrite=True)
    _repo_call(engine, "add_entities", "s", {"patients": [_patient(1, "Annie")]})
    with session_scope(engine) as session:
        versions = ScenarioRepository(session).history("patient", "M001")
    assert [v.document["name"]["given_name"] for v in versions] == ["Ann", "Anna", "Annie"]
    assert [v.ended_by for v in versions] == ["update", "update", None]
    assert versions[0].valid_to == versions[1].valid_from and versions[1].valid_to == versions[2].valid_from
    assert versions[-1].valid_to is None and versions[-1].write_id is None
    # The encounter the overwrite dropped is kept as deleted, with the write that deleted it.
    with session_scope(engine) as session:
        (encounter,) = ScenarioRepository(session).history("encounter", "E001")
    assert encounter.ended_by == "delete" and encounter.document["chief_complaint"] == "cough"
    assert _count(engine, "writes", f"WHERE id = '{encounter.write_id}' AND operation = 'save'") == 1
    assert _repo_call(engine, "add_entities", "s", {"patients": [_patient(1, "Annie")]}).write_id is not None
    # Deleting the scenario keeps the last versions of its patients, its links and its row.
    _repo_call(engine, "delete", "s")
    with session_scope(engine) as session:
        versions = ScenarioRepository(session).history("patient", "M001")
    assert [v.ended_by for v in versions] == ["update", "update", "delete"]
    assert versions[-1].document["name"]["given_name"] == "Annie"
    assert _count(engine, "scenarios_history", "WHERE operation = 'delete'") == 1
    assert _count(engine, "scenario_entities_history", "WHERE operation = 'delete'") == 2


def test_an_unchanged_save_keeps_no_version_and_rewrites_nothing(engine: sa.Engine) -> None:
    docs = {"patients": [_patient(1, "Ann"), _patient(2, "Bea")], "encounters": [_encounter(1, "cough")]}
    _repo_call(engine, "save", "s", docs)
    with engine.connect() as connection:
        before = connection.execute(sa.text("SELECT id, updated_at FROM patients ORDER BY id")).all()
    _repo_call(engine, "save", "s", docs, overwrite=True)  # created_at differs (no provenance): still unchanged
    _repo_call(engine, "add_entities", "s", {"patients": [_patient(2, "Bea")]})
    with engine.connect() as connection:
        after = connection.execute(sa.text("SELECT id, updated_at FROM patients ORDER BY id")).all()
    assert after == before
    assert _count(engine, "patients_history") == 0 and _count(engine, "encounters_history") == 0
    _repo_call(engine, "save", "s", {**docs, "patients": [_patient(1, "Ann"), _patient(2, "Beatrix")]}, overwrite=True)
    assert _count(engine, "patients_history") == 1  # only the patient that changed


def test_load_as_of_gives_each_earlier_state(engine: sa.Engine) -> None:
    generated = {name: list(docs) for name, docs in demo.scenario(4, 7).items()}
    _repo_call(engine, "save", "demo", generated, tags=["first"])
    first = _repo_call(engine, "load", "demo")
    t1 = _now()
    changed = {name: [dict(d) for d in docs] for name, docs in generated.items()}
    changed["patient"][0]["name"] = {**changed["patient"][0]["name"], "given_name": "Changed"}
    del changed["vital_sign"][:3]
    _repo_call(engine, "save", "demo", changed, overwrite=True, tags=["second"], description="v2")
    t2 = _now()
    _repo_call(engine, "add_entities", "demo", {"patients": [_patient(50, "Late")]})
    t3 = _now()
    _repo_call(engine, "remove_tags", "demo", ["second"])
    now = _repo_call(engine, "load", "demo")
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        at1, at2, at3 = (repo.load("demo", as_of=t) for t in (t1, t2, t3))
        assert repo.load("demo", as_of=dt.datetime.now(dt.UTC)) == now
        with pytest.raises(ScenarioNotFoundError, match="existed at"):
            repo.load("demo", as_of=first.created_at - dt.timedelta(seconds=1))
    assert normalise(at1.entities) == normalise(first.entities)
    assert (at1.tags, at1.description, at1.entity_counts) == (["first"], None, first.entity_counts)
    assert at2.tags == ["second"] and at2.description == "v2"
    assert len(at2.entities["vital_sign"]) == len(first.entities["vital_sign"]) - 3
    assert at2.entities["patient"][0]["name"]["given_name"] == "Changed"
    assert [p["mrn"] for p in at3.entities["patient"]] == [p["mrn"] for p in at2.entities["patient"]] + ["M050"]
    assert normalise(at3.entities) == normalise(now.entities) and at3.tags == ["second"] and now.tags == []


def test_a_deleted_scenario_is_restored_as_it_was(engine: sa.Engine) -> None:
    generated = {name: list(docs) for name, docs in demo.scenario(3, 11).items()}
    _repo_call(engine, "save", "demo", generated, tags=["keep"], description="the demo")
    saved = _repo_call(engine, "load", "demo")
    before_delete = _now()
    _repo_call(engine, "delete", "demo")
    assert not _repo_call(engine, "exists", "demo")
    summary = _repo_call(engine, "restore", "demo", before_delete)
    restored = _repo_call(engine, "load", "demo")
    assert summary.id == saved.id == restored.id
    assert normalise(restored.entities) == normalise(saved.entities)
    assert (restored.tags, restored.description, restored.created_at) == (["keep"], "the demo", saved.created_at)
    assert _count(engine, "writes", "WHERE operation = 'restore'") == 1
    with pytest.raises(ScenarioNotFoundError):
        _repo_call(engine, "restore", "never-was", before_delete)


def test_prune_deletes_old_versions_and_refuses_reads_before_it(engine: sa.Engine) -> None:
    _repo_call(engine, "save", "s", {"patients": [_patient(1, "Ann")]})
    early = _now()
    _repo_call(engine, "save", "s", {"patients": [_patient(1, "Anna")]}, overwrite=True)
    # history.keep_days applies to versions older than that many days: none yet.
    with session_scope(engine) as session:
        store_settings.change_setting(session, "history.keep_days", "30")
    assert _repo_call(engine, "prune_history") == {}
    assert _count(engine, "patients_history") == 1
    assert _repo_call(engine, "prune_history", dt.timedelta(0)) == {
        "patients_history": 1,
        "scenarios_history": 1,
        "scenario_entities_history": 1,
    }
    assert all(_count(engine, h.name) == 0 for h in HISTORY.values())
    with session_scope(engine) as session, pytest.raises(InvalidArgumentError, match="pruned"):
        ScenarioRepository(session).load("s", as_of=early)
    assert _count(engine, "writes", "WHERE operation = 'prune'") == 2
    with session_scope(engine) as session, pytest.raises(InvalidArgumentError, match="keep_days"):
        store_settings.change_setting(session, "history.keep_days", "soon")


def test_history_off_keeps_no_versions_but_records_the_write(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        assert store_settings.change_setting(session, "history.enabled", "false") == "false"
    _repo_call(engine, "save", "s", {"patients": [_patient(1, "Ann")]})
    _repo_call(engine, "save", "s", {"patients": [_patient(1, "Anna")]}, overwrite=True)
    _repo_call(engine, "delete", "s")
    assert all(_count(engine, h.name) == 0 for h in HISTORY.values())
    assert _count(engine, "writes") == 3
    with session_scope(engine) as session:
        assert store_settings.change_setting(session, "history.enabled", "true") == "true"
        assert store_settings.settings(session, "history.") == {"history.enabled": "true", "history.keep_days": "all"}


# -- a model of the store at every time ------------------------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["save", "add", "delete"]),
        st.sampled_from(["a", "b"]),
        st.lists(st.integers(0, 5), unique=True, max_size=4),
        st.sampled_from(["Ann", "Bea", "Cy"]),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_as_of_every_time_equals_a_model_kept_beside(engine: sa.Engine, operations: list[Any]) -> None:
    """Random saves, adds and deletes of two scenarios sharing patients (by UUID, so the latest
    save wins in both); after each, the expected patients per scenario; at the end, load(as_of)
    at each recorded time equals what the model held then."""
    run = uuid.uuid4().hex[:8]  # every example has scenarios of its own
    content: dict[str, str] = {}  # patient mrn -> given name (latest wins, everywhere)
    members: dict[str, list[str]] = {}  # scenario -> mrns in saved order
    expected: list[tuple[dt.datetime, dict[str, list[tuple[str, str]] | None]]] = []
    for operation, scenario, numbers, first_name in operations:
        name = f"{run}-{scenario}"
        patients = [_patient(n, f"{first_name}{n}") for n in numbers]
        if operation == "save":
            _repo_call(engine, "save", name, {"patients": patients}, overwrite=True)
            members[name] = [p["mrn"] for p in patients]
        elif operation == "add" and name in members:
            _repo_call(engine, "add_entities", name, {"patients": patients})
            members[name] += [p["mrn"] for p in patients if p["mrn"] not in members[name]]
        elif operation == "delete" and name in members:
            _repo_call(engine, "delete", name)
            gone = set(members.pop(name)) - {m for ms in members.values() for m in ms}
            for mrn in gone:
                del content[mrn]
        else:
            continue
        if operation != "delete":
            content.update({p["mrn"]: p["name"]["given_name"] for p in patients})
        state = {f"{run}-{s}": None for s in "ab"}
        state.update({n: [(m, content[m]) for m in ms] for n, ms in members.items()})
        expected.append((_now(), state))
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        for at, state in expected:
            for name, patients in state.items():
                if patients is None:
                    with pytest.raises(ScenarioNotFoundError):
                        repo.load(name, as_of=at)
                else:
                    assert _given_names(repo.load(name, as_of=at)) == patients, (at, name)


# -- the CLI ---------------------------------------------------------------------------


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def test_the_cli_lists_versions_shows_as_of_restores_and_prunes(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        _repo_call(engine, "save", "s", {"patients": [_patient(1, "Ann")]})
        between = _now().isoformat()
        _repo_call(engine, "save", "s", {"patients": [_patient(1, "Anna")]}, overwrite=True)
    finally:
        engine.dispose()
    url = ("--database-url", store_url)
    versions = json.loads(ok("entity", "history", "patients", "M001", "--json", *url))
    assert [(v["version"], v["ended_by"], v["document"]["name"]["given_name"]) for v in versions] == [
        (1, "update", "Ann"),
        (2, None, "Anna"),
    ]
    assert "(current)" in ok("entity", "history", "patient", versions[0]["id"], *url)
    assert json.loads(ok("entity", "show", "patient", "M001", "--as-of", between, "--json", *url))["name"] == {
        "given_name": "Ann",
        "family_name": "Rivers",
    }
    assert '"Anna"' in ok("entity", "show", "patient", "M001", *url)
    assert ok("history", "setting", "history.keep_days", "7", *url).strip() == "history.keep_days = 7"
    assert ok("history", "setting", "history.keep_days", *url).strip() == "history.keep_days = 7"
    ok("scenario", "delete", "s", "--yes", *url)
    assert "restored 's'" in ok("scenario", "restore", "s", "--as-of", between, *url)
    assert json.loads(ok("scenario", "show", "s", "--json", *url))["total_entities"] == 1
    assert "nothing to prune" in ok("history", "prune", *url)
    assert "patients_history: 2 versions deleted" in ok("history", "prune", "--older-than", "0", *url)


# -- a killed save ----------------------------------------------------------------------

_WRITER = """
import sys
from healthsim_models import create_store_engine, session_scope
from healthsim_state import ScenarioRepository
url, patients = sys.argv[1], int(sys.argv[2])
engine = create_store_engine(url)
round = 0
while True:
    docs = [
        {"id": f"00000000-0000-4000-8000-{i:012d}", "mrn": f"M{i}", "birth_date": "1980-01-01", "gender": "F",
         "name": {"given_name": f"round {round}", "family_name": "Kill"}}
        for i in range(patients)
    ]
    with session_scope(engine) as session:
        ScenarioRepository(session, batch_size=500).save("killed", {"patients": docs}, overwrite=True)
    print("committed", round, flush=True)
    round += 1
"""


def test_a_killed_save_leaves_no_history_without_its_write_nor_a_write_without_its_history(
    store_url: str, tmp_path: Path
) -> None:
    patients = 3000
    engine = create_store_engine(store_url)  # at head before the writer starts
    engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, store_url, str(patients)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert writer.stdout is not None
        for _ in range(3):  # two overwrites committed: each holds a version of every patient
            assert writer.stdout.readline().startswith("committed"), "the writer stopped"
        time.sleep(0.3)  # into the middle of the next overwrite (its batches of 500)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    engine = create_store_engine(store_url)
    try:
        with engine.connect() as connection:
            writes = dict(connection.execute(sa.text("SELECT id, operation FROM writes")).all())
            kept = dict(
                connection.execute(sa.text("SELECT write_id, count(*) FROM patients_history GROUP BY write_id")).all()
            )
            rounds = connection.execute(sa.text("SELECT DISTINCT given_name FROM patients")).scalars().all()
        assert set(kept) <= set(writes)  # no history row without its write
        assert len(writes) >= 3 and set(writes.values()) == {"save"}
        # Every overwrite that committed kept every patient it replaced; the first save replaced nothing.
        assert sorted(kept.values()) == [patients] * (len(writes) - 1)
        assert len(rounds) == 1 and rounds[0] == f"round {len(writes) - 1}"
    finally:
        engine.dispose()


# -- revision 0005 ------------------------------------------------------------------------


def test_revision_0005_up_and_down_keeps_the_data(blank_store_url: str) -> None:
    """A store with data at 0004 gains empty history tables; back at 0004 they are gone and the
    data is as it was; up again, saves keep versions."""
    generated = {name: list(docs) for name, docs in demo.scenario(3, 5).items()}
    with _engine(blank_store_url) as engine:
        schema_version.upgrade(engine, "0004")
        at_0004 = database_shapes(engine)
        with engine.begin() as connection:  # what 0004's repository wrote: no writes table yet
            connection.execute(
                sa.text(
                    "INSERT INTO scenarios (id, name, entity_counts, created_at, updated_at) "
                    "VALUES (:id, 'old', '{}', now(), now())"
                ),
                {"id": uuid.uuid4()},
            )
        schema_version.upgrade(engine)
        assert {f"{t}_history" for t in ("patients", "scenarios", "scenario_entities")} <= set(database_shapes(engine))
        assert all(_count(engine, h.name) == 0 for h in HISTORY.values()) and _count(engine, "writes") == 0
        _repo_call(engine, "save", "old", generated, overwrite=True)
        loaded = _repo_call(engine, "load", "old")
        schema_version.downgrade(engine, "0004")
        assert database_shapes(engine) == at_0004
        schema_version.upgrade(engine)
        assert normalise(_repo_call(engine, "load", "old").entities) == normalise(loaded.entities)
        _repo_call(engine, "save", "old", {"patients": [_patient(1, "Ann")]}, overwrite=True)
        assert _count(engine, "patients_history", "WHERE operation = 'delete'") == 3
