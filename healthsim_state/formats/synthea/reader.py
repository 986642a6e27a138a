"""A Synthea CSV folder loaded into a private in-memory DuckDB database, checked.

:func:`read_folder` reads each known file with DuckDB's own CSV reader into
a table named like the file stem: every column VARCHAR (NULL for an empty
cell) under its latest spelling (older spellings renamed), known columns
the file lacks added as NULL so the mappings can name them, columns no
release has kept under their own name, and ``_line``, the row's line in the
file. It refuses a malformed folder with :class:`SyntheaError` naming the
file, line and column: a missing patients.csv, an unreadable or empty file,
a required column missing, a row with too few or too many cells, an
unterminated quote, bytes that are not UTF-8, a cell that is not of its
column's declared type, an empty required cell, or a reference (PATIENT,
ENCOUNTER, ...) to an ``Id`` the import does not have.

Line numbers count records from the header (line 1); a quoted value that
spans lines would shift the numbers of the rows after it (Synthea writes
none).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import duckdb

from healthsim_models.errors import SyntheaError
from healthsim_state.formats.synthea.files import (
    BY_STEM,
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    LAYOUTS,
    Column,
    SyntheaFile,
)
from healthsim_state.formats.synthea.sql import ident, quote

#: The column every loaded table gets: the row's line number in its file.
LINE = "_line"

#: What the reading database may hold in memory; beyond it, DuckDB spills to its scratch folder.
MEMORY_LIMIT = "384MB"

_KIND_WORDS = {
    DATE: "a date or date-time",
    DATETIME: "a date or date-time",
    DECIMAL: "a number",
    INTEGER: "a whole number",
}


def _bad(kind: str, expr: str) -> str:
    """SQL: true when the non-NULL text ``expr`` is not of ``kind``."""
    if kind in (DATE, DATETIME):
        return f"TRY_CAST({expr} AS TIMESTAMPTZ) IS NULL"
    if kind == DECIMAL:
        return f"TRY_CAST({expr} AS DOUBLE) IS NULL"
    if kind == INTEGER:
        number = f"TRY_CAST({expr} AS DOUBLE)"
        return f"({number} IS NULL OR {number} <> trunc({number}) OR isinf({number}))"
    raise ValueError(f"unknown column kind {kind!r}")


@dataclass
class LoadedFile:
    """One file as loaded: where it is, what its header held, how many rows."""

    spec: SyntheaFile
    path: Path
    rows: int
    present: tuple[str, ...]  # known columns the header has, latest spelling, in file order
    unknown: tuple[str, ...]  # header columns no release has, as spelled in the file
    header: dict[str, str]  # latest spelling (or unknown name) -> the header's spelling
    layout: str  # the known layout the header matches best

    @property
    def name(self) -> str:
        return self.spec.name

    def has(self, column: str) -> bool:
        return column in self.present or column in self.unknown


@dataclass
class Loaded:
    """A loaded folder: the DuckDB connection holding its tables, and each file."""

    con: duckdb.DuckDBPyConnection
    directory: Path
    files: dict[str, LoadedFile] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # .csv files in the folder that are no Synthea file
    _cursors: set[duckdb.DuckDBPyConnection] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def has(self, *stems: str) -> bool:
        return all(s in self.files for s in stems)

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own (another query's result stays open), closed on exit; :meth:`interrupt` stops
        what it runs meanwhile."""
        cursor = self.con.cursor()
        with self._lock:
            self._cursors.add(cursor)
        try:
            yield cursor
        finally:
            with self._lock:
                self._cursors.discard(cursor)
            cursor.close()

    def interrupt(self) -> None:
        """Stop the queries the cursors in use run (from another thread: a read ahead being given up)."""
        with self._lock:
            running = list(self._cursors)
        for cursor in running:
            cursor.interrupt()

    @property
    def layouts(self) -> dict[str, str]:
        """The layout each file matches best, by file name."""
        return {f.name: f.layout for f in self.files.values()}

    @property
    def layout(self) -> str:
        """The folder's layout: the newest any of its files matches best."""
        return max((f.layout for f in self.files.values()), key=LAYOUTS.index)


