"""The batch writer (``repository.writer``), on both backends: it gives what
save() gives, shows nothing until it publishes, keeps nothing of a failed
or killed run, and cleans up what a killed run leaves."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from healthsim_models import ENTITY_TYPES, ValidationError, create_store_engine, session_scope
from healthsim_models.errors import InvalidArgumentError, ScenarioExistsError, WriteConflictError
from healthsim_models.state import ScenarioEntity
from healthsim_state import ScenarioRepository
from healthsim_state.store import writer as store_writer
from tests.helpers import normalise
from tests.strategies import scenario_entities

_names = itertools.count()
_LINKS = ScenarioEntity.__table__
PATIENT_ID = "0b3d3c2e-7f43-4b7e-9d8c-5a7e0c1f2a3b"  # a UUID id: the entity is global


def _patient(mrn: str, **more: Any) -> dict[str, Any]:
    doc = {"id": f"P-{mrn}", "mrn": mrn, "given_name": "Ann", "family_name": "Lee", "birth_date": "1980-01-02"}
    return {**doc, "gender": "F", **more}


def _encounter(encounter_id: str, mrn: str) -> dict[str, Any]:
    return {
        "encounter_id": encounter_id,
        "patient_mrn": mrn,
        "class_code": "O",
        "status": "finished",
        "admission_time": "2024-01-02T10:00:00Z",
    }


def _links(engine: Engine, name: str) -> set[tuple[str, str, int]]:
    with session_scope(engine) as session:
        sid = ScenarioRepository(session).scenario_summary(name).id
        rows = session.execute(
            sa.select(_LINKS.c.entity_type, _LINKS.c.entity_id, _LINKS.c.position).where(_LINKS.c.scenario_id == sid)
        ).all()
    return {(t, str(i), p) for t, i, p in rows}


def _load(engine: Engine, name: str) -> dict[str, list[dict[str, Any]]]:
    with session_scope(engine) as session:
        return ScenarioRepository(session).load(name).entities


def _names_in(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return [s.name for s in ScenarioRepository(session).list()]


def _staged(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as connection:
        return store_writer.staging_tables(connection)


# -- equivalence with save() ---------------------------------------------------------------


@st.composite
def _split(draw: st.DrawFn) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, list[dict[str, Any]]]]]:
    """A scenario and the adds it is fed in: each type's first entity (the one
    others refer to) in the first add, the rest anywhere, in order per add."""
    entities = draw(scenario_entities())
    count = draw(st.integers(1, 3))
    adds: list[dict[str, list[dict[str, Any]]]] = [{} for _ in range(count)]
    for type_name, docs in entities.items():
        for i, doc in enumerate(docs):
            at = 0 if i == 0 else draw(st.integers(0, count - 1))
            adds[at].setdefault(type_name, []).append(doc)
    # save() is given each type in the order the adds give it.
    ordered = {t: [d for add in adds for d in add.get(t, [])] for t in entities}
    return ordered, adds


def _direct_budget(monkeypatch: pytest.MonkeyPatch, rows: int | None) -> None:
    """DuckDB writers append at most ``rows`` entities directly (None: as the
    dialect says; 0 with the dialect's own budget 0: every row staged, as
    on a store past its budget from the start)."""
    from healthsim_state.store.dialects.duckdb import DuckDBDialect

    if rows is None:
        return
    if rows < 0:
        monkeypatch.setattr(DuckDBDialect, "direct_append_rows", 0)
        return
    start = store_writer.ScenarioWriter._start

    def limited(self: store_writer.ScenarioWriter) -> None:
        start(self)
        self._direct_left = min(self._direct_left, rows)

    monkeypatch.setattr(store_writer.ScenarioWriter, "_start", limited)


@pytest.mark.parametrize(
    ("backend", "direct"),
    [("duckdb", None), ("duckdb", -1), ("duckdb", 0), ("duckdb", 2), ("postgresql", None)],
    ids=["duckdb", "duckdb-staged", "duckdb-past-budget", "duckdb-budget-2", "postgresql"],
)
def test_a_writer_fed_in_adds_gives_what_save_gives(
    backend: str, direct: int | None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    _direct_budget(monkeypatch, direct)
    engine = create_store_engine(request.getfixturevalue(f"{backend}_url"))

    @settings(deadline=None, max_examples=10, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(split=_split())
    def same(split) -> None:  # type: ignore[no-untyped-def]
        ordered, adds = split
        name = f"w-{next(_names)}"
        with session_scope(engine) as session, ScenarioRepository(session).writer(name, tags=["t"]) as w:
            for add in adds:
                w.add(add)
        written = w.summary
        assert written is not None
        links, loaded = _links(engine, name), _load(engine, name)
        # The same entities saved over it: same scenario id, so same UUIDs; nothing may change.
        with session_scope(engine) as session:
            saved = ScenarioRepository(session).save(name, ordered, tags=["t"], overwrite=True)
        assert saved.id == written.id
        assert (written.counts, written.saved) == (saved.counts, saved.saved)
        assert sorted(written.warnings) == sorted(saved.warnings)
        assert _links(engine, name) == links
        again = _load(engine, name)
        for et in ENTITY_TYPES:
            assert normalise(loaded[et.name]) == normalise(again[et.name]), et.name

    try:
        same()
        assert _staged(engine) == {}
    finally:
        engine.dispose()


# -- examples -------------------------------------------------------------------------------


def test_references_resolve_across_adds_and_the_last_of_an_entity_wins(engine: Engine) -> None:
    with session_scope(engine) as session, ScenarioRepository(session).writer("w", description="d") as w:
        assert w.add({"patient": [_patient("M1", id="P1", given_name="Old")]}) == {"patient": 1}
        w.add({"encounter": [_encounter("E1", "M1")], "patient": [_patient("M2", id="P2")]})
        w.add({"patient": [_patient("M1", id="P1", given_name="New")]})
    assert w.summary is not None
    assert w.summary.counts == {"patient": 2, "encounter": 1}
    loaded = _load(engine, "w")
    # The last P1 wins at its own (last) position, as in one save of the three adds' patients.
    assert [(p["id"], p["name"]["given_name"]) for p in loaded["patient"]] == [("P2", "Ann"), ("P1", "New")]
    assert loaded["encounter"][0]["patient_mrn"] == "M1"
    with session_scope(engine) as session:
        info = ScenarioRepository(session).scenario_summary("w")
        assert info.description == "d"
        encounter = session.execute(sa.text("SELECT patient_uuid FROM encounters")).scalar_one()
        patient = session.execute(sa.text("SELECT id FROM patients WHERE mrn = 'M1'")).scalar_one()
    assert str(encounter) == str(patient)
    assert _staged(engine) == {}


def test_a_business_key_taken_in_an_earlier_add_is_refused_naming_entity_and_field(engine: Engine) -> None:
    with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
        w.add({"patient": [_patient("M1", id="P1")]})
        with pytest.raises(ValidationError) as refused:
            w.add({"patient": [_patient("M1", id="P2")]})
        problem = refused.value.problems[0]
        assert (problem.entity_type, problem.position, problem.entity_id, problem.field) == ("patient", 1, "P2", "mrn")
        assert "already used by another patient" in problem.reason
        # The refused add took nothing, its position neither.
        w.add({"patient": [_patient("M3", id="P3")]})
    assert [(p["id"]) for p in _load(engine, "w")["patient"]] == ["P1", "P3"]


def test_a_bad_add_raises_earlier_adds_stay_and_leaving_by_it_publishes_nothing(engine: Engine) -> None:
    with (
        pytest.raises(ValidationError, match="matches no patient"),
        session_scope(engine) as session,
        ScenarioRepository(session).writer("w") as w,
    ):
        w.add({"patient": [_patient("M1")]})
        assert set(_staged(engine)) == {w.token}
        w.add({"encounter": [_encounter("E1", "nobody")]})
    assert _names_in(engine) == []
    assert _staged(engine) == {}
    with session_scope(engine) as session:
        assert ScenarioRepository(session).count_entities_by_type() == {}


def test_a_block_that_raises_publishes_nothing(engine: Engine) -> None:
    with (
        pytest.raises(RuntimeError, match="stop"),
        session_scope(engine) as session,
        ScenarioRepository(session).writer("w") as w,
    ):
        w.add({"patient": [_patient("M1")]})
        raise RuntimeError("stop")
    assert _names_in(engine) == [] and _staged(engine) == {}


def test_nothing_shows_until_the_writer_publishes_and_an_overwritten_scenario_stays_until_then(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        repo.save("old", {"patient": [_patient("M0", id=PATIENT_ID, given_name="Shared")]})
        repo.save("w", {"patient": [_patient("M9", id="P9")]}, tags=["before"])
    before = _load(engine, "w")
    with session_scope(engine) as session, ScenarioRepository(session).writer("w", overwrite=True, tags=["x"]) as w:
        w.add({"patient": [_patient("M1", id="P1"), _patient("M0", id=PATIENT_ID, given_name="Changed")]})
        # Everything a reader sees is as before: the scenario, its entities, the global entity.
        assert _load(engine, "w") == before
        assert _load(engine, "old")["patient"][0]["name"]["given_name"] == "Shared"
        with session_scope(engine) as other:
            assert ScenarioRepository(other).count_entities_by_type() == {"patient": 2}
            assert ScenarioRepository(other).scenario_summary("w").tags == ["before"]
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        assert repo.scenario_summary("w").tags == ["x"]
        assert [p["mrn"] for p in repo.documents("w", "patient")] == ["M1", "M0"]
        # The replaced member only this scenario held is gone, kept in the history.
        assert repo.find_entity("patient", "P9") is None
        assert [v.ended_by for v in repo.history("patient", PATIENT_ID)] == ["update", None]
        assert repo.documents("old", "patient")[0]["name"]["given_name"] == "Changed"
    assert w.summary is not None and w.summary.counts == {"patient": 2}


def test_a_writer_refuses_an_existing_name_without_overwrite_before_anything(engine: Engine) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("w", {"patient": [_patient("M1")]})
    with (
        pytest.raises(ScenarioExistsError, match="overwrite=True"),
        session_scope(engine) as session,
        ScenarioRepository(session).writer("w"),
    ):
        pass
    assert _staged(engine) == {}


def test_a_writer_refuses_a_session_with_pending_changes_and_a_bad_name(engine: Engine) -> None:
    from healthsim_models.state import Scenario

    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        with pytest.raises(ValidationError, match="name"):
            repo.writer(" ")
        session.add(Scenario(name="pending", entity_counts={}))
        with pytest.raises(InvalidArgumentError, match="commit"):
            repo.writer("w")
        session.rollback()


def test_an_in_memory_store_is_refused() -> None:
    engine = create_store_engine("duckdb:///:memory:")
    with session_scope(engine) as session, pytest.raises(InvalidArgumentError, match="in-memory"):
        ScenarioRepository(session).writer("w")
    engine.dispose()


def test_load_can_stream_each_type(engine: Engine) -> None:
    with session_scope(engine) as session:
        repo = ScenarioRepository(session, batch_size=2)
        repo.save("s", {"patient": [_patient(f"M{i}") for i in range(5)], "encounter": [_encounter("E1", "M3")]})
        whole = repo.load("s")
        streamed = repo.load("s", stream=True)
        assert streamed.entity_counts == whole.entity_counts
        for et in ENTITY_TYPES:
            assert not isinstance(streamed.entities[et.name], list)
            assert list(streamed.entities[et.name]) == whole.entities[et.name]
        with pytest.raises(InvalidArgumentError, match="cannot stream"):
            repo.load("s", stream=True, as_of=whole.updated_at)


# -- leftovers --------------------------------------------------------------------------------


def test_a_live_writers_tables_are_left_alone_and_a_gone_ones_dropped(engine: Engine) -> None:
    with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
        w.add({"patient": [_patient("M1")]})
        # Seen from another connection as a leftover would be, it is still running:
        # on PostgreSQL its advisory lock says so, on DuckDB this process's registry.
        if engine.dialect.name == "postgresql":
            store_writer._RUNNING.discard(w.token)
        with engine.connect() as connection:
            assert store_writer.clean_up_writers(connection) == []
        store_writer._RUNNING.add(w.token)
    assert [p["mrn"] for p in _load(engine, "w")["patient"]] == ["M1"]


# What the scripts of the killed writers below start with: the store's URL is their argument.
_CHILD_HEADER = textwrap.dedent(
    """
    import os, signal, sys, time
    from healthsim_models import create_store_engine, session_scope
    from healthsim_state import ScenarioRepository

    def patient(i, **fields):
        return {"id": f"P{i}", "mrn": f"M{i}", "given_name": "A", "family_name": "B",
                "birth_date": "1980-01-02", "gender": "F", **fields}
    engine = create_store_engine(sys.argv[1])
    """
)


def _child(script: str, url: str, home: Path) -> subprocess.Popen[str]:
    """A Python process running ``_CHILD_HEADER`` then ``script`` against the store at ``url``."""
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD_HEADER + textwrap.dedent(script), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HEALTHSIM_HOME": str(home)},
    )


_KILLED = """
    with session_scope(engine) as session, ScenarioRepository(session).writer("killed") as w:
        for i in range(1000):
            w.add({"patient": [patient(i)]})
            if i == 3:
                print("staged", flush=True)
                time.sleep(60)
    """


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_a_killed_writer_leaves_the_store_openable_nothing_visible_and_its_tables_are_cleaned(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    create_store_engine(url).dispose()
    child = _child(_KILLED, url, tmp_path / "home")
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "staged"
        if backend == "postgresql":
            # While it runs, its tables are its own.
            engine = create_store_engine(url)
            with engine.connect() as connection:
                assert store_writer.clean_up_writers(connection) == []
            engine.dispose()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    engine = create_store_engine(url)
    try:
        deadline = time.monotonic() + 30
        while backend == "postgresql" and _staged(engine) and time.monotonic() < deadline:
            # PostgreSQL ends the killed client's session (and its lock) once it notices.
            with engine.connect() as connection:
                if store_writer.clean_up_writers(connection):
                    break
            time.sleep(0.2)
        assert _names_in(engine) == []
        with session_scope(engine) as session:
            assert ScenarioRepository(session).count_entities_by_type() == {}
        if backend == "duckdb":
            (token,) = _staged(engine)  # what a killed run leaves: its staging tables
            with engine.connect() as connection:
                dropped = store_writer.clean_up_writers(connection)
            assert dropped and all(name.startswith(f"_hs_w_{token}_") for name in dropped)
        assert _staged(engine) == {}
        with engine.connect() as connection:  # the rows it appended went with its tables
            assert connection.execute(sa.text("SELECT count(*) FROM patients")).scalar_one() == 0
        # And the next writer runs as usual.
        with session_scope(engine) as session, ScenarioRepository(session).writer("next") as w:
            w.add({"patient": [_patient("M1")]})
        assert _names_in(engine) == ["next"]
    finally:
        engine.dispose()


def test_the_next_writer_cleans_up_a_gone_writers_tables(engine: Engine) -> None:
    with engine.begin() as connection:  # what a killed writer leaves
        store_writer._Staging("0badf00d", keyed=True).metadata.create_all(connection)
    assert set(_staged(engine)) == {"0badf00d"}
    with session_scope(engine) as session, ScenarioRepository(session).writer("next") as w:
        assert set(_staged(engine)) == {w.token}
        w.add({"patient": [_patient("M1")]})
    assert _staged(engine) == {} and _names_in(engine) == ["next"]


def test_duckdb_memory_is_capped_while_a_writer_runs_and_restored_after(duckdb_url: str) -> None:
    from healthsim_state.store.dialects.duckdb import WRITER_MEMORY_LIMIT, _size

    engine = create_store_engine(duckdb_url)

    def limit() -> float:
        with engine.connect() as connection:
            return _size(connection.exec_driver_sql("SELECT current_setting('memory_limit')").scalar_one())

    try:
        before = limit()
        assert before > WRITER_MEMORY_LIMIT  # the test machine has more than 640 MB of RAM
        with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
            assert abs(limit() - WRITER_MEMORY_LIMIT) < 2**20
            w.add({"patient": [_patient("M1")]})
        assert abs(limit() - before) / before < 0.01
    finally:
        engine.dispose()


def test_duckdb_staging_stores_extensions_with_zstd_and_the_rest_as_duckdb_chooses(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _direct_budget(monkeypatch, 0)  # staged, as past the direct appends' budget
    engine = create_store_engine(duckdb_url)
    try:
        with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
            w.add({"patient": [_patient(f"M{i}", note=f"kept in extensions {i}") for i in range(3000)]})
            staged = f"{store_writer.STAGING_PREFIX}{w.token}_patients"
            with engine.connect() as connection:
                connection.exec_driver_sql("CHECKPOINT")
                methods = dict(
                    connection.exec_driver_sql(
                        "SELECT column_name, string_agg(DISTINCT compression, ',') FROM pragma_storage_info(?) "
                        "WHERE segment_type <> 'VALIDITY' GROUP BY column_name",
                        (staged,),
                    ).all()
                )
        assert methods["extensions"] == "ZSTD"
        assert methods["family_name"] != "ZSTD"
        assert _load(engine, "w")["patient"][0]["note"] == "kept in extensions 0"
    finally:
        engine.dispose()


def test_a_duckdb_publish_out_of_memory_under_the_cap_runs_once_more_without_it(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    from healthsim_state.store.dialects.duckdb import WRITER_MEMORY_LIMIT, _size

    engine = create_store_engine(duckdb_url)
    real = ScenarioRepository._finish
    limits: list[float] = []

    def finish(self, scenario, run, operation):  # type: ignore[no-untyped-def]
        # In the publish's last transaction.
        connection = self.session.connection()
        limits.append(_size(connection.exec_driver_sql("SELECT current_setting('memory_limit')").scalar_one()))
        if len(limits) == 1:
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return real(self, scenario, run, operation)

    monkeypatch.setattr(ScenarioRepository, "_finish", finish)
    try:
        with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
            w.add({"patient": [_patient("M1"), _patient("M2")]})
        assert w.summary is not None and w.summary.counts == {"patient": 2}
        assert abs(limits[0] - WRITER_MEMORY_LIMIT) < 2**20 and limits[1] > WRITER_MEMORY_LIMIT
        assert [p["mrn"] for p in _load(engine, "w")["patient"]] == ["M1", "M2"]
        with engine.connect() as connection:
            events = connection.exec_driver_sql(
                "SELECT operation, outcome FROM audit_log WHERE operation = 'save'"
            ).all()
        assert [tuple(e) for e in events] == [("save", "committed")]
    finally:
        engine.dispose()


# -- DuckDB: the publish in steps ---------------------------------------------------------


def _in_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Publish one row per step (about one id range per staged or stored row)."""
    from healthsim_state.store.dialects.duckdb import DuckDBDialect

    monkeypatch.setattr(DuckDBDialect, "publish_step_rows", 1)


