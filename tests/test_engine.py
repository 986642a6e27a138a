"""Engines and sessions: URL resolution, DuckDB file locking, transactions."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from healthsim_models import (
    ConfigurationError,
    NotAStoreError,
    Scenario,
    StoreLockedError,
    create_store_engine,
    get_engine,
    resolve_database_url,
    session_scope,
)
from healthsim_models.engine import DUCKDB_CONFIG, mask_url


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
    with pytest.raises(ConfigurationError, match=r"unknown database kind 'nosuch' in nosuch://x\. Expected"):
        create_store_engine("nosuch://x")
    with pytest.raises(
        ConfigurationError, match=r"unknown database kind 'postgresql\+nosuch' in postgresql\+nosuch://h/d\. Expected"
    ) as info:
        create_store_engine("postgresql+nosuch://h/d")
    assert isinstance(info.value.__cause__, sa.exc.NoSuchModuleError)


def test_a_backend_sqlalchemy_knows_but_a_store_does_not_run_on_is_refused_before_anything_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///x.db", "mysql://u@127.0.0.1/x"):
        with pytest.raises(ConfigurationError, match=r"unknown database kind .* Expected e\.g\. duckdb"):
            resolve_database_url(url)
        with pytest.raises(ConfigurationError, match=r"unknown database kind"):
            create_store_engine(url)
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_server_is_a_configuration_error() -> None:
    url = "postgresql+psycopg://nobody:pw@127.0.0.1:1/none"  # nothing listens on port 1
    with pytest.raises(ConfigurationError, match=r"cannot connect to postgresql\+psycopg://nobody:\*\*\*@127") as info:
        create_store_engine(url)
    assert "pw@" not in str(info.value) and "server is running" in str(info.value)
    assert info.value.__cause__ is not None


def test_a_damaged_duckdb_file_is_a_configuration_error(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.duckdb"
    damaged.write_bytes(bytes(8) + b"DUCK" + bytes(range(256)) * 40)  # DuckDB's mark, then garbage
    with pytest.raises(ConfigurationError, match=f"cannot open the DuckDB file {damaged}: .*Corrupt") as info:
        create_store_engine(f"duckdb:///{damaged}")
    assert not isinstance(info.value, NotAStoreError)


def test_get_engine_is_shared_per_url(duckdb_url: str) -> None:
    assert get_engine(duckdb_url) is get_engine(duckdb_url)


def test_session_scope_commits_on_success_and_rolls_back_on_error(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        with session_scope(engine) as session:
            session.add(Scenario(name="kept"))
        with pytest.raises(RuntimeError, match="boom"), session_scope(engine) as session:
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
        capture_output=True,
        text=True,
        timeout=120,
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
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, duckdb
            con = duckdb.connect({str(Path(duckdb_url.removeprefix("duckdb:///"))).__repr__()})
            print("holding", flush=True)
            sys.stdin.readline()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
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


# -- what is at the store path ----------------------------------------------------


def _sqlite_file(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO notes (body) VALUES ('not a store')")
    connection.close()


def _text_file(path: Path) -> None:
    path.write_text("name,mrn\nAda,MRN-1\n")


def _foreign_duckdb_file(path: Path) -> None:
    import duckdb

    connection = duckdb.connect(str(path))
    connection.execute("CREATE TABLE inventory (sku VARCHAR, qty INTEGER)")
    connection.execute("INSERT INTO inventory VALUES ('A-1', 3)")
    connection.close()


FOREIGN_FILES = {
    "sqlite": (_sqlite_file, "a SQLite database"),
    "text": (_text_file, "not a database at all"),
    "duckdb-of-another-program": (
        _foreign_duckdb_file,
        "a DuckDB database of another program (it holds main.inventory",
    ),
}


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file in ``folder``: its bytes, mtime and mode."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode)) for p in sorted(folder.iterdir())
    }


@pytest.mark.parametrize("upgrade", [True, False], ids=["opened", "opened-without-upgrade"])
@pytest.mark.parametrize("kind", FOREIGN_FILES)
def test_a_file_that_is_not_a_store_is_refused_untouched(tmp_path: Path, kind: str, upgrade: bool) -> None:
    make, what = FOREIGN_FILES[kind]
    folder = tmp_path / "files"
    folder.mkdir()
    target = folder / "store.duckdb"
    make(target)
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))  # an mtime any write would change
    before = _snapshot(folder)
    with pytest.raises(NotAStoreError) as info:
        create_store_engine(f"duckdb:///{target}", upgrade=upgrade)
    message = str(info.value)
    assert message.startswith(f"{target} is not a HealthSim store: it is {what}")
    assert "left untouched" in message
    for way in ("--database-url", "HEALTHSIM_DATABASE_URL", "HEALTHSIM_HOME"):
        assert way in message
    assert _snapshot(folder) == before  # same bytes, mtime and mode; no .wal or any other file


def test_a_sqlite_file_in_healthsim_home_is_refused(isolated_home: Path) -> None:
    isolated_home.mkdir()
    _sqlite_file(isolated_home / "healthsim.duckdb")
    before = _snapshot(isolated_home)
    with pytest.raises(NotAStoreError, match="healthsim.duckdb is not a HealthSim store: it is a SQLite database"):
        get_engine()
    assert _snapshot(isolated_home) == before


def test_a_folder_at_the_store_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "store.duckdb").mkdir()
    with pytest.raises(NotAStoreError, match="it is a folder"):
        create_store_engine(f"duckdb:///{tmp_path / 'store.duckdb'}")


def test_an_empty_file_becomes_a_store_keeping_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "placeholder.duckdb"
    target.touch()
    target.chmod(0o640)
    engine = create_store_engine(f"duckdb:///{target}")
    try:
        with session_scope(engine) as session:
            session.add(Scenario(name="in-the-placeholder"))
    finally:
        engine.dispose()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["placeholder.duckdb"]  # nothing left beside it


def test_a_store_downgraded_to_base_is_still_a_store(duckdb_url: str) -> None:
    from healthsim_models import schema_version

    engine = create_store_engine(duckdb_url)
    schema_version.downgrade(engine, "base")
    engine.dispose()
    create_store_engine(duckdb_url).dispose()  # only alembic_version is left: ours


def test_postgresql_databases_may_hold_other_tables(postgresql_url: str) -> None:
    """Refusing foreign tables is for DuckDB files: a shared server's database may hold other applications'."""
    other = sa.create_engine(postgresql_url)
    with other.begin() as connection:
        connection.execute(sa.text("CREATE TABLE inventory (sku text)"))
    other.dispose()
    engine = create_store_engine(postgresql_url)
    try:
        with session_scope(engine) as session:
            session.add(Scenario(name="beside-inventory"))
    finally:
        engine.dispose()


def _setting(connection: sa.Connection, name: str) -> object:
    return connection.exec_driver_sql(f"SELECT current_setting('{name}')").scalar_one()


@pytest.mark.parametrize("where", ["file", "memory"])
def test_duckdb_connections_never_install_or_load_extensions(tmp_path: Path, where: str) -> None:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}" if where == "file" else "duckdb:///:memory:"
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            for name, value in DUCKDB_CONFIG.items():
                assert _setting(connection, name) is value, name
    finally:
        engine.dispose()
    assert DUCKDB_CONFIG == {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def test_a_url_cannot_turn_extension_loading_back_on(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}?autoload_known_extensions=true"
    with pytest.raises(ConfigurationError, match="sets autoload_known_extensions: a store never installs or loads"):
        create_store_engine(url)
    assert not (tmp_path / "store.duckdb").exists()


# -- files and folders HealthSim creates -------------------------------------------

# Run with a given umask in a child process: the umask is the process's, and
# this one's stays as it is. The child creates a store, commits with the
# connection kept open (so the WAL stays), checkpoints (DuckDB removes the
# WAL), commits again (a new WAL) and reports every mode it saw.
MODES_UNDER_UMASK = textwrap.dedent(
    """
    import json, os, stat, sys
    from pathlib import Path
    import sqlalchemy as sa
    from healthsim_models import create_store_engine

    path = Path(sys.argv[1])
    wal = Path(str(path) + ".wal")
    mode = lambda p: oct(stat.S_IMODE(p.stat().st_mode)) if p.exists() else None
    seen = {"umask_before": oct(os.umask(0o022))}
    os.umask(int(seen["umask_before"], 8))
    engine = create_store_engine(f"duckdb:///{path}")
    seen["umask_after"] = oct(os.umask(0o022))
    seen["file"] = mode(path)
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
        connection.commit()
        connection.exec_driver_sql("INSERT INTO probe VALUES (1)")
        connection.commit()
        seen["wal"] = mode(wal)
        connection.exec_driver_sql("CHECKPOINT")
        seen["wal_after_checkpoint"] = mode(wal)
        connection.exec_driver_sql("INSERT INTO probe VALUES (2)")
        connection.commit()
        seen["wal_again"] = mode(wal)
    engine.dispose()
    seen["folder"] = mode(path.parent)
    print(json.dumps(seen))
    """
)


def _modes_under_umask(path: Path, umask: int) -> dict[str, str | None]:
    import json

    result = subprocess.run(
        [sys.executable, "-c", MODES_UNDER_UMASK, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        umask=umask,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002])
def test_a_new_store_and_its_wal_are_owner_only_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    seen = _modes_under_umask(tmp_path / "new-folder" / "store.duckdb", umask)
    assert seen["umask_before"] == seen["umask_after"] == oct(umask)  # the process umask is left alone
    assert seen["folder"] == "0o700"
    assert seen["file"] == "0o600"
    assert seen["wal"] == "0o600"
    assert seen["wal_after_checkpoint"] is None  # DuckDB removed it; the next commit makes it again
    assert seen["wal_again"] == "0o600"
    assert sorted(p.name for p in (tmp_path / "new-folder").iterdir()) == ["store.duckdb"]


def test_an_existing_store_file_keeps_the_mode_its_user_chose(tmp_path: Path) -> None:
    target = tmp_path / "shared.duckdb"
    create_store_engine(f"duckdb:///{target}").dispose()
    target.chmod(0o640)  # e.g. readable by a group of colleagues
    seen = _modes_under_umask(target, 0o000)
    assert seen["file"] == "0o640"
    assert seen["wal"] == seen["wal_again"] == "0o640"  # the WAL follows the file, so readers can replay it


def test_a_store_is_created_owner_only_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some file systems (FAT, network shares) refuse os.link; the store is moved into place instead."""

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "store.duckdb"
    create_store_engine(f"duckdb:///{target}").dispose()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.duckdb"]


