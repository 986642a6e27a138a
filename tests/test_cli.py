"""``healthsim db``: every command, on DuckDB and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthsim_models import schema_version
from healthsim_state.cli import app, main

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


def test_every_db_command(store_url: str) -> None:
    head = schema_version.head_revision()
    revisions = [info.revision for info in reversed(schema_version.history())]
    assert _ok("db", "current", "--database-url", store_url).strip() == "base"
    status = _ok("db", "status", "--database-url", store_url)
    assert f"pending:  {', '.join(revisions)}" in status
    assert re.search(r"population\.svi_county\s+│ -", status)
    _ok("db", "upgrade", "--database-url", store_url)
    assert _ok("db", "current", "--database-url", store_url).strip() == f"{head} (head)"
    status = _ok("db", "status", "--database-url", store_url)
    assert "pending:  none" in status
    assert re.search(rf"schema_migrations\s+│ {len(revisions)} ", status)
    assert re.search(r"population\.places_tract\s+│ 0 ", status)
    out = _ok("db", "downgrade", "base", "--database-url", store_url)
    assert "at revision base" in out
    assert _ok("db", "current", "--database-url", store_url).strip() == "base"
    _ok("db", "upgrade", head, "--database-url", store_url)


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
    assert err.startswith("error (OperationalError):")
    assert "--debug" in err


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
