"""Backup, restore and store copy (healthsim_state.store.backup, .restore, .copy) on DuckDB and
PostgreSQL and across them, with the checksums they are verified by."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from healthsim_models import schema_version
from healthsim_models.audit import insert_event, os_user
from healthsim_models.base import Base
from healthsim_models.engine import create_store_engine, dispose_engines, session_scope
from healthsim_models.errors import BackupError
from healthsim_models.location import mask_url
from healthsim_models.settings import HISTORY_KEEP_DAYS as KEEP_DAYS
from healthsim_state import ScenarioRepository, demo
from healthsim_state.formats.synthea import import_synthea
from healthsim_state.interfaces.cli import app, main
from healthsim_state.reference import load_reference
from healthsim_state.store import target
from healthsim_state.store.audit import reads_audited
from healthsim_state.store.backup import MANIFEST, backup_store
from healthsim_state.store.checksum import JSON, UUID, Column, TableChecksum
from healthsim_state.store.copy import copy_store
from healthsim_state.store.dialects import DIALECTS
from healthsim_state.store.portable import reading, store_tables
from healthsim_state.store.restore import restore_store
from healthsim_state.store.settings import change_setting, get_setting
from tests.conftest import BACKENDS, throwaway_postgresql_database
from tests.test_reference import FILES as REFERENCE
from tests.test_revision_0004 import NEW_TABLES

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
runner = CliRunner()


def _fill(url: str) -> None:
    """The demo, the Synthea fixture (JSON extensions with nested objects, decimals, instants) and
    reference data (decimals, doubles, dates): every column type of the store holds values."""
    engine = create_store_engine(url)
    try:
        with session_scope(engine) as session:
            entities = {name: list(docs) for name, docs in demo.scenario(4, 7).items()}
            ScenarioRepository(session).save("demo", entities, tags=["kept"], description="for the backup")
        with session_scope(engine) as session:
            import_synthea(session, FIXTURES / "synthea-27", scenario="synthea")
        # A scenario saved and deleted: every history table holds the versions its delete kept.
        with session_scope(engine) as session:
            entities = {name: list(docs) for name, docs in demo.scenario(3, 8).items()}
            ScenarioRepository(session).save("deleted", entities)
        with session_scope(engine) as session:
            ScenarioRepository(session).delete("deleted")
            change_setting(session, KEEP_DAYS, "400")
    finally:
        engine.dispose()
    for name, file in REFERENCE.items():
        load_reference(name, FIXTURES / "reference" / file, database_url=url)


@pytest.fixture(scope="module", params=BACKENDS)
def source_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A filled store per backend, shared by the tests that only read it."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('source') / 'store.duckdb'}"
        _fill(url)
        yield url
        dispose_engines()
        return
    with throwaway_postgresql_database() as url:
        _fill(url)
        yield url


@pytest.fixture(params=BACKENDS)
def other_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no store yet) on each backend in turn."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'other.duckdb'}"
        return
    with throwaway_postgresql_database() as url:
        yield url


def _state(url: str, *, without: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
    """Rows and checksum of every table of the store at ``url``."""
    engine = create_store_engine(url, upgrade=False)
    try:
        with reading(engine) as connection:
            sums = {spec.name: target.stored(connection, spec) for spec in store_tables(connection)}
    finally:
        engine.dispose()
    return {name: (s.rows, s.value) for name, s in sums.items() if name not in without}


def _value(column: sa.Column, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, sa.JSON):
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(column.type, sa.Uuid):
        return uuid.UUID(str(value))
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return value


def _rows(url: str, name: str) -> list[dict[str, Any]]:
    """Every row of the table ``name``, in primary key order, values as Python compares them."""
    table = Base.metadata.tables[name]
    engine = create_store_engine(url, upgrade=False)
    try:
        with engine.connect() as connection:
            result = connection.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings().all()
    finally:
        engine.dispose()
    return [{c.name: _value(c, row[c.name]) for c in table.columns} for row in result]


TRAIL = ("audit_log",)
# Tables compared row by row as well: JSON with nested objects, decimals, instants, reference data.
COMPARED = ("scenarios", "patients", "claims", "encounters", "population.svi_county", "population.places_county")


def _trail(url: str) -> list[dict[str, Any]]:
    """The audit trail, oldest first."""
    return sorted(_rows(url, "audit_log"), key=lambda e: (e["occurred_at"], e["id"]))


def _received(source: str, target: str, *operations: str) -> list[dict[str, Any]]:
    """The target's trail is the source's followed by the events of ``operations``; those events."""
    theirs, ours = _trail(source), _trail(target)
    assert ours[: len(theirs)] == theirs
    added = ours[len(theirs) :]
    assert [e["operation"] for e in added] == list(operations)
    return added


def _same_store(a: str, b: str, *received: str) -> list[dict[str, Any]]:
    """``b`` holds what ``a`` holds; its audit trail is ``a``'s followed by the events of ``received``
    (the restores and copies that brought it); those events."""
    assert _state(a, without=TRAIL) == _state(b, without=TRAIL)
    for name in COMPARED:
        assert _rows(a, name) == _rows(b, name), name
    return _received(a, b, *received)


def _latest(url: str) -> dict[str, Any]:
    return _trail(url)[-1]


# -- checksums --------------------------------------------------------------------------------


COLUMNS = [Column("id", UUID), Column("doc", JSON), Column("at", "timestamptz"), Column("amount", "decimal(12,2)")]


def _checksum(table: pa.Table) -> str:
    sums = TableChecksum(COLUMNS)
    sums.add(table)
    return sums.value


def _table(ids: list[str], docs: list[str | None], at: list[dt.datetime], amounts: list[str]) -> pa.Table:
    import decimal

    return pa.table(
        {
            "id": ids,
            "doc": docs,
            "at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "amount": pa.array([decimal.Decimal(a) for a in amounts], pa.decimal128(12, 2)),
        }
    )


ONE = "7f3c4e1a-0b2d-4c5e-8f9a-1b2c3d4e5f60"
TWO = "00000000-0000-4000-8000-000000000002"
T1 = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.UTC)
T2 = dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)


def test_a_checksum_ignores_row_order_batches_key_order_and_case() -> None:
    """JSON keys in another order and spacing (PostgreSQL's JSONB), upper-case UUID text,
    the same instant in another zone, rows in another order and batches: one checksum."""
    base = _table([ONE, TWO], ['{"a": 1, "b": {"x": [1, 2]}}', None], [T1, T2], ["12.30", "0.00"])
    other = _table(
        [TWO, ONE.upper()],
        [None, '{"b":{"x":[1,2]},"a":1}'],
        [T2, T1.astimezone(dt.timezone(dt.timedelta(hours=-5)))],
        ["0.00", "12.30"],
    )
    assert _checksum(base) == _checksum(other)
    sums = TableChecksum(COLUMNS)
    sums.add(other.slice(1))
    sums.add(other.slice(0, 1))
    assert (sums.rows, sums.value) == (2, _checksum(base))


@pytest.mark.parametrize(
    "changed",
    [
        _table([ONE, ONE], ['{"a": 1, "b": {"x": [1, 2]}}', None], [T1, T2], ["12.30", "0.00"]),  # an id
        _table([ONE, TWO], ['{"a": 1, "b": {"x": [2, 1]}}', None], [T1, T2], ["12.30", "0.00"]),  # a list's order
        _table([ONE, TWO], ['{"a": 1, "b": {"x": [1, 2]}}', "{}"], [T1, T2], ["12.30", "0.00"]),  # NULL -> {}
        _table([ONE, TWO], ['{"a": 1, "b": {"x": [1, 2]}}', None], [T2, T1], ["12.30", "0.00"]),  # values swapped
        _table([ONE, TWO], ['{"a": 1, "b": {"x": [1, 2]}}', None], [T1, T2], ["12.31", "0.00"]),  # a cent
        _table([ONE], ['{"a": 1, "b": {"x": [1, 2]}}'], [T1], ["12.30"]),  # a row fewer
    ],
)
def test_a_checksum_changes_with_any_value(changed: pa.Table) -> None:
    base = _table([ONE, TWO], ['{"a": 1, "b": {"x": [1, 2]}}', None], [T1, T2], ["12.30", "0.00"])
    assert _checksum(changed) != _checksum(base)


def test_the_same_table_gives_the_same_checksum_on_both_backends(source_url: str, other_url: str) -> None:
    """The checksums a copy computes on the target equal the source's, whatever the two backends."""
    report = copy_store(create_store_engine(source_url, upgrade=False), other_url)
    assert {t.name: (t.rows, t.checksum) for t in report.tables} == _state(source_url)
    assert _state(source_url, without=TRAIL) == _state(other_url, without=TRAIL)
    # The copy is the target's latest event, after the source's trail, naming the source and the rows.
    (event,) = _received(source_url, other_url, "store_copy")
    assert event["details"] == {"source": mask_url(make_url(source_url)), "schema_revision": report.schema_revision}
    assert event["counts"] == {t.name: t.rows for t in report.tables if t.rows}
    assert (event["outcome"], event["interface"], event["actor"]) == ("committed", "python", os_user())


# -- backup and restore --------------------------------------------------------------------------


def test_backup_then_restore_gives_an_equal_store(source_url: str, other_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(source_url, upgrade=False)
    manifest = backup_store(engine, tmp_path / "backup")
    engine.dispose()
    written = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert written["schema_revision"] == schema_version.head_revision()
    assert written["source_backend"] == make_backend(source_url)
    # Every table of the models, including any a later revision adds: none is listed by hand.
    assert [t["name"] for t in written["tables"]] == [t.fullname for t in Base.metadata.sorted_tables]
    assert {t["name"]: (t["rows"], t["checksum"]) for t in written["tables"]} == _state(source_url)
    assert [t.name for t in manifest.tables if not t.rows] == []
    patients = pq.read_table(tmp_path / "backup" / "patients.parquet")
    assert patients.schema.field("id").type == pa.string()
    assert patients.schema.field("created_at").type == pa.timestamp("us", tz="UTC")

    restored = create_store_engine(other_url, upgrade=False)
    restore_store(restored, tmp_path / "backup")
    restored.dispose()
    (event,) = _same_store(source_url, other_url, "store_restore")
    assert _state(other_url, without=TRAIL) == {
        t.name: (t.rows, t.checksum) for t in manifest.tables if t.name not in TRAIL
    }
    assert event["details"] == {
        "source": str(tmp_path / "backup"),
        "schema_revision": manifest.schema_revision,
        "backend": manifest.source_backend,
    }
    assert event["counts"] == {t.name: t.rows for t in manifest.tables if t.rows} and event["counts"]["audit_log"]
    assert (event["outcome"], event["interface"], event["actor"]) == ("committed", "python", os_user())


def make_backend(url: str) -> str:
    return sa.engine.make_url(url).get_backend_name()


def test_a_copy_duckdb_to_postgresql_to_duckdb_equals_the_original(tmp_path: Path) -> None:
    first = f"duckdb:///{tmp_path / 'first.duckdb'}"
    last = f"duckdb:///{tmp_path / 'last.duckdb'}"
    _fill(first)
    with throwaway_postgresql_database() as middle:
        copy_store(create_store_engine(first, upgrade=False), middle)
        _same_store(first, middle, "store_copy")
        copy_store(create_store_engine(middle, upgrade=False), last)
    _same_store(first, last, "store_copy", "store_copy")


@pytest.fixture
def backup(source_url: str, tmp_path: Path) -> Path:
    """A backup of the filled store of each backend."""
    engine = create_store_engine(source_url, upgrade=False)
    backup_store(engine, tmp_path / "backup")
    engine.dispose()
    return tmp_path / "backup"


def _edit_manifest(folder: Path, **changes: Any) -> None:
    data = json.loads((folder / MANIFEST).read_text())
    data.update(changes)
    (folder / MANIFEST).write_text(json.dumps(data))


def _refused_restore(backup: Path, url: str, reason: str) -> None:
    """Restoring ``backup`` into the new store at ``url`` fails for ``reason`` and makes nothing."""
    engine = create_store_engine(url, upgrade=False)
    with pytest.raises(BackupError, match=reason):
        restore_store(engine, backup)
    assert schema_version.current_revision(engine) is None  # all or nothing
    engine.dispose()


def test_a_backup_from_a_newer_schema_is_refused(backup: Path, blank_duckdb_url: str) -> None:
    _edit_manifest(backup, schema_revision="9999_from_the_future")
    _refused_restore(backup, blank_duckdb_url, "9999_from_the_future, which this version .* does not know")


def test_a_non_empty_store_is_refused_and_replaced_when_asked(backup: Path, other_url: str, source_url: str) -> None:
    """Restoring into a store holding data is refused, naming what it holds; with replace its
    data is replaced (the backup's tables exactly, nothing of the store's kept)."""
    engine = create_store_engine(other_url)
    with session_scope(engine) as session:
        ScenarioRepository(session).save("mine", {n: list(d) for n, d in demo.scenario(2, 99).items()})
    before = _state(other_url, without=TRAIL)
    with pytest.raises(
        BackupError, match=r"is not empty: it holds \d+ rows in \d+ tables \(adverse_events: 1, .*--replace"
    ):
        restore_store(engine, backup)
    assert _state(other_url, without=TRAIL) == before
    refused = _latest(other_url)  # in the target's own trail, committed on its own
    assert (refused["operation"], refused["outcome"]) == ("store_restore", "refused")
    assert refused["error"].startswith("BackupError: ") and "is not empty" in refused["error"]
    manifest = restore_store(engine, backup, replace=True)
    engine.dispose()
    assert _state(other_url, without=TRAIL) == {
        t.name: (t.rows, t.checksum) for t in manifest.tables if t.name not in TRAIL
    }
    _received(source_url, other_url, "store_restore")  # the refusal went with the replaced trail


@pytest.mark.parametrize("how", ["manifest", "file"])
def test_a_corrupted_backup_is_refused_naming_the_table(backup: Path, blank_duckdb_url: str, how: str) -> None:
    if how == "manifest":
        data = json.loads((backup / MANIFEST).read_text())
        entry = next(t for t in data["tables"] if t["name"] == "claims")
        entry["checksum"] = "0123456789abcdef"
        (backup / MANIFEST).write_text(json.dumps(data))
    else:  # a value edited in the Parquet file, the manifest left as it was
        claims = pq.read_table(backup / "claims.parquet")
        column = claims.column_names.index("source_system")
        edited = pa.array(["edited", *claims.column(column).to_pylist()[1:]], claims.schema.field(column).type)
        pq.write_table(claims.set_column(column, claims.schema.field(column), edited), backup / "claims.parquet")
    _refused_restore(backup, blank_duckdb_url, "the table claims of the backup .* is damaged or was changed")


def test_a_file_that_is_not_parquet_is_refused(backup: Path, blank_duckdb_url: str) -> None:
    (backup / "patients.parquet").write_bytes(b"not parquet")
    _refused_restore(backup, blank_duckdb_url, "patients.parquet of the table patients cannot be read")


def test_rows_the_target_refuses_are_refused_naming_the_table(backup: Path, blank_store_url: str) -> None:
    """A file holding a row twice (its manifest edited to match) breaks the target's primary key."""
    patients = pq.read_table(backup / "patients.parquet")
    pq.write_table(pa.concat_tables([patients, patients.slice(0, 1)]), backup / "patients.parquet")
    _refused_restore(
        backup, blank_store_url, r"the table patients of the backup .* cannot be written into .*: .*\. Nothing"
    )


def test_an_older_backup_is_restored_at_its_revision_then_upgraded(blank_store_url: str, tmp_path: Path) -> None:
    """A store at revision 0003 is backed up; its backup restores into a new store (at no
    revision) and into an empty one at head, both ending at head with the data the older store
    has once upgraded itself."""
    older = create_store_engine(blank_store_url, upgrade=False)
    schema_version.upgrade(older)
    with session_scope(older) as session:
        ScenarioRepository(session).save("demo", {n: list(d) for n, d in demo.scenario(3, 5).items()}, tags=["t"])
    schema_version.downgrade(older, "0003")
    manifest = backup_store(older, tmp_path / "backup")
    assert manifest.schema_revision == "0003"
    assert NEW_TABLES and not set(NEW_TABLES) & {t.name for t in manifest.tables}  # the tables 0004 adds
    schema_version.upgrade(older)
    older.dispose()
    # The older store's own upgrade is in its audit trail; a restore's upgrade is part of the restore.
    expected = _state(blank_store_url, without=("schema_migrations", "audit_log"))

    fresh = f"duckdb:///{tmp_path / 'fresh.duckdb'}"
    at_head = f"duckdb:///{tmp_path / 'at-head.duckdb'}"
    create_store_engine(at_head).dispose()
    for url in (fresh, at_head):
        engine = create_store_engine(url, upgrade=False)
        restore_store(engine, tmp_path / "backup")
        assert schema_version.current_revision(engine) == schema_version.head_revision()
        engine.dispose()
        assert _state(url, without=("schema_migrations", "audit_log")) == expected
        for name in ("scenarios", "patients", "encounters"):
            assert _rows(url, name) == _rows(blank_store_url, name), name


def test_a_backup_from_revision_0006_brings_audit_reads_into_the_settings(blank_store_url: str, tmp_path: Path) -> None:
    """At 0006 the setting was an event of the trail; the restore's upgrade moves it into settings."""
    older = create_store_engine(blank_store_url, upgrade=False)
    schema_version.upgrade(older, "0006")
    with older.begin() as connection:
        insert_event(connection, "setting", details={"audit.reads": True})
    assert backup_store(older, tmp_path / "backup").schema_revision == "0006"
    older.dispose()
    url = f"duckdb:///{tmp_path / 'restored.duckdb'}"
    engine = create_store_engine(url, upgrade=False)
    restore_store(engine, tmp_path / "backup")
    with session_scope(engine) as session:
        assert get_setting(session, "audit.reads") == "true" and reads_audited(session)
    engine.dispose()
    old_form, restore = _trail(url)[-2:]
    assert (old_form["details"], restore["operation"]) == ({"audit.reads": True}, "store_restore")


def _failing_writes(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """Make every backend's bulk insert fail once ``after`` batches went in."""
    calls = {"n": 0}
    for dialect in DIALECTS.values():
        real = type(dialect).write_arrow

        def write(self: Any, connection: Any, table: str, batch: Any, real: Any = real) -> None:
            calls["n"] += 1
            if calls["n"] > after:
                raise BackupError("a failure in the middle")
            real(self, connection, table, batch)

        monkeypatch.setattr(type(dialect), "write_arrow", write)


def test_a_failure_in_the_middle_of_a_restore_or_copy_leaves_the_target_unchanged(
    backup: Path, other_url: str, source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_store_engine(other_url)
    with session_scope(engine) as session:
        ScenarioRepository(session).save("mine", {n: list(d) for n, d in demo.scenario(2, 99).items()})
    before = _state(other_url, without=TRAIL)
    trail = _trail(other_url)
    _failing_writes(monkeypatch, after=10)
    with pytest.raises(BackupError, match="a failure in the middle"):
        restore_store(engine, backup, replace=True)
    assert _state(other_url, without=TRAIL) == before
    with pytest.raises(BackupError, match="a failure in the middle"):
        copy_store(create_store_engine(source_url, upgrade=False), other_url, replace=True)
    assert _state(other_url, without=TRAIL) == before
    engine.dispose()
    # The target's own trail stays, with the two refusals added.
    after = _trail(other_url)
    assert after[: len(trail)] == trail
    assert [(e["operation"], e["outcome"]) for e in after[len(trail) :]] == [
        ("store_restore", "refused"),
        ("store_copy", "refused"),
    ]


def test_a_failed_backup_leaves_nothing(source_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import healthsim_state.store.backup as module

    real = module.read_table

    def failing(connection: Any, spec: Any) -> Iterator[pa.RecordBatch]:
        if spec.name == "patients":
            raise OSError(28, "No space left on device")
        yield from real(connection, spec)

    monkeypatch.setattr(module, "read_table", failing)
    engine = create_store_engine(source_url, upgrade=False)
    with pytest.raises(BackupError, match="cannot write the backup .*No space left on device"):
        backup_store(engine, tmp_path / "backup")
    engine.dispose()
    assert list(tmp_path.iterdir()) == []


def test_backup_destinations_that_cannot_be_used_are_refused(duckdb_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(duckdb_url)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    (tmp_path / "a-file").write_text("x")
    for path, reason in [
        (tmp_path / "full", "exists and is not empty"),
        (tmp_path / "a-file", "is a file"),
        (tmp_path / "no-such-folder" / "backup", "does not exist: create it first"),
    ]:
        with pytest.raises(BackupError, match=reason):
            backup_store(engine, path)
    (tmp_path / "empty").mkdir()
    assert backup_store(engine, tmp_path / "empty").schema_revision == schema_version.head_revision()
    engine.dispose()
    empty = create_store_engine(f"duckdb:///{tmp_path / 'nothing.duckdb'}", upgrade=False)
    with pytest.raises(BackupError, match="holds no HealthSim store"):
        backup_store(empty, tmp_path / "of-nothing")
    empty.dispose()


def test_a_copy_into_itself_is_refused(duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    with pytest.raises(BackupError, match="is the store being copied"):
        copy_store(engine, duckdb_url)
    engine.dispose()


# -- the CLI ---------------------------------------------------------------------------------


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + result.stderr
    return result.output


def _refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one error line of a refused command."""
    with pytest.raises(SystemExit) as exit:
        main(list(args))
    assert exit.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


def test_the_cli_backs_up_restores_and_copies(
    source_url: str, other_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ok("db", "backup", str(tmp_path / "b"), "--database-url", source_url)
    assert "patients" in out and "rows/s" in out
    assert "exists and is not empty" in _refused(
        capsys, "db", "backup", str(tmp_path / "b"), "--database-url", source_url
    )
    _ok("db", "restore", str(tmp_path / "b"), "--database-url", other_url)
    assert "is not empty" in _refused(capsys, "db", "restore", str(tmp_path / "b"), "--database-url", other_url)
    _ok("db", "restore", str(tmp_path / "b"), "--replace", "--database-url", other_url)
    (event,) = _same_store(source_url, other_url, "store_restore")
    assert (event["interface"], event["actor"]) == ("cli", os_user())
    assert "is not empty" in _refused(capsys, "db", "copy", "--to", other_url, "--database-url", source_url)
    out = _ok("db", "copy", "--to", other_url, "--replace", "--database-url", source_url)
    assert "every table's checksum verified" in out
    (event,) = _same_store(source_url, other_url, "store_copy")
    assert (event["interface"], event["actor"]) == ("cli", os_user())
    assert "holds no manifest.json" in _refused(capsys, "db", "restore", str(tmp_path), "--database-url", other_url)
