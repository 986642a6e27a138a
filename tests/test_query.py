"""Read-only SQL: ``run_query`` and ``healthsim query``, with writes refused by the database itself."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from healthsim_models import create_store_engine, get_engine, session_scope
from healthsim_models.errors import (
    ConfigurationError,
    InvalidArgumentError,
    QueryError,
    QueryTimeoutError,
    StoreLockedError,
)
from healthsim_state import ScenarioRepository
from healthsim_state.demo import save_demo
from healthsim_state.interfaces.cli import app, main
from healthsim_state.store import query
from healthsim_state.store.query import CANCELLED, ONE_STATEMENT, Cancellation, QueryResult, json_value, run_query

runner = CliRunner()

PATIENTS = 4
COUNT_ROWS = "SELECT (SELECT count(*) FROM patients) AS patients, (SELECT count(*) FROM scenarios) AS scenarios"
WRITES = [
    "INSERT INTO scenario_tags (scenario_id, tag) SELECT id, 'x' FROM scenarios",
    "UPDATE patients SET gender = 'U'",
    "DELETE FROM patients",
    "CREATE TABLE intruder (a INTEGER)",
    "DROP TABLE patients",
    "WITH gone AS (DELETE FROM patients RETURNING id) SELECT count(*) FROM gone",
]


def _with_demo(url: str) -> str:
    engine = create_store_engine(url)
    with session_scope(engine) as session:
        save_demo(ScenarioRepository(session), patients=PATIENTS)
    engine.dispose()
    return url


@pytest.fixture
def demo_url(store_url: str) -> str:
    """A store on each backend holding a small demo scenario."""
    return _with_demo(store_url)


@pytest.fixture
def duckdb_demo_url(duckdb_url: str) -> str:
    return _with_demo(duckdb_url)


def _counts(url: str) -> tuple[int, int]:
    return run_query(COUNT_ROWS, database_url=url).rows[0]


# -- run_query ----------------------------------------------------------------


def test_rows_come_back_typed_and_in_order(demo_url: str) -> None:
    result = run_query(
        "SELECT mrn, birth_date, id, generation_seed, extensions FROM patients ORDER BY mrn", database_url=demo_url
    )
    assert result.columns == ["mrn", "birth_date", "id", "generation_seed", "extensions"]
    assert [row[0] for row in result.rows] == [f"MRN-{i:07d}" for i in range(PATIENTS)]
    _mrn, birth_date, ident, seed, extensions = result.rows[0]
    assert isinstance(birth_date, dt.date) and isinstance(ident, uuid.UUID) and seed == 42
    assert isinstance(extensions, dict)  # JSON columns decoded on both backends
    assert result.truncated is False


def test_the_sql_reaches_the_database_verbatim(demo_url: str) -> None:
    """No client-side parameter syntax: %, :name and ? are plain text."""
    result = run_query(
        "SELECT count(*) AS n, '100%' AS pct, 'a:b ?' AS text FROM patients WHERE mrn LIKE 'MRN-%'",
        database_url=demo_url,
    )
    assert result.rows == [(PATIENTS, "100%", "a:b ?")]


def test_aware_datetimes_come_back_in_utc(demo_url: str) -> None:
    (admitted,) = run_query(
        "SELECT admission_time FROM encounters WHERE encounter_id = 'ENC-0-0'", database_url=demo_url
    ).rows[0]
    assert admitted.utcoffset() == dt.timedelta(0)
    assert json_value(admitted).endswith("+00:00")


def test_max_rows_truncates_and_says_so(demo_url: str) -> None:
    every = run_query("SELECT mrn FROM patients ORDER BY mrn", database_url=demo_url)
    first = run_query("SELECT mrn FROM patients ORDER BY mrn", database_url=demo_url, max_rows=2)
    assert first.rows == every.rows[:2] and first.truncated
    exact = run_query("SELECT mrn FROM patients ORDER BY mrn", database_url=demo_url, max_rows=PATIENTS)
    assert exact.rows == every.rows and not exact.truncated
    none = run_query("SELECT mrn FROM patients", database_url=demo_url, max_rows=0)
    assert none.rows == [] and none.truncated and none.columns == ["mrn"]


def _series(url: str, rows: int, column: str = "n") -> str:
    """Rows 1..``rows`` in ``column``, in the backend's own generator."""
    if url.startswith("duckdb"):
        return f"(SELECT range + 1 AS {column} FROM range({rows}))"
    return f"(SELECT g AS {column} FROM generate_series(1, {rows}) AS g)"


