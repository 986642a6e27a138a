"""The scenario repository: save, load, list and delete scenarios in one session.

Every mutating method runs in the session's transaction and leaves committing
to the caller (``session_scope`` commits on success). When a method fails,
for any reason, it rolls the session back before raising, so the database is
exactly as it was before the transaction began.

The repository keeps each scenario's own row, tags and membership (and
deletes the entities a scenario alone held); its entities are written by
the save pipeline (:mod:`healthsim_state.store.save`), and every statement
that differs per backend goes through the session's dialect
(:mod:`healthsim_state.store.dialects`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.errors import (
    AmbiguousEntityError,
    InvalidArgumentError,
    ScenarioExistsError,
    ScenarioNotFoundError,
    ValidationError,
    WriteConflictError,
)
from healthsim_models.history import DELETE, UPDATE
from healthsim_models.registry import ENTITY_TYPES, EntityType, entity_type
from healthsim_models.state import Scenario, ScenarioEntity, ScenarioTag
from healthsim_state.codec.checks import clean_tags, scenario_problems
from healthsim_state.codec.document import decode, decode_table
from healthsim_state.codec.layout import layout
from healthsim_state.codec.values import shown, text_problem
from healthsim_state.store import history as store_history
from healthsim_state.store.audit import audited, record_read
from healthsim_state.store.dialects import StoreDialect, dialect_of
from healthsim_state.store.dialects.base import literal
from healthsim_state.store.save import DEFAULT_BATCH_SIZE, SaveRun, input_streams, write_entities
from healthsim_state.store.transaction import write_conflict
from healthsim_state.store.tuning import fewer_collections
from healthsim_state.store.writer import staging_tables, unpublished

if TYPE_CHECKING:
    from healthsim_state.store.writer import ScenarioWriter

_LINKS = ScenarioEntity.__table__
_TAGS = ScenarioTag.__table__
_OLD_MEMBERS = "_hs_old_members"


@dataclass
class SaveSummary:
    """What a save or ``add_entities`` did."""

    id: uuid.UUID
    name: str
    counts: dict[str, int]  # entities in the scenario per type, after the call
    saved: dict[str, int]  # entities written by this call per type (after de-duplication)
    warnings: list[str] = field(default_factory=list)
    write_id: uuid.UUID | None = None  # the write this call was (a row of ``writes``, named by its history rows)


@dataclass
class ScenarioInfo:
    """A scenario's metadata, as ``list`` returns it."""

    id: uuid.UUID
    name: str
    description: str | None
    tags: list[str]
    entity_counts: dict[str, int]
    created_at: dt.datetime
    updated_at: dt.datetime
    extra: dict[str, Any] | None


@dataclass
class EntityVersion:
    """One version of an entity: its document, valid from ``valid_from`` until
    ``valid_to`` (None: the current version), when the write ``write_id``
    ended it by ``ended_by`` (``update`` or ``delete``)."""

    id: uuid.UUID
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    write_id: uuid.UUID | None
    ended_by: str | None
    document: dict[str, Any]


@dataclass
class LoadedScenario(ScenarioInfo):
    """A scenario with its entities: every type in catalogue order, in saved order."""

    entities: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _sorted_keys(value: Any) -> Any:
    """JSON with every object's keys sorted: one order on both backends."""
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


