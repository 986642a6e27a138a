"""The audit trail, on DuckDB and PostgreSQL: one event per operation that changes the store, refused
writes kept (and nothing else changed), nested operations recorded once, reads only when audited,
append-only on PostgreSQL by trigger, the CLI and MCP interfaces, revision 0006 both ways."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp.types as types
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from mcp import ClientSession
from mcp.shared.memory import create_client_server_memory_streams
from sqlalchemy.orm import Session

from healthsim_models import ValidationError, create_store_engine, schema_version, session_scope
from healthsim_models.audit import OPERATIONS, acting_as, insert_event, os_user
from healthsim_models.errors import InvalidArgumentError, ScenarioExistsError, ScenarioNotFoundError, SyntheaError
from healthsim_state import ScenarioRepository
from healthsim_state.analytics.omop import build_omop
from healthsim_state.analytics.star import build_star
from healthsim_state.demo import scenario
from healthsim_state.formats.json import export_scenario, import_scenario
from healthsim_state.formats.legacy import migrate_legacy
from healthsim_state.formats.synthea import import_synthea
from healthsim_state.interfaces.cli import main
from healthsim_state.interfaces.mcp.server import build_server
from healthsim_state.interfaces.mcp.tools import Store
from healthsim_state.lake.export import export_lake
from healthsim_state.reference.loader import load_dataset
from healthsim_state.store import audit as audit_api
from healthsim_state.store.audit import AuditRecord, audit_events, audited, reads_audited
from healthsim_state.store.backup import backup_store
from healthsim_state.store.query import run_query
from healthsim_state.store.settings import change_setting, settings
from tests.catalog import database_shapes

FIXTURES = Path(__file__).parent / "fixtures"
PATIENT = {
    "id": "5f0c9a51-3c1e-4a57-9d1e-0b8f4f2c6a01",
    "mrn": "MRN-A1",
    "given_name": "Ann",
    "family_name": "Lee",
    "birth_date": "1970-01-01",
    "gender": "F",
}


def _events(engine: sa.Engine, **filters: Any) -> list[AuditRecord]:
    with session_scope(engine) as session:
        return audit_events(session, **filters)


def _data_events(engine: sa.Engine) -> list[AuditRecord]:
    """Events newest first, without the schema upgrade that made the store."""
    return [e for e in _events(engine) if not e.operation.startswith("schema_")]


def _row_counts(engine: sa.Engine) -> dict[str, int | None]:
    counts = schema_version.table_row_counts(engine)
    counts.pop("audit_log")
    return counts


def test_every_repository_write_is_one_event(engine: sa.Engine) -> None:
    repo_calls = [
        ("save", lambda r: r.save("a", scenario(2))),
        ("add", lambda r: r.add_entities("a", {"patient": [PATIENT]})),
        ("tag", lambda r: r.add_tags("a", ["x", "y"])),
        ("untag", lambda r: r.remove_tags("a", ["y"])),
        ("delete", lambda r: r.delete("a")),
    ]
    for _, call in repo_calls:
        with session_scope(engine) as session:
            call(ScenarioRepository(session))
    with session_scope(engine) as session:
        assert ScenarioRepository(session).delete("no-such-scenario") is False  # changes nothing: no event
    events = list(reversed(_data_events(engine)))
    assert [e.operation for e in events] == [op for op, _ in repo_calls]
    save, add, tag, untag, delete = events
    assert save.counts["patient"] == 2 and save.counts["encounter"] > 0
    assert add.counts == {"patient": 1}
    assert tag.details == {"tags": ["x", "y"]} and untag.details == {"tags": ["y"]}
    assert delete.counts["patient"] == 3  # what the scenario held
    assert {e.scenario_name for e in events} == {"a"} and len({e.scenario_id for e in events}) == 1
    for e in events:
        assert (e.outcome, e.error, e.interface, e.actor) == ("committed", None, "python", os_user())
    expected_user = "postgres" if engine.dialect.name == "postgresql" else None
    assert {e.database_user for e in _events(engine)} == {expected_user}
    schema = _events(engine, operation="schema_upgrade")
    assert len(schema) == 1 and schema[0].details == {"from": None, "to": schema_version.head_revision()}


def test_a_refused_save_leaves_its_event_and_nothing_else(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("a", scenario(2), tags=["kept"])
    before = _row_counts(engine)
    bad = dict(PATIENT, gender="not-a-gender")
    with pytest.raises(ValidationError) as refused, session_scope(engine) as session:
        repo = ScenarioRepository(session)
        repo.add_tags("a", ["lost"])  # earlier work of the same transaction goes too
        repo.save("a", {"patient": [bad]}, overwrite=True)
    assert refused.value.problems and "gender" in str(refused.value)
    with pytest.raises(ScenarioExistsError), session_scope(engine) as session:
        ScenarioRepository(session).save("a", scenario(1))
    assert _row_counts(engine) == before
    exists, invalid, save = _data_events(engine)  # the tag was rolled back with the save: no event
    assert (invalid.operation, invalid.outcome, invalid.scenario_name) == ("save", "refused", "a")
    assert invalid.error.startswith("ValidationError: ") and "gender" in invalid.error
    assert exists.outcome == "refused" and exists.error.startswith("ScenarioExistsError: a scenario named 'a' exists")
    assert save.outcome == "committed"
    with session_scope(engine) as session:
        assert ScenarioRepository(session).scenario_summary("a").tags == ["kept"]


def test_a_refusal_for_text_no_database_stores_is_recorded(engine: sa.Engine) -> None:
    with pytest.raises(ValidationError), session_scope(engine) as session:
        ScenarioRepository(session).save("bad\x00name\udcff", {"patient": [PATIENT]})
    (event,) = _data_events(engine)
    assert (event.outcome, event.scenario_name) == ("refused", "bad\\x00name\\udcff")


def test_a_refused_write_of_a_caller_raises_the_callers_error_unchanged(engine: sa.Engine) -> None:
    failure = RuntimeError("the caller's own failure")
    with (
        pytest.raises(RuntimeError) as raised,
        session_scope(engine) as session,
        audited(session, "save", scenario="x"),
    ):
        ScenarioRepository(session).save("x", {"patient": [PATIENT]})  # part of the audited block
        raise failure
    assert raised.value is failure
    (event,) = _data_events(engine)
    assert (event.operation, event.outcome, event.error) == (
        "save",
        "refused",
        "RuntimeError: the caller's own failure",
    )
    with session_scope(engine) as session:
        assert not ScenarioRepository(session).exists("x")


def test_a_batch_writer_refused_or_left_by_an_error_records_one_refused_save(engine: sa.Engine) -> None:
    with (
        pytest.raises(ValidationError),
        session_scope(engine) as session,
        ScenarioRepository(session).writer("w") as w,
    ):
        w.add({"patient": [PATIENT]})
        w.add({"patient": [dict(PATIENT, gender="not-a-gender")]})
    with (
        pytest.raises(RuntimeError),
        session_scope(engine) as session,
        ScenarioRepository(session).writer("w") as w,
    ):
        w.add({"patient": [PATIENT]})
        raise RuntimeError("the generator failed")
    failed, invalid = _data_events(engine)
    assert (invalid.operation, invalid.outcome, invalid.scenario_name) == ("save", "refused", "w")
    assert invalid.error.startswith("ValidationError: ") and "gender" in invalid.error
    assert (failed.outcome, failed.error) == ("refused", "RuntimeError: the generator failed")
    # Inside an audited operation, only that operation's refusal is recorded.
    with (
        pytest.raises(RuntimeError),
        session_scope(engine) as session,
        audited(session, "import_json", scenario="outer"),
        ScenarioRepository(session).writer("w"),
    ):
        raise RuntimeError("inside")
    outer = _data_events(engine)[0]
    assert (outer.operation, outer.scenario_name, outer.error) == ("import_json", "outer", "RuntimeError: inside")
    assert len(_data_events(engine)) == 3
    with session_scope(engine) as session:
        assert not ScenarioRepository(session).exists("w")


def test_a_synthea_import_commits_with_its_event(engine: sa.Engine) -> None:
    """The import writes through the batch writer, which commits on its own
    connection: its event commits in the same transaction as the scenario,
    whatever the caller's session does afterwards."""
    session = Session(engine)
    try:
        summary = import_synthea(session, FIXTURES / "synthea-27", scenario="synthea")
        session.rollback()
    finally:
        session.close()
    (event,) = _data_events(engine)
    assert (event.operation, event.outcome, event.scenario_name) == ("import_synthea", "committed", "synthea")
    assert event.counts == summary.entities and str(event.scenario_id) == summary.scenario_id
    with session_scope(engine) as session:
        assert ScenarioRepository(session).scenario_summary("synthea").entity_counts == summary.entities


