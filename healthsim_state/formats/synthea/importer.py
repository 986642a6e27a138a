"""Import: a Synthea CSV folder saved as a scenario.

:func:`import_synthea` loads and checks the folder in a private DuckDB
database (:mod:`.reader`), runs every target whose files are present
(:mod:`.clinical`, :mod:`.administrative`) and hands each target's result,
in Arrow record batches read in file order (by chunks of lines, or from a
table stored in that order) with an empty cell as a field not given, to
the store's batch writer (:mod:`healthsim_state.store.writer`), a few
batches read ahead on a thread of their own (:mod:`..read_ahead`): each batch
is validated and staged, column by column, parents' types first so that
references resolve, and the scenario is published in one transaction with
the import's audit event. A folder that is refused leaves the store as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.errors import ScenarioExistsError, ValidationError
from healthsim_models.registry import ENTITY_TYPES
from healthsim_state.codec.checks import scenario_problems
from healthsim_state.formats.common import ProgressFactory, no_progress
from healthsim_state.formats.read_ahead import read_ahead
from healthsim_state.formats.synthea import administrative, clinical
from healthsim_state.formats.synthea.reader import LINE, Loaded, read_folder, refuse_cell
from healthsim_state.formats.synthea.sql import ident
from healthsim_state.formats.synthea.targets import Exclusion, Target, select_sql
from healthsim_state.store.audit import audited_call, from_synthea, source_details
from healthsim_state.store.dialects import dialect_of
from healthsim_state.store.repository import SaveSummary, ScenarioRepository
from healthsim_state.store.save import ArrowInput
from healthsim_state.store.writer import ScenarioWriter

#: Rows per Arrow record batch handed to the save.
BATCH_ROWS = 20_000

#: Rows per add to the batch writer (batches of several types together): each add is one commit of the
#: writer, which costs about as much for few rows as for many, while the store holds one add's rows in memory.
ADD_ROWS = 60_000

#: Record batches waiting for the writer (:func:`~healthsim_state.formats.read_ahead.read_ahead`; one more may
#: be in the making): each is memory held meanwhile.
READ_AHEAD = 3

#: Lines of a file per ordered read of a target that is not stored in a table: what one sort holds.
CHUNK_LINES = 50_000

#: What the reading database may hold while the writer adds, once every table
#: the targets read is made: reads in file order by chunk (or of tables stored
#: in that order) need little, and what the reading database caches is memory
#: the store's own DuckDB and the writer do not have.
STREAM_MEMORY_LIMIT = "160MB"

#: What happens to rows whose identity repeats within one import (canonical-models §2.5).
DUPLICATE_RULE = "the last row in file order wins"


def targets() -> tuple[Target, ...]:
    """Every Synthea target: the clinical ones, then the administrative ones."""
    return (*clinical.TARGETS, *administrative.TARGETS)


@dataclass
class SyntheaSummary:
    """What an import read and saved.

    ``rows_read``, ``unknown_columns``, ``excluded`` and ``duplicates`` are
    per file name (``"encounters.csv"``); ``entities`` per entity type.
    """

    scenario: str
    scenario_id: str
    directory: str
    layout: str
    layouts: dict[str, str]
    rows_read: dict[str, int]
    entities: dict[str, int]
    excluded: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    duplicates: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown_columns: dict[str, list[str]] = field(default_factory=dict)
    ignored_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON values (``--json``)."""
        return {
            "scenario": self.scenario,
            "scenario_id": self.scenario_id,
            "directory": self.directory,
            "layout": self.layout,
            "layouts": dict(self.layouts),
            "rows_read": dict(self.rows_read),
            "entities": dict(self.entities),
            "excluded": {k: [dict(e) for e in v] for k, v in self.excluded.items()},
            "duplicates": {k: dict(v) for k, v in self.duplicates.items()},
            "unknown_columns": {k: list(v) for k, v in self.unknown_columns.items()},
            "ignored_files": list(self.ignored_files),
            "warnings": list(self.warnings),
        }


