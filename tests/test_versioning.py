"""Schema versions: auto-create, upgrade and downgrade, the migration log, and
refusal of databases written by a newer version."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from healthsim_models import Base, SchemaVersionError, create_store_engine, schema_version
from healthsim_models.location import default_database_url


def _tables(engine: sa.Engine) -> set[str]:
    """Tables of the default schema, and ``schema.table`` for the others the models use."""
    schemas = {t.schema for t in Base.metadata.tables.values()} - {None}
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        names = set(inspector.get_table_names())
        for schema in schemas:
            if inspector.has_schema(schema):
                names |= {f"{schema}.{t}" for t in inspector.get_table_names(schema=schema)}
        return names


def _revisions() -> list[str]:
    """Every known revision, oldest first."""
    return [info.revision for info in reversed(schema_version.history())]


def _log(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT revision, direction FROM schema_migrations ORDER BY applied_at"))
        return [tuple(r) for r in rows]


def test_first_use_creates_the_default_database_at_head(isolated_home: Path) -> None:
    assert not isolated_home.exists()
    engine = create_store_engine()
    try:
        assert schema_version.current_revision(engine) == schema_version.head_revision()
        assert set(Base.metadata.tables) <= _tables(engine)
    finally:
        engine.dispose()
    assert (isolated_home / "healthsim.duckdb").is_file()
    assert stat.S_IMODE(isolated_home.stat().st_mode) == 0o700


def test_nested_missing_directories_are_private(tmp_path: Path) -> None:
    engine = create_store_engine(f"duckdb:///{tmp_path / 'a' / 'b' / 'store.duckdb'}")
    engine.dispose()
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_upgrade_downgrade_upgrade(blank_store_url: str) -> None:
    engine = create_store_engine(blank_store_url, upgrade=False)
    try:
        assert schema_version.current_revision(engine) is None
        assert schema_version.pending_revisions(engine) == _revisions()
        assert _revisions()[-1] == schema_version.head_revision()
        schema_version.upgrade(engine)
        assert set(Base.metadata.tables) <= _tables(engine)
        assert schema_version.pending_revisions(engine) == []

        schema_version.downgrade(engine, "base")
        assert schema_version.current_revision(engine) is None
        assert _tables(engine) == {"alembic_version"}

        schema_version.upgrade(engine, "head")
        assert set(Base.metadata.tables) <= _tables(engine)
        # The log went with the downgrade of the revision that created it,
        # and records the new upgrade.
        assert _log(engine) == [(revision, "upgrade") for revision in _revisions()]
    finally:
        engine.dispose()


def test_status_reports_revisions_and_rows(blank_store_url: str) -> None:
    engine = create_store_engine(blank_store_url)
    try:
        st = schema_version.status(engine)
    finally:
        engine.dispose()
    assert st.current == st.head
    assert st.pending == []
    assert st.row_counts["patients"] == 0
    assert st.row_counts["schema_migrations"] == len(_revisions())
    assert st.row_counts["population.svi_county"] == 0
    assert set(st.row_counts) == set(Base.metadata.tables)


def _set_revision(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_a_newer_database_is_refused_and_left_untouched(blank_store_url: str) -> None:
    engine = create_store_engine(blank_store_url)
    _set_revision(engine, "9999_from_the_future")
    before = _tables(engine)
    engine.dispose()

    with pytest.raises(SchemaVersionError, match="9999_from_the_future.*newer version"):
        create_store_engine(blank_store_url)

    engine = create_store_engine(blank_store_url, upgrade=False)
    try:
        with pytest.raises(SchemaVersionError):
            schema_version.upgrade(engine)
        with pytest.raises(SchemaVersionError):
            schema_version.downgrade(engine, "base")
        assert _tables(engine) == before
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == (
                "9999_from_the_future"
            )
    finally:
        engine.dispose()


def test_the_check_at_head_is_one_small_query(blank_duckdb_url: str) -> None:
    create_store_engine(blank_duckdb_url).dispose()
    engine = create_store_engine(blank_duckdb_url, upgrade=False)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        schema_version.ensure_at_head(engine)
    finally:
        engine.dispose()
    version_queries = [s for s in statements if "alembic_version" in s]
    assert len(version_queries) == 1, statements
    assert not any(s.lstrip().upper().startswith(("CREATE", "ALTER", "INSERT", "UPDATE")) for s in statements)


# A later schema change, written the way real ones will be: it must upgrade a
# database that already holds data, in place, and revert cleanly.
SECOND_REVISION = '''
"""Add a table filled from existing patients.

Revision ID: 9001
Revises: {head}
"""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "test_notes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("mrn", sa.String(), nullable=False),
    )
    op.execute("INSERT INTO test_notes (id, mrn) SELECT id, mrn FROM patients")


def downgrade():
    op.drop_table("test_notes")
'''

FAILING_REVISION = '''
"""Create a table, then fail.

Revision ID: 9002
Revises: 9001
"""
import sqlalchemy as sa
from alembic import op

revision = "9002"
down_revision = "9001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Uuid(), primary_key=True))
    op.execute("SELECT * FROM table_that_does_not_exist")


def downgrade():
    op.drop_table("half_done")
'''


@pytest.fixture
def scripts_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the store at a copy of the revisions with extra ones appended."""

    def install(*sources: str) -> None:
        target = tmp_path / "alembic"
        shutil.copytree(schema_version.script_location(), target, ignore=shutil.ignore_patterns("__pycache__"))
        for i, source in enumerate(sources, start=2):
            text = textwrap.dedent(source).replace("{head}", schema_version.head_revision())
            (target / "versions" / f"extra_{i:04d}.py").write_text(text)
        monkeypatch.setattr(schema_version, "script_location", lambda: target)
        schema_version.script_directory.cache_clear()

    yield install
    schema_version.script_directory.cache_clear()