def test_max_rows_bounds_what_is_fetched(store_url: str) -> None:
    # Only the rows fetched are computed: a row far beyond max_rows would fail the whole query.
    failing = "error('computed')" if store_url.startswith("duckdb") else "n / (n - n)"
    sql = f"SELECT CASE WHEN n > 5000000 THEN {failing} ELSE n END AS n FROM {_series(store_url, 10_000_000)} s"
    started = time.monotonic()
    first = run_query(sql, database_url=store_url, max_rows=3)
    assert time.monotonic() - started < 10  # the whole result takes far longer and fails
    assert first.rows == [(1,), (2,), (3,)] and first.truncated
    with pytest.raises(QueryError):
        run_query(sql, database_url=store_url)


def test_show_and_explain_still_run(store_url: str) -> None:
    plan = run_query("EXPLAIN SELECT 1", database_url=store_url, max_rows=100)
    assert plan.rows and not plan.truncated
    if store_url.startswith("postgresql"):
        assert run_query("SHOW TIME ZONE", database_url=store_url).rows == [("UTC",)]
        described = run_query("VALUES (1), (2), (3)", database_url=store_url, max_rows=2)
        assert described.rows == [(1,), (2,)] and described.truncated


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_refused_by_the_database_and_change_nothing(demo_url: str, statement: str) -> None:
    before = _counts(demo_url)
    genders = run_query("SELECT gender FROM patients ORDER BY mrn", database_url=demo_url).rows
    with pytest.raises(QueryError, match="(?i)read-only|read only"):
        run_query(statement, database_url=demo_url)
    assert _counts(demo_url) == before
    assert run_query("SELECT gender FROM patients ORDER BY mrn", database_url=demo_url).rows == genders
    tables = run_query(
        "SELECT table_name FROM information_schema.tables WHERE table_name = 'intruder'", database_url=demo_url
    )
    assert tables.rows == []


def test_one_statement_at_a_time(demo_url: str) -> None:
    """The same project message on both backends, whichever part of the stack noticed."""
    before = _counts(demo_url)
    for sql in ("SELECT 1; DELETE FROM patients", "COMMIT; DELETE FROM patients", "SELECT 1; SELECT 2"):
        with pytest.raises(QueryError) as caught:
            run_query(sql, database_url=demo_url)
        assert str(caught.value) == ONE_STATEMENT, sql
    assert _counts(demo_url) == before
    assert run_query("SELECT 1 AS one;", database_url=demo_url).rows == [(1,)]  # a trailing semicolon is fine


def _long(url: str) -> str:
    """A statement that runs for minutes on the backend of ``url``."""
    if url.startswith("duckdb"):
        return "SELECT sum(a.range * b.range) AS s FROM range(200000) a, range(200000) b"
    return "SELECT pg_sleep(600)"


#: Far below what the long statements take, far above what a timeout of a second or a prompt cancel needs.
CUT_SHORT = 60


def test_a_long_query_ends_at_the_timeout(store_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError) as caught:
        run_query(_long(store_url), database_url=store_url, timeout=1)
    assert time.monotonic() - started < CUT_SHORT
    message = str(caught.value)
    assert message.startswith("the query ran longer than 1 s and was cancelled; nothing was changed")
    assert "--timeout SECONDS" in message and "HEALTHSIM_QUERY_TIMEOUT" in message
    assert isinstance(caught.value, QueryError)
    assert run_query("SELECT 2 AS two", database_url=store_url, timeout=5).rows == [(2,)]  # the store is fine


