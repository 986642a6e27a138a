"""The save pipeline: entity documents in, rows and scenario links written.

:func:`input_streams` checks what a caller passed; :func:`write_entities`
then takes the types in registry order (parents before children), each in
batches of :data:`DEFAULT_BATCH_SIZE` documents, through these stages:

1. :func:`_encode_batch`: each document is shape-checked, its inline children
   (:attr:`EntityType.nested`) lifted out to be saved under their own type,
   encoded into a row and validated, and given its UUID; the same identity
   twice in a batch keeps the last.
2. :func:`_check_business_keys`: business keys stay unique per scenario.
3. :func:`_complete_rows`: references resolve to their parents' UUIDs,
   array columns become JSON text, ``updated_at`` is set.
4. :func:`_write_rows`: one set-based upsert through the backend's dialect,
   which first copies the stored rows the batch changes into the type's
   history table (one ``INSERT ... SELECT``, :mod:`.history`) and leaves
   rows stored unchanged as they are; the rows' scenario links are collected and written every
   :data:`LINK_BATCH_SIZE` links and at the end (:func:`_write_links`).

Stages 1-3 run column by column (:mod:`healthsim_state.codec.columns`) for a
batch given as a ``pyarrow.Table`` (a type's only input), or of dicts that
Arrow can hold exactly: :func:`_write_arrow_batch`. A batch that fails any
check there, or that the columns cannot judge, takes the stages above row
by row, which words its problems; the two give the same rows and problems.

Problems are collected (up to :data:`MAX_PROBLEMS`) across batches, and once
there is one nothing more is written: the save ends in ``ValidationError``
and the caller's rollback. Everything runs in the session's transaction.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.errors import Problem, ValidationError
from healthsim_models.registry import ENTITY_TYPES, EntityType, RefStrength, entity_type
from healthsim_state.codec.checks import check_row
from healthsim_state.codec.columns import Encoded, absent_nulls, documents_table, encode_columns, present_documents
from healthsim_state.codec.document import encode, nest_flat
from healthsim_state.codec.identity import (
    business_key,
    content_digest,
    content_digests,
    entity_uuid,
    entity_uuids,
    identity_prefix,
    key_of,
)
from healthsim_state.codec.layout import Layout, layout
from healthsim_state.codec.values import Invalid, json_text, shown
from healthsim_state.store.batches import LINKS, Links, arrow_schema
from healthsim_state.store.dialects import StoreDialect, dialect_of
from healthsim_state.store.history import Versioning
from healthsim_state.store.tuning import fewer_collections

#: Entities per type handled (encoded, validated, written) at a time.
DEFAULT_BATCH_SIZE = 20_000
#: Problems collected before a save stops looking for more.
MAX_PROBLEMS = 100
#: Scenario links collected (across types) before they are written.
LINK_BATCH_SIZE = 100_000

#: One batch's rows by entity UUID (hex): (position in the scenario, row).
Rows = dict[str, tuple[int, dict[str, Any]]]


def key_select(et: EntityType, table: sa.Table) -> sa.Select[Any]:
    """The business-key columns of ``et``'s rows in ``table`` and their ids as
    32 hex digits, for :func:`keys_found`."""
    # The hex id from SQL and rows fetched as tuples: per row, a UUID object and
    # a mapping cost more than the look-up (a Synthea import's 200k keys).
    return sa.select(*(table.c[k] for k in et.business_key), sa.func.replace(sa.cast(table.c.id, sa.String), "-", ""))


def keys_found(session: Session, query: sa.Select[Any]) -> dict[tuple[str, ...], str]:
    """Business key -> id (hex) of the rows of a :func:`key_select` query."""
    rows = session.execute(query).all()
    if len(query.selected_columns) == 2:  # most keys: one column, most often text (a Synthea import's 200k)
        return {
            (value if value.__class__ is str else key_of([value])[0],): entity_id  # type: ignore[index]
            for value, entity_id in rows
            if value is not None
        }
    found: dict[tuple[str, ...], str] = {}
    for *columns, entity_id in rows:
        key = key_of(columns)
        if key is not None:
            found[key] = entity_id
    return found


class SaveRun:
    """State of one save: the scenario, keys seen so far, problems, warnings."""

    def __init__(
        self,
        session: Session,
        scenario_id: uuid.UUID,
        existing: bool,
        now: dt.datetime,
        versioning: Versioning | None = None,
    ) -> None:
        self.session = session
        self.versioning = versioning  # the write this save is; None: no history kept
        self.dialect: StoreDialect = dialect_of(session)
        self.scenario_id = scenario_id
        self.existing = existing  # the scenario already holds entities to resolve against
        self.now = now
        self.keys: dict[str, dict[tuple[str, ...], str]] = {}  # key -> entity UUID as hex
        self.next_position: dict[str, int] = {}
        self.problems: list[Problem] = []
        self.truncated = False
        self.warnings: list[str] = []
        self.saved: dict[str, int] = {}
        self.links = Links()

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
                    key_select(et, table)
                    .join(LINKS, LINKS.c.entity_id == table.c.id)
                    .where(LINKS.c.scenario_id == self.scenario_id, LINKS.c.entity_type == et.name)
                )
                keys = keys_found(self.session, query)
            self.keys[et.name] = keys
        return keys

    def prepare_keys(self, lay: Layout, distinct: Callable[[str], set[str]]) -> None:
        """Called with each encoded batch (``distinct(field)``: the batch's
        distinct values of a field but null, as text) before its keys are checked and its references resolved,
        on the row and the column path alike: a run that cannot hold a whole
        scenario's keys (the batch writer, :mod:`.writer`) fills :attr:`keys`
        here with those the batch needs. A save's run loads them whole in
        :meth:`key_map`."""

    def positions(self, et: EntityType) -> Iterator[int]:
        start = self.next_position.get(et.name)
        if start is None:
            start = 0
            if self.existing:
                current = self.session.execute(
                    sa.select(sa.func.max(LINKS.c.position)).where(
                        LINKS.c.scenario_id == self.scenario_id, LINKS.c.entity_type == et.name
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


# -- input ---------------------------------------------------------------------


def input_streams(entities: Mapping[str, Any]) -> dict[str, list[Iterable[Any]]]:
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
            value = ArrowInput(value)
        elif not isinstance(value, ArrowInput) and (
            isinstance(value, Mapping | str | bytes) or not isinstance(value, Iterable)
        ):
            problems.append(
                Problem(et.name, None, None, "(entities)", f"expected a list of objects, got {type(value).__name__}")
            )
            continue
        streams.setdefault(et.name, []).append(value)
    if problems:
        raise ValidationError(problems)
    return streams


class ArrowInput:
    """Documents given to a save as Arrow: a ``pyarrow.Table``, or (from an
    importer) an iterable of tables or record batches read once. Encoded
    column by column when a type's input is only Arrow
    (:func:`_write_arrow_batch`), else read as the dicts of its rows.

    ``nulls_absent``: a null means the key is not given, as a CSV's empty
    cell does (:func:`~healthsim_state.codec.columns.absent_nulls`), rather
    than a null given on purpose, which the store keeps as such."""

    def __init__(self, source: pa.Table | Iterable[pa.Table | pa.RecordBatch], *, nulls_absent: bool = False) -> None:
        self.source = source
        self.nulls_absent = nulls_absent

    def documents(self, lay: Layout) -> Iterator[dict[str, Any]]:
        for part in self.slices(DEFAULT_BATCH_SIZE):
            yield from self.read(lay, part)[1]()

    def read(self, lay: Layout, part: pa.Table) -> tuple[pa.Table, Callable[[], list[Any]], dict[str, list[bool]]]:
        """A slice as encode_columns takes it: the table, its rows as documents (made when asked), absent keys."""
        if not self.nulls_absent:
            return part, part.to_pylist, {}
        part, absent = absent_nulls(lay, part)
        return part, lambda: present_documents(part, absent), absent

    def slices(self, size: int) -> Iterator[pa.Table]:
        """The input in slices of at most ``size`` rows: the batches dict input would make."""
        parts = [self.source] if isinstance(self.source, pa.Table) else self.source
        for part in parts:
            table = pa.Table.from_batches([part]) if isinstance(part, pa.RecordBatch) else part
            for start in range(0, table.num_rows, size):
                yield table.slice(start, size)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# -- the pipeline --------------------------------------------------------------


def write_entities(run: SaveRun, streams: dict[str, list[Iterable[Any]]], batch_size: int) -> None:
    """Encode, validate, resolve and write every entity of ``streams`` into the
    run's scenario, then its links; raises ``ValidationError`` with the
    problems found, having written nothing since the first."""
    with fewer_collections():
        _write_types(run, streams, batch_size)


def _write_types(run: SaveRun, streams: dict[str, list[Iterable[Any]]], batch_size: int) -> None:
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
        if all(isinstance(source, ArrowInput) for source in sources):
            for source in sources:
                for part in source.slices(batch_size):
                    table, documents, absent = source.read(lay, part)
                    _write_arrow_batch(run, lay, table, positions, lifted, documents, absent)
                    if run.full:
                        break
                if run.full:
                    break
            continue
        dicts = (s.documents(lay) if isinstance(s, ArrowInput) else s for s in sources)
        for batch in _batches(itertools.chain.from_iterable(dicts), batch_size):
            given = None if run.problems else documents_table(lay, batch)
            if given is None:
                _write_batch(run, lay, batch, positions, lifted)
            else:
                _write_arrow_batch(
                    run,
                    lay,
                    given.table,
                    positions,
                    lifted,
                    lambda b=batch: b,
                    given.absent,
                    from_dicts=True,
                    plain=given.plain,
                )
            if run.full:
                break
    if run.problems:
        raise ValidationError(run.problems, truncated=run.truncated)
    _write_links(run)


def _write_batch(
    run: SaveRun, lay: Layout, batch: list[Any], positions: Iterator[int], lifted: dict[str, list[Any]]
) -> None:
    rows = _encode_batch(run, lay, batch, positions, lifted)
    run.prepare_keys(lay, lambda field: {str(row[field]) for _, row in rows.values() if row[field] is not None})
    if lay.entity.business_key:
        _check_business_keys(run, lay, rows)
    _complete_rows(run, lay, rows)
    if run.problems:
        return  # keep validating later batches, write nothing
    _write_rows(run, lay.entity, rows)


def _write_arrow_batch(
    run: SaveRun,
    lay: Layout,
    part: pa.Table,
    positions: Iterator[int],
    lifted: dict[str, list[Any]],
    documents: Callable[[], list[Any]],
    absent: dict[str, list[bool]],
    *,
    from_dicts: bool = False,
    plain: bool = False,
) -> None:
    """Stages 1-4 for a slice of Arrow input, or of dicts made one
    (:func:`~healthsim_state.codec.columns.documents_table`, ``from_dicts``),
    column by column (:func:`~healthsim_state.codec.columns.encode_columns`);
    ``documents()`` gives the slice's documents, ``absent`` the keys they
    lack. A slice that does not pass every check that way goes row by row
    through :func:`_write_batch`, which words its problems as for dict input;
    so does every slice once the save has a problem (nothing more is written).
    ``plain``: the dicts read back from the table as given (:attr:`Documents.plain`)."""
    et = lay.entity
    encoded = None if run.problems else encode_columns(lay, part, run.now, absent=absent, from_dicts=from_dicts)
    # The slice's own columns are its documents' values (not so for dicts Arrow may have converted).
    given = None if (from_dicts and not plain) or absent else part
    ready = None if encoded is None else _identify(run, lay, encoded, documents, given)
    data = None if encoded is None or ready is None else _batch_table(run, et, encoded, ready)
    if encoded is None or ready is None or data is None:
        _write_batch(run, lay, documents(), positions, lifted)
        return
    # Checked and ready: only now is anything of the run's state changed.
    ids, keys, references = ready
    at = list(itertools.islice(positions, encoded.rows))
    if keys is not None:
        run.key_map(et).update((k, i) for k, i in zip(keys, ids, strict=True) if k is not None)
    if any(unresolved for _, _, unresolved in references):
        # Soft references only (hard ones went row by row); warned in row order as _complete_rows does.
        resolved = [(ref, encoded.values(ref.field), targets.to_pylist()) for ref, targets, _ in references]
        for i in range(encoded.rows):
            for ref, values, targets in resolved:
                if targets[i] is None and values[i] is not None:
                    _unresolved(run, lay, ref, at[i], {ref.field: values[i], "external_id": encoded.external_ids[i]})
    run.dialect.upsert_arrow(run.session, et.model.__table__, data, versioning=run.versioning)
    run.links.add(et.name, ids, at)
    if len(run.links) >= LINK_BATCH_SIZE:
        _write_links(run)
    run.saved[et.name] = run.saved.get(et.name, 0) + encoded.rows


def _batch_table(run: SaveRun, et: EntityType, encoded: Encoded, ready: tuple[Any, ...]) -> pa.Table | None:
    """The rows to write, in the table's Arrow schema (None if a column will not cast)."""
    ids, _, references = ready
    columns = dict(encoded.columns)
    columns["id"] = pa.array(ids, type=pa.string())
    for ref, targets, _ in references:
        columns[ref.uuid_column] = targets
    schema = arrow_schema(et.model.__table__)
    columns["updated_at"] = pa.repeat(pa.scalar(run.now, type=schema.field("updated_at").type), encoded.rows)
    try:
        return pa.Table.from_arrays([columns[f.name].cast(f.type) for f in schema], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _identify(
    run: SaveRun, lay: Layout, encoded: Encoded, documents: Callable[[], list[Any]], given: pa.Table | None = None
) -> tuple[list[str], list[tuple[str, ...] | None] | None, list[tuple[Any, pa.Array, bool]]] | None:
    """Stages 1 (identity), 2 and 3 of an encoded slice, changing nothing:
    (UUIDs, business keys or None, per reference its parents' UUIDs and
    whether a value matched no parent); None when a row needs the row-by-row path (the same identity
    twice, a business key another entity holds, a hard reference that
    matches no parent). ``given``: the slice, when its rows are its documents
    as they are (Arrow input whose nulls are nulls), for content digests
    made column by column."""
    et = lay.entity
    run.prepare_keys(lay, encoded.distinct_texts)
    prefix = identity_prefix(run.scenario_id, lay)
    key_columns = et.business_key
    key_values = [encoded.values(c) for c in key_columns]
    keys: list[tuple[str, ...] | None] | None = None
    if len(key_columns) == 1 and all(v.__class__ is str or v is None for v in key_values[0]):
        keys = [None if v is None else (v,) for v in key_values[0]]  # most keys: one text (business_key's result)
    elif key_columns:
        keys = [key_of(values) for values in zip(*key_values, strict=True)]

    def contents(rows: list[int]) -> list[str]:  # identity from the content
        if given is not None and lay.flat_keys.keys().isdisjoint(given.column_names):  # nest_flat keeps them
            digests = content_digests(given, rows)
            if digests is not None:
                return digests
        docs = documents()
        return [content_digest(nest_flat(lay, docs[i])) for i in rows]

    ids = entity_uuids(prefix, encoded.columns["external_id"], keys, contents)
    if len(set(ids)) != len(ids):
        return None
    if keys is not None:
        stored = run.key_map(et)
        given = [(k, i) for k, i in zip(keys, ids, strict=True) if k is not None]
        if len({k for k, _ in given}) != len(given) or any(stored.get(k, i) != i for k, i in given):
            return None
    references = []
    for ref in et.references:
        parent_keys = run.key_map(entity_type(ref.parent))
        if ref.parent == et.name and keys is not None:  # as _complete_rows sees them: the batch's keys taken
            parent_keys = {**parent_keys, **{k: i for k, i in zip(keys, ids, strict=True) if k is not None}}
        # Each distinct value looked up once (a patient's MRN recurs in all its rows).
        distinct = encoded.columns[ref.field].dictionary_encode()
        found = [parent_keys.get((v if v.__class__ is str else str(v),)) for v in distinct.dictionary.to_pylist()]
        unresolved = None in found  # a value given that matches no parent (nulls are not in the dictionary)
        if unresolved and ref.strength is not RefStrength.SOFT:
            return None
        references.append((ref, pa.array(found, type=pa.string()).take(distinct.indices), unresolved))
    return ids, keys, references


def _encode_batch(
    run: SaveRun, lay: Layout, batch: list[Any], positions: Iterator[int], lifted: dict[str, list[Any]]
) -> Rows:
    """Stage 1: the batch's documents as rows with their UUIDs, their problems noted."""
    et = lay.entity
    type_name = et.name
    by_id: Rows = {}
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
    return by_id


def _lift_nested(
    et: EntityType, doc: Mapping[str, Any], position: int, run: SaveRun, lifted: dict[str, list[Any]]
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


def _check_business_keys(run: SaveRun, lay: Layout, rows: Rows) -> None:
    """Stage 2: a business key held by another entity of the scenario is a problem."""
    et = lay.entity
    keys = run.key_map(et)
    for position, row in rows.values():
        key = business_key(lay, row)
        if key is None:
            continue
        holder = keys.setdefault(key, row["id"])
        if holder != row["id"]:
            run.problem(
                et.name,
                position,
                row["external_id"],
                ", ".join(et.business_key),
                f"{'/'.join(key)} is already used by another {et.name} in this scenario "
                "(business keys are unique per scenario)",
            )


def _complete_rows(run: SaveRun, lay: Layout, rows: Rows) -> None:
    """Stage 3, one pass over the rows: references resolved to their parents'
    UUIDs, array columns as JSON text, ``updated_at``."""
    et = lay.entity
    # encode gave extensions as text already; array columns are still lists.
    json_columns = [f.column for f in lay.fields if f.kind == "array"]
    parents = [(ref, run.key_map(entity_type(ref.parent))) for ref in et.references]
    for position, row in rows.values():
        for ref, parent_keys in parents:
            value = row[ref.field]
            if value is None:
                row[ref.uuid_column] = None
                continue
            target = parent_keys.get((value if value.__class__ is str else str(value),))
            row[ref.uuid_column] = target
            if target is None:
                _unresolved(run, lay, ref, position, row)
        for column in json_columns:
            if row[column] is not None:
                try:
                    row[column] = json_text(row[column])
                except Invalid as exc:
                    run.problem(et.name, position, row["external_id"], column, str(exc))
        row["updated_at"] = run.now


def _unresolved(run: SaveRun, lay: Layout, ref: Any, position: int, row: dict[str, Any]) -> None:
    """A reference that matched no parent: a warning if soft, else a problem."""
    value = row[ref.field]
    parent = entity_type(ref.parent)
    message = f"{value!r} matches no {parent.name}.{ref.parent_key} in this scenario"
    if ref.strength is RefStrength.SOFT:
        ident = f" (id {row['external_id']})" if row["external_id"] else ""
        run.warnings.append(f"{lay.entity.name}[{position}]{ident} {ref.field}: {message}; saved without a link")
    else:
        run.problem(lay.entity.name, position, row["external_id"], ref.field, message)


def _write_rows(run: SaveRun, et: EntityType, rows: Rows) -> None:
    """Stage 4: the batch upserted, its links collected (and written when enough)."""
    complete = [row for _, row in rows.values()]
    run.dialect.upsert(run.session, et.model.__table__, complete, versioning=run.versioning)
    run.links.add(et.name, list(rows), [position for position, _ in rows.values()])
    if len(run.links) >= LINK_BATCH_SIZE:
        _write_links(run)
    run.saved[et.name] = run.saved.get(et.name, 0) + len(complete)


def _write_links(run: SaveRun) -> None:
    run.dialect.link(run.session, run.scenario_id, run.links)
    run.links = Links()
