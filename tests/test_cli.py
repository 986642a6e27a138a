"""``healthsim db``: every command, on DuckDB and PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthsim_models import schema_version
from healthsim_state.interfaces.cli import app, main

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_upgrade_creates_the_default_database_and_shows_status(isolated_home: Path) -> None:
    out = _ok("db", "upgrade")
    assert (isolated_home / "healthsim.duckdb").is_file()
    head = schema_version.head_revision()
    assert f"current:  {head}" in out
    assert "pending:  none" in out
    assert "patients" in out


def test_every_db_command(blank_store_url: str) -> None:
    head = schema_version.head_revision()
    revisions = [info.revision for info in reversed(schema_version.history())]
    assert _ok("db", "current", "--database-url", blank_store_url).strip() == "base"
    status = _ok("db", "status", "--database-url", blank_store_url)
    assert f"pending:  {', '.join(revisions)}" in status
    assert re.search(r"population\.svi_county\s+│ -", status)
    _ok("db", "upgrade", "--database-url", blank_store_url)
    assert _ok("db", "current", "--database-url", blank_store_url).strip() == f"{head} (head)"
    status = _ok("db", "status", "--database-url", blank_store_url)
    assert "pending:  none" in status
    assert re.search(rf"schema_migrations\s+│ {len(revisions)} ", status)
    assert re.search(r"population\.places_tract\s+│ 0 ", status)
    out = _ok("db", "downgrade", "base", "--database-url", blank_store_url)
    assert "at revision base" in out
    assert _ok("db", "current", "--database-url", blank_store_url).strip() == "base"
    _ok("db", "upgrade", head, "--database-url", blank_store_url)


def test_history_lists_every_revision() -> None:
    out = _ok("db", "history")
    assert "0001" in out and "<base>" in out and "Initial schema" in out
    assert "0002" in out and "Population reference data" in out


def test_status_on_postgres_masks_password(postgresql_url: str) -> None:
    from sqlalchemy.engine import make_url

    with_password = make_url(postgresql_url).set(password="not-needed-with-trust-auth")
    out = _ok("db", "status", "--database-url", with_password.render_as_string(hide_password=False))
    assert "not-needed-with-trust-auth" not in out
    assert ":***@" in out


def test_an_error_is_one_line_with_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "current", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: cannot connect to postgresql+psycopg://nobody@127.0.0.1:1/none: ")
    assert "Connection refused" in err


def test_debug_shows_the_traceback() -> None:
    with pytest.raises(Exception, match="(?i)connection"):
        main(["--debug", "db", "current", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"])


def test_debug_may_also_come_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception, match="(?i)connection"):
        main(["db", "current", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none", "--debug"])
    with pytest.raises(SystemExit) as exit_info:  # after "--" it is an argument like any other
        main(["db", "current", "--", "--debug"])
    assert exit_info.value.code == 2


def test_project_errors_need_no_debug_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["db", "current", "--database-url", "not a url"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot parse database URL")
    assert "--debug" not in err
    with pytest.raises(SystemExit):
        main(["db", "current", "--database-url", "nosuch://x"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown database kind 'nosuch' in nosuch://x. Expected e.g. duckdb:///")


@pytest.mark.parametrize(
    ("argv", "command", "text"),
    [
        (["demo", "--patients", "0"], "healthsim demo", "Invalid value for '--patients'"),
        (["demo", "--no-such-option"], "healthsim demo", "No such option: --no-such-option"),
        (["scenario", "show"], "healthsim scenario show", "Missing argument 'name'"),
        (["no-such-command"], "healthsim", "No such command 'no-such-command'"),
    ],
)
def test_a_usage_error_is_one_line_with_a_hint_and_exit_code_2(
    argv: list[str], command: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and text in err
    assert err.endswith(f"(see '{command} --help')")
    assert "╭" not in err and captured.out == ""


def test_help_still_prints_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo", "--help"])  # returns: exit status 0
    captured = capsys.readouterr()
    assert "--patients" in captured.out and captured.err == ""


def test_ctrl_c_is_one_line_with_exit_code_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("healthsim_state.interfaces.cli.query.run_query", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "SELECT 1"])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip() == "aborted: interrupted"


def test_an_abort_is_one_line_with_exit_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    def aborted(*args: object, **kwargs: object) -> None:
        raise typer.Abort

    monkeypatch.setattr("healthsim_state.interfaces.cli.query.run_query", aborted)
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "SELECT 1"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == "aborted"


def _healthsim(*args: str) -> list[str]:
    """The console script's command line, run in a fresh interpreter."""
    return [sys.executable, "-c", "from healthsim_state.interfaces.cli import main; main()", *args]


def test_a_usage_error_from_the_command_line_is_one_line(isolated_home: Path) -> None:
    done = subprocess.run(_healthsim("demo", "--patients", "0"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: Invalid value for '--patients' / '-n': 0 is less than the minimum of 1 (see 'healthsim demo --help')"
    ]


def test_a_reader_closing_the_pipe_ends_the_command_quietly(isolated_home: Path, duckdb_url: str) -> None:
    # Far more than a pipe buffer of CSV, so the writer is still writing when the reader leaves.
    process = subprocess.Popen(
        _healthsim("query", "-f", "csv", "SELECT * FROM range(300000)", "--database-url", duckdb_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == b"range\n"
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0, err
    assert err == b""