def test_imports_and_migrations_are_one_event_each(engine: sa.Engine, tmp_path: Path, isolated_home: Path) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("original", scenario(2))
        export_scenario(session, "original", tmp_path / "original.json")
    with session_scope(engine) as session:
        import_scenario(session, tmp_path / "original.json", name="copy")
    with session_scope(engine) as session:
        summary = import_synthea(session, FIXTURES / "synthea-27", scenario="synthea")
    with pytest.raises(SyntheaError), session_scope(engine) as session:
        import_synthea(session, tmp_path, scenario="empty")  # no patients.csv
    (isolated_home / "scenarios").mkdir(parents=True)
    shutil.copy(FIXTURES / "legacy-v1-scenario.json", isolated_home / "scenarios" / "v1.json")
    with session_scope(engine) as session:
        migrate_legacy(session, dry_run=True)  # changes nothing: no event
    with session_scope(engine) as session:
        (report,) = migrate_legacy(session)
    with session_scope(engine) as session:
        load_dataset(session, "svi_county", FIXTURES / "reference" / "SVI_2022_US_county.csv")
    events = _data_events(engine)
    assert [e.operation for e in events] == [
        "reference_load",
        "migrate_legacy",
        "import_synthea",
        "import_synthea",
        "import_json",
        "save",
    ]
    reference, legacy, refused, synthea, copy, _ = events
    assert copy.scenario_name == "copy" and copy.counts["patient"] == 2
    assert copy.details == {"source": str(tmp_path / "original.json")}
    assert synthea.counts == summary.entities and synthea.scenario_name == "synthea" and synthea.counts["patient"] == 27
    assert refused.outcome == "refused" and refused.error.startswith("SyntheaError: ")
    assert legacy.details["scenarios"] == [report.scenario] and sum(legacy.counts.values()) == report.entities
    assert reference.counts == {"svi_county": 4} and reference.details["dataset"] == "svi_county"


