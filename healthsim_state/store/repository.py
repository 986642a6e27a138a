"""The scenario repository: save, load, list and delete scenarios in one session.

Every mutating method runs in the session's transaction and leaves committing
to the caller (``session_scope`` commits on success). When a method fails,
for any reason, it rolls the session back before raising, so the database is
exactly as it was before the transaction began.

Entities are encoded, validated, given their UUIDs and resolved to their
parents in batches per type (parents first, in registry order); each batch
reaches the database in one set-based upsert (:mod:`healthsim_state.store.bulk`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import itertools
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.errors import (
    AmbiguousPatientError,
    InvalidArgumentError,
    Problem,
    ScenarioExistsError,
    ScenarioNotFoundError,
    ValidationError,
    WriteConflictError,
)
from healthsim_models.registry import ENTITY_TYPES, EntityType, RefStrength, entity_type
from healthsim_models.state import Scenario, ScenarioEntity, ScenarioTag
from healthsim_state.codec.checks import check_row, scenario_problems, tag_problem
from healthsim_state.codec.document import decode, encode, nest_flat
from healthsim_state.codec.identity import business_key, entity_uuid, identity_prefix
from healthsim_state.codec.layout import Layout, layout
from healthsim_state.codec.values import Invalid, json_text, shown, text_problem
from healthsim_state.store import bulk
from healthsim_state.store.transaction import write_conflict

#: Entities per type handled (encoded, validated, written) at a time.
DEFAULT_BATCH_SIZE = 20_000
#: Problems collected before a save stops looking for more.
MAX_PROBLEMS = 100
#: Scenario links collected (across types) before they are written.
LINK_BATCH_SIZE = 100_000

_LINKS = ScenarioEntity.__table__
_TAGS = ScenarioTag.__table__
_OLD_MEMBERS = "_hs_old_members"
#: First key of the PostgreSQL advisory locks on scenario names and ids (the
#: two-key form, apart from the migration lock's one-key form).
_SCENARIO_LOCK_SPACE = 0x48535343  # "HSSC"


@dataclass
class SaveSummary:
    """What a save or ``add_entities`` did."""

    id: uuid.UUID
    name: str
    counts: dict[str, int]  # entities in the scenario per type, after the call
    saved: dict[str, int]  # entities written by this call per type (after de-duplication)
    warnings: list[str] = field(default_factory=list)


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


class _SaveRun:
    """State of one save: the scenario, keys seen so far, problems, warnings."""

    def __init__(self, session: Session, scenario_id: uuid.UUID, existing: bool, now: dt.datetime) -> None:
        self.session = session
        self.scenario_id = scenario_id
        self.existing = existing  # the scenario already holds entities to resolve against
        self.now = now
        self.keys: dict[str, dict[tuple[str, ...], str]] = {}  # key -> entity UUID as hex
        self.next_position: dict[str, int] = {}
        self.problems: list[Problem] = []
        self.truncated = False
        self.warnings: list[str] = []
        self.saved: dict[str, int] = {}
        self.links = bulk.Links()

    def problem(self, type_name: str, position: int | None, ident: Any, fld: str, reason: str) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.truncated = True
            return
        # shown(): a refused id may be megabytes long, nested too deeply for str(), or hold a NUL or lone surrogate.
        text = ident if isinstance(ident, str) and ident.isprintable() and len(ident) <= 200 else shown(ident)
        self.problems.append(Problem(type_name, position, None if ident is None else text, fld, reason))

    @property
    def full(self) -> bool:
        return len(self.problems) >= MAX_PROBLEMS

    def key_map(self, et: EntityType) -> dict[tuple[str, ...], str]:
        """Business key -> UUID of the scenario's entities of type ``et`` (loaded once)."""
        keys = self.keys.get(et.name)
        if keys is None:
            keys = {}
            if self.existing:
                table = et.model.__table__
                query = (
                    sa.select(*(table.c[k] for k in et.business_key), table.c.id)
                    .join(_LINKS, _LINKS.c.entity_id == table.c.id)
                    .where(_LINKS.c.scenario_id == self.scenario_id, _LINKS.c.entity_type == et.name)
                )
                lay = layout(et.name)
                for row in self.session.execute(query).mappings().all():
                    key = business_key(lay, row)
                    if key is not None:
                        keys[key] = row["id"].hex
            self.keys[et.name] = keys
        return keys

    def positions(self, et: EntityType) -> Iterator[int]:
        start = self.next_position.get(et.name)
        if start is None:
            start = 0
            if self.existing:
                current = self.session.execute(
                    sa.select(sa.func.max(_LINKS.c.position)).where(
                        _LINKS.c.scenario_id == self.scenario_id, _LINKS.c.entity_type == et.name
                    )
                ).scalar_one()
                start = 0 if current is None else current + 1
        counter = itertools.count(start)
        while True:
            position = next(counter)
            self.next_position[et.name] = position + 1
            yield position