@audited_call("import_synthea", scenario="scenario", details=source_details, describe=from_synthea)
def import_synthea(
    session: Session,
    directory: str | os.PathLike[str],
    *,
    scenario: str,
    overwrite: bool = False,
    tags: Iterable[str] = (),
    description: str | None = None,
    progress: ProgressFactory | None = None,
) -> SyntheaSummary:
    """Import the Synthea CSV folder ``directory`` as the scenario ``scenario``.

    A scenario of that name must not exist unless ``overwrite`` (which
    replaces it). Entities keep Synthea's Ids (or UUIDs derived from the
    natural key of files without one), so importing the same folder again
    updates them in place. A malformed folder raises
    :class:`~healthsim_models.errors.SyntheaError` naming file, line and
    column; entities that break the canonical rules raise
    :class:`~healthsim_models.errors.ValidationError`; either way nothing
    is written. Commits on a connection of its own (the batch writer's), so
    the session must have no pending changes; into an in-memory DuckDB
    store, it saves in the session's transaction and does not commit.
    """
    if problems := scenario_problems(scenario, description, None):
        raise ValidationError(problems)
    repo = ScenarioRepository(session)
    with repo.aside() as probe:  # the writer's session: none of the caller's held open
        named = _named(probe, scenario)
    if not overwrite and named:
        raise ScenarioExistsError(
            f"a scenario named {scenario!r} exists; import with overwrite (--overwrite) to replace it, "
            "or under another name (--scenario NEW_NAME)"
        )
    report = progress or no_progress
    with read_folder(directory) as loaded:
        summary = SyntheaSummary(
            scenario=scenario,
            scenario_id="",
            directory=os.fspath(directory),
            layout=loaded.layout,
            layouts=loaded.layouts,
            rows_read={lf.name: lf.rows for lf in loaded.files.values()},
            entities={},
            unknown_columns={lf.name: list(lf.unknown) for lf in loaded.files.values() if lf.unknown},
            ignored_files=list(loaded.ignored),
        )
        streams: dict[str, Iterator[pa.RecordBatch]] = {}
        for target in targets():
            if target.file not in loaded.files:
                continue
            if not target.runs_on(loaded):
                _exclude(summary, target, loaded, None)
                continue
            source = entity_source(target, loaded)  # first: the target's SQL may read the tables it stages
            _refuse_unmappable(target, loaded)
            total, distinct = _count(target, loaded, source)
            if total != distinct:
                summary.duplicates.setdefault(loaded.files[target.file].name, {"count": 0, "rule": DUPLICATE_RULE})[
                    "count"
                ] += total - distinct
                source = _last_rows(loaded, target, source)
            for exclusion in target.excluded:
                _exclude(summary, target, loaded, exclusion)
            # One target per type, read when its turn comes.
            streams[target.entity_type] = _entities(loaded, target, source, total=total, report=report)
        loaded.con.execute(f"SET memory_limit = '{STREAM_MEMORY_LIMIT}'")
        saved = _write(
            repo, scenario, streams, loaded.interrupt, overwrite=overwrite, tags=list(tags), description=description
        )
    return _finish(summary, saved)


def _write(
    repo: ScenarioRepository,
    scenario: str,
    streams: dict[str, Iterator[pa.RecordBatch]],
    interrupt: Callable[[], None],
    **options: Any,
) -> SaveSummary:
    """Save the streams as the scenario: through the batch writer, in catalogue
    order (parents before their children), one add per :data:`ADD_ROWS` rows
    of record batches (of one type or several), so no transaction grows with
    the folder; in one save where the writer cannot open the store a second
    time (an in-memory DuckDB)."""
    order = [et.name for et in ENTITY_TYPES if et.name in streams]
    dialect = dialect_of(repo.session)
    bind = repo.session.get_bind()
    if dialect.in_memory(bind.engine.url if isinstance(bind, sa.Connection) else bind.url):
        return repo.save(scenario, {name: ArrowInput(streams[name], nulls_absent=True) for name in order}, **options)
    with repo.writer(scenario, **options) as writer:
        pending: dict[str, list[pa.RecordBatch]] = {}
        rows = 0
        # DuckDB reads and maps the next batches while the writer encodes and writes these; closed
        # before the writer's block ends, however the loop ends, so the reading thread is done first.
        with contextlib.closing(read_ahead(_batches(order, streams), READ_AHEAD, stop=interrupt)) as ahead:
            for type_name, batch in ahead:
                pending.setdefault(type_name, []).append(batch)
                rows += batch.num_rows
                if rows >= ADD_ROWS:
                    _add(writer, pending)
                    pending, rows = {}, 0
        if pending:
            _add(writer, pending)
    assert writer.summary is not None  # the block ended without an error: published
    return writer.summary


