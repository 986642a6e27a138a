"""The batch writer: one scenario written add by add, published whole.

``with repository.writer(name) as w: w.add(batch)`` takes a scenario too
large for one save. Each add goes through the save pipeline
(:mod:`.save`: the same checks and errors, the same UUIDs) into staging
tables private to the writer, named ``_hs_w_<token>_<table>`` (rows) and
``_hs_w_<token>_<table>__pos`` (each entity's position), and is committed
there on the writer's own connection, so no transaction grows with the
scenario. Business keys and references are looked up per batch, for the
batch's own keys only, in what the writer staged (or appended, below):
Python keeps nothing per entity from one add to the next.

Where the dialect appends directly (DuckDB: :attr:`StoreDialect.direct_append_rows`),
an add writes the entities not stored yet straight into their canonical
tables instead, and notes their ids in ``_hs_w_<token>_<table>__new``: no
scenario links them until the publish, and the store's whole-store reads
(:meth:`ScenarioRepository.count_entities_by_type`, ``find_entity``) leave
them out (:func:`unpublished`). Such an entity again in a later add is
replaced in place; one another write has linked meanwhile is staged as a
stored entity (that write found the writer's version stored, and kept it
in the history). One another write deleted or changed meanwhile, and the
writer did not give again, refuses the publish (:class:`WriteConflictError`):
its row is gone, or the writer's version lost. An appended entity's
``updated_at`` is the writer's start, not its publish (the lake's
incremental export takes a scenario's new members whatever their time; a
read of the entity as of a time before the publish finds it). Past that
many rows in the store, the adds stage as above (but for rows a type
already appended, which are still replaced in place).

When the block ends without an error, one transaction publishes the
scenario as :meth:`ScenarioRepository.save` would (history, links, tags,
counts, the audit event), upserting each type from its staging table with
one ``INSERT ... SELECT`` (:meth:`StoreDialect.publish_staged`), and drops
the staging tables. Until then no scenario of the writer is visible; when
the block raises, the staging tables are dropped, the audit trail records
the save as refused, and the error propagates.

Where one transaction of a whole scenario would hold it in memory (DuckDB:
:attr:`StoreDialect.publish_step_rows`), the entities not stored yet go
first, in committed steps of one range of ids each, and so do a new
scenario's links, under the scenario id that no scenario row holds yet:
nothing that reads by scenario sees them. The journal table
``_hs_w_<token>__publish`` names that scenario id meanwhile. The
transaction that makes the scenario visible then writes what is left: the
scenario row, tags, the stored entities the scenario changes (history
first), a replaced scenario's links, the orphans.

A killed writer leaves its staging tables behind, the rows its adds
appended, and, killed while publishing in steps, the rows and links of the
steps done: :func:`clean_up_writers` removes those of writers that are gone
(the rows they appended that no scenario links, the links of a scenario id
no scenario row holds), then their tables, and every writer calls it when
it starts. On PostgreSQL a running writer holds an
advisory lock (:meth:`StoreDialect.claim_writer`) for as long as its
connection lives; a DuckDB file has one writing process, whose running
writers are in :data:`_RUNNING`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.base import duckdb_compression
from healthsim_models.errors import InvalidArgumentError, ScenarioExistsError, ValidationError, WriteConflictError
from healthsim_models.history import LINKS_HISTORY, UPDATE, Write
from healthsim_models.registry import ENTITY_TYPES, EntityType, entity_type
from healthsim_models.state import Scenario
from healthsim_state.codec.checks import clean_tags, scenario_problems
from healthsim_state.codec.layout import Layout
from healthsim_state.codec.values import shown
from healthsim_state.store import history as store_history
from healthsim_state.store.audit import audited, record_refused, record_running
from healthsim_state.store.batches import LINKS, Links, arrow_schema
from healthsim_state.store.dialects import dialect_of
from healthsim_state.store.dialects.base import literal
from healthsim_state.store.save import SaveRun, input_streams, key_select, keys_found, write_entities

if TYPE_CHECKING:
    from healthsim_state.store.repository import SaveSummary, ScenarioRepository

#: Every staging table's name starts so; then the writer's token and ``_``.
STAGING_PREFIX = "_hs_w_"
#: Keys looked up per statement.
LOOKUP_CHUNK = 20_000

#: Tokens of the writers running in this process.
_RUNNING: set[str] = set()


def _key(token: str) -> int:
    """The writer's number for :meth:`StoreDialect.claim_writer`: its token as a signed 32-bit integer."""
    return int(token, 16) - 2**31