class ScenarioRepository:
    """Scenarios and their entities, through one SQLAlchemy session."""

    def __init__(self, session: Session, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.session = session
        self.batch_size = batch_size

    # -- writes ---------------------------------------------------------------

    def save(
        self,
        name: str,
        entities: Mapping[str, Any],
        *,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        overwrite: bool = False,
        extra: Mapping[str, Any] | None = None,
        scenario_id: uuid.UUID | None = None,
        created_at: dt.datetime | None = None,
    ) -> SaveSummary:
        """Save a scenario called ``name`` with ``entities`` (type -> iterable of documents).

        An existing scenario of that name is an error unless ``overwrite``,
        which replaces its membership, description, tags and ``extra``
        (keeping the replaced versions in the history, see :meth:`history`).
        ``scenario_id`` and ``created_at`` give a new scenario the id and
        creation time it had elsewhere (imports); by default it gets a fresh
        UUID and the current time.
        """
        return self._save(name, entities, description, tags, overwrite, extra, scenario_id, created_at, "save")

    def _save(
        self,
        name: str,
        entities: Mapping[str, Any],
        description: str | None,
        tags: Iterable[str] | None,
        overwrite: bool,
        extra: Mapping[str, Any] | None,
        scenario_id: uuid.UUID | None,
        created_at: dt.datetime | None,
        operation: str,
    ) -> SaveSummary:
        audit_operation = "scenario_restore" if operation == "restore" else operation
        with (
            audited(self.session, audit_operation, scenario=name) as event,
            self._atomic(f"the {operation} of scenario {shown(name)}"),
        ):
            problems = scenario_problems(name, description, extra)
            if problems:
                raise ValidationError(problems)
            tag_list = clean_tags(tags)
            streams = input_streams(entities)
            now = dt.datetime.now(dt.UTC)
            self._dialect  # noqa: B018  (a backend without a dialect is refused before anything is read)
            versioning = store_history.start_write(self.session, now)
            scenario, replacing = self._scenario_to_save(name, overwrite, scenario_id, created_at, versioning)
            scenario.description = description
            scenario.extra = dict(extra) if extra else None
            scenario.updated_at = now
            self._flush_scenario(name, overwrite, replacing)
            self._insert_tags(scenario.id, tag_list)
            run = SaveRun(self.session, scenario.id, existing=False, now=now, versioning=versioning)
            write_entities(run, streams, self.batch_size)
            if replacing:
                self._delete_detached_orphans(scenario.id, versioning)
            return event.wrote(self._finish(scenario, run, operation))

    def add_entities(self, name_or_id: str | uuid.UUID, entities: Mapping[str, Any]) -> SaveSummary:
        """Upsert more entities into an existing scenario (batched saves).

        References resolve against this call's entities and those the
        scenario already holds.
        """
        with (
            audited(self.session, "add", scenario=name_or_id) as event,
            self._atomic(f"adding entities to scenario {shown(str(name_or_id))}"),
        ):
            scenario = self._require(name_or_id, lock=True)
            streams = input_streams(entities)
            now = dt.datetime.now(dt.UTC)
            versioning = store_history.start_write(self.session, now)
            store_history.snapshot_scenario(self.session, scenario.id, self._tags_of(scenario.id), versioning, UPDATE)
            run = SaveRun(self.session, scenario.id, existing=True, now=now, versioning=versioning)
            write_entities(run, streams, self.batch_size)
            scenario.updated_at = now
            return event.wrote(self._finish(scenario, run, "add"))

    @contextlib.contextmanager
    def aside(self) -> Iterator[ScenarioRepository]:
        """This store through a session of its own, closed when the block ends:
        for what a caller reads before a :meth:`writer` starts. A transaction
        left open in this repository's session, even one that only read, keeps
        DuckDB from checkpointing the writer's publish steps, whose memory
        then grows with the scenario. An in-memory store (one connection) is
        read through this repository."""
        bind = self.session.get_bind()
        engine = bind.engine if isinstance(bind, sa.Connection) else bind
        if dialect_of(engine).in_memory(engine.url):
            yield self
            return
        with Session(bind=bind) as session:
            yield type(self)(session, batch_size=self.batch_size)

    def writer(
        self,
        name: str,
        *,
        overwrite: bool = False,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ScenarioWriter:
        """A writer that saves the scenario ``name`` batch by batch, with
        memory bounded however large it grows: ``with repo.writer(name) as
        w: w.add(batch)``. Nothing is visible until the block ends, when the
        scenario is published as :meth:`save` would save it; it commits on a
        connection of its own (:mod:`healthsim_state.store.writer`)."""
        from healthsim_state.store.writer import ScenarioWriter

        return ScenarioWriter(self, name, overwrite=overwrite, description=description, tags=tags, extra=extra)

    def delete(self, name_or_id: str | uuid.UUID) -> bool:
        """Delete the scenario, its links and tags, and every entity no other
        scenario links. Returns whether the scenario existed."""
        with (
            audited(self.session, "delete", scenario=name_or_id) as event,
            self._atomic(f"the deletion of scenario {shown(str(name_or_id))}"),
        ):
            scenario = self._find(name_or_id, lock=True)
            event.skip = scenario is None  # nothing to delete, nothing changed
            if scenario is None:
                return False
            event.scenario_id, event.scenario_name, event.counts = scenario.id, scenario.name, scenario.entity_counts
            versioning = store_history.start_write(self.session, dt.datetime.now(dt.UTC))
            event.write_id = versioning.write_id
            store_history.snapshot_scenario(self.session, scenario.id, self._tags_of(scenario.id), versioning, DELETE)
            for et in ENTITY_TYPES:
                table = et.model.__table__
                mine = sa.select(_LINKS.c.entity_id).where(
                    _LINKS.c.scenario_id == scenario.id, _LINKS.c.entity_type == et.name
                )
                self._lock_rows(table, table.c.id.in_(mine))
                elsewhere = sa.exists().where(
                    _LINKS.c.entity_id == table.c.id,
                    _LINKS.c.entity_type == et.name,
                    _LINKS.c.scenario_id != scenario.id,
                )
                store_history.snapshot_deleted(
                    self.session, table, sa.and_(table.c.id.in_(mine), ~elsewhere), versioning
                )
                self.session.execute(sa.delete(table).where(table.c.id.in_(mine), ~elsewhere))
            store_history.snapshot_links(self.session, scenario.id, versioning, DELETE)
            self.session.execute(sa.delete(_LINKS).where(_LINKS.c.scenario_id == scenario.id))
            self.session.execute(sa.delete(_TAGS).where(_TAGS.c.scenario_id == scenario.id))
            store_history.record_write(self.session, versioning, "delete", scenario.id, scenario.name)
            self.session.delete(scenario)
            self.session.flush()
            return True

    def add_tags(self, name_or_id: str | uuid.UUID, tags: Iterable[str]) -> list[str]:
        """Add tags (existing ones are kept once); returns the scenario's tags."""
        with (
            audited(self.session, "tag", scenario=name_or_id) as event,
            self._atomic(f"tagging scenario {shown(str(name_or_id))}"),
        ):
            scenario = self._require(name_or_id, lock=True)
            event.scenario_id, event.scenario_name = scenario.id, scenario.name
            event.details["tags"] = wanted = clean_tags(tags)
            versioning = self._tag_write(scenario, "tag")
            event.write_id = versioning.write_id
            current = set(self._tags_of(scenario.id))
            self._insert_tags(scenario.id, [t for t in wanted if t not in current])
            scenario.updated_at = versioning.at
            self.session.flush()
            return self._tags_of(scenario.id)

    def remove_tags(self, name_or_id: str | uuid.UUID, tags: Iterable[str]) -> list[str]:
        """Remove tags (absent ones are ignored); returns the scenario's tags."""
        with (
            audited(self.session, "untag", scenario=name_or_id) as event,
            self._atomic(f"untagging scenario {shown(str(name_or_id))}"),
        ):
            scenario = self._require(name_or_id, lock=True)
            event.scenario_id, event.scenario_name = scenario.id, scenario.name
            event.details["tags"] = wanted = clean_tags(tags)
            versioning = self._tag_write(scenario, "untag")
            event.write_id = versioning.write_id
            self.session.execute(sa.delete(_TAGS).where(_TAGS.c.scenario_id == scenario.id, _TAGS.c.tag.in_(wanted)))
            scenario.updated_at = versioning.at
            self.session.flush()
            return self._tags_of(scenario.id)

    def restore(self, name: str, as_of: dt.datetime) -> SaveSummary:
        """Save the scenario ``name`` as it was at ``as_of`` (:meth:`load` with
        ``as_of``), deleted since or not: same id, description, tags, extra
        and entities. What it holds now is replaced, and kept in the history."""
        with self._atomic(f"the restore of scenario {shown(name)}"):
            past = self.load(name, as_of=as_of)
            return self._save(
                past.name,
                past.entities,
                past.description,
                past.tags,
                True,
                past.extra,
                past.id,
                past.created_at,
                "restore",
            )

    def prune_history(self, older_than: dt.timedelta | None = None) -> dict[str, int]:
        """Delete the versions replaced more than ``older_than`` ago (default:
        the store's ``history.keep_days``; unset: nothing is deleted); rows
        deleted per history table. Reads before that time are refused since."""
        with audited(self.session, "history_prune") as event, self._atomic("the pruning of the history"):
            if older_than is None:
                days = store_history.keep_days(self.session)
                if days is None:
                    return {}
                older_than = dt.timedelta(days=days)
            if not isinstance(older_than, dt.timedelta) or older_than < dt.timedelta(0):
                raise InvalidArgumentError(f"older_than must be a timedelta of at least 0, got {shown(older_than)}")
            versioning = store_history.start_write(self.session, dt.datetime.now(dt.UTC))
            event.write_id = versioning.write_id
            deleted = store_history.prune(self.session, versioning.at - older_than, versioning)
            event.counts = deleted
            return deleted

    # -- reads ----------------------------------------------------------------

    def exists(self, name_or_id: str | uuid.UUID) -> bool:
        return self._find(name_or_id) is not None

    def load(
        self, name_or_id: str | uuid.UUID, *, as_of: dt.datetime | None = None, stream: bool = False
    ) -> LoadedScenario:
        """The scenario's metadata and every entity, by type, as saved; with
        ``as_of`` (naive: UTC), as they were at that time, from the history.
        With ``stream``, each type's entities are a lazy iterator
        (:meth:`iter_entities`) instead of a list: read one type to its end
        before the next, and while the session is open."""
        if as_of is not None:
            if stream:
                raise InvalidArgumentError("load(as_of=...) reads the history whole; it cannot stream")
            return self._load_as_of(name_or_id, as_of)
        scenario = self._require(name_or_id)
        if stream:
            entities: dict[str, Any] = {et.name: self.iter_entities(scenario.id, et.name) for et in ENTITY_TYPES}
        else:
            # One stretch of fewer collections for every type: the documents pile up, and a
            # full collection between two types would walk all those loaded so far.
            with fewer_collections():
                present = [et for et in ENTITY_TYPES if scenario.entity_counts.get(et.name)]
                tables = [(et.name, et.model.__table__) for et in present]
                entities = {et.name: [] for et in ENTITY_TYPES}
                fetched = self._dialect.scenario_tables(self.session, scenario.id, tables)
                with contextlib.closing(fetched):
                    for et, data in zip(present, fetched, strict=True):
                        entities[et.name] = decode_table(layout(et.name), data)
        record_read(self.session, "load", scenario=scenario.name, counts=scenario.entity_counts)
        return LoadedScenario(**vars(self._info(scenario, self._tags_of(scenario.id))), entities=entities)

    def history(self, type_name: str, key_or_id: str | uuid.UUID) -> list[EntityVersion]:
        """Every kept version of one entity (by store UUID, document id or
        one-field business key, as :meth:`find_entity`), oldest first; the
        current one, if the entity is stored, last. An entity never stored
        (or whose versions were pruned) has none."""
        et = entity_type(type_name)
        table = et.model.__table__
        entity_id = self._entity_id(et, key_or_id)
        if entity_id is None:
            return []
        lay = layout(et.name)
        return [
            EntityVersion(
                id=entity_id,
                valid_from=v.valid_from,
                valid_to=v.valid_to,
                write_id=v.write_id,
                ended_by=v.operation,
                document=decode(lay, v.row),
            )
            for v in store_history.versions(self.session, table, entity_id)
        ]

    def entity_as_of(self, type_name: str, key_or_id: str | uuid.UUID, as_of: dt.datetime) -> dict[str, Any] | None:
        """The document of one entity as it was at ``as_of``, or None when it
        was not stored then."""
        at = store_history.check_as_of(self.session, as_of)
        for version in self.history(type_name, key_or_id):
            if version.valid_from <= at and (version.valid_to is None or at < version.valid_to):
                return version.document
        return None

    def list(
        self,
        tag: str | Iterable[str] | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ScenarioInfo]:
        """Scenarios by name, with counts and tags, in one query.

        ``tag``: one tag or several, all of which a scenario must have;
        ``search``: a case-insensitive substring of the name or description.
        """
        _check_page(offset, limit)
        wanted = [tag] if isinstance(tag, str) else clean_tags(tag)
        if any(_unstorable(t) for t in wanted) or _unstorable(search):
            return []  # no scenario holds such text; PostgreSQL would refuse it as a parameter
        tag_lists = (
            sa.select(_TAGS.c.scenario_id, sa.func.array_agg(_TAGS.c.tag).label("tags"))
            .group_by(_TAGS.c.scenario_id)
            .subquery()
        )
        query = (
            sa.select(Scenario, tag_lists.c.tags)
            .outerjoin(tag_lists, tag_lists.c.scenario_id == Scenario.id)
            .order_by(Scenario.name)
            .limit(limit)
            .offset(offset)
        )
        if wanted:
            having_all = (
                sa.select(_TAGS.c.scenario_id)
                .where(_TAGS.c.tag.in_(wanted))
                .group_by(_TAGS.c.scenario_id)
                .having(sa.func.count(sa.distinct(_TAGS.c.tag)) == len(set(wanted)))
            )
            query = query.where(Scenario.id.in_(having_all))
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                sa.or_(
                    Scenario.name.ilike(pattern, escape="\\"),
                    Scenario.description.ilike(pattern, escape="\\"),
                )
            )
        return [self._info(s, sorted(t or [])) for s, t in self.session.execute(query).all()]

    def entities_frame(self, name_or_id: str | uuid.UUID, type_name: str) -> pa.Table:
        """The scenario's entities of one type as a pyarrow Table of the typed columns."""
        et = entity_type(type_name)
        table = et.model.__table__
        if not isinstance(name_or_id, str):
            return self._dialect.scenario_arrow(self.session, table, self._require(name_or_id).id, et.name)
        # Usually a name: looked up inside the fetch, one statement. It reads
        # through the driver, so the session's pending changes go first.
        self.session.flush()
        frame = self._dialect.scenario_arrow(self.session, table, name_or_id, et.name)
        if frame.num_rows:
            return frame
        # No rows: no scenario of that name (it may be an id, or nothing), or
        # one without entities of this type.
        scenario = self._require(name_or_id)
        if scenario.name == name_or_id:
            return frame
        return self._dialect.scenario_arrow(self.session, table, scenario.id, et.name)

    def iter_entities(
        self,
        name_or_id: str | uuid.UUID,
        type_name: str,
        *,
        batch_size: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The scenario's documents of one type, in saved order, streamed in
        batches (for exports of scenarios too large to load whole). ``offset``
        and ``limit`` select a page; the database skips the rows before it."""
        _check_page(offset, limit)
        scenario = self._require(name_or_id)
        et = entity_type(type_name)
        if not scenario.entity_counts.get(et.name) or limit == 0:
            return
        lay = layout(et.name)
        page = None if offset == 0 and limit is None else (offset, limit)
        for rows in self._dialect.iter_scenario_rows(
            self.session, et.model.__table__, scenario.id, et.name, batch_size or self.batch_size, page
        ):
            with fewer_collections():
                documents = [decode(lay, row) for row in rows]
            yield from documents

    def documents(self, name_or_id: str | uuid.UUID, type_name: str) -> list[dict[str, Any]]:
        """The scenario's documents of one type, in saved order."""
        return self._documents(self._require(name_or_id), entity_type(type_name))

    def find_entity(
        self, type_name: str, key_or_id: str | uuid.UUID, *, scenario: str | uuid.UUID | None = None
    ) -> dict[str, Any] | None:
        """One document of ``type_name`` by store UUID, document id or business
        key (when the key is one field: an MRN, a claim id), or None.

        A business key is unique only within a scenario: when it matches
        entities of several scenarios, name the scenario.
        """
        et = entity_type(type_name)
        table = et.model.__table__
        text = str(key_or_id)
        if _unstorable(text):
            return None  # no entity holds such text; PostgreSQL would refuse it as a parameter
        match = [table.c.external_id == text]
        if len(et.business_key) == 1 and isinstance(table.c[et.business_key[0]].type, sa.String):
            match.append(table.c[et.business_key[0]] == text)
        with contextlib.suppress(ValueError):  # not a UUID: it can only be a document id or a key
            match.append(table.c.id == uuid.UUID(text))
        query = sa.select(table).where(sa.or_(*match))
        pending = unpublished(self.session.connection(), et) if scenario is None else None
        if pending is not None:
            query = query.where(table.c.id.not_in(pending))
        if scenario is not None:
            members = sa.select(_LINKS.c.entity_id).where(
                _LINKS.c.scenario_id == self._require(scenario).id, _LINKS.c.entity_type == et.name
            )
            query = query.where(table.c.id.in_(members))
        rows = self.session.execute(query.limit(2)).mappings().all()
        if len(rows) > 1:
            raise AmbiguousEntityError(
                f"{text!r} matches {et.plural} in more than one scenario; pass scenario= to choose"
            )
        return decode(layout(et.name), rows[0]) if rows else None

    def patients_in_scenario(self, name_or_id: str | uuid.UUID) -> list[dict[str, Any]]:
        """The scenario's patient documents, in saved order: ``documents(name_or_id, "patient")``."""
        return self.documents(name_or_id, "patient")

    def get_patient(
        self, mrn_or_id: str | uuid.UUID, *, scenario: str | uuid.UUID | None = None
    ) -> dict[str, Any] | None:
        """One patient document by store UUID, document id or MRN, or None:
        ``find_entity("patient", mrn_or_id, scenario=scenario)``."""
        return self.find_entity("patient", mrn_or_id, scenario=scenario)

    def count_entities_by_type(self, name_or_id: str | uuid.UUID | None = None) -> dict[str, int]:
        """Entities per type in one scenario, or in the whole store; types with none omitted."""
        if name_or_id is not None:
            return dict(self._info(self._require(name_or_id), []).entity_counts)
        counts = dict(
            self.session.execute(
                sa.union_all(
                    *(
                        sa.select(sa.literal(et.name), sa.func.count()).select_from(et.model.__table__)
                        for et in ENTITY_TYPES
                    )
                )
            ).all()
        )
        connection = self.session.connection()
        staged = staging_tables(connection)
        for et in ENTITY_TYPES:
            pending = unpublished(connection, et, staged) if staged and counts.get(et.name) else None
            if pending is not None:
                table = et.model.__table__  # its rows the writers hold back, not their ids (a row may be gone)
                counts[et.name] -= self.session.execute(
                    sa.select(sa.func.count()).select_from(table).where(table.c.id.in_(pending))
                ).scalar_one()
        return {et.name: counts[et.name] for et in ENTITY_TYPES if counts.get(et.name)}

    def scenario_summary(self, name_or_id: str | uuid.UUID) -> ScenarioInfo:
        """The scenario's metadata, tags and counts, without its entities."""
        scenario = self._require(name_or_id)
        return self._info(scenario, self._tags_of(scenario.id))

    # -- internals ------------------------------------------------------------

    def _load_as_of(self, name_or_id: str | uuid.UUID, as_of: dt.datetime) -> LoadedScenario:
        at = store_history.check_as_of(self.session, as_of)
        self.session.flush()
        row = None if _unstorable(str(name_or_id)) else store_history.scenario_as_of(self.session, name_or_id, at)
        if row is None:
            raise ScenarioNotFoundError(
                f"no scenario named or with id {shown(str(name_or_id))} existed at {at.isoformat()}"
            )
        links = store_history.membership_as_of(self.session, row["id"], at)
        entities = {}
        for et in ENTITY_TYPES:
            lay = layout(et.name)
            rows = store_history.scenario_rows_as_of(self.session, et.model.__table__, et.name, links, at)
            entities[et.name] = [decode(lay, r) for r in rows]
        tags = self._tags_of(row["id"]) if row["current"] else sorted(row["tags"] or [])
        scenario = Scenario(**{c.name: row[c.name] for c in Scenario.__table__.columns})
        scenario.entity_counts = {name: len(docs) for name, docs in entities.items()}
        info = self._info(scenario, tags)
        return LoadedScenario(**vars(info), entities=entities)

    def _entity_id(self, et: EntityType, key_or_id: str | uuid.UUID) -> uuid.UUID | None:
        """The UUID of the one entity ``key_or_id`` names, now or in its history."""
        text = str(key_or_id)
        if _unstorable(text):
            return None
        with contextlib.suppress(ValueError):
            return uuid.UUID(text)
        keyed = len(et.business_key) == 1 and isinstance(et.model.__table__.c[et.business_key[0]].type, sa.String)

        def match(table: sa.Table) -> sa.ColumnElement[bool]:
            found = [table.c.external_id == text]
            if keyed:
                found.append(table.c[et.business_key[0]] == text)
            return sa.or_(*found)

        ids = store_history.entity_ids(self.session, et.model.__table__, match)
        pending = unpublished(self.session.connection(), et) if ids else None
        if pending is not None:  # a writer's entity no scenario shows yet: not one a key names
            held = pending.subquery()
            hidden = set(self.session.execute(sa.select(held.c.id).where(held.c.id.in_(ids))).scalars())
            ids = [i for i in ids if i not in hidden]
        if len(ids) > 1:
            raise AmbiguousEntityError(
                f"{text!r} names {len(ids)} {et.plural} (in several scenarios, or over time); give the store UUID"
            )
        return ids[0] if ids else None

    def _tag_write(self, scenario: Scenario, operation: str) -> store_history.Versioning:
        """A tag change's write: the scenario as it was kept, the write recorded."""
        versioning = store_history.start_write(self.session, dt.datetime.now(dt.UTC))
        store_history.snapshot_scenario(self.session, scenario.id, self._tags_of(scenario.id), versioning, UPDATE)
        store_history.record_write(self.session, versioning, operation, scenario.id, scenario.name)
        return versioning

    def _documents(self, scenario: Scenario, et: EntityType) -> list[dict[str, Any]]:
        if not scenario.entity_counts.get(et.name):
            return []
        lay = layout(et.name)
        # Like a save, a load allocates a row and a document per entity, none in a cycle.
        with fewer_collections():
            return decode_table(
                lay, self._dialect.scenario_table(self.session, et.model.__table__, scenario.id, et.name)
            )

    def _atomic(self, what: str) -> _Atomic:
        return _Atomic(self.session, what)

    @property
    def _dialect(self) -> StoreDialect:
        return dialect_of(self.session)

    def _scenario_to_save(
        self,
        name: str,
        overwrite: bool,
        scenario_id: uuid.UUID | None,
        created_at: dt.datetime | None,
        versioning: store_history.Versioning,
        *,
        links_kept: bool = False,
    ) -> tuple[Scenario, bool]:
        """The scenario row a save writes into, new or (``overwrite``) emptied of
        its members and tags, and whether it replaces one. ``links_kept``: a
        replaced scenario's links are left to the caller (their history copied
        already, replaced by difference: :meth:`_detach_members_not_in`)."""
        self._lock_scenario_keys(name, scenario_id)
        scenario = self._find(name, by_id=False, lock=True)
        if scenario is not None and not overwrite:
            raise ScenarioExistsError(
                f"a scenario named {name!r} exists; pass overwrite=True to replace it, or add_entities() to add to it"
            )
        if scenario is not None:
            store_history.snapshot_scenario(self.session, scenario.id, self._tags_of(scenario.id), versioning, UPDATE)
            if not links_kept:
                store_history.snapshot_links(self.session, scenario.id, versioning, UPDATE)
                self._detach_members(scenario.id)
            self.session.execute(sa.delete(_TAGS).where(_TAGS.c.scenario_id == scenario.id))
            return scenario, True
        # An overwrite of a missing scenario is a plain create.
        if scenario_id is not None and (taken := self.session.get(Scenario, scenario_id)) is not None:
            raise ScenarioExistsError(
                f"scenario id {scenario_id} already belongs to the scenario {taken.name!r}; "
                "save under that name with overwrite=True, or without the id"
            )
        scenario = Scenario(
            id=scenario_id or uuid.uuid4(), name=name, created_at=created_at or versioning.at, entity_counts={}
        )
        self.session.add(scenario)
        return scenario, False

    def _flush_scenario(self, name: str, overwrite: bool, replacing: bool) -> None:
        """Write the scenario row; a new one that another writer created
        meanwhile is refused, naming what to do."""
        try:
            self.session.flush()
        except sa.exc.IntegrityError as exc:
            # Only when the caller's transaction does not see what a concurrent
            # one committed (REPEATABLE READ, SERIALIZABLE): the lock of
            # _scenario_to_save otherwise makes this writer wait and find the scenario.
            if replacing:
                raise
            if overwrite or self._dialect.violated_constraint(exc) != "uq_scenarios_name":
                raise WriteConflictError(
                    f"another writer created the scenario {name!r} (or one with its id) meanwhile; "
                    "nothing was written; run the save again"
                ) from exc
            raise ScenarioExistsError(
                f"a scenario named {name!r} exists (another writer created it meanwhile); "
                "pass overwrite=True to replace it, or add_entities() to add to it"
            ) from exc

    def _find(self, name_or_id: str | uuid.UUID, *, by_id: bool = True, lock: bool = False) -> Scenario | None:
        """The scenario by name (or id); ``lock``: where the backend locks rows
        (PostgreSQL), hold its row until the transaction ends, so that writers of one scenario take turns
        (and each sees what the one before it committed)."""
        lock = lock and self._dialect.row_locks
        if isinstance(name_or_id, uuid.UUID):
            return self._get(name_or_id, lock)
        if _unstorable(name_or_id):
            return None  # no scenario has such a name; PostgreSQL would refuse it as a parameter
        query = sa.select(Scenario).where(Scenario.name == name_or_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        scenario = self.session.scalars(query).one_or_none()
        if scenario is None and by_id:
            try:
                as_uuid = uuid.UUID(str(name_or_id))
            except ValueError:
                return None
            scenario = self._get(as_uuid, lock)
        return scenario

    def _get(self, scenario_id: uuid.UUID, lock: bool) -> Scenario | None:
        if lock:
            return self.session.get(Scenario, scenario_id, with_for_update=True, populate_existing=True)
        return self.session.get(Scenario, scenario_id)

    def _lock_scenario_keys(self, name: str, scenario_id: uuid.UUID | None) -> None:
        """Take turns with other writers of this scenario name (and id) until
        the transaction ends, where writers run side by side: two saves
        creating one new scenario could otherwise both find no scenario and
        both insert it. Keys are taken in one order (ids before names), so no
        two saves wait for each other in a circle."""
        keys = [f"name:{name}"] + ([] if scenario_id is None else [f"id:{scenario_id}"])
        self._dialect.lock_keys(self.session, sorted(keys))

    def _lock_rows(self, table: sa.Table, where: sa.ColumnElement[bool]) -> None:
        """Lock the rows of ``table`` matching ``where`` (where writers run side
        by side), in id order, before deciding (in a later statement, which
        sees what other writers committed meanwhile) whether to delete them.
        The order is the one upserts lock rows in, so a delete and a save do
        not deadlock over them; and a row another writer is saving is deleted
        only once that writer has committed, and then only if no link holds it."""
        self._dialect.lock_rows(self.session, table, where)

    def _require(self, name_or_id: str | uuid.UUID, *, lock: bool = False) -> Scenario:
        scenario = self._find(name_or_id, lock=lock)
        if scenario is None:
            raise ScenarioNotFoundError(
                f"no scenario named or with id {shown(str(name_or_id))}; list them with list_scenarios() "
                "or 'healthsim scenario list'",
                name=str(name_or_id),
            )
        return scenario

    def _tags_of(self, scenario_id: uuid.UUID) -> list[str]:
        return sorted(self.session.scalars(sa.select(_TAGS.c.tag).where(_TAGS.c.scenario_id == scenario_id)))

    def _insert_tags(self, scenario_id: uuid.UUID, tags: list[str]) -> None:
        if tags:
            self.session.execute(sa.insert(_TAGS), [{"scenario_id": scenario_id, "tag": t} for t in tags])

    @staticmethod
    def _info(scenario: Scenario, tags: list[str]) -> ScenarioInfo:
        return ScenarioInfo(
            id=scenario.id,
            name=scenario.name,
            description=scenario.description,
            tags=tags,
            entity_counts={
                et.name: scenario.entity_counts[et.name] for et in ENTITY_TYPES if scenario.entity_counts.get(et.name)
            },
            created_at=scenario.created_at,
            updated_at=scenario.updated_at,
            extra=_sorted_keys(scenario.extra),  # PostgreSQL's JSONB reorders keys; DuckDB keeps them
        )

    def _detach_members(self, scenario_id: uuid.UUID) -> None:
        """Overwrite, step 1: remember the old members, then unlink them."""
        connection = self.session.connection()
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_OLD_MEMBERS}")
        connection.execute(
            sa.text(
                f"CREATE TEMPORARY TABLE {_OLD_MEMBERS} AS "
                f"SELECT entity_type, entity_id FROM {_LINKS.name} WHERE scenario_id = :sid"
            ),
            {"sid": scenario_id},
        )
        self.session.execute(sa.delete(_LINKS).where(_LINKS.c.scenario_id == scenario_id))

    def _detach_members_not_in(self, scenario_id: uuid.UUID, kept: Mapping[str, str]) -> None:
        """Overwrite by difference, step 1: remember and unlink the members of
        the scenario not among ``kept`` (type -> a table of ``id`` and
        ``position``, the scenario's new members), give the members that stay
        their new positions; the links to add are those of ``kept`` not
        linked yet. A scenario replaced by mostly the same entities (a demo
        run again, a folder imported again) writes little."""
        connection = self.session.connection()
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_OLD_MEMBERS}")
        sid = f"CAST('{scenario_id}' AS UUID)"
        mine = f"l.scenario_id = {sid}"
        parts = [
            f"SELECT l.entity_type, l.entity_id FROM {_LINKS.name} l WHERE {mine} AND l.entity_type = {literal(name)}"
            + (f" AND NOT EXISTS (SELECT 1 FROM {kept[name]} p WHERE p.id = l.entity_id)" if name in kept else "")
            for name in (et.name for et in ENTITY_TYPES)
        ]
        connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {_OLD_MEMBERS} AS {' UNION ALL '.join(parts)}")
        connection.exec_driver_sql(
            f"DELETE FROM {_LINKS.name} WHERE scenario_id = {sid} AND EXISTS (SELECT 1 FROM {_OLD_MEMBERS} o "
            f"WHERE o.entity_type = {_LINKS.name}.entity_type AND o.entity_id = {_LINKS.name}.entity_id)"
        )
        for name, positions in kept.items():
            connection.exec_driver_sql(
                f"UPDATE {_LINKS.name} SET position = p.position FROM {positions} p WHERE "
                f"{_LINKS.name}.scenario_id = {sid} AND {_LINKS.name}.entity_type = {literal(name)} "
                f"AND {_LINKS.name}.entity_id = p.id AND {_LINKS.name}.position <> p.position"
            )

    def _delete_detached_orphans(self, scenario_id: uuid.UUID, versioning: store_history.Versioning) -> None:
        """Overwrite, step 2: delete old members that no scenario links any more."""
        old = sa.table(_OLD_MEMBERS, sa.column("entity_type"), sa.column("entity_id"))
        # Only types with members this save dropped can have orphans: one query
        # finds them, so an overwrite that keeps a type's members skips it.
        relinked = sa.exists().where(
            _LINKS.c.scenario_id == scenario_id,
            _LINKS.c.entity_type == old.c.entity_type,
            _LINKS.c.entity_id == old.c.entity_id,
        )
        dropped = set(self.session.execute(sa.select(old.c.entity_type).where(~relinked).distinct()).scalars())
        for et in ENTITY_TYPES:
            if et.name not in dropped:
                continue
            table = et.model.__table__
            linked = sa.exists().where(_LINKS.c.entity_id == table.c.id, _LINKS.c.entity_type == et.name)
            was_member = sa.select(old.c.entity_id).where(old.c.entity_type == et.name)
            # Members this save kept are locked by its upsert already.
            kept = sa.exists().where(
                _LINKS.c.entity_id == table.c.id, _LINKS.c.entity_type == et.name, _LINKS.c.scenario_id == scenario_id
            )
            self._lock_rows(table, sa.and_(table.c.id.in_(was_member), ~kept))
            store_history.snapshot_deleted(
                self.session, table, sa.and_(table.c.id.in_(was_member), ~linked), versioning
            )
            self.session.execute(sa.delete(table).where(table.c.id.in_(was_member), ~linked))
        self.session.connection().exec_driver_sql(f"DROP TABLE {_OLD_MEMBERS}")

    def _finish(self, scenario: Scenario, run: SaveRun, operation: str) -> SaveSummary:
        per_type = self.session.execute(
            sa.select(_LINKS.c.entity_type, sa.func.count(), sa.func.max(_LINKS.c.position))
            .where(_LINKS.c.scenario_id == scenario.id)
            .group_by(_LINKS.c.entity_type)
        ).all()
        counts = {name: count for name, count, _ in per_type}
        scenario.entity_counts = {et.name: counts.get(et.name, 0) for et in ENTITY_TYPES}
        self.session.flush()
        assert run.versioning is not None, "every save is a write"
        # The links' positions after this write bound the scenario's membership at later times.
        positions = {name: int(highest) + 1 for name, _, highest in per_type}
        store_history.record_write(self.session, run.versioning, operation, scenario.id, scenario.name, positions)
        return SaveSummary(
            id=scenario.id,
            name=scenario.name,
            counts={k: v for k, v in scenario.entity_counts.items() if v},
            saved=run.saved,
            warnings=run.warnings,
            write_id=run.versioning.write_id,
        )


class _Atomic:
    """Roll the session back when the block raises, so nothing is half-written;
    a collision with another writer becomes :class:`WriteConflictError`
    (``what``: the operation, as its message names it)."""

    def __init__(self, session: Session, what: str) -> None:
        self.session = session
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.session.rollback()
            if isinstance(exc, WriteConflictError):
                return  # raised on purpose, with its own message
            conflict = write_conflict(exc, self.what)
            if conflict is not None:
                raise conflict from exc


def _check_page(offset: Any, limit: Any) -> None:
    """``offset`` and ``limit`` (None: no limit) as both backends take them:
    whole numbers that fit a signed 64-bit integer, never negative."""
    for argument, value in (("offset", offset), ("limit", limit)):
        if value is None and argument == "limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise InvalidArgumentError(f"{argument} must be a whole number from 0 to 2**63-1, got {shown(value)}")


def _unstorable(text: Any) -> bool:
    """Whether ``text`` is a string no backend stores (a NUL, a lone surrogate), so nothing stored matches it."""
    return isinstance(text, str) and text_problem(text) is not None