def _batches(order: list[str], streams: dict[str, Iterator[pa.RecordBatch]]) -> Iterator[tuple[str, pa.RecordBatch]]:
    """(type, batch) of every stream in ``order``; closing this closes the stream being read (its cursor,
    its progress bar), in the thread that reads it."""
    for name in order:
        with contextlib.closing(streams[name]) as stream:  # type: ignore[type-var]
            for batch in stream:
                yield name, batch


def _add(writer: ScenarioWriter, batches: dict[str, list[pa.RecordBatch]]) -> None:
    """One add of the batches (by type, in catalogue order): one commit of the writer for all of them."""
    writer.add({name: ArrowInput(parts, nulls_absent=True) for name, parts in batches.items()})


def _named(repo: ScenarioRepository, name: str) -> bool:
    """Whether a scenario is called exactly ``name`` (not one whose id merely reads like it)."""
    return repo.exists(name) and repo.scenario_summary(name).name == name


def _from(target: Target) -> str:
    sql = f"FROM {ident(target.file)} s"
    if target.joins:
        sql += " " + " ".join(target.joins)
    return sql


def entity_source(target: Target, loaded: Loaded) -> str:
    """The SQL the target's entities are read from (with ``_line``; keys of ``Target.attach`` NULL).

    The tables a target's query reads (``Target.staged``) are made first. A folding query (not ``Target.row_wise``) runs once, into
    a table of the folder's database stored in file order (by ``_line``):
    DuckDB spills tables to disk within the reader's memory limit, and a table
    stored in order is read in order without a sort.
    """
    for stage in target.staged(target, loaded) if target.staged else ():
        loaded.con.execute(f"CREATE OR REPLACE TABLE {ident(stage.name)} AS {stage.select}")
    sql = select_sql(target, loaded)
    if target.query is None or target.row_wise:
        return sql
    return _stored(loaded, f"_{target.file}_{target.entity_type}", sql)


def _stored(loaded: Loaded, name: str, sql: str) -> str:
    """Store the rows of ``sql`` in the table ``name`` in file order; the SQL that reads them back so."""
    loaded.con.execute(f"CREATE OR REPLACE TABLE {ident(name)} AS SELECT * FROM ({sql}) ORDER BY {LINE}")
    return _Stored(f"SELECT * FROM {ident(name)}")


class _Stored(str):
    """The SQL reading a table stored in file order (:func:`_stored`): read as it is, no sort needed."""


def _last_rows(loaded: Loaded, target: Target, source: str) -> str:
    """The target's rows less those whose id a later row has: the last row (in file order) of each id wins,
    as canonical-models §2.5 has it."""
    deduplicated = f"SELECT * FROM ({source}) QUALIFY row_number() OVER (PARTITION BY id ORDER BY {LINE} DESC) = 1"
    return _stored(loaded, f"_{target.file}_{target.entity_type}_last", deduplicated)


def _ordered_reads(loaded: Loaded, target: Target, source: str) -> Iterator[str]:
    """Queries that read ``source`` in file order: a stored table as it is (DuckDB scans a table in the order
    it was stored); a query over a file's table by chunks of its lines, each sorted, so that no sort holds a
    whole file."""
    if isinstance(source, _Stored):
        yield source
        return
    for first in range(2, loaded.files[target.file].rows + 2, CHUNK_LINES):
        last = first + CHUNK_LINES - 1
        yield f"SELECT * FROM ({source}) WHERE {LINE} BETWEEN {first} AND {last} ORDER BY {LINE}"


def _count(target: Target, loaded: Loaded, source: str) -> tuple[int, int]:
    """The target's selected rows and their distinct identities."""
    if target.query is not None:
        counted = f"SELECT count(*), count(DISTINCT id) FROM ({source})"
    else:
        where = f" WHERE {target.where}" if target.where else ""
        key = ", ".join(f"s.{ident(c)}" for c in target.identity)
        counted = f"SELECT count(*), count(DISTINCT row({key})) {_from(target)}{where}"
    rows, distinct = loaded.con.execute(counted).fetchone()  # type: ignore[misc]
    return int(rows), int(distinct)