def test_the_timeout_comes_from_the_environment(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHSIM_QUERY_TIMEOUT", "0.5")
    assert query.default_timeout() == 0.5
    with pytest.raises(QueryTimeoutError, match="longer than 0.5 s"):
        run_query(_long(store_url), database_url=store_url)
    monkeypatch.setenv("HEALTHSIM_QUERY_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="HEALTHSIM_QUERY_TIMEOUT must be a number of seconds"):
        run_query("SELECT 1", database_url=store_url)
    monkeypatch.delenv("HEALTHSIM_QUERY_TIMEOUT")
    assert query.default_timeout() == query.DEFAULT_TIMEOUT == 30


def test_postgresql_queries_cannot_lift_their_timeout(postgresql_url: str) -> None:
    sql = "SELECT set_config('statement_timeout', '0', true), pg_sleep(600)"
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        run_query(sql, database_url=postgresql_url, timeout=1)
    assert time.monotonic() - started < CUT_SHORT


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "5"])
def test_the_timeout_must_be_positive_seconds(duckdb_url: str, bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="timeout must be a number of seconds greater than 0"):
        run_query("SELECT 1", database_url=duckdb_url, timeout=bad)  # type: ignore[arg-type]


def test_a_cancellation_stops_a_running_query(store_url: str) -> None:
    cancellation = Cancellation()
    threading.Timer(0.5, cancellation.cancel).start()
    started = time.monotonic()
    with pytest.raises(QueryError) as caught:
        run_query(_long(store_url), database_url=store_url, timeout=600, cancellation=cancellation)
    assert time.monotonic() - started < CUT_SHORT
    assert str(caught.value) == CANCELLED and not isinstance(caught.value, QueryTimeoutError)
    assert cancellation.cancelled
    # Cancelled before it starts: it never runs.
    with pytest.raises(QueryError, match="cancelled"):
        run_query("SELECT 1", database_url=store_url, cancellation=cancellation)
    # A cancellation after the query ended changes nothing, and the next query runs.
    late = Cancellation()
    assert run_query("SELECT 3 AS three", database_url=store_url, cancellation=late).rows == [(3,)]
    late.cancel()
    assert run_query("SELECT 4 AS four", database_url=store_url).rows == [(4,)]


def test_postgresql_timeouts_end_on_the_server(postgresql_url: str) -> None:
    with pytest.raises(QueryTimeoutError):
        run_query("SELECT pg_sleep(600)", database_url=postgresql_url, timeout=1)
    cancellation = Cancellation()
    threading.Timer(0.5, cancellation.cancel).start()
    with pytest.raises(QueryError, match="cancelled"):
        run_query("SELECT pg_sleep(600)", database_url=postgresql_url, timeout=600, cancellation=cancellation)
    sleeping = run_query(
        # The query shows as the cursor's FETCH; what it waits on gives it away.
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()",
        database_url=postgresql_url,
    )
    assert sleeping.rows == [(0,)]


def test_a_sqlite_file_is_refused_by_read_only_connections_and_left_alone(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (a)")
    before = path.read_bytes()
    engine = query.read_only_engine(make_url(f"duckdb:///{path}"))
    with pytest.raises(QueryError, match=rf"cannot open {path} as a DuckDB file for reading"):
        engine.connect()
    engine.dispose()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_duckdb_query_connections_load_no_extensions(duckdb_url: str) -> None:
    settings = run_query(
        "SELECT current_setting('autoinstall_known_extensions') AS install, "
        "current_setting('autoload_known_extensions') AS load, current_setting('lock_configuration') AS locked",
        database_url=duckdb_url,
    )
    assert settings.rows == [(False, False, True)]


def test_bad_sql_gives_the_database_message(demo_url: str) -> None:
    with pytest.raises(QueryError, match=r'query failed: .*syntax error at or near "SELEC"'):
        run_query("SELEC 1", database_url=demo_url)
    with pytest.raises(QueryError, match="(?i)no_such_table"):
        run_query("SELECT * FROM no_such_table", database_url=demo_url)


def test_the_database_hint_is_kept_on_the_one_line(demo_url: str, duckdb_url: str) -> None:
    hint = r'Did you mean "patients"' if demo_url == duckdb_url else r"hint: No function matches"
    sql = "SELECT * FROM patient" if demo_url == duckdb_url else "SELECT lower(1)"
    with pytest.raises(QueryError, match=hint) as caught:
        run_query(sql, database_url=demo_url)
    assert "\n" not in str(caught.value) and "LINE 1" not in str(caught.value)


@pytest.mark.parametrize("sql", ["", "   \n"])
def test_empty_sql_is_refused(duckdb_url: str, sql: str) -> None:
    with pytest.raises(QueryError, match="no SQL given"):
        run_query(sql, database_url=duckdb_url)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_max_rows_must_be_a_count(duckdb_url: str, bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="max_rows"):
        run_query("SELECT 1", database_url=duckdb_url, max_rows=bad)  # type: ignore[arg-type]


def test_a_new_store_is_created_at_head_first(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'fresh' / 'store.duckdb'}"
    result = run_query("SELECT count(*) AS n FROM scenarios", database_url=url)
    assert result.rows == [(0,)]


def test_the_default_database_is_used_without_a_url(isolated_home: Path) -> None:
    assert run_query("SELECT count(*) FROM patients").rows == [(0,)]
    assert (isolated_home / "healthsim.duckdb").is_file()


def test_an_in_memory_database_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="in-memory"):
        run_query("SELECT 1", database_url="duckdb:///:memory:")