def _with_old(engine: Engine) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("old", {"patient": [_patient("M0", id=PATIENT_ID, given_name="Shared")]})


def test_a_duckdb_publish_in_steps_gives_what_save_gives_and_shows_the_scenario_only_at_its_end(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _in_steps(monkeypatch)
    engine = create_store_engine(duckdb_url)
    real = store_writer.ScenarioWriter._publish_once
    seen: list[Any] = []

    def publish_once(self, now, early):  # type: ignore[no-untyped-def]
        # The steps are committed: a reader sees the store as before (its counts leave out the rows no scenario shows).
        with session_scope(engine) as other:
            counts = ScenarioRepository(other).count_entities_by_type()
        seen.append((_names_in(engine), _load(engine, "old"), early, counts))
        return real(self, now, early)

    monkeypatch.setattr(store_writer.ScenarioWriter, "_publish_once", publish_once)
    try:
        _with_old(engine)
        before = _load(engine, "old")
        patients = [_patient(f"M{i}", id=f"P{i}") for i in range(1, 7)]
        encounters = [_encounter(f"E{i}", f"M{i}") for i in range(1, 7)]
        with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
            w.add({"patient": patients[:3], "encounter": encounters[:3]})
            w.add({"patient": [*patients[3:], _patient("M0", id=PATIENT_ID, given_name="Changed")]})
            w.add({"encounter": encounters[3:]})
        assert seen == [(["old"], before, True, {"patient": 1})]
        with session_scope(engine) as session:
            ScenarioRepository(session).save(
                "saved",
                {"patient": [*patients, _patient("M0", id=PATIENT_ID, given_name="Changed")], "encounter": encounters},
            )
        assert _load(engine, "w") == _load(engine, "saved")
        assert _load(engine, "old")["patient"][0]["name"]["given_name"] == "Changed"
        with session_scope(engine) as session:
            assert [v.ended_by for v in ScenarioRepository(session).history("patient", PATIENT_ID)] == ["update", None]
        assert _staged(engine) == {}
    finally:
        engine.dispose()


def test_a_duckdb_publish_in_steps_that_fails_at_its_end_leaves_the_store_as_it_was(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _in_steps(monkeypatch)
    engine = create_store_engine(duckdb_url)

    def publish_once(self, now, early):  # type: ignore[no-untyped-def]
        raise RuntimeError("stop")

    try:
        _with_old(engine)
        with session_scope(engine) as session:
            ScenarioRepository(session).save("w", {"patient": [_patient("M9", id="P9")]})
        before = {name: _load(engine, name) for name in ("old", "w")}
        monkeypatch.setattr(store_writer.ScenarioWriter, "_publish_once", publish_once)
        for overwrite in (False, True):
            with (
                pytest.raises(RuntimeError, match="stop"),
                session_scope(engine) as session,
                ScenarioRepository(session).writer("new" if not overwrite else "w", overwrite=overwrite) as w,
            ):
                w.add({"patient": [_patient("M1", id="P1"), _patient("M0", id=PATIENT_ID, given_name="Changed")]})
                w.add({"encounter": [_encounter("E1", "M1")]})
            assert {name: _load(engine, name) for name in _names_in(engine)} == before
            with session_scope(engine) as session:
                assert ScenarioRepository(session).count_entities_by_type() == {"patient": 2}
            assert _staged(engine) == {}
    finally:
        engine.dispose()


_KILLED_IN_PUBLISH = (
    """
    from healthsim_state.store import writer
    from healthsim_state.store.dialects.duckdb import DuckDBDialect

    DuckDBDialect.publish_step_rows = 1
    def killed(self, now, early):
        print("published in steps", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    writer.ScenarioWriter._publish_once = killed

    with session_scope(engine) as session, ScenarioRepository(session).writer("killed") as w:
        w.add({"patient": [patient(i) for i in range(1, 21)]})
        w.add({"patient": [patient(0, id=%r, given_name="Changed")]})
    """
    % PATIENT_ID
)


def _killed_in_publish(url: str, home: Path, script: str = _KILLED_IN_PUBLISH) -> dict[str, list[dict[str, Any]]]:
    """Scenario "old" saved, then ``script`` run and killed in its publish; "old" as it was saved."""
    engine = create_store_engine(url)
    _with_old(engine)
    before = _load(engine, "old")
    engine.dispose()
    child = _child(script, url, home)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL and stdout.strip() == "published in steps", stderr
    return before


def test_a_duckdb_writer_killed_while_publishing_in_steps_shows_nothing_and_is_undone_by_the_cleanup(
    duckdb_url: str, tmp_path: Path
) -> None:
    before = _killed_in_publish(duckdb_url, tmp_path / "home")
    engine = create_store_engine(duckdb_url)
    try:
        # The store opens; no scenario of the killed writer shows; the shared entity is as it was.
        assert _names_in(engine) == ["old"] and _load(engine, "old") == before
        with session_scope(engine) as session:  # the store's counts leave out what the steps linked early
            assert ScenarioRepository(session).count_entities_by_type() == {"patient": 1}
        with engine.connect() as connection:  # what the steps left: rows and links no scenario shows
            assert connection.execute(sa.select(sa.func.count()).select_from(_LINKS)).scalar_one() == 22
            (token,) = _staged(engine)
            dropped = store_writer.clean_up_writers(connection)
            assert f"_hs_w_{token}__publish" in dropped
            assert connection.execute(sa.select(sa.func.count()).select_from(_LINKS)).scalar_one() == 1
        with session_scope(engine) as session:
            assert ScenarioRepository(session).count_entities_by_type() == {"patient": 1}
        assert _staged(engine) == {} and _load(engine, "old") == before
    finally:
        engine.dispose()


def test_a_duckdb_publish_in_steps_goes_on_while_another_connection_holds_a_write_transaction(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB refuses the checkpoint after each step then; the publish goes on without it.
    _in_steps(monkeypatch)
    engine = create_store_engine(duckdb_url)
    try:
        with engine.connect() as other:
            other.exec_driver_sql("INSERT INTO scenario_tags (scenario_id, tag) VALUES (uuid(), 'open')")
            with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
                w.add({"patient": [_patient("M1", id="P1"), _patient("M2", id="P2")]})
            other.rollback()
        assert [p["mrn"] for p in _load(engine, "w")["patient"]] == ["M1", "M2"]
        assert _staged(engine) == {}
    finally:
        engine.dispose()


def test_the_demo_and_the_synthea_import_let_the_publish_steps_checkpoint(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They read what they check before their writer starts through a session
    of their own (ScenarioRepository.aside): a transaction left open in the
    caller's session, even a read, makes DuckDB refuse the checkpoints that
    keep a large publish's memory bounded."""
    from healthsim_state.demo import save_demo
    from healthsim_state.formats.synthea import import_synthea
    from healthsim_state.store.dialects.duckdb import DuckDBDialect

    outcomes: list[str] = []

    def noted(self: DuckDBDialect, connection: sa.Connection) -> None:
        try:
            connection.connection.driver_connection.execute("CHECKPOINT")
            outcomes.append("done")
        except Exception as exc:  # the refusal is what the test looks for
            outcomes.append(str(exc))

    monkeypatch.setattr(DuckDBDialect, "publish_step_done", noted)
    engine = create_store_engine(duckdb_url)
    try:
        for _ in range(2):  # a new demo scenario, then the demo's own replaced
            with session_scope(engine) as session:
                save_demo(ScenarioRepository(session), patients=3, batch=2)
        with session_scope(engine) as session:
            import_synthea(session, Path(__file__).parent / "fixtures" / "synthea-27", scenario="synthea")
    finally:
        engine.dispose()
    assert outcomes and set(outcomes) == {"done"}


def test_the_arrow_schemas_of_staging_tables_are_not_kept_for_ever() -> None:
    """Each writer makes new staging Table objects: the schema cache is bounded."""
    from healthsim_state.store.batches import ARROW_SCHEMAS_KEPT, arrow_schema

    metadata = sa.MetaData()
    for i in range(ARROW_SCHEMAS_KEPT + 10):
        arrow_schema(sa.Table(f"staged_{i}", metadata, sa.Column("id", sa.Integer)))
    assert arrow_schema.cache_info().currsize <= ARROW_SCHEMAS_KEPT


# -- an overwrite published in steps (DuckDB) ----------------------------------------------------


@st.composite
def _replaced(draw: st.DrawFn) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """A scenario and what replaces it: per type the entity others refer to, then
    some of the others in another order (the rest become orphans)."""
    old = draw(scenario_entities(max_per_type=4))
    new = {}
    for name, docs in old.items():
        rest = draw(st.permutations(docs[1:]))
        new[name] = docs[:1] + rest[: draw(st.integers(0, len(rest)))]
    return old, new


def _history_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every history table's rows without the write's id and the times, sorted."""
    from healthsim_models.history import HISTORY

    found = {}
    with engine.connect() as connection:
        for name, history in HISTORY.items():
            columns = [
                c for c in history.columns if c.name not in ("write_id", "replaced_at", "updated_at", "created_at")
            ]
            rows = connection.execute(sa.select(*columns)).all()
            found[name] = sorted((tuple(str(v) for v in row) for row in rows), key=repr)
    return found


def test_a_duckdb_overwrite_in_steps_gives_what_save_gives_history_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthsim_state.store.dialects.duckdb import DuckDBDialect

    monkeypatch.setattr(DuckDBDialect, "publish_step_rows", 2)
    sid = "5c3f1a2e-0b7d-4c1e-9a6f-2d8e4b7c1a90"
    counter = itertools.count()

    @settings(deadline=None, max_examples=8, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(pair=_replaced())
    def same(pair) -> None:  # type: ignore[no-untyped-def]
        old, new = pair
        run = next(counter)
        written, saved = (create_store_engine(f"duckdb:///{tmp_path}/{run}-{n}.duckdb") for n in ("w", "s"))
        try:
            for engine in (written, saved):
                with session_scope(engine) as session:
                    ScenarioRepository(session).save("s", old, scenario_id=sid)
            with (
                session_scope(written) as session,
                ScenarioRepository(session).writer("s", overwrite=True) as w,
            ):
                w.add(new)
            with session_scope(saved) as session:
                ScenarioRepository(session).save("s", new, overwrite=True)
            assert _links(written, "s") == _links(saved, "s")
            loaded, expected = _load(written, "s"), _load(saved, "s")
            for et in ENTITY_TYPES:
                assert normalise(loaded[et.name]) == normalise(expected[et.name]), et.name
            with session_scope(written) as session, session_scope(saved) as other:
                assert ScenarioRepository(session).count_entities_by_type() == (
                    ScenarioRepository(other).count_entities_by_type()
                )
            assert _history_rows(written) == _history_rows(saved)
            assert _staged(written) == {}
        finally:
            written.dispose()
            saved.dispose()

    same()


def test_a_duckdb_overwrite_in_steps_shows_the_old_scenario_until_its_end_and_a_failure_undoes_its_history(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _in_steps(monkeypatch)
    engine = create_store_engine(duckdb_url)
    patients = [_patient("M0", id=PATIENT_ID)] + [_patient(f"M{i}", id=f"P{i}") for i in range(1, 6)]
    with session_scope(engine) as session:
        ScenarioRepository(session).save("w", {"patient": patients})
        ScenarioRepository(session).save("other", {"patient": patients[:1]})
    before = _load(engine, "w")
    saved_at = dt.datetime.now(dt.UTC)
    real = store_writer.ScenarioWriter._publish_once
    seen: list[Any] = []

    def failing(self, versioning, early):  # type: ignore[no-untyped-def]
        # The steps copied the links to history; the scenario and a read of the past are as they were.
        seen.append((_load(engine, "w") == before, _links_history_count(engine)))
        with session_scope(engine) as session:
            seen.append(ScenarioRepository(session).load("w", as_of=saved_at).entities == before)
        raise RuntimeError("stop")

    try:
        monkeypatch.setattr(store_writer.ScenarioWriter, "_publish_once", failing)
        with (
            pytest.raises(RuntimeError),
            session_scope(engine) as session,
            ScenarioRepository(session).writer("w", overwrite=True) as w,
        ):
            w.add({"patient": [patients[5], *patients[:2]]})
        assert seen == [(True, 6), True]
        assert _links_history_count(engine) == 0 and _staged(engine) == {}
        assert _load(engine, "w") == before
        monkeypatch.setattr(store_writer.ScenarioWriter, "_publish_once", real)
        with session_scope(engine) as session, ScenarioRepository(session).writer("w", overwrite=True) as w:
            w.add({"patient": [patients[5], *patients[:2]]})
        assert [p["mrn"] for p in _load(engine, "w")["patient"]] == ["M5", "M0", "M1"]
        assert _links_history_count(engine) == 6
        with session_scope(engine) as session:
            repo = ScenarioRepository(session)
            assert repo.load("w", as_of=saved_at).entities == before
            # M2-M4 no scenario links any more: deleted; M0 (a UUID id: one entity) stays for "other".
            assert repo.count_entities_by_type() == {"patient": 3}
    finally:
        engine.dispose()


def _links_history_count(engine: Engine) -> int:
    from healthsim_models.history import LINKS_HISTORY

    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(LINKS_HISTORY)).scalar_one()


# -- direct appends (DuckDB) ------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _raw_count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()


def test_a_duckdb_writer_appends_new_entities_to_their_tables_and_shows_them_only_when_it_publishes(
    duckdb_url: str,
) -> None:
    engine = create_store_engine(duckdb_url)
    try:
        with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
            w.add({"patient": [_patient("M1", id="P1", given_name="Old"), _patient("M2", id="P2")]})
            w.add({"encounter": [_encounter("E1", "M1")]})  # the reference resolves to an appended patient
            staged = f"{store_writer.STAGING_PREFIX}{w.token}_patients"
            # Written once, to their own tables, none staged...
            assert (_raw_count(engine, "patients"), _raw_count(engine, staged)) == (2, 0)
            # ...and in no scenario: whole-store reads leave them out.
            with session_scope(engine) as other:
                repo = ScenarioRepository(other)
                assert repo.count_entities_by_type() == {}
                assert repo.find_entity("patient", "M1") is None and repo.list() == []
                assert repo.history("patient", "M1") == [] and repo.entity_as_of("patient", "M1", _now()) is None
            # The same entity again: replaced in place, no history (it was never shown).
            w.add({"patient": [_patient("M1", id="P1", given_name="New")]})
            assert (_raw_count(engine, "patients"), _raw_count(engine, staged)) == (2, 0)
        with session_scope(engine) as session:
            repo = ScenarioRepository(session)
            assert repo.count_entities_by_type() == {"patient": 2, "encounter": 1}
            found = repo.find_entity("patient", "M1")
            assert found is not None and found["name"]["given_name"] == "New"
            assert [v.ended_by for v in repo.history("patient", found["id"])] == [None]
            assert [p["id"] for p in repo.documents("w", "patient")] == ["P2", "P1"]
        assert _staged(engine) == {}
    finally:
        engine.dispose()


def test_a_duckdb_writer_past_its_direct_budget_stages_and_still_replaces_its_own_rows_in_place(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _direct_budget(monkeypatch, 1)
    engine = create_store_engine(duckdb_url)
    try:
        with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
            w.add({"patient": [_patient("M1", id="P1", given_name="Old")]})  # within the budget: appended
            w.add({"patient": [_patient("M2", id="P2"), _patient("M3", id="P3")]})  # past it: staged
            staged = f"{store_writer.STAGING_PREFIX}{w.token}_patients"
            assert (_raw_count(engine, "patients"), _raw_count(engine, staged)) == (1, 2)
            w.add({"patient": [_patient("M1", id="P1", given_name="New")], "encounter": [_encounter("E1", "M3")]})
            assert (_raw_count(engine, "patients"), _raw_count(engine, staged)) == (1, 2)
        with session_scope(engine) as session:
            repo = ScenarioRepository(session)
            patients = repo.documents("w", "patient")
            assert [(p["id"], p["name"]["given_name"]) for p in patients] == [
                ("P2", "Ann"),
                ("P3", "Ann"),
                ("P1", "New"),
            ]
            assert [v.ended_by for v in repo.history("patient", patients[2]["id"])] == [None]
            assert repo.documents("w", "encounter")[0]["patient_mrn"] == "M3"
    finally:
        engine.dispose()


def test_a_duckdb_writers_appended_entity_that_another_save_takes_meanwhile_is_published_with_its_history(
    duckdb_url: str,
) -> None:
    engine = create_store_engine(duckdb_url)
    try:
        with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
            w.add({"patient": [_patient("M0", id=PATIENT_ID, given_name="Writer's first")]})
            with session_scope(engine) as other:  # the same global entity, saved and shown meanwhile
                ScenarioRepository(other).save(
                    "other", {"patient": [_patient("M0", id=PATIENT_ID, given_name="Saved")]}
                )
            with session_scope(engine) as other:
                assert ScenarioRepository(other).count_entities_by_type() == {"patient": 1}
            # Linked now: no longer the writer's to replace in place; staged, published with history.
            w.add({"patient": [_patient("M0", id=PATIENT_ID, given_name="Writer's last")]})
            assert _raw_count(engine, f"{store_writer.STAGING_PREFIX}{w.token}_patients") == 1
        with session_scope(engine) as session:
            repo = ScenarioRepository(session)
            assert repo.documents("other", "patient")[0]["name"]["given_name"] == "Writer's last"
            # The save meanwhile found the writer's first version stored (never shown), and kept it as its history.
            versions = repo.history("patient", PATIENT_ID)
            assert [v.ended_by for v in versions] == ["update", "update", None]
            assert [v.document["name"]["given_name"] for v in versions[:2]] == ["Writer's first", "Saved"]
    finally:
        engine.dispose()


def test_the_cleanup_undoes_a_killed_publish_of_a_writer_from_before_the_appended_tables(
    duckdb_url: str, tmp_path: Path
) -> None:
    # A writer of an earlier release, killed in its publish steps, left rows it appended from its staged ones
    # and no table of appended ids: the cleanup removes those no scenario links.
    staging_only = _KILLED_IN_PUBLISH.replace(
        "DuckDBDialect.publish_step_rows = 1",
        "DuckDBDialect.publish_step_rows = 1\n    DuckDBDialect.direct_append_rows = 0",
    )
    before = _killed_in_publish(duckdb_url, tmp_path / "home", staging_only)
    engine = create_store_engine(duckdb_url)
    try:
        with engine.connect() as connection:
            (token,) = _staged(engine)
            for name in store_writer.staging_tables(connection)[token]:
                if name.endswith("__new"):
                    connection.exec_driver_sql(f"DROP TABLE {name}")
            connection.commit()
            assert connection.exec_driver_sql("SELECT count(*) FROM patients").scalar_one() == 21
            store_writer.clean_up_writers(connection)
            assert connection.exec_driver_sql("SELECT count(*) FROM patients").scalar_one() == 1
        assert _staged(engine) == {} and _load(engine, "old") == before
    finally:
        engine.dispose()


@pytest.mark.parametrize("meanwhile", ["deleted", "changed"])
def test_a_duckdb_writers_appended_entity_that_another_write_deletes_or_changes_refuses_the_publish(
    duckdb_url: str, meanwhile: str
) -> None:
    engine = create_store_engine(duckdb_url)
    try:
        with (
            pytest.raises(WriteConflictError, match=f"another write deleted or changed the patient {PATIENT_ID}"),
            session_scope(engine) as session,
            ScenarioRepository(session).writer("w") as w,
        ):
            w.add({"patient": [_patient("M0", id=PATIENT_ID, given_name="Writer's"), _patient("M1")]})
            with session_scope(engine) as other:
                repo = ScenarioRepository(other)
                repo.save("other", {"patient": [_patient("M0", id=PATIENT_ID, given_name="Saved")]})
                if meanwhile == "deleted":
                    repo.delete("other")  # the entity goes with the only scenario that linked it
        # Nothing published, nothing of the writer left; what the other write did stands.
        assert _names_in(engine) == ([] if meanwhile == "deleted" else ["other"])
        assert _staged(engine) == {}
        assert _raw_count(engine, "patients") == (0 if meanwhile == "deleted" else 1)
        if meanwhile == "changed":
            assert _load(engine, "other")["patient"][0]["name"]["given_name"] == "Saved"
    finally:
        engine.dispose()


def test_a_refused_add_appends_nothing_and_gives_back_its_share_of_the_budget(duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    try:
        with session_scope(engine) as session, ScenarioRepository(session).writer("w") as w:
            w.add({"patient": [_patient("M1")]})
            left = w._direct_left
            with pytest.raises(ValidationError, match="matches no patient"):
                w.add({"patient": [_patient("M2")], "encounter": [_encounter("E1", "nobody")]})
            assert (w._direct_left, _raw_count(engine, "patients")) == (left, 1)
            w.add({"patient": [_patient("M3")]})
        assert [p["mrn"] for p in _load(engine, "w")["patient"]] == ["M1", "M3"]
    finally:
        engine.dispose()