@contextmanager
def read_folder(directory: str | os.PathLike[str]) -> Iterator[Loaded]:
    """Load and check the Synthea CSV files of ``directory``; the connection closes on exit."""
    folder = Path(directory)
    if not folder.is_dir():
        raise SyntheaError(f"{folder}: not a folder (expected a Synthea CSV output folder)", file=str(folder))
    found = {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv"}
    if "patients.csv" not in found:
        raise SyntheaError(
            f"{folder}: patients.csv is missing (a Synthea CSV folder needs it; every other file is optional)",
            file="patients.csv",
        )
    scratch = tempfile.TemporaryDirectory(prefix="healthsim-synthea-")
    con = duckdb.connect(os.path.join(scratch.name, "folder.duckdb"))
    try:
        con.execute("SET TimeZone = 'UTC'")
        # DuckDB draws its progress bar on stdout, terminal or not: into --json output and the MCP stream.
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = {quote(scratch.name)}")
        loaded = Loaded(con, folder, ignored=tuple(sorted(n for n in found if n[:-4] not in BY_STEM)))
        for spec in BY_STEM.values():
            if spec.name in found:
                loaded.files[spec.stem] = _load(con, spec, found[spec.name])
        for lf in loaded.files.values():
            _check_references(loaded, lf)
        yield loaded
    finally:
        con.close()
        scratch.cleanup()


def _read_header(spec: SyntheaFile, path: Path) -> list[str]:
    try:
        with open(path, "rb") as handle:
            first = handle.readline()
    except OSError as exc:
        raise SyntheaError(f"{spec.name}: cannot be read: {exc.strerror}", file=spec.name) from exc
    if not first.strip():
        raise SyntheaError(f"{spec.name}, line 1: the file is empty (expected a header line)", file=spec.name, line=1)
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8) :]
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SyntheaError(
            f"{spec.name}, line 1: the header is not UTF-8 (byte {exc.start + 1})", file=spec.name, line=1
        ) from exc
    return next(csv.reader(io.StringIO(text)))


def _match_header(spec: SyntheaFile, names: list[str]) -> tuple[dict[str, Column], list[str]]:
    """Header name -> known column, and the names no release has; refuses duplicates and missing columns."""
    by_spelling: dict[str, Column] = {}
    for col in spec.columns:
        for spelling in (col.name, *col.old_names):
            by_spelling[spelling.upper()] = col
    known: dict[str, Column] = {}
    unknown: list[str] = []
    seen: dict[str, str] = {}
    for name in names:
        # DuckDB identifiers ignore case, so two names differing in case only are one column.
        key = name.strip().upper()
        if not key:
            raise SyntheaError(f"{spec.name}, line 1: a column of the header has no name", file=spec.name, line=1)
        col = by_spelling.get(key)
        canonical = col.name.upper() if col else key
        if canonical in seen:
            raise SyntheaError(
                f"{spec.name}, line 1, column {name}: the header has this column twice (also as {seen[canonical]})",
                file=spec.name,
                line=1,
                column=name,
            )
        seen[canonical] = name
        if col is None:
            unknown.append(name)
        else:
            known[name] = col
    have = {c.name for c in known.values()}
    for col in spec.columns:
        if col.required and col.name not in have:
            raise SyntheaError(
                f"{spec.name}, line 1, column {col.name}: required column missing from the header",
                file=spec.name,
                line=1,
                column=col.name,
            )
    return known, unknown


def _best_layout(spec: SyntheaFile, names: list[str]) -> str:
    """The layout whose header is closest to ``names`` (the oldest among equals)."""
    have = {n.strip().upper() for n in names}

    def score(layout: str) -> tuple[int, int]:
        return (-len({h.upper() for h in spec.header(layout)} ^ have), -LAYOUTS.index(layout))

    return max((layout for layout in LAYOUTS if layout in spec.layouts), key=score)


def _load(con: duckdb.DuckDBPyConnection, spec: SyntheaFile, path: Path) -> LoadedFile:
    names = _read_header(spec, path)
    known, unknown = _match_header(spec, names)
    # Positional names for read_csv, so that the header's own spelling never matters to DuckDB.
    reads = {f"c{i}": name for i, name in enumerate(names)}
    columns = "{" + ", ".join(f"{quote(k)}: 'VARCHAR'" for k in reads) + "}"
    selects = []
    header: dict[str, str] = {}
    for key, name in reads.items():
        target = known[name].name if name in known else name
        header[target] = name
        selects.append(f"nullif({ident(key)}, '') AS {ident(target)}")
    present = {c.name for c in known.values()}
    selects += [f"NULL::VARCHAR AS {ident(c.name)}" for c in spec.columns if c.name not in present]
    table = ident(spec.stem)
    con.execute(
        f"CREATE TABLE {table} AS SELECT {', '.join(selects)} FROM read_csv({quote(str(path))}, header = true,"
        f" auto_detect = false, delim = ',', quote = '\"', escape = '\"', strict_mode = true,"
        f" columns = {columns}, store_rejects = true, rejects_table = 'synthea_rejects',"
        f" rejects_scan = 'synthea_scans')"
    )
    rejected = con.execute(
        "SELECT line, column_idx, error_type, error_message FROM synthea_rejects ORDER BY line LIMIT 1"
    ).fetchone()
    con.execute("DROP TABLE synthea_rejects")
    con.execute("DROP TABLE synthea_scans")
    if rejected is not None:
        line, column_idx, error_type, message = rejected
        _refuse_rejected(spec, names, int(line), column_idx, str(error_type), str(message))
    # rowid is the insertion order, which read_csv keeps: row k (from 0) is on line k + 2.
    con.execute(f"ALTER TABLE {table} ADD COLUMN {LINE} BIGINT")
    con.execute(f"UPDATE {table} SET {LINE} = rowid + 2")
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    loaded = LoadedFile(
        spec=spec,
        path=path,
        rows=int(rows),
        present=tuple(known[n].name for n in names if n in known),
        unknown=tuple(unknown),
        header=header,
        layout=_best_layout(spec, names),
    )
    _check_cells(con, loaded)
    return loaded