def test_threads_creating_the_same_store_share_it(tmp_path: Path) -> None:
    target = tmp_path / "store.duckdb"
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def create() -> None:
        try:
            start.wait()
            create_store_engine(f"duckdb:///{target}").dispose()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.duckdb"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_healthsim_home_under_a_file_names_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A real OS error, whoever runs the tests: mkdir under a regular file fails even for root."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    home = blocker / "healthsim"
    monkeypatch.setenv("HEALTHSIM_HOME", str(home))
    with pytest.raises(ConfigurationError) as info:
        create_store_engine()
    message = str(info.value)
    assert message.startswith(f"cannot create the folder {home} for the database {home / 'healthsim.duckdb'}: ")
    assert "is a file, not a folder" in message
    assert "HEALTHSIM_HOME" in message and "--database-url" in message
    assert isinstance(info.value.__cause__, NotADirectoryError)


def test_healthsim_home_under_a_read_only_folder_names_the_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The PermissionError branch. The tests run as root here, whom a read-only
    folder does not stop, and no other user can run this interpreter; so mkdir
    in the read-only folder raises what the kernel raises for anyone else."""
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    real_mkdir = os.mkdir

    def mkdir(path: object, mode: int = 0o777, *args: object, **kwargs: object) -> None:
        if Path(str(path)).parent == parent:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        real_mkdir(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", mkdir)
    home = parent / "healthsim"
    monkeypatch.setenv("HEALTHSIM_HOME", str(home))
    with pytest.raises(ConfigurationError) as info:
        get_engine()
    message = str(info.value)
    assert message.startswith(f"cannot create the folder {home} for the database {home / 'healthsim.duckdb'}: ")
    assert "Permission denied (its parent folder is not writable by this user)" in message
    assert "set HEALTHSIM_HOME to a folder" in message and "--database-url" in message
    assert isinstance(info.value.__cause__, PermissionError)
    assert not home.exists()


def test_a_read_only_folder_for_a_new_store_file_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The folder exists, the store file cannot be made in it (same emulation as above)."""
    real_mkdir = os.mkdir

    def mkdir(path: object, mode: int = 0o777, *args: object, **kwargs: object) -> None:
        if Path(str(path)).parent == tmp_path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        real_mkdir(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", mkdir)
    target = tmp_path / "store.duckdb"
    with pytest.raises(ConfigurationError, match=f"cannot create the database file {target}: Permission denied"):
        create_store_engine(f"duckdb:///{target}")
    assert not target.exists()


PATIENT = {
    "id": "PAT-FILES",
    "mrn": "MRN-FILES",
    "name": {"given_name": "Ada", "family_name": "Lovelace"},
    "birth_date": "1980-02-03",
    "gender": "F",
}


def test_an_exported_file_is_owner_only_and_a_replaced_one_keeps_its_mode(store_url: str, tmp_path: Path) -> None:
    from healthsim_state import save_scenario
    from healthsim_state.formats.json import export_scenario

    save_scenario("to-export", {"patient": [PATIENT]}, database_url=store_url)
    engine = create_store_engine(store_url)
    new, shared = tmp_path / "new.json", tmp_path / "shared.json"
    shared.write_text("{}")
    shared.chmod(0o644)  # a file the user made readable to others on purpose
    previous = os.umask(0)  # the most permissive umask; restored at once
    try:
        with session_scope(engine) as session:
            export_scenario(session, "to-export", new)
            export_scenario(session, "to-export", shared)
    finally:
        os.umask(previous)
        engine.dispose()
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    assert shared.read_bytes() == new.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json") == ["new.json", "shared.json"]


def test_the_export_command_writes_an_owner_only_file(store_url: str, tmp_path: Path) -> None:
    from healthsim_state import save_scenario

    save_scenario("to-export", {"patient": [PATIENT]}, database_url=store_url)
    healthsim = Path(sys.executable).parent / "healthsim"
    target = tmp_path / "export.json"
    result = subprocess.run(
        [str(healthsim), "scenario", "export", "to-export", str(target), "--database-url", store_url],
        capture_output=True,
        text=True,
        timeout=120,
        umask=0,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_missing_postgresql_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails as if not installed
    with pytest.raises(ConfigurationError) as info:
        create_store_engine("postgresql+psycopg://alice:pw@db.example/hs")
    message = str(info.value)
    assert message.startswith("no driver for postgresql+psycopg://alice:***@db.example/hs: ")
    assert "pip install 'psycopg[binary]'" in message
    assert ".venv/bin/pip install -e '.[postgresql]'" in message
    assert "pip install 'healthsim-store" not in message  # no index has that package


def test_a_store_file_that_cannot_be_made_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def failing_chmod(path: object, mode: int, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(os, "chmod", failing_chmod)
    target = tmp_path / "store.duckdb"
    with pytest.raises(ConfigurationError, match=f"cannot create the database file {target}: .*No space left"):
        create_store_engine(f"duckdb:///{target}")
    assert list(tmp_path.iterdir()) == []  # neither the store nor its staging folder


def test_an_unreadable_store_file_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Root reads any file, so the refusal the kernel gives other users is raised by open() here."""
    import healthsim_models.engine as engine_module

    target = tmp_path / "store.duckdb"
    create_store_engine(f"duckdb:///{target}").dispose()

    def unreadable(path: object, *args: object, **kwargs: object) -> object:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(engine_module, "open", unreadable, raising=False)
    with pytest.raises(ConfigurationError, match=f"cannot read the database file {target}: Permission denied$"):
        create_store_engine(f"duckdb:///{target}")


@pytest.mark.parametrize("where", ["file", "memory"])
def test_duckdb_draws_no_progress_bar_on_stdout(tmp_path: Path, where: str, capfd: pytest.CaptureFixture[str]) -> None:
    """DuckDB draws a progress bar on stdout, terminal or not, for a statement over its
    threshold (two seconds): into an export written to stdout, or the MCP server's
    protocol stream. Each new connection's threshold is lowered here, before the
    store's own setup runs, so that a short statement would draw it."""
    url = f"duckdb:///{tmp_path / 'store.duckdb'}" if where == "file" else "duckdb:///:memory:"
    engine = create_store_engine(url)
    try:
        # Setting the threshold turns the bar on; the store's setup must turn it off again.
        sa.event.listen(
            engine, "connect", lambda dbapi, record: dbapi.execute("SET progress_bar_time = 1"), insert=True
        )
        engine.dispose()  # new connections from here on (an in-memory store starts empty again)
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT current_setting('progress_bar_time')")).scalar() == 1
            assert connection.execute(sa.text("SELECT current_setting('enable_progress_bar')")).scalar() is False
            total = connection.execute(sa.text("SELECT count(*) FROM range(200000000) t(i) WHERE i % 7 = 3"))
            assert total.scalar() > 0
    finally:
        engine.dispose()
    assert capfd.readouterr().out == ""


@pytest.mark.parametrize(
    "database",
    ["md:my_db", "motherduck:my_db", "md:", "MD:x", "s3://bucket/store.duckdb", "https://example.org/x.duckdb"],
)
def test_a_remote_duckdb_database_is_refused_without_making_a_local_file(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"duckdb:///{database}?motherduck_token=s3cr3t"
    with pytest.raises(ConfigurationError, match="names a remote DuckDB database") as info:
        create_store_engine(url)
    assert "s3cr3t" not in str(info.value)
    assert "motherduck_token=***" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_database_part_duckdb_reads_as_an_extension_protocol_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB takes ``runs:1.duckdb`` for the protocol of a ``runs`` extension, not a file."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="names a remote DuckDB database"):
        create_store_engine("duckdb:///runs:1.duckdb")
    assert list(tmp_path.iterdir()) == []


def test_credentials_in_the_query_string_are_masked() -> None:
    url = resolve_database_url("postgresql+psycopg://bob:pw@h/d?sslpassword=a&application_name=hs&api_key=b")
    shown = mask_url(url)
    assert "pw" not in shown and "=a" not in shown and "=b" not in shown
    assert "application_name=hs" in shown
    assert "sslpassword=***" in shown and "api_key=***" in shown
