"""Engines and sessions: URL resolution, DuckDB file locking, transactions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from healthsim_models import (
    ConfigurationError,
    Scenario,
    StoreLockedError,
    create_store_engine,
    get_engine,
    resolve_database_url,
    session_scope,
)
from healthsim_models.engine import mask_url


def test_url_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated_home: Path) -> None:
    assert resolve_database_url().database == str(isolated_home / "healthsim.duckdb")
    monkeypatch.setenv("HEALTHSIM_DATABASE_URL", f"duckdb:///{tmp_path / 'from-env.duckdb'}")
    assert resolve_database_url().database == str(tmp_path / "from-env.duckdb")
    assert resolve_database_url(f"duckdb:///{tmp_path / 'explicit.duckdb'}").database == str(
        tmp_path / "explicit.duckdb"
    )


def test_database_url_env_replaces_the_default_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated_home: Path
) -> None:
    target = tmp_path / "team.duckdb"
    monkeypatch.setenv("HEALTHSIM_DATABASE_URL", f"duckdb:///{target}")
    create_store_engine().dispose()
    assert target.is_file()
    assert not (isolated_home / "healthsim.duckdb").exists()


def test_database_url_env_selects_postgresql(monkeypatch: pytest.MonkeyPatch, postgresql_url: str) -> None:
    monkeypatch.setenv("HEALTHSIM_DATABASE_URL", postgresql_url)
    engine = get_engine()
    assert engine.dialect.name == "postgresql"
    with session_scope(engine) as session:
        session.add(Scenario(name="on-postgres"))
    with session_scope(engine) as session:
        assert session.scalars(sa.select(Scenario.name)).all() == ["on-postgres"]


def test_a_bad_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cannot parse database URL"):
        resolve_database_url("not a url")


def test_password_is_masked() -> None:
    url = resolve_database_url("postgresql+psycopg://alice:s3cret@db.example/hs")
    assert mask_url(url) == "postgresql+psycopg://alice:***@db.example/hs"


def test_mask_url_shows_the_database_as_written() -> None:
    assert mask_url(resolve_database_url("duckdb:///:memory:")) == "duckdb:///:memory:"
    assert mask_url(resolve_database_url("duckdb:////tmp/a b/x:y.duckdb?threads=2")) == (
        "duckdb:////tmp/a b/x:y.duckdb?threads=2"
    )


def test_an_unknown_dialect_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown database kind 'nosuch' in nosuch://x\. Expected") as info:
        create_store_engine("nosuch://x")
    assert isinstance(info.value.__cause__, sa.exc.NoSuchModuleError)


def test_an_unreachable_server_is_a_configuration_error() -> None:
    url = "postgresql+psycopg://nobody:pw@127.0.0.1:1/none"  # nothing listens on port 1
    with pytest.raises(ConfigurationError, match=r"cannot connect to postgresql\+psycopg://nobody:\*\*\*@127") as info:
        create_store_engine(url)
    assert "pw@" not in str(info.value) and "server is running" in str(info.value)
    assert info.value.__cause__ is not None


def test_a_duckdb_file_that_cannot_be_opened_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-database.duckdb").write_text("plain text, not DuckDB")
    with pytest.raises(ConfigurationError, match="cannot open the DuckDB file"):
        create_store_engine(f"duckdb:///{tmp_path / 'not-a-database.duckdb'}")


def test_get_engine_is_shared_per_url(duckdb_url: str) -> None:
    assert get_engine(duckdb_url) is get_engine(duckdb_url)


def test_session_scope_commits_on_success_and_rolls_back_on_error(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        with session_scope(engine) as session:
            session.add(Scenario(name="kept"))
        with pytest.raises(RuntimeError, match="boom"):
            with session_scope(engine) as session:
                session.add(Scenario(name="discarded"))
                session.flush()
                raise RuntimeError("boom")
        with session_scope(engine) as session:
            assert session.scalars(sa.select(Scenario.name)).all() == ["kept"]
    finally:
        engine.dispose()


def test_in_memory_duckdb_keeps_one_database_per_engine() -> None:
    engine = create_store_engine("duckdb:///:memory:")
    try:
        with session_scope(engine) as session:
            session.add(Scenario(name="in-memory"))
        with session_scope(engine) as session:
            assert session.scalars(sa.select(Scenario.name)).one() == "in-memory"
    finally:
        engine.dispose()


# A second process that opens the same DuckDB file read-write.
OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from healthsim_models import StoreLockedError, create_store_engine, session_scope
    from healthsim_models.state import Scenario
    try:
        engine = create_store_engine(sys.argv[1], lock_timeout=float(sys.argv[2]))
        with session_scope(engine) as session:
            session.add(Scenario(name=sys.argv[3]))
        print("wrote")
    except StoreLockedError as exc:
        print("locked:", exc)
    """
)


def _other_process(url: str, timeout: float, name: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, url, str(timeout), name],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_duckdb_file_is_free_between_sessions(duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    try:
        with session_scope(engine) as session:
            session.add(Scenario(name="first"))
        # Engine alive, no session open: another process may write.
        assert _other_process(duckdb_url, 5, "second") == "wrote"
        with session_scope(engine) as session:
            assert sorted(session.scalars(sa.select(Scenario.name))) == ["first", "second"]
    finally:
        engine.dispose()


def test_a_held_file_fails_with_the_holder_named(duckdb_url: str) -> None:
    import os

    engine = create_store_engine(duckdb_url)
    try:
        with engine.connect():
            out = _other_process(duckdb_url, 0.3, "blocked")
        assert out.startswith("locked:"), out
        assert f"process {os.getpid()}" in out
        assert "waited 0.3s" in out
    finally:
        engine.dispose()


def test_lock_error_is_a_store_locked_error_in_process(duckdb_url: str, tmp_path: Path) -> None:
    """The error type callers catch, raised here by a child holding the file."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, duckdb
            con = duckdb.connect({str(Path(duckdb_url.removeprefix('duckdb:///'))).__repr__()})
            print("holding", flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(StoreLockedError, match=f"process {holder.pid}"):
            create_store_engine(duckdb_url, lock_timeout=0.2)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)


def test_scenario_ids_are_uuids(duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    try:
        with session_scope(engine) as session:
            scenario = Scenario(name="uuid")
            session.add(scenario)
        assert isinstance(scenario.id, uuid.UUID)
    finally:
        engine.dispose()