def _refuse_unmappable(target: Target, loaded: Loaded) -> None:
    """Refuse the first row (in file order) a field of ``target`` has no mapping for."""
    lf = loaded.files[target.file]
    for fld in target.fields_on(loaded):
        if fld.refuse is None:
            continue
        column = fld.columns[0]
        row = loaded.con.execute(
            f"SELECT s.{LINE}, s.{ident(column)} {_from(target)} WHERE {fld.refuse.when} ORDER BY s.{LINE} LIMIT 1"
        ).fetchone()
        if row is not None:
            line, value = row
            refuse_cell(lf, int(line), column, f"{value!r} {fld.refuse.reason}")


def _exclude(summary: SyntheaSummary, target: Target, loaded: Loaded, exclusion: Exclusion | None) -> None:
    lf = loaded.files[target.file]
    if exclusion is None:
        missing = [f"{stem}.csv" for stem in target.needs if stem not in loaded.files]
        reason = f"not imported as {target.entity_type}: needs {', '.join(missing)}, absent from the folder"
        count = lf.rows
    else:
        reason = exclusion.reason
        (count,) = loaded.con.execute(f"SELECT count(*) {_from(target)} WHERE {exclusion.where}").fetchone()  # type: ignore[misc]
    if count:
        summary.excluded.setdefault(lf.name, []).append({"reason": reason, "count": int(count)})


def _entities(
    loaded: Loaded, target: Target, source: str, *, total: int, report: ProgressFactory
) -> Iterator[pa.RecordBatch]:
    """The target's documents (from ``source``), read batch by batch when the save gets to them."""
    label = f"{loaded.files[target.file].name} -> {target.entity_type}"
    with report(label, total) as advance:
        for batch in entity_batches(loaded, target, source):
            advance(batch.num_rows)
            yield batch


def entity_batches(loaded: Loaded, target: Target, source: str) -> Iterator[pa.RecordBatch]:
    """The target's documents in file order, as record batches: ``source``'s rows (see :func:`entity_source`)
    with the lists of ``Target.attach`` filled in, without ``_line``."""
    # A cursor of its own: another target's query must not end this one's result.
    with loaded.cursor() as cursor:
        for sql in _ordered_reads(loaded, target, source):
            for batch in cursor.sql(sql).to_arrow_reader(BATCH_ROWS):
                if batch.num_rows == 0:
                    continue
                for key, rows in target.attach.items():
                    batch = _attach(loaded, target, batch, key, rows)
                yield batch.drop_columns([LINE])


def _attach(loaded: Loaded, target: Target, batch: pa.RecordBatch, key: str, rows: Any) -> pa.RecordBatch:
    """``batch`` with the column ``key`` made the list of each entity's folded rows (``Target.attach``)."""
    lines = batch.column(LINE)
    first, last = pc.min_max(lines).values()
    with loaded.cursor() as cursor:
        owned = cursor.sql(rows(target, loaded, first.as_py(), last.as_py())).to_arrow_table()
    # Rows owned by lines of the range that are no entity of the batch (a claim left out) are in no list.
    owned = owned.filter(pc.is_in(owned.column("_owner"), value_set=lines))
    # The rows are in line order, as the batch's entities are: each entity's list is the next run of rows,
    # as long as its line has rows (none for a line no row names).
    counted = pc.value_counts(owned.column("_owner"))
    found = pc.index_in(lines, value_set=counted.field("values"))
    counts = pc.fill_null(pc.take(counted.field("counts"), found), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(counts)]).cast(pa.int32())
    listed = pa.ListArray.from_arrays(offsets, owned.column("value").combine_chunks())
    index = batch.schema.get_field_index(key)
    return batch.set_column(index, pa.field(key, listed.type), listed)


def _finish(summary: SyntheaSummary, saved: SaveSummary) -> SyntheaSummary:
    summary.scenario_id = str(saved.id)
    summary.entities = dict(saved.saved)
    summary.warnings = list(saved.warnings)
    return summary