def _refuse_rejected(
    spec: SyntheaFile, names: list[str], line: int, column_idx: int | None, error_type: str, message: str
) -> None:
    column = names[column_idx - 1] if column_idx and 0 < column_idx <= len(names) else None
    reason = {
        "MISSING COLUMNS": f"too few cells (the header has {len(names)} columns; a truncated or broken line)",
        "TOO MANY COLUMNS": f"too many cells (the header has {len(names)} columns)",
        "INVALID ENCODING": "bytes that are not UTF-8 (the file must be UTF-8)",
        "UNQUOTED VALUE": "a quote that is never closed (a truncated file?)",
    }.get(error_type, message)
    where = f"{spec.name}, line {line}" + (f", column {column}" if column else "")
    raise SyntheaError(f"{where}: {reason}", file=spec.name, line=line, column=column)


def _check_cells(con: duckdb.DuckDBPyConnection, lf: LoadedFile) -> None:
    """Refuse the first row (in file order) with an empty required cell or a cell not of its type."""
    tests: list[tuple[str, str, str]] = []  # (condition, column, reason)
    for col in lf.spec.columns:
        if col.name not in lf.present:
            continue
        c = ident(col.name)
        if col.filled:
            tests.append((f"{c} IS NULL", col.name, "empty, but a value is required"))
        if col.kind in _KIND_WORDS:
            tests.append((f"{c} IS NOT NULL AND {_bad(col.kind, c)}", col.name, f"is not {_KIND_WORDS[col.kind]}"))
    if not tests:
        return
    which = "CASE " + " ".join(f"WHEN {cond} THEN {i}" for i, (cond, _, _) in enumerate(tests)) + " END"
    row = con.execute(
        f"SELECT {LINE}, {which} AS failed FROM {ident(lf.spec.stem)}"
        f" WHERE {' OR '.join(f'({cond})' for cond, _, _ in tests)} ORDER BY {LINE} LIMIT 1"
    ).fetchone()
    if row is None:
        return
    line, index = row
    _, column, reason = tests[index]
    value = con.execute(f"SELECT {ident(column)} FROM {ident(lf.spec.stem)} WHERE {LINE} = ?", [line]).fetchone()[0]  # type: ignore[index]
    refuse_cell(lf, int(line), column, ("" if value is None else f"{value!r} ") + reason)


def refuse_cell(lf: LoadedFile, line: int, column: str, reason: str) -> NoReturn:
    """Raise the error for one cell: file, line and the column as the file's header spells it."""
    raise SyntheaError(
        f"{lf.name}, line {line}, column {lf.header[column]}: {reason}",
        file=lf.name,
        line=line,
        column=lf.header[column],
    )


def _id_column(spec: SyntheaFile) -> str:
    return next(c.name for c in spec.columns if c.name.upper() == "ID")


def _check_references(loaded: Loaded, lf: LoadedFile) -> None:
    """Refuse a reference to an Id the import does not have (when the referenced file is present)."""
    for col in lf.spec.columns:
        if col.references is None or col.name not in lf.present or col.references not in loaded.files:
            continue
        parent = loaded.files[col.references].spec
        row = loaded.con.execute(
            f"SELECT s.{LINE}, s.{ident(col.name)} FROM {ident(lf.spec.stem)} s"
            f" ANTI JOIN {ident(parent.stem)} p ON p.{ident(_id_column(parent))} = s.{ident(col.name)}"
            f" WHERE s.{ident(col.name)} IS NOT NULL ORDER BY s.{LINE} LIMIT 1"
        ).fetchone()
        if row is not None:
            line, value = row
            refuse_cell(lf, int(line), col.name, f"{value!r} is no Id in {parent.name}")