def _keys_needed_until() -> dict[str, int]:
    """Per type, the registry index of the last type that looks up its business
    keys: itself (uniqueness) or a child resolving a reference to it."""
    order = {et.name: i for i, et in enumerate(ENTITY_TYPES)}
    last = dict(order)
    for et in ENTITY_TYPES:
        for ref in et.references:
            last[ref.parent] = max(last[ref.parent], order[et.name])
    return last


def _input_streams(entities: Mapping[str, Any]) -> dict[str, list[Iterable[Any]]]:
    """Entity iterables per singular type name; unknown type names fail here."""
    if not isinstance(entities, Mapping):
        raise ValidationError(
            [Problem("(input)", None, None, "entities", "expected a mapping of entity type to entities")]
        )
    streams: dict[str, list[Iterable[Any]]] = {}
    problems = []
    for key, value in entities.items():
        et = entity_type(key)
        if isinstance(value, pa.Table):
            value = _arrow_rows(value)
        elif isinstance(value, Mapping | str | bytes) or not isinstance(value, Iterable):
            problems.append(
                Problem(et.name, None, None, "(entities)", f"expected a list of objects, got {type(value).__name__}")
            )
            continue
        streams.setdefault(et.name, []).append(value)
    if problems:
        raise ValidationError(problems)
    return streams