class _Staging:
    """A writer's staging tables: per type, its rows and its entities' positions."""

    def __init__(self, token: str, keyed: bool, appends: bool = False) -> None:
        metadata = sa.MetaData()
        self.rows: dict[str, sa.Table] = {}
        self.positions: dict[str, sa.Table] = {}
        # Per type (``appends``): the ids of the rows the writer wrote into the canonical table
        # itself, by an add (direct append) or a publish step: what undoing it removes.
        self.appended: dict[str, sa.Table] = {}
        for et in ENTITY_TYPES:
            table = et.model.__table__
            name = f"{STAGING_PREFIX}{token}_{table.name}"
            # The canonical columns, without the canonical table's indexes and constraints
            # (their names are the schema's); keyed by id where the dialect stages by upsert.
            self.rows[table.name] = sa.Table(
                name,
                metadata,
                *(_staged_column(c, keyed) for c in table.columns),
            )
            self.positions[et.name] = sa.Table(
                f"{name}__pos",
                metadata,
                sa.Column("id", sa.Uuid, primary_key=keyed),
                sa.Column("position", sa.BigInteger, nullable=False),
            )
            if appends:
                self.appended[table.name] = sa.Table(f"{name}__new", metadata, sa.Column("id", sa.Uuid, nullable=False))
        # Set while a publish in steps has written anything: the scenario id whose links went early, or NULL;
        # the write whose links history went early (an overwrite's), or NULL.
        self.journal = sa.Table(
            f"{STAGING_PREFIX}{token}__publish",
            metadata,
            sa.Column("scenario_id", sa.Uuid, nullable=True),
            sa.Column("write_id", sa.Uuid, nullable=True),
        )
        # The staged entities that the steps found stored, and changed: what the last transaction upserts.
        self.changed = sa.Table(
            f"{STAGING_PREFIX}{token}__changed",
            metadata,
            sa.Column("entity_type", sa.String, nullable=False),
            sa.Column("id", sa.Uuid, nullable=False),
        )
        self.metadata = metadata


def _staged_column(column: sa.Column[Any], keyed: bool) -> sa.Column[Any]:
    staged = sa.Column(column.name, column.type, primary_key=keyed and column.name == "id")
    if column.name == "extensions":
        # Staged once, read once: DuckDB's own choice for long JSON texts (a Synthea claim
        # line's transactions) costs 3x the time of zstd and stores 5x the bytes (measured:
        # 116k claim lines inserted and committed in 8.5 s, 170 MB; with zstd 2.8 s, 30 MB).
        duckdb_compression(staged, "zstd")
    return staged


class _StagingDialect:
    """What an add's :class:`SaveRun` writes through: the upserts and links of
    the save pipeline, sent to the writer's staging tables (or, where the
    dialect appends directly, a new entity straight to its table). Nothing else of
    the dialect is offered, so a pipeline step that would write elsewhere fails."""

    def __init__(self, writer: ScenarioWriter) -> None:
        self._writer = writer
        self._dialect = writer._dialect
        self._staging = writer._staging

    def upsert(self, session: Session, table: sa.Table, rows: list[dict[str, Any]], *, versioning: Any = None) -> None:
        if self._dialect.direct_append_rows:
            rows = pa.Table.from_pylist(rows, schema=arrow_schema(table))  # type: ignore[assignment]
        self.upsert_arrow(session, table, rows)  # type: ignore[arg-type]

    def upsert_arrow(self, session: Session, table: sa.Table, data: pa.Table, *, versioning: Any = None) -> None:
        staged = self._staging.rows[table.name]
        if not self._dialect.direct_append_rows:
            self._dialect.stage(session, staged, data)
            return
        writer = self._writer
        append = len(data) <= writer._direct_left
        if not append and table.name not in writer._appended:
            # Past the budget, and none of the writer's own rows to replace in place: staged as a whole.
            self._dialect.stage(session, staged, data)
            return
        appended = self._staging.appended[table.name]
        count = self._dialect.append_new(session, table, staged, appended, data, append=append)
        writer._direct_left -= count
        if count:
            writer._appended.add(table.name)

    def link(self, session: Session, scenario_id: uuid.UUID, links: Links) -> None:
        # Columns, not a dict per row (a Synthea import stages 500,000 positions).
        given = pa.table({"type": links.entity_types, "id": links.entity_ids, "position": links.positions})
        for name in pc.unique(given["type"]).to_pylist():
            # The same entity again: the last wins, at its position, which is the greatest (positions only grow).
            latest = given.filter(pc.equal(given["type"], name)).group_by("id", use_threads=False)
            latest = latest.aggregate([("position", "max")])
            table = self._staging.positions[name]
            schema = arrow_schema(table)
            columns = [latest["id"], latest["position_max"].cast(schema.field(1).type)]
            self._dialect.stage(session, table, pa.table(columns, schema=schema))