def test_a_later_revision_upgrades_a_populated_database_in_place(blank_store_url: str, scripts_with) -> None:
    engine = create_store_engine(blank_store_url)
    patients = Base.metadata.tables["patients"]
    import datetime as dt
    import uuid

    pid = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            patients.insert().values(
                id=pid,
                mrn="MRN-7",
                given_name="Grace",
                family_name="Hopper",
                birth_date=dt.date(1906, 12, 9),
                gender="F",
            )
        )
    engine.dispose()

    known = _revisions()
    scripts_with(SECOND_REVISION)
    engine = create_store_engine(blank_store_url)  # first use after the change: upgrades
    try:
        assert schema_version.current_revision(engine) == "9001"
        with engine.connect() as connection:
            row = connection.execute(sa.text("SELECT id, mrn FROM test_notes")).one()
        assert tuple(row) == (pid, "MRN-7")

        schema_version.downgrade(engine, known[-1])
        assert "test_notes" not in _tables(engine)
        assert _log(engine) == [(r, "upgrade") for r in known] + [("9001", "upgrade"), ("9001", "downgrade")]
    finally:
        engine.dispose()


def test_a_failing_revision_rolls_back_the_whole_run(blank_store_url: str, scripts_with) -> None:
    engine = create_store_engine(blank_store_url, upgrade=False)
    engine.dispose()
    scripts_with(SECOND_REVISION, FAILING_REVISION)
    engine = create_store_engine(blank_store_url, upgrade=False)
    try:
        with pytest.raises(sa.exc.DBAPIError):
            schema_version.upgrade(engine)
        # Not even the known revisions and 9001 of the same run stayed.
        assert schema_version.current_revision(engine) is None
        assert _tables(engine) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_default_url_follows_healthsim_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEALTHSIM_HOME", str(tmp_path / "elsewhere"))
    assert default_database_url().database == str(tmp_path / "elsewhere" / "healthsim.duckdb")


# -- the alembic command, as the README shows it ----------------------------------

REPO = Path(__file__).resolve().parent.parent
ALEMBIC = Path(sys.executable).parent / "alembic"  # .venv/bin/alembic, as the README says


def _alembic(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HEALTHSIM_DATABASE_URL"} | {"HEALTHSIM_HOME": str(home)}
    return subprocess.run([str(ALEMBIC), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _failure_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What the command said beyond alembic's INFO lines; no traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return [line for line in output.splitlines() if line.startswith("FAILED:")]


def test_the_readme_commands_run_as_pasted(blank_postgresql_url: str, isolated_home: Path) -> None:
    """`.venv/bin/alembic upgrade head` on the default store, then the PostgreSQL check after its upgrade."""
    assert ALEMBIC.is_file()
    result = _alembic("upgrade", "head", home=isolated_home)
    assert result.returncode == 0, result.stderr
    assert (isolated_home / "healthsim.duckdb").is_file()
    for command in (("upgrade", "head"), ("check",)):
        result = _alembic("-x", f"url={blank_postgresql_url}", *command, home=isolated_home)
        assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_check_on_a_database_not_at_head_says_to_upgrade_first(blank_store_url: str, isolated_home: Path) -> None:
    """On PostgreSQL; on DuckDB the check cannot run at all, and says so first."""
    create_store_engine(blank_store_url, upgrade=False).dispose()  # an empty database: base
    result = _alembic("-x", f"url={blank_store_url}", "check", home=isolated_home)
    assert result.returncode != 0
    (line,) = _failure_lines(result)
    if blank_store_url.startswith("duckdb"):
        assert "cannot read a DuckDB database" in line  # said first: upgrading would not help
    else:
        assert "is at revision base (empty), not at head" in line
        assert "Upgrade it first: .venv/bin/alembic -x url=... upgrade head" in line


@pytest.mark.parametrize("command", [("check",), ("revision", "--autogenerate", "-m", "probe")])
def test_comparisons_on_duckdb_are_refused_in_one_line(isolated_home: Path, command: tuple[str, ...]) -> None:
    create_store_engine().dispose()  # the default store, at head
    versions = sorted(p.name for p in (REPO / "alembic" / "versions").iterdir())
    result = _alembic(*command, home=isolated_home)
    assert result.returncode != 0
    (line,) = _failure_lines(result)
    assert "cannot read a DuckDB database (duckdb:///" in line
    assert "schema reflection is broken" in line
    assert "alembic -x url=postgresql+psycopg://" in line and "tests/test_schema.py" in line
    assert "pg_collation" not in result.stdout + result.stderr
    assert sorted(p.name for p in (REPO / "alembic" / "versions").iterdir()) == versions  # no revision file


def test_the_alembic_command_refuses_a_file_that_is_not_a_store(tmp_path: Path, isolated_home: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("not a database")
    result = _alembic("-x", f"url=duckdb:///{target}", "upgrade", "head", home=isolated_home)
    assert result.returncode != 0
    (line,) = _failure_lines(result)
    assert line.startswith(f"FAILED: {target} is not a HealthSim store: it is not a database at all")
    assert "left untouched" in line
    assert target.read_text() == "not a database"