def test_reads_are_recorded_only_when_audited(engine: sa.Engine, tmp_path: Path) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("a", scenario(1))

    def read_everything() -> None:
        with session_scope(engine) as session:
            ScenarioRepository(session).load("a")
            export_scenario(session, "a", tmp_path / "a.json")
        run_query("SELECT count(*) FROM patients", engine=engine)

    read_everything()
    assert [e.operation for e in _data_events(engine)] == ["save"]
    with session_scope(engine) as session:
        change_setting(session, "audit.reads", "on")
    with session_scope(engine) as session:
        assert reads_audited(session)
    read_everything()
    query, export, load, setting, _ = _data_events(engine)
    assert setting.details == {"setting": "audit.reads", "value": "true", "previous": "false"}
    assert (load.operation, load.scenario_name, load.counts["patient"]) == ("load", "a", 1)
    assert (export.operation, export.scenario_name, export.counts["patient"]) == ("export", "a", 1)
    assert (query.operation, query.details) == ("query", {"sql": "SELECT count(*) FROM patients"})
    with session_scope(engine) as session:
        change_setting(session, "audit.reads", "off")
    read_everything()
    assert _data_events(engine)[0].operation == "setting"


def test_postgresql_refuses_changing_or_removing_events(postgresql_url: str) -> None:
    engine = create_store_engine(postgresql_url)
    try:
        for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(sa.exc.DBAPIError, match="audit_log is append-only"), engine.begin() as connection:
                connection.execute(sa.text(statement))
        assert len(_events(engine)) == 1
    finally:
        engine.dispose()


def test_the_api_offers_no_way_to_change_events() -> None:
    words = ("update", "delete", "remove", "clear", "prune", "truncate", "drop", "edit")
    assert [name for name in vars(audit_api) if any(word in name.lower() for word in words)] == []


