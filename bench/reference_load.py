"""How fast a reference file loads: a generated file in a dataset's published format, timed.

    python -m bench.reference_load                                  # 250,000 ADI block groups, DuckDB
    python -m bench.reference_load --dataset svi_tract --rows 250000
    python -m bench.reference_load --database-url postgresql+psycopg://postgres@127.0.0.1/bench

The file has the dataset's latest accepted header and plausible values
(codes, numbers, confidence intervals, a suppression marker every 50th row);
DuckDB writes it, so generating it is quick too. The load is
``load_reference(..., replace=True)``, the path ``healthsim reference load``
takes. Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import sqlalchemy as sa

from healthsim_models.engine import dispose_engines, get_engine
from healthsim_models.population import snake_case
from healthsim_state.reference import DATASETS, Dataset, load_reference


def _expression(ds: Dataset, header: str) -> str:
    """A DuckDB expression giving row ``i``'s text for one published column."""
    name = snake_case(header)
    if name == ds.key:
        return f"lpad(CAST(i AS VARCHAR), {ds.codes[name]}, '0')"
    if name in ds.codes:
        width = ds.codes[name]
        return f"lpad(CAST(i % {10 ** min(width, 5) - 1} + 1 AS VARCHAR), {width}, '0')"
    if name in ds.intervals:
        return "printf('(%4.1f, %4.1f)', 10 + (i % 300) / 10, 20 + (i % 300) / 10)"
    column = ds.table.c[name]
    if isinstance(column.type, sa.String):
        return f"'{header} ' || CAST(i % 100 AS VARCHAR)"
    if isinstance(column.type, sa.Integer):
        value = "CAST(i % 100 + 1 AS VARCHAR)"
    elif isinstance(column.type, sa.Numeric) and not isinstance(column.type, sa.Float):
        value = "printf('%.1f', (i % 999) / 10)"
    else:
        value = "printf('%.4f', (i % 10000) / 10000)"
    if ds.markers and (not ds.marker_columns or name in ds.marker_columns):
        return f"CASE WHEN i % 50 = 0 THEN '{ds.markers[-1]}' ELSE {value} END"
    return value


def generate(ds: Dataset, rows: int, path: Path) -> None:
    """Write ``rows`` rows in the dataset's latest published format to ``path``."""
    width = ds.codes[ds.key]
    if rows >= 10**width:
        raise SystemExit(f"{ds.name} codes have {width} digits: at most {10**width - 1} distinct rows")
    release = ds.releases[-1]
    columns = ", ".join(f'{_expression(ds, h)} AS "{h}"' for h in release.headers)
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT {columns} FROM range(1, {rows + 1}) t(i)) TO '{path}' (HEADER, DELIMITER ',')"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="adi_blockgroup", choices=list(DATASETS))
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--database-url", help="default: a fresh DuckDB file in a temporary folder")
    args = parser.parse_args()
    ds = DATASETS[args.dataset]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{ds.name}_{ds.releases[-1].name}_bench.csv"
        started = time.perf_counter()
        generate(ds, args.rows, path)
        generated = time.perf_counter() - started
        url = args.database_url or f"duckdb:///{Path(folder) / 'bench.duckdb'}"
        get_engine(url)  # creates or upgrades the store first, so the timing is the load alone
        load_started = time.perf_counter()
        result = load_reference(ds.name, path, replace=True, release=ds.releases[-1].name, database_url=url)
        seconds = time.perf_counter() - load_started
        size = path.stat().st_size / 1e6
        dispose_engines()
    print(
        f"{ds.name}: {result.row_count} rows, {size:.1f} MB generated in {generated:.1f} s; "
        f"loaded in {seconds:.2f} s ({result.row_count / seconds:,.0f} rows/s)"
    )


if __name__ == "__main__":
    main()