class _AddRun(SaveRun):
    """One add's run of the save pipeline: keys looked up per batch in the staging tables."""

    def __init__(self, writer: ScenarioWriter, now: dt.datetime) -> None:
        super().__init__(writer._session, writer.scenario_id, existing=False, now=now)
        self.dialect = _StagingDialect(writer)  # type: ignore[assignment]
        self.next_position = writer._positions  # positions go on from the adds before
        self._staging = writer._staging
        self._appended = writer._appended

    def key_map(self, et: EntityType) -> dict[tuple[str, ...], str]:
        return self.keys.setdefault(et.name, {})  # prepare_keys filled it for the batch

    def prepare_keys(self, lay: Layout, distinct: Callable[[str], set[str]]) -> None:
        et = lay.entity
        wanted: dict[str, set[str]] = {}  # type -> values of its business key's first column
        if et.business_key:
            wanted[et.name] = set(distinct(et.business_key[0]))
        for ref in et.references:
            wanted.setdefault(ref.parent, set()).update(distinct(ref.field))
        # The last batch's keys are done with: only this batch's stay.
        self.keys = {name: self._lookup(entity_type(name), values) for name, values in wanted.items()}

    def _lookup(self, et: EntityType, values: set[str]) -> dict[tuple[str, ...], str]:
        """Business key -> UUID (hex) of the writer's entities of ``et`` (staged, or
        appended to its table by an earlier add) whose key's first column is in ``values``."""
        canonical = et.model.__table__
        staged = self._staging.rows[canonical.name]
        direct = canonical.name in self._appended
        tables = [staged, canonical] if direct else [staged]
        found: dict[tuple[str, ...], str] = {}
        if not values:
            return found
        ordered = sorted(values)
        for i in range(0, len(ordered), LOOKUP_CHUNK):
            # One array parameter, unnested: a list of scalar parameters costs 5x more on DuckDB.
            chunk = sa.text("SELECT unnest(CAST(:keys AS VARCHAR[]))").bindparams(keys=ordered[i : i + LOOKUP_CHUNK])
            keys = chunk.columns(sa.column("key", sa.String))
            queries = [key_select(et, table).where(table.c[et.business_key[0]].in_(keys)) for table in tables]
            if direct:
                # The rows the adds appended, but for those staged since (their stored version is not the writer's).
                appended = self._staging.appended[canonical.name]
                queries[1] = queries[1].where(
                    canonical.c.id.in_(sa.select(appended.c.id)), canonical.c.id.not_in(sa.select(staged.c.id))
                )
            found.update(keys_found(self.session, sa.union_all(*queries) if direct else queries[0]))
        return found