def _arrow_rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    for batch in table.to_batches(max_chunksize=DEFAULT_BATCH_SIZE):
        yield from batch.to_pylist()


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _lift_nested(
    et: EntityType, doc: Mapping[str, Any], position: int, run: _SaveRun, lifted: dict[str, list[Any]]
) -> Mapping[str, Any]:
    """The document without its inline children (:attr:`EntityType.nested`),
    which are queued in ``lifted`` under their own type (canonical-models §12.4)."""
    for nested in et.nested:
        if nested.field not in doc:
            continue
        children = doc[nested.field]
        doc = {k: v for k, v in doc.items() if k != nested.field}
        if children is None:
            continue
        if not isinstance(children, list):
            run.problem(et.name, position, doc.get("id"), nested.field, f"expected an array, got {shown(children)}")
            continue
        carried = {key: doc.get(key) for key in nested.carry}
        queue = lifted.setdefault(nested.child, [])
        for i, child in enumerate(children):
            if not isinstance(child, Mapping):
                run.problem(et.name, position, doc.get("id"), f"{nested.field}[{i}]", "expected an object")
                continue
            clash = next((k for k in nested.carry if k in child and child[k] != carried[k]), None)
            if clash is not None:
                run.problem(
                    et.name,
                    position,
                    doc.get("id"),
                    f"{nested.field}[{i}].{clash}",
                    f"{shown(child[clash])} differs from the {et.name}'s {clash} {shown(carried[clash])}",
                )
            else:
                queue.append({**carried, **child})
    return doc


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
        which replaces its membership, description, tags and ``extra``.
        ``scenario_id`` and ``created_at`` give a new scenario the id and
        creation time it had elsewhere (imports); by default it gets a fresh
        UUID and the current time.
        """
        with self._atomic(f"the save of scenario {shown(name)}"):
            problems = scenario_problems(name, description, extra)
            if problems:
                raise ValidationError(problems)
            tag_list = _clean_tags(tags)
            streams = _input_streams(entities)
            now = dt.datetime.now(dt.UTC)
            self._lock_scenario_keys(name, scenario_id)
            scenario = self._find(name, by_id=False, lock=True)
            if scenario is not None and not overwrite:
                raise ScenarioExistsError(
                    f"a scenario named {name!r} exists; pass overwrite=True to replace it, "
                    "or add_entities() to add to it"
                )
            replacing = scenario is not None  # overwrite of a missing scenario is a plain create
            if scenario is None:
                if scenario_id is not None and (taken := self.session.get(Scenario, scenario_id)) is not None:
                    raise ScenarioExistsError(
                        f"scenario id {scenario_id} already belongs to the scenario {taken.name!r}; "
                        "save under that name with overwrite=True, or without the id"
                    )
                scenario = Scenario(
                    id=scenario_id or uuid.uuid4(), name=name, created_at=created_at or now, entity_counts={}
                )
                self.session.add(scenario)
            else:
                self._detach_members(scenario.id)
                self.session.execute(sa.delete(_TAGS).where(_TAGS.c.scenario_id == scenario.id))
            scenario.description = description
            scenario.extra = dict(extra) if extra else None
            scenario.updated_at = now
            try:
                self.session.flush()
            except sa.exc.IntegrityError as exc:
                # Only when the caller's transaction does not see what a concurrent
                # one committed (REPEATABLE READ, SERIALIZABLE): the lock above
                # otherwise makes this writer wait and find the scenario.
                if replacing:
                    raise
                if overwrite or _constraint(exc) != "uq_scenarios_name":
                    raise WriteConflictError(
                        f"another writer created the scenario {name!r} (or one with its id) meanwhile; "
                        "nothing was written; run the save again"
                    ) from exc
                raise ScenarioExistsError(
                    f"a scenario named {name!r} exists (another writer created it meanwhile); "
                    "pass overwrite=True to replace it, or add_entities() to add to it"
                ) from exc
            self._insert_tags(scenario.id, tag_list)
            run = _SaveRun(self.session, scenario.id, existing=False, now=now)
            self._write_entities(run, streams)
            if replacing:
                self._delete_detached_orphans(scenario.id)
            return self._finish(scenario, run)

    def add_entities(self, name_or_id: str | uuid.UUID, entities: Mapping[str, Any]) -> SaveSummary:
        """Upsert more entities into an existing scenario (batched saves).

        References resolve against this call's entities and those the
        scenario already holds.
        """
        with self._atomic(f"adding entities to scenario {shown(str(name_or_id))}"):
            scenario = self._require(name_or_id, lock=True)
            streams = _input_streams(entities)
            now = dt.datetime.now(dt.UTC)
            run = _SaveRun(self.session, scenario.id, existing=True, now=now)
            self._write_entities(run, streams)
            scenario.updated_at = now
            return self._finish(scenario, run)

    def delete(self, name_or_id: str | uuid.UUID) -> bool:
        """Delete the scenario, its links and tags, and every entity no other
        scenario links. Returns whether the scenario existed."""
        with self._atomic(f"the deletion of scenario {shown(str(name_or_id))}"):
            scenario = self._find(name_or_id, lock=True)
            if scenario is None:
                return False
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
                self.session.execute(sa.delete(table).where(table.c.id.in_(mine), ~elsewhere))
            self.session.execute(sa.delete(_LINKS).where(_LINKS.c.scenario_id == scenario.id))
            self.session.execute(sa.delete(_TAGS).where(_TAGS.c.scenario_id == scenario.id))
            self.session.delete(scenario)
            self.session.flush()
            return True

    def add_tags(self, name_or_id: str | uuid.UUID, tags: Iterable[str]) -> list[str]:
        """Add tags (existing ones are kept once); returns the scenario's tags."""
        with self._atomic(f"tagging scenario {shown(str(name_or_id))}"):
            scenario = self._require(name_or_id, lock=True)
            current = set(self._tags_of(scenario.id))
            self._insert_tags(scenario.id, [t for t in _clean_tags(tags) if t not in current])
            scenario.updated_at = dt.datetime.now(dt.UTC)
            self.session.flush()
            return self._tags_of(scenario.id)

    def remove_tags(self, name_or_id: str | uuid.UUID, tags: Iterable[str]) -> list[str]:
        """Remove tags (absent ones are ignored); returns the scenario's tags."""
        with self._atomic(f"untagging scenario {shown(str(name_or_id))}"):
            scenario = self._require(name_or_id, lock=True)
            self.session.execute(
                sa.delete(_TAGS).where(_TAGS.c.scenario_id == scenario.id, _TAGS.c.tag.in_(_clean_tags(tags)))
            )
            scenario.updated_at = dt.datetime.now(dt.UTC)
            self.session.flush()
            return self._tags_of(scenario.id)

    # -- reads ----------------------------------------------------------------

    def exists(self, name_or_id: str | uuid.UUID) -> bool:
        return self._find(name_or_id) is not None

    def load(self, name_or_id: str | uuid.UUID) -> LoadedScenario:
        """The scenario's metadata and every entity, by type, as saved."""
        scenario = self._require(name_or_id)
        entities = {et.name: self._documents(scenario, et) for et in ENTITY_TYPES}
        return LoadedScenario(**vars(self._info(scenario, self._tags_of(scenario.id))), entities=entities)

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
        wanted = [tag] if isinstance(tag, str) else _clean_tags(tag)
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
            return bulk.scenario_arrow(self.session, table, self._require(name_or_id).id, et.name)
        # Usually a name: looked up inside the fetch, one statement. It reads
        # through the driver, so the session's pending changes go first.
        self.session.flush()
        frame = bulk.scenario_arrow(self.session, table, name_or_id, et.name)
        if frame.num_rows:
            return frame
        # No rows: no scenario of that name (it may be an id, or nothing), or
        # one without entities of this type.
        scenario = self._require(name_or_id)
        if scenario.name == name_or_id:
            return frame
        return bulk.scenario_arrow(self.session, table, scenario.id, et.name)

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
        for rows in bulk.iter_scenario_rows(
            self.session, et.model.__table__, scenario.id, et.name, batch_size or self.batch_size, page
        ):
            for row in rows:
                yield decode(lay, row)

    def patients_in_scenario(self, name_or_id: str | uuid.UUID) -> list[dict[str, Any]]:
        """The scenario's patient documents, in saved order."""
        return self._documents(self._require(name_or_id), entity_type("patient"))

    def get_patient(
        self, mrn_or_id: str | uuid.UUID, *, scenario: str | uuid.UUID | None = None
    ) -> dict[str, Any] | None:
        """One patient document by store UUID, document id or MRN, or None.

        An MRN is unique only within a scenario: when it matches patients of
        several scenarios, name the scenario.
        """
        table = entity_type("patient").model.__table__
        text = str(mrn_or_id)
        if _unstorable(text):
            return None  # no patient holds such text; PostgreSQL would refuse it as a parameter
        match = [table.c.external_id == text, table.c.mrn == text]
        with contextlib.suppress(ValueError):  # not a UUID: it can only be a document id or an MRN
            match.append(table.c.id == uuid.UUID(text))
        query = sa.select(table).where(sa.or_(*match))
        if scenario is not None:
            members = sa.select(_LINKS.c.entity_id).where(
                _LINKS.c.scenario_id == self._require(scenario).id, _LINKS.c.entity_type == "patient"
            )
            query = query.where(table.c.id.in_(members))
        rows = self.session.execute(query.limit(2)).mappings().all()
        if len(rows) > 1:
            raise AmbiguousPatientError(
                f"{text!r} matches patients in more than one scenario; pass scenario= to choose"
            )
        return decode(layout("patient"), rows[0]) if rows else None

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
        return {et.name: counts[et.name] for et in ENTITY_TYPES if counts.get(et.name)}

    def scenario_summary(self, name_or_id: str | uuid.UUID) -> ScenarioInfo:
        """The scenario's metadata, tags and counts, without its entities."""
        scenario = self._require(name_or_id)
        return self._info(scenario, self._tags_of(scenario.id))

    # -- internals ------------------------------------------------------------

    def _documents(self, scenario: Scenario, et: EntityType) -> list[dict[str, Any]]:
        if not scenario.entity_counts.get(et.name):
            return []
        lay = layout(et.name)
        rows = bulk.scenario_rows(self.session, et.model.__table__, scenario.id, et.name)
        return [decode(lay, row) for row in rows]

    def _atomic(self, what: str) -> _Atomic:
        return _Atomic(self.session, what)

    @property
    def _postgresql(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def _find(self, name_or_id: str | uuid.UUID, *, by_id: bool = True, lock: bool = False) -> Scenario | None:
        """The scenario by name (or id); ``lock``: on PostgreSQL, hold its row
        until the transaction ends, so that writers of one scenario take turns
        (and each sees what the one before it committed)."""
        lock = lock and self._postgresql  # a DuckDB file has one writer; DuckDB has no FOR UPDATE
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
        """On PostgreSQL, take turns with other writers of this scenario name
        (and id) until the transaction ends: two saves creating one new
        scenario could otherwise both find no scenario and both insert it.
        Keys are taken in one order (ids before names), so no two saves wait
        for each other in a circle."""
        if not self._postgresql:
            return
        keys = [f"name:{name}"] + ([] if scenario_id is None else [f"id:{scenario_id}"])
        for key in sorted(keys):
            digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=4).digest()
            self.session.execute(
                sa.text("SELECT pg_advisory_xact_lock(:space, :key)"),
                {"space": _SCENARIO_LOCK_SPACE, "key": int.from_bytes(digest, "big", signed=True)},
            )

    def _lock_rows(self, table: sa.Table, where: sa.ColumnElement[bool]) -> None:
        """On PostgreSQL, lock the rows of ``table`` matching ``where``, in id
        order, before deciding (in a later statement, which sees what other
        writers committed meanwhile) whether to delete them. The order is the
        one upserts lock rows in, so a delete and a save do not deadlock
        over them; and a row another writer is saving is deleted only once
        that writer has committed, and then only if no link holds it."""
        if self._postgresql:
            locked = sa.select(table.c.id).where(where).order_by(table.c.id).with_for_update().subquery()
            self.session.execute(sa.select(sa.func.count()).select_from(locked))

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

    def _delete_detached_orphans(self, scenario_id: uuid.UUID) -> None:
        """Overwrite, step 2: delete old members that no scenario links any more."""
        old = sa.table(_OLD_MEMBERS, sa.column("entity_type"), sa.column("entity_id"))
        for et in ENTITY_TYPES:
            table = et.model.__table__
            linked = sa.exists().where(_LINKS.c.entity_id == table.c.id, _LINKS.c.entity_type == et.name)
            was_member = sa.select(old.c.entity_id).where(old.c.entity_type == et.name)
            # Members this save kept are locked by its upsert already.
            kept = sa.exists().where(
                _LINKS.c.entity_id == table.c.id, _LINKS.c.entity_type == et.name, _LINKS.c.scenario_id == scenario_id
            )
            self._lock_rows(table, sa.and_(table.c.id.in_(was_member), ~kept))
            self.session.execute(sa.delete(table).where(table.c.id.in_(was_member), ~linked))
        self.session.connection().exec_driver_sql(f"DROP TABLE {_OLD_MEMBERS}")

    def _write_entities(self, run: _SaveRun, streams: dict[str, list[Iterable[Any]]]) -> None:
        with _fewer_collections():
            self._write_types(run, streams)

    def _write_types(self, run: _SaveRun, streams: dict[str, list[Iterable[Any]]]) -> None:
        lifted: dict[str, list[Any]] = {}  # children lifted out of their parents, by type
        keys_needed_until = _keys_needed_until()  # per save: the registry may have grown
        for index, et in enumerate(ENTITY_TYPES):
            # Key maps no later type resolves against are done with: free them,
            # since a million-entity save would otherwise hold them to the end.
            for name in [n for n in run.keys if keys_needed_until[n] < index]:
                del run.keys[name]
            sources = streams.get(et.name, [])
            if lifted.get(et.name):
                sources = [lifted.pop(et.name), *sources]
            if not sources:
                continue
            lay = layout(et.name)
            positions = run.positions(et)
            for batch in _batches(itertools.chain.from_iterable(sources), self.batch_size):
                self._write_batch(run, lay, batch, positions, lifted)
                if run.full:
                    break
        if run.problems:
            raise ValidationError(run.problems, truncated=run.truncated)
        self._write_links(run)

    def _write_links(self, run: _SaveRun) -> None:
        bulk.link(self.session, run.scenario_id, run.links)
        run.links = bulk.Links()

    def _write_batch(
        self, run: _SaveRun, lay: Layout, batch: list[Any], positions: Iterator[int], lifted: dict[str, list[Any]]
    ) -> None:
        et = lay.entity
        type_name = et.name
        by_id: dict[str, tuple[int, dict[str, Any]]] = {}
        prefix = identity_prefix(run.scenario_id, lay)
        for doc in batch:
            position = next(positions)
            if doc.__class__ is not dict and not isinstance(doc, Mapping):
                run.problem(type_name, position, None, "(entity)", f"expected an object, got {type(doc).__name__}")
                continue
            if et.nested:
                doc = _lift_nested(et, doc, position, run, lifted)
            doc = nest_flat(lay, doc)
            row, problems = encode(lay, doc, run.now)
            problems += check_row(lay, row)
            for fld, reason in problems:
                run.problem(type_name, position, doc.get("id"), fld, reason)
            row["id"] = entity_uuid(prefix, lay, doc, row)
            # Same identity twice in a batch: the last occurrence wins, at its position.
            by_id.pop(row["id"], None)
            by_id[row["id"]] = (position, row)

        if et.business_key:
            keys = run.key_map(et)
            for position, row in by_id.values():
                key = business_key(lay, row)
                if key is None:
                    continue
                holder = keys.setdefault(key, row["id"])
                if holder != row["id"]:
                    run.problem(
                        type_name,
                        position,
                        row["external_id"],
                        ", ".join(et.business_key),
                        f"{'/'.join(key)} is already used by another {type_name} in this scenario "
                        "(business keys are unique per scenario)",
                    )

        # encode gave extensions as text already; array columns are still lists.
        json_columns = [f.column for f in lay.fields if f.kind == "array"]
        parents = [(ref, run.key_map(entity_type(ref.parent))) for ref in et.references]
        for position, row in by_id.values():
            for ref, parent_keys in parents:
                value = row[ref.field]
                if value is None:
                    row[ref.uuid_column] = None
                    continue
                target = parent_keys.get((value if value.__class__ is str else str(value),))
                row[ref.uuid_column] = target
                if target is None:
                    self._unresolved(run, lay, ref, position, row)
            for column in json_columns:
                if row[column] is not None:
                    try:
                        row[column] = json_text(row[column])
                    except Invalid as exc:
                        run.problem(type_name, position, row["external_id"], column, str(exc))
            row["updated_at"] = run.now

        if run.problems:
            return  # keep validating later batches, write nothing
        rows = [row for _, row in by_id.values()]
        bulk.upsert(self.session, et.model.__table__, rows)
        run.links.add(type_name, list(by_id), [position for position, _ in by_id.values()])
        if len(run.links) >= LINK_BATCH_SIZE:
            self._write_links(run)
        run.saved[type_name] = run.saved.get(type_name, 0) + len(rows)

    @staticmethod
    def _unresolved(run: _SaveRun, lay: Layout, ref: Any, position: int, row: dict[str, Any]) -> None:
        """A reference that matched no parent: a warning if soft, else a problem."""
        value = row[ref.field]
        parent = entity_type(ref.parent)
        message = f"{value!r} matches no {parent.name}.{ref.parent_key} in this scenario"
        if ref.strength is RefStrength.SOFT:
            ident = f" (id {row['external_id']})" if row["external_id"] else ""
            run.warnings.append(f"{lay.entity.name}[{position}]{ident} {ref.field}: {message}; saved without a link")
        else:
            run.problem(lay.entity.name, position, row["external_id"], ref.field, message)

    def _finish(self, scenario: Scenario, run: _SaveRun) -> SaveSummary:
        counts = dict(
            self.session.execute(
                sa.select(_LINKS.c.entity_type, sa.func.count())
                .where(_LINKS.c.scenario_id == scenario.id)
                .group_by(_LINKS.c.entity_type)
            ).all()
        )
        scenario.entity_counts = {et.name: counts.get(et.name, 0) for et in ENTITY_TYPES}
        self.session.flush()
        return SaveSummary(
            id=scenario.id,
            name=scenario.name,
            counts={k: v for k, v in scenario.entity_counts.items() if v},
            saved=run.saved,
            warnings=run.warnings,
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


def _constraint(exc: sa.exc.IntegrityError) -> str | None:
    """The name of the constraint a PostgreSQL integrity error names (None on DuckDB)."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


#: Generation-0 threshold of the cyclic garbage collector while a save writes.
BULK_GC_THRESHOLD = 10_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect cyclic garbage less often while a save encodes and writes.

    A save allocates millions of short-lived rows, which at CPython's default
    threshold (700) set off full collections over the whole process heap:
    a tenth of a 10k-patient save. The rows hold no reference cycles, so
    collecting 14x less often only delays the cycles others make meanwhile.
    The caller's thresholds come back afterwards; a caller that turned
    automatic collection off (threshold 0) or set a higher one is left alone.
    """
    first, *older = gc.get_threshold()
    if first == 0 or first >= BULK_GC_THRESHOLD:
        yield
        return
    gc.set_threshold(BULK_GC_THRESHOLD, *older)
    try:
        yield
    finally:
        # Restore only what this save set: the caller may have set thresholds meanwhile.
        if gc.get_threshold()[0] == BULK_GC_THRESHOLD:
            gc.set_threshold(first, *older)


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


def _clean_tags(tags: Iterable[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if isinstance(tags, Mapping | bytes) or not isinstance(tags, Iterable):
        raise ValidationError(
            [Problem("scenario", None, None, "tags", f"expected a list of strings, got {type(tags).__name__}")]
        )
    cleaned: list[str] = []
    for tag in tags:
        reason = tag_problem(tag)
        if reason is not None:
            raise ValidationError([Problem("scenario", None, None, "tags", reason)])
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned
