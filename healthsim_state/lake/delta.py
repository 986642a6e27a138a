"""The Delta writer: each export a new version of each table, written incrementally.

A canonical table's first export writes every row. Later exports merge
into it only what changed since the watermark recorded in the table's last
export commit (``healthsim.watermark``: the latest ``updated_at`` that export
read): rows with a later ``updated_at``, rows linked to the scenario since
(not in the lake's partition yet), and the removal of rows whose entity
left the scenario or was deleted (in the lake's partition, no longer in the
store's scenario). A table nothing changed in gets no new version. Every
earlier version stays readable (time travel) until the table is vacuumed.

The derived (OMOP, star) tables are rebuilt whole by their builds, so each
export overwrites them: a new version holding the tables as built.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from healthsim_models.errors import LakeError
from healthsim_state.lake.schemas import SCENARIO

#: Commit metadata keys of an export.
WATERMARK = "healthsim.watermark"
EXPORTED_AT = "healthsim.exported_at"

#: The source's column that marks a row to remove.
_DELETED = "_hs_deleted"

#: Target file size for the Delta writer (bytes).
TARGET_FILE_SIZE = 128 * 1024 * 1024


def _deltalake():  # type: ignore[no-untyped-def]
    try:
        import deltalake
    except ImportError as exc:
        raise LakeError("--format delta needs the deltalake package: pip install 'healthsim-store[lake]'") from exc
    return deltalake


def open_table(uri: str, options: Mapping[str, str]):  # type: ignore[no-untyped-def]
    """The Delta table at ``uri``, or None when there is none yet."""
    deltalake = _deltalake()
    try:
        return deltalake.DeltaTable(uri, storage_options=dict(options) or None)
    except deltalake.exceptions.TableNotFoundError:
        return None


def last_watermark(table) -> dt.datetime | None:  # type: ignore[no-untyped-def]
    """The watermark of the table's latest export commit."""
    for commit in table.history():
        if WATERMARK in commit:
            return dt.datetime.fromisoformat(commit[WATERMARK])
    return None