class ScenarioWriter:
    """A scenario written batch by batch (:meth:`add`) and published whole when
    the ``with`` block ends; see the module docstring. Made by
    :meth:`ScenarioRepository.writer`."""

    def __init__(
        self,
        repository: ScenarioRepository,
        name: str,
        *,
        overwrite: bool = False,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        problems = scenario_problems(name, description, extra)
        if problems:
            raise ValidationError(problems)
        session = repository.session
        # The repository's class, for repositories on the writer's own session (no import: a cycle).
        self._repository_type = type(repository)
        if session.new or session.dirty or session.deleted:
            raise InvalidArgumentError(
                "the repository's session has changes not flushed or committed; the writer commits on a "
                "connection of its own and would not see them: commit (or roll back) first"
            )
        self._engine = session.get_bind()
        if isinstance(self._engine, sa.Connection):
            self._engine = self._engine.engine
        self._dialect = dialect_of(self._engine)
        if self._dialect.in_memory(self._engine.url):
            raise InvalidArgumentError(
                "the batch writer needs a store that a second connection can open (a DuckDB file or "
                "PostgreSQL); an in-memory store has one connection: use save()"
            )
        self.name = name
        self.overwrite = overwrite
        self.description = description
        self.tags = clean_tags(tags)
        self.extra = dict(extra) if extra else None
        self.batch_size = repository.batch_size
        self.summary: SaveSummary | None = None
        self.token = secrets.token_hex(4)
        appends = bool(self._dialect.publish_step_rows or self._dialect.direct_append_rows)
        self._staging = _Staging(self.token, self._dialect.keyed_staging, appends)
        self._direct_left = 0  # the rows the adds may still append directly (direct_append_rows)
        self._appended: set[str] = set()  # the tables the adds appended rows to
        self._positions: dict[str, int] = {}  # per type: the next position
        self._warnings: list[str] = []
        self._now = dt.datetime.now(dt.UTC)
        self._connection: sa.Connection | None = None
        self._memory = contextlib.ExitStack()
        self._session: Session
        self.scenario_id: uuid.UUID

    # -- the block ------------------------------------------------------------------

    def __enter__(self) -> ScenarioWriter:
        self._connection = self._engine.connect()
        try:
            self._lift_memory_cap = self._memory.enter_context(self._dialect.writer_memory(self._connection))
            self._start()
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.summary = self._publish()
        finally:
            try:
                if self.summary is None:
                    self._discard()
                    if isinstance(exc, Exception):
                        # An add refused, or the caller's code between adds failed: the save is
                        # refused as one save() would be. (A refused publish recorded itself.)
                        record_refused(self._session, "save", exc, scenario=self.name)
            finally:
                self._close()

    def add(self, entities: Mapping[str, Any]) -> dict[str, int]:
        """Stage ``entities`` (type -> iterable of documents, as :meth:`save`
        takes them); returns the entities staged per type. References resolve
        against this add's entities and every earlier add's; the same entity
        again replaces it (latest wins). Bad input raises what :meth:`save`
        raises, having staged nothing of this add (earlier adds stay staged)."""
        if self._connection is None or self.summary is not None:
            raise InvalidArgumentError("the writer is not open: add() inside its 'with' block")
        streams = input_streams(entities)
        before, direct_left = dict(self._positions), self._direct_left
        run = _AddRun(self, self._now)
        try:
            write_entities(run, streams, self.batch_size)
            self._session.commit()
        except BaseException:
            self._session.rollback()
            self._positions.clear()
            self._positions.update(before)  # the refused add took no positions
            self._direct_left = direct_left
            raise
        self._warnings += run.warnings
        return dict(run.saved)

    # -- internals ------------------------------------------------------------------

    def _start(self) -> None:
        assert self._connection is not None
        if not self._dialect.claim_writer(self._connection, _key(self.token)):
            raise WriteConflictError("a batch writer with the same token is running; start the writer again")
        self._connection.commit()
        clean_up_writers(self._connection)
        self._session = Session(bind=self._connection, expire_on_commit=False)
        existing = self._repository_type(self._session)._find(self.name, by_id=False)
        if existing is not None and not self.overwrite:
            raise ScenarioExistsError(
                f"a scenario named {self.name!r} exists; pass overwrite=True to replace it, or choose another name"
            )
        # Derived entity UUIDs name the scenario: the one to be replaced keeps its id.
        self.scenario_id = existing.id if existing is not None else uuid.uuid4()
        _RUNNING.add(self.token)
        self._staging.metadata.create_all(self._connection, checkfirst=False)
        if self._dialect.direct_append_rows:
            stored = sum(
                self._session.execute(sa.select(sa.func.count()).select_from(et.model.__table__)).scalar_one()
                for et in ENTITY_TYPES
            )
            self._direct_left = max(0, self._dialect.direct_append_rows - stored)
        self._session.commit()

    def _publish(self) -> SaveSummary:
        session = self._session
        with audited(session, "save", scenario=self.name) as event:
            now = dt.datetime.now(dt.UTC)
            versioning = store_history.start_write(session, now)
            early = self._publish_early(versioning)
            try:
                summary = self._publish_once(versioning, early)
            except Exception as exc:
                # The publish's last transaction holds what the canonical tables' indexes
                # gain (DuckDB, in memory): past the writer's cap, once more without it.
                if not (self._dialect.out_of_memory(exc) and self._lift_memory_cap()):
                    raise
                summary = self._publish_once(versioning, early)
            event.wrote(summary)
            # With the publish: also the event of an operation this writer is part of (an import).
            running = record_running(session.connection(), summary)
        try:
            session.commit()
        except BaseException:
            if running is not None:
                running.recorded = False  # it went with the publish: a refusal is recorded instead
            raise
        return summary

    def _publish_early(self, versioning: store_history.Versioning) -> bool | None:
        """Where the dialect publishes in steps: append the staged entities not
        stored yet (``updated_at`` = the write's time), and a new scenario's
        links, and note the stored ones the scenario changes
        (:attr:`_Staging.changed`), one committed step per range of ids; for
        an overwrite, copy the replaced links into their history the same way
        (the last transaction then replaces them by difference). Returns None
        when there are no steps, else whether the links went too."""
        step = self._dialect.publish_step_rows
        self._links_copied = False
        if not step:
            return None
        session = self._session
        existing = self._repository_type(session)._find(self.name, by_id=False)
        if existing is not None and (not self.overwrite or existing.id != self.scenario_id):
            return None  # refused by the last transaction, which says why; nothing to undo
        # A new scenario's links are under an id no scenario row holds until the last transaction.
        links = existing is None and session.get(Scenario, self.scenario_id) is None
        # A replaced scenario's links, copied to history as that write's: until it commits they
        # are also its current links, so a read of a past time finds the same links either way.
        self._links_copied = existing is not None
        copied = self._links_copied and versioning.keep
        session.execute(
            sa.insert(self._staging.journal).values(
                scenario_id=self.scenario_id if links else None, write_id=versioning.write_id if copied else None
            )
        )
        session.commit()
        if copied:
            linked = session.execute(
                sa.select(sa.func.count()).select_from(LINKS).where(LINKS.c.scenario_id == self.scenario_id)
            ).scalar_one()
            for where in _id_ranges(-(-linked // step), LINKS.name, "entity_id"):
                store_history.snapshot_links(session, self.scenario_id, versioning, UPDATE, sa.text(where))
                self._step_done()
        at = f"CAST('{versioning.at.isoformat()}' AS TIMESTAMPTZ)"
        # Steps of small types share a transaction (each commit and checkpoint costs about
        # the same for few rows as for many); none holds more than about ``step`` staged rows.
        pending = 0
        for et in ENTITY_TYPES:
            table = et.model.__table__
            rows, positions = self._staging.rows[table.name], self._staging.positions[et.name]
            appended = self._staging.appended[table.name]
            # Entities an add appended directly have links to write but no staged row.
            members = self._count(positions) if links else 0
            staged = self._count(rows)
            if not staged and not members:
                continue
            stored = self._count(table) if staged else 0
            names = ", ".join(c.name for c in table.columns)
            selects = ", ".join(at if c.name == "updated_at" else f"b.{c.name}" for c in table.columns)
            changed = store_history.changed_condition(table, lambda c: f"s.{c.name}", lambda c: f"b.{c.name}")
            new = f"NOT EXISTS (SELECT 1 FROM {table.name} t WHERE t.id = b.id)"
            # Each step's ids are one range: what it touches of the index is its range's part,
            # and what it compares of the stored rows too (both sides of the join are the range).
            parts = -(-max(staged + stored, members) // step)
            share = -(-max(staged, members) // parts)  # about the rows of one range
            for where, stored_where in zip(*(_id_ranges(parts, a) for a in "bs"), strict=True):
                if pending and pending + share > step:
                    pending = self._step_done()
                # Through the session, whose commit ends each step.
                connection = session.connection()
                if staged:
                    connection.exec_driver_sql(
                        f"INSERT INTO {self._staging.changed.name} (entity_type, id) SELECT {literal(et.name)}, "
                        f"b.id FROM {rows.name} b JOIN {table.name} s ON s.id = b.id WHERE {where} AND "
                        f"{stored_where} AND ({changed})"
                    )
                    connection.exec_driver_sql(
                        f"INSERT INTO {appended.name} (id) SELECT b.id FROM {rows.name} b WHERE {where} AND {new}"
                    )
                    connection.exec_driver_sql(
                        f"INSERT INTO {table.name} ({names}) SELECT {selects} FROM {rows.name} b "
                        f"WHERE {where} AND {new}"
                    )
                if links:
                    connection.exec_driver_sql(
                        f"INSERT INTO {LINKS.name} (scenario_id, entity_type, entity_id, position) "
                        f"SELECT CAST('{self.scenario_id}' AS UUID), {literal(et.name)}, b.id, b.position "
                        f"FROM {positions.name} b WHERE {where}"
                    )
                pending += share
        if pending:
            self._step_done()
        return links

    def _check_appended(self, versioning: store_history.Versioning) -> None:
        """Refuse the publish when another write deleted or rewrote an entity the
        writer appended (its row gone, or its ``updated_at`` neither the adds' time
        nor the publish's, and no later version of it staged): the publish would
        link a row that is not there, or leave that write's version where the
        writer's latest must win."""
        times = ", ".join(f"CAST('{t.isoformat()}' AS TIMESTAMPTZ)" for t in (self._now, versioning.at))
        for et in ENTITY_TYPES:
            table = et.model.__table__
            appended = self._staging.appended.get(table.name)
            if appended is None:
                continue
            lost = (
                self._session.connection()
                .exec_driver_sql(
                    f"SELECT CAST(a.id AS VARCHAR) FROM {appended.name} a LEFT JOIN {table.name} t ON t.id = a.id "
                    f"WHERE t.id IS NULL OR (t.updated_at NOT IN ({times}) AND a.id NOT IN "
                    f"(SELECT id FROM {self._staging.rows[table.name].name})) LIMIT 1"
                )
                .scalar()
            )
            if lost is not None:
                raise WriteConflictError(
                    f"another write deleted or changed the {et.name} {lost} (and maybe more) that this writer "
                    "had written while it ran; nothing was published; run the writer again"
                )

    def _count(self, table: sa.Table) -> int:
        return self._session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()

    def _step_done(self) -> int:
        """End a step of :meth:`_publish_early`: commit it, let the dialect write it out; 0 rows pending."""
        # The connection taken before the commit: taken after, it would begin a transaction,
        # which a refused checkpoint aborts.
        connection = self._session.connection()
        self._session.commit()
        self._dialect.publish_step_done(connection)
        return 0

    def _publish_once(self, versioning: store_history.Versioning, early: bool | None) -> SaveSummary:
        """The publish's writes, in the session's transaction (rolled back when
        they raise); after :meth:`_publish_early` (``early``: what it returned)."""
        session = self._session
        repo = self._repository_type(session)
        now = versioning.at
        with repo._atomic(f"the save of scenario {shown(self.name)}"):
            scenario, replacing = repo._scenario_to_save(
                self.name, self.overwrite, self.scenario_id, None, versioning, links_kept=self._links_copied
            )
            if scenario.id != self.scenario_id:
                raise WriteConflictError(
                    f"the scenario {self.name!r} was deleted and made again by another writer while this "
                    "writer ran; nothing was written; run the writer again"
                )
            self._check_appended(versioning)
            scenario.description = self.description
            scenario.extra = self.extra
            scenario.updated_at = now
            repo._flush_scenario(self.name, self.overwrite, replacing)
            repo._insert_tags(scenario.id, self.tags)
            connection = session.connection()
            by_difference = self._links_copied and replacing
            if self._links_copied and not replacing:
                # Deleted meanwhile (by a writer of this process): the links copied are not this write's.
                session.execute(sa.delete(LINKS_HISTORY).where(LINKS_HISTORY.c.write_id == versioning.write_id))
            # Per type, the entities of the scenario: every one has a position, staged or not.
            counts = {et.name: self._count(self._staging.positions[et.name]) for et in ENTITY_TYPES}
            if by_difference:
                staged = {name: self._staging.positions[name].name for name, count in counts.items() if count}
                repo._detach_members_not_in(scenario.id, staged)
            saved = {}
            for et in ENTITY_TYPES:
                rows = self._staging.rows[et.model.__table__.name]
                count = counts[et.name]
                if not count:
                    continue
                saved[et.name] = count
                table = et.model.__table__
                names = (rows.name, self._staging.positions[et.name].name)
                if early is not None:
                    # What the steps left: the stored rows the scenario changes, and the links unless they went.
                    changed = self._staging.changed
                    updates = session.execute(
                        sa.select(sa.func.count()).select_from(changed).where(changed.c.entity_type == et.name)
                    ).scalar_one()
                    if early and not updates:
                        continue
                    # The links to add: none if they went early; by difference those not linked yet.
                    new_links = (
                        f" AND NOT EXISTS (SELECT 1 FROM {LINKS.name} l WHERE l.scenario_id = "
                        f"CAST('{scenario.id}' AS UUID) AND l.entity_type = {literal(et.name)} AND l.entity_id = p.id)"
                        if by_difference
                        else ""
                    )
                    names = (
                        f"(SELECT b.* FROM {rows.name} b WHERE b.id IN "
                        f"(SELECT id FROM {changed.name} WHERE entity_type = {literal(et.name)}))",
                        f"(SELECT p.id, p.position FROM {names[1]} p WHERE NOT {early}{new_links})",
                    )
                self._dialect.publish_staged(connection, table, et.name, names, scenario.id, versioning)
            if replacing:
                repo._delete_detached_orphans(scenario.id, versioning)
            run = SaveRun(session, scenario.id, existing=False, now=now, versioning=versioning)
            run.saved, run.warnings = saved, self._warnings
            summary = repo._finish(scenario, run, "save")
            self._staging.metadata.drop_all(connection, checkfirst=False)
            return summary

    def _discard(self) -> None:
        """Undo a publish's steps and drop the staging tables (the block raised, or the publish did)."""
        if self._connection is None or self.token not in _RUNNING:
            return
        self._session.rollback()
        _undo_steps(self._connection, self.token, set(staging_tables(self._connection).get(self.token, [])))
        self._staging.metadata.drop_all(self._connection, checkfirst=True)
        self._session.commit()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        _RUNNING.discard(self.token)
        if connection is None:
            return
        try:
            if hasattr(self, "_session"):
                self._session.close()
            self._memory.close()
            self._dialect.release_writer(connection, _key(self.token))
            connection.commit()
        finally:
            connection.close()


def _id_ranges(parts: int, alias: str = "b", column: str = "id") -> list[str]:
    """SQL conditions on ``<alias>.<column>`` (a UUID) splitting the UUIDs into ``parts`` ranges of equal width, in order."""
    bounds = [f"CAST('{uuid.UUID(int=(k * 2**128) // parts)}' AS UUID)" for k in range(1, parts)]
    lows = [""] + [f"{alias}.{column} >= {b}" for b in bounds]
    highs = [f"{alias}.{column} < {b}" for b in bounds] + [""]
    return [" AND ".join(filter(None, pair)) or "TRUE" for pair in zip(lows, highs, strict=True)]


def _undo_steps(connection: sa.Connection, token: str, names: Iterable[str]) -> None:
    """Remove what the writer ``token`` (its tables: ``names``) wrote outside
    its staging tables, its publish not having committed (which drops them):
    the links of its new scenario (an id no scenario row holds), the links
    history of its overwrite, then the entities it appended (by an add or a
    publish step) that no scenario links. Commits on ``connection``."""
    staging = _Staging(token, keyed=False, appends=True)
    names = set(names)
    journal = (
        # SELECT *: a journal of a writer killed before the write_id column was added has none.
        connection.execute(sa.text(f"SELECT * FROM {staging.journal.name}")).mappings().all()
        if staging.journal.name in names
        else []
    )
    if journal:
        _undo_links(connection, journal[0]["scenario_id"], journal[0].get("write_id"))
    for et in ENTITY_TYPES:
        table = et.model.__table__
        if staging.appended[table.name].name in names:
            ids = sa.select(staging.appended[table.name].c.id)
        elif journal and staging.rows[table.name].name in names:
            # A writer of a release before the appended tables: its steps appended staged rows.
            ids = sa.select(staging.rows[table.name].c.id)
        else:
            continue
        linked = sa.exists().where(LINKS.c.entity_id == table.c.id, LINKS.c.entity_type == et.name)
        connection.execute(sa.delete(table).where(table.c.id.in_(ids), ~linked))
    connection.commit()


def _undo_links(connection: sa.Connection, scenario_id: uuid.UUID | None, write_id: uuid.UUID | None) -> None:
    """:func:`_undo_steps`' links: those of a new scenario no scenario row holds, the links history of a write not committed."""
    if scenario_id is not None:
        held = connection.execute(sa.select(Scenario.id).where(Scenario.id == scenario_id)).first()
        if held is None:
            connection.execute(sa.delete(LINKS).where(LINKS.c.scenario_id == scenario_id))
    if write_id is not None:
        # The links history of an overwrite whose write did not commit.
        written = connection.execute(sa.select(Write.id).where(Write.id == write_id)).first()
        if written is None:
            connection.execute(sa.delete(LINKS_HISTORY).where(LINKS_HISTORY.c.write_id == write_id))


def unpublished(
    connection: sa.Connection, et: EntityType, staged: Mapping[str, list[str]] | None = None
) -> sa.Select[Any] | None:
    """The ids of ``et``'s rows that batch writers (running, or killed and not
    cleaned up yet) wrote to its table before publishing, and no scenario
    links: stored, but in no scenario yet, so a read of the whole store leaves
    them out. None when there are none to leave out. ``staged``: what
    :func:`staging_tables` returned, for a caller asking for several types."""
    dialect = dialect_of(connection)
    if not (dialect.direct_append_rows or dialect.publish_step_rows):
        return None  # this backend's writers append nothing before they publish
    table = et.model.__table__
    names = [
        f"{STAGING_PREFIX}{token}_{table.name}__new"
        for token, tables in (staging_tables(connection) if staged is None else staged).items()
        if f"{STAGING_PREFIX}{token}_{table.name}__new" in tables
    ]
    if not names:
        return None
    ids = sa.union(*(sa.select(sa.table(name, sa.column("id", sa.Uuid)).c.id) for name in names)).subquery()
    # Linked under a scenario row: a publish's early links (its scenario row not there yet) do not count.
    linked = sa.exists().where(
        LINKS.c.entity_id == ids.c.id,
        LINKS.c.entity_type == et.name,
        LINKS.c.scenario_id.in_(sa.select(Scenario.id)),
    )
    return sa.select(ids.c.id).where(~linked)


def staging_tables(connection: sa.Connection) -> dict[str, list[str]]:
    """The batch writers' staging tables in the store's schema, by writer token."""
    rows = connection.execute(
        sa.text(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_catalog = current_database()"
        )
    ).scalars()
    found: dict[str, list[str]] = {}
    for name in rows:
        if name.startswith(STAGING_PREFIX):
            token = name[len(STAGING_PREFIX) :].split("_", 1)[0]
            found.setdefault(token, []).append(name)
    return found


def clean_up_writers(connection: sa.Connection) -> list[str]:
    """Drop the staging tables of batch writers that are gone (killed, or
    their process ended without finishing); returns the tables dropped.
    Writers still running, in this process or (PostgreSQL) any other, are
    left alone. Commits on ``connection``."""
    dialect = dialect_of(connection)
    dropped: list[str] = []
    for token, names in sorted(staging_tables(connection).items()):
        if token in _RUNNING or len(token) != 8:
            continue
        try:
            key = _key(token)
        except ValueError:
            continue  # not a writer's token: a table someone else named so
        if not dialect.claim_writer(connection, key):
            continue  # its writer's connection is alive
        try:
            _undo_steps(connection, token, names)
            for name in sorted(names):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {dialect_quote(connection, name)}")
            connection.commit()
            dropped += names
        finally:
            dialect.release_writer(connection, key)
            connection.commit()
    connection.commit()
    return sorted(dropped)


def dialect_quote(connection: sa.Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)