def test_duckdb_refuses_files_extensions_and_settings(duckdb_demo_url: str, tmp_path: Path) -> None:
    target = tmp_path / "leak.csv"
    refused = [
        f"COPY patients TO '{target}'",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        f"SELECT * FROM read_csv('{Path(__file__)}')",
        "SET threads = 1",
        "PRAGMA threads = 1",
        "SET enable_external_access = true",
        f"EXPORT DATABASE '{tmp_path / 'dump'}'",
    ]
    for statement in refused:
        with pytest.raises(QueryError):
            run_query(statement, database_url=duckdb_demo_url)
    assert not target.exists() and not (tmp_path / "other.duckdb").exists() and not (tmp_path / "dump").exists()


def test_postgresql_refuses_server_files_and_programs(postgresql_url: str, tmp_path: Path) -> None:
    create_store_engine(postgresql_url).dispose()
    for statement in [
        "COPY (SELECT 1) TO '/tmp/healthsim-query-test.csv'",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "SELECT lo_export(0, '/tmp/healthsim-query-test.lo')",
        "SET TRANSACTION READ WRITE",
    ]:
        with pytest.raises(QueryError):
            run_query(statement, database_url=postgresql_url)


def test_postgresql_settings_do_not_outlive_the_query(postgresql_url: str) -> None:
    before = run_query("SHOW work_mem", database_url=postgresql_url).rows
    run_query("SET work_mem = '77MB'", database_url=postgresql_url)
    assert run_query("SHOW work_mem", database_url=postgresql_url).rows == before
    assert run_query("SHOW transaction_read_only", database_url=postgresql_url).rows == [("on",)]


