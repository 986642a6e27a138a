"""Schema versioning: the Alembic revisions, applied from code.

The revisions live in the top-level ``alembic/`` folder of the source tree
and ship in the wheel as ``healthsim_models/_alembic``; both the ``alembic``
command (through ``alembic.ini``) and the functions here run the same
``env.py``. Every applied or reverted revision is also logged in
``schema_migrations``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

import healthsim_models.alembic_duckdb  # noqa: F401  (registers Alembic's implementation for DuckDB)
from alembic import command
from healthsim_models import audit, canonical, population, settings, state, system  # noqa: F401  (their tables on Base.metadata)
from healthsim_models.audit import REFUSED, error_text, has_audit_log, insert_event
from healthsim_models.base import Base
from healthsim_models.errors import ConfigurationError, SchemaVersionError
from healthsim_models.history import HISTORY  # noqa: F401  (the history tables on Base.metadata)
from healthsim_models.location import mask_url, not_a_store
from healthsim_models.system import SchemaMigration

logger = logging.getLogger(__name__)


def script_location() -> Path:
    """The folder holding ``env.py`` and ``versions/``: installed copy, else source tree."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_alembic", package_dir.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigurationError(
        f"the Alembic scripts are missing: looked in {package_dir / '_alembic'} "
        f"and {package_dir.parent / 'alembic'}. Reinstall healthsim-store."
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged scripts, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    """The revision scripts, parsed once per process."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The latest revision this code knows."""
    heads = script_directory().get_heads()
    if len(heads) != 1:
        raise SchemaVersionError(
            f"the migration scripts have {len(heads)} heads ({', '.join(heads)}); "
            "they must form one line. Merge them with 'alembic merge'."
        )
    return heads[0]


_upgrade_lock = threading.Lock()


def _current_heads(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None for an empty (never upgraded) database."""
    with engine.connect() as connection:
        heads = _current_heads(connection)
    return heads[0] if heads else None


def _refuse_unknown(heads: tuple[str, ...], engine: Engine) -> None:
    known = {script.revision for script in script_directory().walk_revisions()}
    unknown = [h for h in heads if h not in known]
    if unknown:
        raise SchemaVersionError(
            f"the database {mask_url(engine.url)} is at revision {', '.join(unknown)}, "
            f"which this version of healthsim-store (head {head_revision()}) does not "
            "know: it was probably written by a newer version. Upgrade "
            "healthsim-store; the database was not changed."
        )


def _refuse_foreign(connection: Connection) -> None:
    """Refuse a DuckDB database that holds tables but no revision of ours: another program's.

    Only DuckDB files: a PostgreSQL database may hold other applications'
    tables beside the store's.
    """
    if connection.dialect.name != "duckdb":
        return
    names = (
        connection.exec_driver_sql(
            "SELECT schema_name || '.' || table_name AS name FROM duckdb_tables() "
            "WHERE database_name = current_database() AND NOT internal "
            "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal ORDER BY name"
        )
        .scalars()
        .all()
    )
    names = [name for name in names if name != "main.alembic_version"]  # a store downgraded to base
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise not_a_store(
            Path(connection.engine.url.database or "").expanduser(),
            f"a DuckDB database of another program (it holds {shown}, and no HealthSim schema revision)",
        )


def refuse_foreign(engine: Engine) -> None:
    """Raise :class:`NotAStoreError` when ``engine``'s DuckDB file is another program's database."""
    with engine.connect() as connection:
        if not _current_heads(connection):
            _refuse_foreign(connection)


def ensure_at_head(engine: Engine) -> None:
    """Upgrade to head unless already there; refuse a database from a newer version,
    and a DuckDB file of another program (:func:`refuse_foreign`).

    At head this costs one small query on ``alembic_version``.
    """
    with engine.connect() as connection:
        heads = _current_heads(connection)
        if not heads:
            _refuse_foreign(connection)
    if heads == (head_revision(),):
        return
    # Threads of one process share one DuckDB database (and Alembic's context
    # is process-global): one thread upgrades, the others then find it done.
    with _upgrade_lock:
        with engine.connect() as connection:
            heads = _current_heads(connection)
        if heads == (head_revision(),):
            return
        _refuse_unknown(heads, engine)
        upgrade(engine)


def _run(engine: Engine, action: str, revision: str) -> None:
    with engine.connect() as connection:
        before = _current_heads(connection)
        _refuse_unknown(before, engine)
    operation = f"schema_{action}"
    try:
        # One transaction for the whole run: a failing revision rolls back every
        # revision of the run (DuckDB and PostgreSQL both have transactional DDL).
        with engine.begin() as connection:
            getattr(command, action)(alembic_config(connection), revision)
            after = _current_heads(connection)
            if after != before and has_audit_log(connection):  # none below revision 0006
                insert_event(connection, operation, details={"from": _head(before), "to": _head(after)})
    except Exception as exc:
        _audit_refusal(engine, operation, {"from": _head(before), "to": revision}, exc)
        raise


def _audit_refusal(engine: Engine, operation: str, details: dict[str, Any], exc: Exception) -> None:
    """Record a refused run in a transaction of its own, where the table exists; a failure to
    record it is logged, never raised in place of the refusal."""
    try:
        with engine.begin() as connection:
            if has_audit_log(connection):
                insert_event(connection, operation, outcome=REFUSED, details=details, error=error_text(exc))
    except Exception as failure:
        reason = (str(failure).strip().splitlines() or [type(failure).__name__])[0]
        logger.warning("the refused %s could not be recorded in the audit log: %s", operation, reason)


def _head(heads: tuple[str, ...]) -> str | None:
    return heads[0] if heads else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply revisions up to ``revision``."""
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert revisions down to ``revision`` (``base`` empties the database)."""
    _run(engine, "downgrade", revision)


@dataclass(frozen=True)
class RevisionInfo:
    revision: str
    down_revision: str | None
    description: str


def history() -> list[RevisionInfo]:
    """Every known revision, newest first."""
    return [
        RevisionInfo(
            revision=script.revision,
            down_revision=script.down_revision if isinstance(script.down_revision, str) else None,
            description=script.doc,
        )
        for script in script_directory().walk_revisions()
    ]


def pending_revisions(engine: Engine) -> list[str]:
    """Revisions between the database's current one and head, oldest first."""
    current = current_revision(engine)
    if current is not None:
        _refuse_unknown((current,), engine)
    scripts = script_directory().iterate_revisions(head_revision(), current)
    return [script.revision for script in reversed(list(scripts))]


def table_row_counts(engine: Engine) -> dict[str, int | None]:
    """Rows per table of the models, None for a table the database lacks, in one query.

    Tables outside the default schema are named ``schema.table``.
    """
    names = sorted(Base.metadata.tables)  # schema-qualified where not default: population.svi_county
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        tables = Base.metadata.tables
        present = [name for name in names if inspector.has_table(tables[name].name, schema=tables[name].schema)]
        counts: dict[str, int] = {}
        if present:
            query = sa.union_all(
                *(
                    sa.select(sa.literal(name), sa.func.count()).select_from(Base.metadata.tables[name])
                    for name in present
                )
            )
            counts = {table: count for table, count in connection.execute(query)}
    return {name: counts.get(name) for name in names}


@dataclass(frozen=True)
class StoreStatus:
    url: str
    current: str | None
    head: str
    pending: list[str]
    row_counts: dict[str, int | None]


def status(engine: Engine) -> StoreStatus:
    """Where the database stands: masked URL, revisions and rows per table."""
    return StoreStatus(
        url=mask_url(engine.url),
        current=current_revision(engine),
        head=head_revision(),
        pending=pending_revisions(engine),
        row_counts=table_row_counts(engine),
    )


def record_migration_step(ctx: MigrationContext, step: Any, heads: Any, run_args: Any) -> None:
    """Alembic ``on_version_apply`` hook: log the step in ``schema_migrations``.

    Skipped only when the table is absent, which happens once: after the
    downgrade of the revision that created it.
    """
    connection = ctx.connection
    assert connection is not None, "migrations run online, with a connection"
    if not sa.inspect(connection).has_table(SchemaMigration.__tablename__):
        return
    connection.execute(
        sa.insert(SchemaMigration.__table__).values(
            id=uuid.uuid4(),
            revision=step.up_revision_id,
            description=step.up_revision.doc,
            direction="upgrade" if step.is_upgrade else "downgrade",
            applied_at=dt.datetime.now(dt.UTC),
        )
    )
