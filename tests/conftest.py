"""Fixtures: isolated HealthSim home, throwaway DuckDB files and PostgreSQL databases.

A store fixture (``duckdb_url``, ``postgresql_url``, ``store_url``) is a copy of
a store migrated once per test session: migrating costs about a second on
DuckDB and two on PostgreSQL, copying a few milliseconds (a template file, and
``CREATE DATABASE ... TEMPLATE``). Tests of creation and migration itself take
the ``blank_*`` fixtures: a path with no file, an empty database.

PostgreSQL tests need ``HEALTHSIM_TEST_POSTGRES_URL`` (a server URL whose
user may create databases, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test).
Without it they skip, except under CI, where a missing server is a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from sqlalchemy.engine import Engine, make_url

from healthsim_models.engine import create_store_engine, dispose_engines

PG_ENV = "HEALTHSIM_TEST_POSTGRES_URL"

# HYPOTHESIS_PROFILE=thorough runs the property tests at length.
settings.register_profile("default", max_examples=20)
settings.register_profile("thorough", max_examples=400)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
BACKENDS = ("duckdb", "postgresql")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own HEALTHSIM_HOME and no HEALTHSIM_DATABASE_URL."""
    home = tmp_path / "healthsim-home"
    monkeypatch.setenv("HEALTHSIM_HOME", str(home))
    monkeypatch.delenv("HEALTHSIM_DATABASE_URL", raising=False)
    yield home
    dispose_engines()


@pytest.fixture
def blank_duckdb_url(tmp_path: Path) -> str:
    """A DuckDB URL whose file does not exist yet."""
    return f"duckdb:///{tmp_path / 'store.duckdb'}"


@pytest.fixture(scope="session")
def _duckdb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB store at the latest revision, made once per session (copied, never opened by tests)."""
    path = tmp_path_factory.mktemp("template") / "store.duckdb"
    create_store_engine(f"duckdb:///{path}").dispose()
    return path


@pytest.fixture
def duckdb_url(blank_duckdb_url: str, _duckdb_template: Path) -> str:
    """A DuckDB store at the latest revision, holding nothing."""
    shutil.copy2(_duckdb_template, make_url(blank_duckdb_url).database)
    return blank_duckdb_url


def _admin_connect(url):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
        autocommit=True,
    )


def _server_url() -> Any:
    """The PostgreSQL server of ``HEALTHSIM_TEST_POSTGRES_URL``; skips without it, except
    under CI, where that is a failure."""
    server = os.environ.get(PG_ENV)
    if not server:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set: CI must run the PostgreSQL tests")
        pytest.skip(f"set {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run PostgreSQL tests")
    return make_url(server)


@contextmanager
def throwaway_postgresql_database(template: str | None = None) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database, dropped on exit (for fixtures of any scope):
    empty, or a copy of the database ``template``."""
    url = _server_url()
    name = f"hs_test_{uuid.uuid4().hex[:12]}"
    copy = "" if template is None else f' TEMPLATE "{template}" STRATEGY WAL_LOG'
    with _admin_connect(url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with _admin_connect(url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _postgresql_template() -> Iterator[str]:
    """A PostgreSQL database at the latest revision, made once per session, for copies."""
    with throwaway_postgresql_database() as url:
        create_store_engine(url).dispose()
        yield make_url(url).database


@pytest.fixture
def blank_postgresql_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    with throwaway_postgresql_database() as url:
        yield url


@pytest.fixture
def postgresql_url(_postgresql_template: str) -> Iterator[str]:
    """A PostgreSQL store at the latest revision, holding nothing, dropped after the test."""
    with throwaway_postgresql_database(_postgresql_template) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """A store at the latest revision, holding nothing, on each backend in turn."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(params=BACKENDS)
def blank_store_url(request: pytest.FixtureRequest) -> str:
    """An empty database (no schema) on each backend in turn."""
    return request.getfixturevalue(f"blank_{request.param}_url")


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An engine on an empty store, on each backend in turn, at the latest schema."""
    engine = create_store_engine(store_url)
    yield engine
    engine.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Free DuckDB objects before interpreter exit, while nanobind can still
    release them; otherwise it reports them as leaked on stderr."""
    import gc

    dispose_engines()
    gc.collect()


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    """A local Spark session for the test module (one JVM, one core, no UI). Skips without
    Java or pyspark, except under CI, where that is a failure: CI must run the Spark tests."""
    import shutil

    missing = None
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        missing = "pyspark is not installed (pip install -e '.[dev]')"
    if missing is None and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing = "Java is not installed (Spark needs Java 17 or later)"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: CI must run the Spark tests")
        pytest.skip(missing)
    session = (
        SparkSession.builder.master("local[1]")
        .appName("healthsim-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "512m")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