def test_an_open_session_of_this_process_is_waited_for(duckdb_demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB refuses a read-only connection beside this process's read-write one: wait, then say so."""
    monkeypatch.setattr(query, "LOCK_TIMEOUT", 0.3)
    engine = create_store_engine(duckdb_demo_url)
    with engine.connect(), pytest.raises(StoreLockedError, match="held read-write by this process"):
        run_query("SELECT 1", database_url=duckdb_demo_url)
    assert run_query("SELECT 1", database_url=duckdb_demo_url).rows == [(1,)]

    monkeypatch.setattr(query, "LOCK_TIMEOUT", 10.0)
    connection = engine.connect()
    threading.Timer(0.3, connection.close).start()
    started = time.monotonic()
    assert run_query("SELECT count(*) FROM patients", database_url=duckdb_demo_url).rows == [(PATIENTS,)]
    assert time.monotonic() - started >= 0.2
    engine.dispose()


def test_another_process_holding_the_file_is_waited_for(duckdb_demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_url(duckdb_demo_url).database
    get_engine(duckdb_demo_url)  # opened and at head before the other process takes the file
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({path!r}); print('held', flush=True); "
            "sys.stdin.readline(); c.close()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(query, "LOCK_TIMEOUT", 0.3)
        with pytest.raises(StoreLockedError, match=rf"another process \(PID {holder.pid}\)"):
            run_query("SELECT count(*) FROM patients", database_url=duckdb_demo_url)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    assert run_query("SELECT count(*) FROM patients", database_url=duckdb_demo_url).rows == [(PATIENTS,)]


def test_json_value_is_deterministic_text_for_non_json_types() -> None:
    eastern = dt.timezone(dt.timedelta(hours=-5))
    value = {
        "money": Decimal("124.50"),
        "day": dt.date(2024, 1, 2),
        "aware": dt.datetime(2024, 1, 2, 9, 15, tzinfo=eastern),
        "naive": dt.datetime(2024, 1, 2, 9, 15),
        "clock": dt.time(12, 30),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "span": dt.timedelta(days=1, hours=2),
        "blob": b"\x00\xff",
        "nan": float("nan"),
        "plain": [1, 2.5, True, None, "x"],
        1: "key",
    }
    assert json_value(value) == {
        "money": "124.50",
        "day": "2024-01-02",
        "aware": "2024-01-02T14:15:00+00:00",
        "naive": "2024-01-02T09:15:00",
        "clock": "12:30:00",
        "id": "12345678-1234-5678-1234-567812345678",
        "span": "1 day, 2:00:00",
        "blob": "AP8=",
        "nan": "nan",
        "plain": [1, 2.5, True, None, "x"],
        "1": "key",
    }


def test_records_need_distinct_column_names() -> None:
    result = QueryResult(columns=["a", "b"], rows=[(Decimal("1.50"), None)], truncated=False)
    assert result.records() == [{"a": "1.50", "b": None}]
    with pytest.raises(QueryError, match="several columns named 'a'"):
        QueryResult(columns=["a", "a"], rows=[(1, 2)], truncated=False).records()


# -- healthsim query ------------------------------------------------------------


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("width", [80, 120])
def test_a_wide_result_prints_one_record_per_row(duckdb_demo_url: str, width: int) -> None:
    from healthsim_state.interfaces.cli.query import _cell

    sql = "SELECT * FROM patients ORDER BY mrn"
    code, out, err = _run("query", sql, "--database-url", duckdb_demo_url, env={"COLUMNS": str(width)})
    assert (code, err) == (0, "")
    assert "…" not in out
    expected = run_query(sql, database_url=duckdb_demo_url)
    lines = out.splitlines()
    for number, row in enumerate(expected.rows, start=1):
        assert any(line.startswith(f"row {number} ──") for line in lines)
        for column, value in zip(expected.columns, row, strict=True):
            text = "NULL" if value is None else _cell(value)
            # Each field on a line of its own, whole (a long one wraps only where the terminal wraps it).
            assert any(line.startswith(f"{column}:") and line.rstrip().endswith(text) for line in lines), column
    assert lines[-1].startswith(f"{PATIENTS} rows; one record per row, as the table is wider than the terminal")
    assert "--format csv or --format json" in lines[-1]


@pytest.mark.parametrize("width", [80, 120])
def test_a_narrow_result_stays_a_table(duckdb_demo_url: str, width: int) -> None:
    code, out, _ = _run(
        "query",
        "SELECT mrn, gender, birth_date FROM patients ORDER BY mrn",
        "--database-url",
        duckdb_demo_url,
        env={"COLUMNS": str(width)},
    )
    assert code == 0 and "…" not in out and "record" not in out
    assert "┃ mrn " in out and sum("│ MRN-" in line for line in out.splitlines()) == PATIENTS


def test_the_cli_timeout_cuts_a_long_query_short(duckdb_demo_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        main(["query", _long(duckdb_demo_url), "--timeout", "1", "--database-url", duckdb_demo_url])
    assert time.monotonic() - started < CUT_SHORT
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the query ran longer than 1 s and was cancelled") and len(err.splitlines()) == 1


def test_the_cli_timeout_is_checked(duckdb_demo_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "SELECT 1", "--timeout", "0", "--database-url", duckdb_demo_url])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("error: timeout must be a number of seconds greater than 0, got 0.0")


def test_table_output(duckdb_demo_url: str) -> None:
    code, out, err = _run("query", "SELECT mrn, gender FROM patients ORDER BY mrn", "--database-url", duckdb_demo_url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "mrn" in lines[1] and "gender" in lines[1]
    assert sum("MRN-" in line for line in lines) == PATIENTS
    assert lines[-1].strip() == f"{PATIENTS} rows"


def test_table_output_shows_null_and_truncation(duckdb_demo_url: str) -> None:
    code, out, err = _run(
        "query",
        "SELECT mrn, NULL AS nothing FROM patients ORDER BY mrn",
        "--max-rows",
        "2",
        "--database-url",
        duckdb_demo_url,
    )
    assert (code, err) == (0, "")
    assert sum("MRN-" in line for line in out.splitlines()) == 2
    assert "NULL" in out
    assert "first 2 rows; more not shown (raise --max-rows)" in out


def test_table_output_defaults_to_a_thousand_rows(duckdb_demo_url: str) -> None:
    code, out, _ = _run("query", "SELECT * FROM range(1500)", "--database-url", duckdb_demo_url)
    assert code == 0 and "first 1000 rows" in out


def test_csv_output(duckdb_demo_url: str) -> None:
    sql = (
        "SELECT claim_id, total_charge, other_diagnoses, service_date, false AS flag, NULL AS nothing "
        "FROM claims ORDER BY claim_id"
    )
    code, out, err = _run("query", sql, "--format", "csv", "--database-url", duckdb_demo_url)
    assert (code, err) == (0, "")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["claim_id", "total_charge", "other_diagnoses", "service_date", "flag", "nothing"]
    expected = run_query(sql, database_url=duckdb_demo_url).rows
    assert len(rows) == len(expected) + 1
    claim_id, charge, others, service_date, flag, nothing = rows[1]
    assert claim_id == expected[0][0] and Decimal(charge) == expected[0][1]
    assert json.loads(others) == expected[0][2]
    assert service_date == expected[0][3].isoformat() and flag == "false" and nothing == ""


def test_csv_output_is_unlimited_unless_asked(duckdb_demo_url: str) -> None:
    code, out, _ = _run("query", "SELECT * FROM range(1500)", "-f", "csv", "--database-url", duckdb_demo_url)
    assert code == 0 and len(out.splitlines()) == 1501
    code, out, _ = _run(
        "query", "SELECT * FROM range(1500)", "-f", "csv", "--max-rows", "3", "--database-url", duckdb_demo_url
    )
    assert code == 0 and out.splitlines() == ["range", "0", "1", "2"]


def test_json_output_on_both_backends(demo_url: str) -> None:
    sql = (
        "SELECT c.claim_id, c.total_charge, c.service_date, c.id, c.other_diagnoses, m.member_id "
        "FROM claims c JOIN members m ON m.id = c.member_uuid ORDER BY c.claim_id"
    )
    code, out, err = _run("query", sql, "--format", "json", "--database-url", demo_url)
    assert (code, err) == (0, "")
    records = json.loads(out)
    expected = run_query(sql, database_url=demo_url)
    assert records == expected.records()
    first = records[0]
    assert list(first) == ["claim_id", "total_charge", "service_date", "id", "other_diagnoses", "member_id"]
    assert isinstance(first["total_charge"], str) and Decimal(first["total_charge"]) > 0
    assert dt.date.fromisoformat(first["service_date"]) and uuid.UUID(first["id"])
    assert first["member_id"] == first["claim_id"].replace("CLM", "MEM")


def test_json_output_of_repeated_columns_is_an_error_with_nothing_printed(
    duckdb_demo_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "SELECT 1 AS a, 2 AS a", "-f", "json", "--database-url", duckdb_demo_url])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: the result has several columns named 'a'")


def test_a_write_is_one_error_line_and_a_non_zero_exit(
    duckdb_demo_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "DELETE FROM patients", "--database-url", duckdb_demo_url])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("error: query failed:") and "read-only" in captured.err
    assert _counts(duckdb_demo_url)[0] == PATIENTS


def test_the_cli_refuses_writes_on_postgresql(postgresql_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "DROP TABLE patients", "--database-url", postgresql_url])
    assert exit_info.value.code == 1
    assert "read-only transaction" in capsys.readouterr().err
    assert run_query("SELECT count(*) FROM patients", database_url=postgresql_url).rows == [(0,)]


def test_an_unknown_format_is_a_usage_error(duckdb_url: str) -> None:
    code, _, err = _run("query", "SELECT 1", "--format", "xml", "--database-url", duckdb_url)
    assert code == 2 and "xml" in err


def test_duckdb_draws_no_progress_bar_of_its_own(duckdb_demo_url: str) -> None:
    # DuckDB prints a progress bar to stderr for long queries, terminal or not;
    # the CLI's rule is that stderr carries progress only on a terminal.
    result = run_query("SELECT current_setting('enable_progress_bar') AS shown", database_url=duckdb_demo_url)
    assert result.rows == [(False,)]