def test_the_cli_records_and_lists(
    blank_store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the table's lines whole
    main(["demo", "--patients", "2", "--name", "cli-demo", "--database-url", blank_store_url])
    main(["scenario", "tag", "cli-demo", "--add", "t", "--database-url", blank_store_url])
    capsys.readouterr()
    main(["audit", "--json", "--database-url", blank_store_url])
    events = json.loads(capsys.readouterr().out)
    assert [e["operation"] for e in events] == ["tag", "save", "schema_upgrade"]
    assert {(e["interface"], e["actor"], e["outcome"]) for e in events} == {("cli", os_user(), "committed")}
    main(["audit", "--json", "--scenario", "cli-demo", "--limit", "1", "--database-url", blank_store_url])
    (latest,) = json.loads(capsys.readouterr().out)
    assert latest["operation"] == "tag" and latest["details"] == {"tags": ["t"]}
    main(["audit", "--json", "--since", "2999-01-01", "--database-url", blank_store_url])
    assert json.loads(capsys.readouterr().out) == []
    main(["audit", "--database-url", blank_store_url])
    table = capsys.readouterr().out
    assert "tag" in table and "cli-demo" in table and f"{os_user()} (cli)" in table
    with pytest.raises(SystemExit) as status:
        main(["scenario", "import", str(FIXTURES / "invalid" / "bad-gender.json"), "--database-url", blank_store_url])
    assert status.value.code == 1
    main(["audit", "--reads", "on", "--database-url", blank_store_url])
    assert capsys.readouterr().out == "audit.reads: on\n"
    main(["audit", "--json", "--limit", "2", "--database-url", blank_store_url])
    setting, refused = json.loads(capsys.readouterr().out)
    assert (setting["operation"], setting["details"]["value"]) == ("setting", "true")
    assert (refused["operation"], refused["outcome"], refused["interface"]) == ("import_json", "refused", "cli")
    # Outside a command the Python API is the interface again.
    engine = create_store_engine(blank_store_url)
    try:
        with session_scope(engine) as session:
            ScenarioRepository(session).delete("cli-demo")
        assert _events(engine, limit=1)[0].interface == "python"
    finally:
        engine.dispose()


@asynccontextmanager
async def _client(store: Store, name: str) -> AsyncIterator[ClientSession]:
    import anyio

    server = build_server(store)
    async with (
        create_client_server_memory_streams() as ((client_read, client_write), (server_read, server_write)),
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(server.run, server_read, server_write, server.create_initialization_options())
        info = types.Implementation(name=name, version="1.0")
        async with ClientSession(client_read, client_write, client_info=info) as session:
            await session.initialize()
            yield session
        tasks.cancel_scope.cancel()


@pytest.mark.anyio
async def test_mcp_calls_record_the_client(store_url: str) -> None:
    store = Store(store_url)
    try:
        async with _client(store, "audit-test-client") as client:
            saved = await client.call_tool("save_scenario", {"name": "m", "entities": {"patient": [PATIENT]}})
            assert not saved.is_error, saved
            refused = await client.call_tool("save_scenario", {"name": "m", "entities": {"patient": [PATIENT]}})
            assert refused.is_error
            await client.call_tool("get_summary", {"name": "m"})  # reads are not audited yet
            with session_scope(store.engine()) as session:
                change_setting(session, "audit.reads", "on")
            listed = await client.call_tool("load_scenario", {"name": "m", "entity_type": "patient"})
            assert not listed.is_error, listed
            queried = await client.call_tool("query", {"sql": "SELECT count(*) AS n FROM patients"})
            assert not queried.is_error, queried
        query, load, _, refused_event, save = _data_events(store.engine())
    finally:
        store.close()
    assert (save.operation, save.outcome, save.counts) == ("save", "committed", {"patient": 1})
    assert (refused_event.operation, refused_event.outcome) == ("save", "refused")
    assert (load.operation, load.scenario_name, load.details) == ("mcp_read", "m", {"tool": "load_scenario"})
    assert (query.operation, query.details) == ("mcp_read", {"tool": "query"})
    for event in (query, load, refused_event, save):
        assert (event.interface, event.actor) == ("mcp", "audit-test-client")


def test_acting_as_names_the_interface(engine: sa.Engine) -> None:
    with acting_as("mcp", "someone"), session_scope(engine) as session:
        ScenarioRepository(session).save("a", {"patient": [PATIENT]})
    (event,) = _data_events(engine)
    assert (event.interface, event.actor) == ("mcp", "someone")
    with pytest.raises(ValueError, match="interface must be one of"), acting_as("web"):
        pass


def test_the_vocabulary_is_documented() -> None:
    text = (Path(__file__).parents[1] / "docs" / "audit.md").read_text()
    for operation in OPERATIONS:
        assert f"`{operation}`" in text, operation


def test_revision_0006_up_and_down(blank_store_url: str) -> None:
    revision = schema_version.script_directory().get_revision("0006")
    before = revision.down_revision
    engine = create_store_engine(blank_store_url, upgrade=False)
    try:
        schema_version.upgrade(engine, before)
        below = database_shapes(engine)
        assert "audit_log" not in below
        with session_scope(engine) as session:
            ScenarioRepository(session).save("kept", scenario(1))  # no trail yet: written, not audited
        schema_version.upgrade(engine, "0006")
        assert set(database_shapes(engine)) - set(below) == {"audit_log"}
        (event,) = _events(engine)
        assert (event.operation, event.details) == ("schema_upgrade", {"from": before, "to": "0006"})
        with pytest.raises(Exception, match="no-such"):
            schema_version.upgrade(engine, "no-such")
        refused = _events(engine, limit=1)[0]
        assert (refused.operation, refused.outcome, refused.details["to"]) == ("schema_upgrade", "refused", "no-such")
        schema_version.downgrade(engine, before)
        assert database_shapes(engine) == below
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                functions = connection.execute(
                    sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'healthsim_audit_log_append_only'")
                )
                assert functions.scalar_one() == 0
        schema_version.upgrade(engine)
        with session_scope(engine) as session:
            assert ScenarioRepository(session).scenario_summary("kept").entity_counts["patient"] == 1
        assert [e.operation for e in _events(engine)] == ["schema_upgrade"]
    finally:
        engine.dispose()


# -- settings, and revision 0007 ------------------------------------------------------------------


def _stored_settings(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT key, value FROM settings")).all())


def test_settings_live_in_their_table_and_each_change_is_an_event(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        assert change_setting(session, "audit.reads", "ON ") == "true"
        assert change_setting(session, "history.keep_days", "30") == "30"
    with pytest.raises(InvalidArgumentError, match="audit.reads takes on or off"), session_scope(engine) as session:
        change_setting(session, "audit.reads", "maybe")
    with pytest.raises(InvalidArgumentError, match="unknown setting 'audit.writes'"), session_scope(engine) as session:
        change_setting(session, "audit.writes", "on")
    with session_scope(engine) as session:
        assert settings(session) == {"history.enabled": "true", "history.keep_days": "30", "audit.reads": "true"}
        assert reads_audited(session)
    # The values are in the settings table only; the trail records the changes.
    assert _stored_settings(engine) == {"audit.reads": "true", "history.keep_days": "30"}
    unknown, refused, keep, reads = _data_events(engine)
    assert reads.details == {"setting": "audit.reads", "value": "true", "previous": "false"}
    assert keep.details == {"setting": "history.keep_days", "value": "30", "previous": "all"}
    assert (refused.outcome, refused.details) == ("refused", {"setting": "audit.reads"})
    assert refused.error.startswith("InvalidArgumentError: setting audit.reads takes")
    assert (unknown.outcome, unknown.details) == ("refused", {"setting": "audit.writes"})
    with session_scope(engine) as session:
        assert change_setting(session, "audit.reads", "false") == "false"  # the default: no row
    assert _stored_settings(engine) == {"history.keep_days": "30"}


def test_revision_0007_moves_audit_reads_into_settings_and_back(blank_store_url: str) -> None:
    def latest_setting() -> AuditRecord:
        return _events(engine, operation="setting", limit=1)[0]

    def reads() -> bool:
        with session_scope(engine) as session:
            return reads_audited(session)

    engine = create_store_engine(blank_store_url, upgrade=False)
    try:
        schema_version.upgrade(engine, "0006")
        with engine.begin() as connection:  # how revision 0006 kept the setting: as an event
            insert_event(connection, "setting", details={"audit.reads": True})
        schema_version.upgrade(engine, "0007")
        assert _stored_settings(engine) == {"audit.reads": "true"} and reads()
        assert len(_events(engine, operation="setting")) == 1  # the trail is not changed
        # Down with the same value the trail gives: nothing appended, the row goes.
        schema_version.downgrade(engine, "0006")
        assert _stored_settings(engine) == {} and len(_events(engine, operation="setting")) == 1
        schema_version.upgrade(engine, "0007")
        with session_scope(engine) as session:
            change_setting(session, "audit.reads", "off")
        # Down with another value than the trail's latest old-form event: one appended in that form.
        schema_version.downgrade(engine, "0006")
        appended = latest_setting()
        assert (appended.details, appended.outcome, appended.interface) == (
            {"audit.reads": False},
            "committed",
            "python",
        )
        assert _stored_settings(engine) == {}
        schema_version.upgrade(engine, "0007")
        assert _stored_settings(engine) == {} and not reads()
        with session_scope(engine) as session:
            change_setting(session, "audit.reads", "on")
        schema_version.downgrade(engine, "0006")
        assert latest_setting().details == {"audit.reads": True}
        schema_version.upgrade(engine)
        assert _stored_settings(engine) == {"audit.reads": "true"} and reads()
    finally:
        engine.dispose()


# -- every other write path ---------------------------------------------------------------------


def test_restore_from_history_prune_and_schema_downgrade_are_events(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("a", {"patient": [PATIENT]})
    saved_at = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        ScenarioRepository(session).delete("a")
    with session_scope(engine) as session:
        ScenarioRepository(session).restore("a", saved_at)
    with session_scope(engine) as session:
        deleted = ScenarioRepository(session).prune_history(dt.timedelta(0))
    with pytest.raises(InvalidArgumentError), session_scope(engine) as session:
        ScenarioRepository(session).prune_history(dt.timedelta(-1))
    refused, prune, restore, _, _ = _data_events(engine)
    assert (restore.operation, restore.scenario_name, restore.counts) == ("scenario_restore", "a", {"patient": 1})
    assert (prune.operation, prune.counts) == ("history_prune", deleted) and deleted
    assert (refused.operation, refused.outcome) == ("history_prune", "refused")
    head = schema_version.head_revision()
    schema_version.downgrade(engine, "0006")
    down = _events(engine, limit=1)[0]
    assert (down.operation, down.details, down.outcome) == (
        "schema_downgrade",
        {"from": head, "to": "0006"},
        "committed",
    )
    schema_version.upgrade(engine)


def test_omop_and_star_builds_are_events_with_rows_per_table(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("a", scenario(2))
    with session_scope(engine) as session:
        star = build_star(session, ["a"])
    with session_scope(engine) as session:
        omop = build_omop(session)
    with pytest.raises(ScenarioNotFoundError), session_scope(engine) as session:
        build_star(session, ["no-such-scenario"])
    refused, omop_event, star_event, _ = _data_events(engine)
    assert (star_event.operation, star_event.scenario_name) == ("star_build", "a")
    assert star_event.counts == {k: v for k, v in star.rows.items() if v} and star_event.counts
    assert star_event.details["schema"] == star.schema and star_event.details["scenarios"] == ["a"]
    assert omop_event.operation == "omop_build" and omop_event.counts["person"] == 2
    assert omop_event.counts == {k: v for k, v in omop.rows.items() if v}
    assert omop_event.details == {"schema": omop.schema, "scenarios": ["a"]}
    assert (refused.operation, refused.outcome) == ("star_build", "refused")
    assert refused.error.startswith("ScenarioNotFoundError")


def test_a_lake_export_is_a_read(engine: sa.Engine, tmp_path: Path) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("a", scenario(2))
    with session_scope(engine) as session:
        export_lake(session, tmp_path / "lake-1")
    assert [e.operation for e in _data_events(engine)] == ["save"]  # reads are not audited
    with session_scope(engine) as session:
        change_setting(session, "audit.reads", "on")
    with session_scope(engine) as session:
        summary = export_lake(session, tmp_path / "lake-2", ["a"])
    event = _data_events(engine)[0]
    assert (event.operation, event.scenario_name, event.outcome) == ("lake_export", "a", "committed")
    assert event.counts["patients"] == 2
    assert event.counts == {path: sum(rows.values()) for path, rows in summary.rows.items() if sum(rows.values())}
    assert event.details == {"target": summary.target, "format": "parquet", "scenarios": ["a"], "include": []}


def test_a_backup_is_a_read(engine: sa.Engine, tmp_path: Path) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("a", scenario(2))
    backup_store(engine, tmp_path / "backup-1")
    assert [e.operation for e in _data_events(engine)] == ["save"]  # reads are not audited
    with session_scope(engine) as session:
        change_setting(session, "audit.reads", "on")
    manifest = backup_store(engine, tmp_path / "backup-2")
    event = _data_events(engine)[0]
    assert (event.operation, event.outcome) == ("store_backup", "committed")
    assert event.counts == {t.name: t.rows for t in manifest.tables if t.rows}
    assert event.counts["patients"] == 2
    assert event.details == {"path": str(tmp_path / "backup-2")}
    # The event follows the backup: the backup's own trail does not hold it.
    audit_entry = next(t for t in manifest.tables if t.name == "audit_log")
    backed_up = pq.read_table(tmp_path / "backup-2" / audit_entry.file).column("operation").to_pylist()
    assert "store_backup" not in backed_up and "setting" in backed_up
    with Session(engine) as session:
        backup_store(session, tmp_path / "backup-3")
        session.commit()
    assert [e.operation for e in _data_events(engine)[:2]] == ["store_backup", "store_backup"]
