"""``healthsim query``: read-only SQL, printed as a table (or records, when the
table would not fit the terminal), CSV or JSON."""

from __future__ import annotations

import csv
import json
import sys
from enum import Enum
from typing import Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.store.query import DEFAULT_TIMEOUT, ENV_TIMEOUT, QueryResult, json_value, run_query

#: Rows a table shows unless --max-rows says otherwise; CSV and JSON print every row.
TABLE_ROWS = 1000


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def query(
    sql: str = typer.Argument(..., help='One SQL statement, e.g. "SELECT count(*) FROM patients".'),
    output: Format = typer.Option(
        Format.table, "--format", "-f", help="Output: a table, CSV or a JSON array of objects."
    ),
    max_rows: int | None = typer.Option(
        None,
        "--max-rows",
        min=0,
        show_default=False,
        help=f"Print at most N rows (default: {TABLE_ROWS} for a table, all for CSV and JSON).",
    ),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        metavar="SECONDS",
        show_default=False,
        help=f"Cancel the query after SECONDS (default: ${ENV_TIMEOUT}, else {DEFAULT_TIMEOUT:g}).",
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Run one read-only SQL statement against the store.

    The database itself refuses writes (a read-only DuckDB connection, a READ
    ONLY PostgreSQL transaction), so INSERT, UPDATE, DELETE, CREATE, DROP,
    COPY ... TO and ATTACH fail with the database's message. A result too wide
    for the terminal prints as one record per row.
    """
    limit = TABLE_ROWS if max_rows is None and output is Format.table else max_rows
    result = run_query(sql, database_url=database_url, max_rows=limit, timeout=timeout)
    if output is Format.csv:
        _write_csv(result)
    elif output is Format.json:
        # Checked before writing, so an error never leaves half a document on stdout.
        records = result.records()
        sys.stdout.write(json.dumps(records, ensure_ascii=False, indent=2) + "\n")
    else:
        _print_table(result)


def _cell(value: Any) -> str:
    """A value as CSV or table text: JSON for arrays and objects, lower-case booleans."""
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _write_csv(result: QueryResult) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_cell(value) for value in row] for row in result.rows)


def _print_table(result: QueryResult) -> None:
    """A table when every value fits on the terminal's width whole; else one record per row."""
    count = f"{len(result.rows)} row{'' if len(result.rows) == 1 else 's'}"
    caption = f"first {count}; more not shown (raise --max-rows)" if result.truncated else count
    cells = [
        [Text("NULL", style="dim") if value is None else Text(_cell(value)) for value in row] for row in result.rows
    ]
    out = Console()
    if _table_width(result.columns, cells) > out.width:
        _print_records(out, result.columns, cells)
        caption += (
            "; one record per row, as the table is wider than the terminal "
            "(--format csv or --format json print it for other programs)"
        )
    else:
        table = Table(*result.columns)
        for column in table.columns:
            column.overflow = "fold"  # never cut a value short
        for row in cells:
            table.add_row(*row)
        out.print(table)
    out.print(caption, soft_wrap=True, highlight=False, markup=False)


def _table_width(columns: list[str], cells: list[list[Text]]) -> int:
    """Columns the table takes with every value on one line: each column's widest
    line, plus a space either side and a border between and around columns."""
    widths = [cell_len(name) for name in columns]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], max(map(cell_len, text.plain.splitlines() or [""])))
    return sum(widths) + 3 * len(widths) + 1


def _print_records(out: Console, columns: list[str], cells: list[list[Text]]) -> None:
    """One ``column: value`` line per field, a rule before each row; long values wrap as the terminal wraps them."""
    labels = [f"{name}:" for name in columns]
    pad = max(map(cell_len, labels), default=0)
    for number, row in enumerate(cells, start=1):
        out.rule(f"row {number}", align="left", style="dim")
        for label, text in zip(labels, row, strict=True):
            out.print(Text(label.ljust(pad) + " ", style="bold") + text, soft_wrap=True, highlight=False)
