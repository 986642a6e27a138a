"""The Parquet writer: one Hive-partitioned dataset per table, streamed.

Each table is written by one ``pyarrow.dataset.write_dataset`` call that
pulls record batches from the store as it writes, so memory holds a few
row groups, never a table. The exported scenarios' partitions are removed
first (a scenario that has lost every entity of a type keeps no stale
files); other scenarios' partitions stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from healthsim_state.lake.layout import partition_dir
from healthsim_state.lake.schemas import SCENARIO

#: Row groups of 64Ki to 256Ki rows (tens of MB for the widest tables: what
#: Spark and Trino split work by); a new file after 4Mi rows.
MIN_ROWS_PER_GROUP = 64 * 1024
MAX_ROWS_PER_GROUP = 256 * 1024
MAX_ROWS_PER_FILE = 4 * 1024 * 1024

_FORMAT = ds.ParquetFileFormat()


def remove(fs: pafs.FileSystem, path: str) -> None:
    """Remove the directory ``path`` with everything under it, if it exists."""
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


def write_table(
    fs: pafs.FileSystem,
    path: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    stamp: str,
    partitions: Iterable[str] = (),
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
) -> None:
    """Write ``batches`` as the dataset at ``path``: partitioned by scenario when
    ``schema`` has the scenario column (``partitions``: the scenario names written,
    whose old files go first), else replacing the whole dataset. ``stamp`` names
    this export's files; ``on_batch`` sees each batch on its way."""
    partitioned = SCENARIO in schema.names
    if partitioned:
        for name in partitions:
            remove(fs, f"{path}/{partition_dir(name)}")
    else:
        remove(fs, path)

    def counted() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if on_batch is not None:
                on_batch(batch)
            yield batch

    ds.write_dataset(
        pa.RecordBatchReader.from_batches(schema, counted()),
        path,
        filesystem=fs,
        format=_FORMAT,
        file_options=_FORMAT.make_write_options(compression="zstd"),
        partitioning=ds.partitioning(pa.schema([schema.field(SCENARIO)]), flavor="hive") if partitioned else None,
        basename_template=f"part-{stamp}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        min_rows_per_group=MIN_ROWS_PER_GROUP,
        max_rows_per_group=MAX_ROWS_PER_GROUP,
        max_rows_per_file=MAX_ROWS_PER_FILE,
    )