class Changes:
    """The rows of one canonical table to merge into its Delta table: per scenario,
    the store's rows changed since the watermark or new to the lake's partition,
    then the lake's rows gone from the scenario."""

    def __init__(self, schema: pa.Schema, watermark: dt.datetime | None, in_lake: Mapping[str, pa.Array]) -> None:
        self.schema = schema
        self.watermark = watermark
        self.in_lake = in_lake  # scenario name -> ids its partition holds
        self.source_schema = pa.schema(
            [f.with_nullable(True) for f in schema] + [pa.field(_DELETED, pa.bool_(), nullable=False)]
        )
        self.written = 0
        self.removed = 0

    def scenario(self, name: str, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The scenario's changed rows from ``batches`` (its rows in the store), then its removals."""
        known = self.in_lake.get(name, pa.array([], pa.string()))
        seen: list[pa.Array] = []
        for batch in batches:
            if batch.num_rows == 0:
                continue
            seen.append(batch.column("id"))
            updated = batch.column("updated_at")
            new = pc.invert(pc.is_in(batch.column("id"), value_set=known))
            changed = new if self.watermark is None else pc.or_(new, pc.greater(updated, pa.scalar(self.watermark)))
            rows = batch.filter(changed)
            if rows.num_rows:
                self.written += rows.num_rows
                yield self._marked(rows, deleted=False)
        gone = pc.filter(known, pc.invert(pc.is_in(known, value_set=pa.chunked_array(seen, pa.string()))))
        if len(gone):
            self.removed += len(gone)
            yield self._removal(name, gone)

    def _marked(self, batch: pa.RecordBatch, *, deleted: bool) -> pa.RecordBatch:
        flags = pa.array([deleted] * batch.num_rows, pa.bool_())
        return pa.RecordBatch.from_arrays([*batch.columns, flags], schema=self.source_schema)

    def _removal(self, name: str, ids: pa.Array) -> pa.RecordBatch:
        columns = []
        for f in self.source_schema:
            if f.name == "id":
                columns.append(ids)
            elif f.name == SCENARIO:
                columns.append(pa.array([name] * len(ids), pa.string()))
            elif f.name == _DELETED:
                columns.append(pa.array([True] * len(ids), pa.bool_()))
            else:
                columns.append(pa.nulls(len(ids), f.type))
        return pa.RecordBatch.from_arrays(columns, schema=self.source_schema)


def lake_ids(table, names: Iterable[str]) -> dict[str, pa.Array]:  # type: ignore[no-untyped-def]
    """The ids each of the scenarios ``names`` has in the Delta table (only its partitions are read)."""
    names = list(names)
    if table is None or not names:
        return {}
    keys = (
        table.to_pyarrow_dataset()
        .to_table(columns=[SCENARIO, "id"], filter=pc.field(SCENARIO).isin(names))
        .combine_chunks()
    )
    return {
        name: pc.filter(keys.column("id"), pc.equal(keys.column(SCENARIO), name)).combine_chunks() for name in names
    }


def lake_scenarios(table) -> list[str]:  # type: ignore[no-untyped-def]
    """The scenario names the Delta table has partitions of."""
    if table is None:
        return []
    values = table.to_pyarrow_dataset().to_table(columns=[SCENARIO]).column(SCENARIO)
    return sorted(pc.unique(values).to_pylist())


def merge_changes(
    uri: str,
    table,  # type: ignore[no-untyped-def]
    changes: Changes,
    parts: Iterable[tuple[str, Callable[[], Iterable[pa.RecordBatch]]]],
    options: Mapping[str, str],
    exported_at: dt.datetime,
    watermark: dt.datetime | None,
) -> int | None:
    """Write the changes of ``parts`` (scenario name, its store batches) to the Delta table at
    ``uri`` (``table``: it as opened, None for a new one), recording ``watermark`` (the latest
    ``updated_at`` of the rows read, taken before reading them) for the next export; the
    table's new version, None when nothing changed."""
    deltalake = _deltalake()
    stream = itertools.chain.from_iterable(changes.scenario(name, batches()) for name, batches in parts)
    first = next(stream, None)
    if first is None and table is not None:
        return None
    batches = itertools.chain([first] if first is not None else [], stream)

    metadata = {EXPORTED_AT: exported_at.isoformat()}
    if watermark is not None:
        metadata[WATERMARK] = watermark.isoformat()
    commit = deltalake.CommitProperties(custom_metadata=metadata)

    options = dict(options) or None
    if table is None:
        plain = (b.drop_columns([_DELETED]) for b in batches)
        deltalake.write_deltalake(
            uri,
            pa.RecordBatchReader.from_batches(changes.schema, plain),
            partition_by=[SCENARIO],
            mode="append",
            storage_options=options,
            target_file_size=TARGET_FILE_SIZE,
            commit_properties=commit,
        )
        return 0
    reader = pa.RecordBatchReader.from_batches(changes.source_schema, batches)
    (
        table.merge(
            reader,
            predicate=f"t.{SCENARIO} = s.{SCENARIO} AND t.id = s.id",
            source_alias="s",
            target_alias="t",
            commit_properties=commit,
        )
        .when_matched_delete(predicate=f"s.{_DELETED}")
        .when_matched_update_all(predicate=f"NOT s.{_DELETED}", except_cols=[_DELETED])
        .when_not_matched_insert_all(predicate=f"NOT s.{_DELETED}", except_cols=[_DELETED])
        .execute()
    )
    return table.version()


def overwrite(
    uri: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    options: Mapping[str, str],
    exported_at: dt.datetime,
) -> int:
    """Replace the Delta table at ``uri`` by ``batches`` (a new version; created when missing); its version."""
    deltalake = _deltalake()
    deltalake.write_deltalake(
        uri,
        pa.RecordBatchReader.from_batches(schema, iter(batches)),
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=dict(options) or None,
        target_file_size=TARGET_FILE_SIZE,
        commit_properties=deltalake.CommitProperties(custom_metadata={EXPORTED_AT: exported_at.isoformat()}),
    )
    return deltalake.DeltaTable(uri, storage_options=dict(options) or None).version()


def check_columns(uri: str, options: Mapping[str, str], schema: pa.Schema) -> None:
    """Refuse a Delta table whose columns are not ``schema``'s (written by a store at another
    schema revision): a merge would drop the new columns without a word."""
    table = open_table(uri, options)
    if table is None:
        return
    have = [f.name for f in table.schema().fields]
    missing = [name for name in schema.names if name not in have]
    extra = [name for name in have if name not in schema.names]
    if missing or extra:
        said = "; ".join(
            part
            for part in (
                f"the store has {', '.join(missing)} that it lacks" if missing else "",
                f"it has {', '.join(extra)} that the store lacks" if extra else "",
            )
            if part
        )
        raise LakeError(
            f"{uri}: the Delta table was written from a store of other columns ({said}); "
            "export to a new target (nothing was written)"
        )
