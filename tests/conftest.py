"""Fixtures: isolated HealthSim home, throwaway DuckDB files and PostgreSQL databases.

PostgreSQL tests need ``HEALTHSIM_TEST_POSTGRES_URL`` (a server URL whose
user may create databases, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test).
Without it they skip, except under CI, where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
def duckdb_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'store.duckdb'}"


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


@contextmanager
def throwaway_postgresql_database() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped on exit (for fixtures of any scope).

    Skips without ``HEALTHSIM_TEST_POSTGRES_URL``, except under CI, where that is a failure.
    """
    server = os.environ.get(PG_ENV)
    if not server:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set: CI must run the PostgreSQL tests")
        pytest.skip(f"set {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run PostgreSQL tests")
    url = make_url(server)
    name = f"hs_test_{uuid.uuid4().hex[:12]}"
    with _admin_connect(url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with _admin_connect(url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    with throwaway_postgresql_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend in turn."""
    return request.getfixturevalue(f"{request.param}_url")


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
