"""Load a PLACES, SVI or ADI file into its table, through the database's own bulk reader.

The file's header is read and checked first (missing, unexpected or repeated
columns refuse the file). The rows then go, as text, into a staging table:
DuckDB's ``read_csv`` with every column declared VARCHAR (nothing sniffed),
or PostgreSQL's ``COPY``. One ``INSERT ... SELECT`` then writes the typed
rows: codes left-padded to their width, numbers cast to the column's type,
suppression markers turned into NULL with the marker kept. Everything from
the delete of the previous rows to the registry entry is one transaction, so
a load that fails leaves the previous table as it was.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.errors import ReferenceDataError
from healthsim_models.population import ReferenceDataset, snake_case
from healthsim_state.reference.datasets import DATASETS, Dataset, Release, dataset
from healthsim_state.store.audit import audited_call, from_reference_load, reference_details
from healthsim_state.store.dialects import dialect_of
from healthsim_state.store.messages import database_message

_REGISTRY = ReferenceDataset.__table__
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class LoadResult:
    """What a load wrote: the registry entry of the dataset."""

    dataset: str
    release: str
    source_file: str
    sha256: str
    row_count: int
    loaded_at: dt.datetime


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_header(path: Path) -> list[str]:
    """The file's first line, split as CSV (a UTF-8 byte order mark is dropped)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise ReferenceDataError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReferenceDataError(f"{path}: the header line is not UTF-8 CSV ({exc})") from None
    if not header:
        raise ReferenceDataError(f"{path}: the file is empty; expected a CSV header line")
    return header


def _difference(ds: Dataset, release: Release, header: list[str], path: Path) -> str:
    """Which published columns the file lacks and which it has in excess, as spelled."""
    expected = {snake_case(h): h for h in release.headers}
    names = [r.name for r in ds.releases if r.columns == release.columns]
    alike = " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))
    found = {snake_case(h) for h in header}
    missing = [h for c, h in expected.items() if c not in found]
    unexpected = [h.strip() or "(unnamed)" for h in header if snake_case(h) not in expected]
    parts = []
    if missing:
        parts.append(f"missing columns {', '.join(missing)}")
    if unexpected:
        parts.append(f"unexpected columns {', '.join(unexpected)}")
    return (
        f"{path.name} is not a {ds.title} file of release {alike}: {'; '.join(parts)} "
        "(column names compared in lower snake case); nothing was loaded"
    )


def match_release(ds: Dataset, header: list[str], path: Path, release: str | None) -> Release:
    """The release whose header the file has; refuses the file naming what differs."""
    columns = [snake_case(h) for h in header]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ReferenceDataError(f"{path.name}: columns {', '.join(repeated)} appear more than once")
    found = set(columns)
    if release is not None and release not in ds.release_names:
        raise ReferenceDataError(
            f"{ds.name} has no release {release!r}; accepted releases: {', '.join(ds.release_names)}"
        )
    candidates = [r for r in ds.releases if release in (None, r.name)]
    matching = [r for r in candidates if r.columns == found]
    if not matching:
        closest = min(candidates, key=lambda r: len(r.columns ^ found))
        raise ReferenceDataError(_difference(ds, closest, header, path))
    if len(matching) == 1:
        return matching[0]
    named = [r for r in matching if re.search(rf"(?<!\d){r.name}(?!\d)", path.name)]
    if len(named) == 1:
        return named[0]
    raise ReferenceDataError(
        f"{path.name} has the header of {ds.name} releases {', '.join(r.name for r in matching)}; "
        "say which with --release (or release=...), or keep the year in the file name"
    )


class _Sql:
    """SQL text for one dialect: quoting and casts to a column's type."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect

    def q(self, name: str) -> str:
        return self.dialect.identifier_preparer.quote(name)

    def table(self, table: sa.Table) -> str:
        return self.dialect.identifier_preparer.format_table(table)

    def type_of(self, column: sa.Column) -> str:
        return column.type.compile(dialect=self.dialect)


def _marker_test(raw: str, markers: tuple[str, ...]) -> str:
    """SQL that is true when the text cell ``raw`` holds one of the suppression markers.

    A text marker (ADI's ``GQ``) must match exactly. A numeric one (SVI's
    ``-999``) matches the number however it is written: ``-999``, ``-999.0``,
    ``-999.00``, with blanks around. The substring search comes first so that ordinary
    numbers cost one cheap search.
    """
    tests = []
    for marker in markers:
        if marker.lstrip("-").isdigit():
            cell = f"trim({raw})"
            tests.append(
                f"(strpos({raw}, '{marker}') > 0 AND ({cell} = '{marker}' OR "
                f"(substr({cell}, 1, {len(marker) + 1}) = '{marker}.' "
                f"AND translate(substr({cell}, {len(marker) + 2}), '0', '') = '')))"
            )
        else:
            tests.append(f"{raw} = " + "'" + marker.replace("'", "''") + "'")
    return f"({' OR '.join(tests)})" if tests else "FALSE"


@dataclass(frozen=True)
class _Cast:
    """One conversion of the typed INSERT: ``text`` (SQL, NULL for an empty or
    marker cell) cast to ``type``, from the staging column ``source``."""

    source: str
    text: str
    type: sa.types.TypeEngine
    type_sql: str


def _whole_number(text: str) -> str:
    """SQL: the text of an integer cell, as both databases then cast it alike.

    ``73.0``, ``73.`` and ``73.00`` become ``73``. Any other cell with more
    than digits, sign and blanks (``73.5``, ``1e2``) is prefixed with ``x``
    so that the cast refuses it: PostgreSQL refuses such text itself, but
    DuckDB would round ``73.5`` to 74 and read ``1e2`` as 100.
    """
    trimmed = f"rtrim(rtrim(trim({text}), '0'), '.')"
    return (
        f"CASE WHEN translate({text}, '0123456789+- ', '') = '' THEN {text} "
        f"WHEN strpos({text}, '.') > 0 AND translate({trimmed}, '0123456789+-', '') = '' THEN {trimmed} "
        f"ELSE 'x' || {text} END"
    )


def _select_list(ds: Dataset, columns: list[str], sql: _Sql) -> tuple[list[str], list[str], list[_Cast]]:
    """Target columns, the typed expressions that fill them from the text staging
    table, and the conversions among them (which a refused load diagnoses)."""
    table = ds.table
    targets: list[str] = []
    exprs: list[str] = []
    casts: list[_Cast] = []
    marked: list[str] = []  # columns whose marker goes to suppressed_columns
    for name in columns:
        # Numbers are cast untrimmed (both databases ignore surrounding blanks
        # in a cast); only a cell that may hold a marker is trimmed (see
        # _marker_test): trimming every cell of a wide file would double the
        # cost of the load.
        raw = sql.q(name)
        value = f"NULLIF({raw}, '')"
        is_marker = _marker_test(raw, ds.markers)
        if name in ds.codes:
            targets.append(name)
            exprs.append(f"lpad(NULLIF(trim({raw}), ''), {ds.codes[name]}, '0')")
        elif name in ds.intervals:
            for part, bracket, side in ((1, "(", "low"), (2, ")", "high")):
                column = table.c[f"{name}_{side}"]
                bound = f"NULLIF(trim(replace(split_part({value}, ',', {part}), '{bracket}', '')), '')"
                casts.append(_Cast(name, bound, column.type, sql.type_of(column)))
                targets.append(column.name)
                exprs.append(f"CAST({bound} AS {sql.type_of(column)})")
        elif isinstance(table.c[name].type, sa.String):
            targets.append(name)
            exprs.append(value)
        else:
            column = table.c[name]
            text = _whole_number(value) if isinstance(column.type, sa.Integer) else value
            if ds.markers and (not ds.marker_columns or name in ds.marker_columns):
                text = f"CASE WHEN {is_marker} THEN NULL ELSE {text} END"
                if ds.companion_suffix:
                    targets.append(f"{name}{ds.companion_suffix}")
                    exprs.append(f"CASE WHEN {is_marker} THEN {raw} END")
                else:
                    marked.append(name)
            casts.append(_Cast(name, text, column.type, sql.type_of(column)))
            targets.append(name)
            exprs.append(f"CAST({text} AS {sql.type_of(column)})")
    if marked:
        # A concatenation rather than concat_ws: PostgreSQL functions take at most 100 arguments.
        listed = " || ".join(
            f"CASE WHEN {_marker_test(sql.q(name), ds.markers)} THEN '{name},' ELSE '' END" for name in marked
        )
        targets.append("suppressed_columns")
        exprs.append(f"NULLIF(rtrim({listed}, ','), '')")
    return targets, exprs, casts


def _stage(connection: sa.Connection, staging: str, columns: list[str], path: Path, *, numbered: bool = False) -> None:
    """Copy the file's rows, as text, into a temporary table named ``staging``
    (``numbered``: to be looked up by line, with :func:`_line_number`)."""
    dialect_of(connection).stage_csv(connection, staging, columns, path, numbered=numbered)


def _check_codes(connection: sa.Connection, ds: Dataset, staging: str, path: Path, sql: _Sql) -> None:
    """Refuse a geographic code that is empty, not digits, or longer than its width."""
    for name, width in ds.codes.items():
        raw = f"trim({sql.q(name)})"
        bad = connection.exec_driver_sql(
            f"SELECT {sql.q(name)} FROM {sql.q(staging)} WHERE {sql.q(name)} IS NULL OR {raw} = '' "
            f"OR length({raw}) > {width} OR translate({raw}, '0123456789', '') <> '' LIMIT 1"
        ).first()
        if bad is not None:
            raise ReferenceDataError(
                f"{path.name}: {name} value {bad[0]!r} is not a code of at most {width} digits; nothing was loaded"
            )


def _line_number(connection: sa.Connection, staging: str) -> str:
    """SQL for a staged row's line in the file, the header being line 1 (see :func:`_stage`)."""
    return dialect_of(connection).staged_line(connection, staging)


def _fails(connection: sa.Connection, statement: str) -> bool:
    """Whether ``statement`` raises a database error, run in a savepoint that is always undone."""
    try:
        with connection.begin_nested() as savepoint:
            connection.exec_driver_sql(statement)
            savepoint.rollback()
    except sa.exc.DBAPIError:
        # The error is the answer to the probe; the savepoint rollback undid its effects.
        return True
    return False


def _first_failing_cast(
    connection: sa.Connection, staging: str, casts: list[_Cast], sql: _Sql
) -> tuple[int, _Cast] | None:
    """The first line whose cell does not convert, and the conversion that fails there."""
    line = _line_number(connection, staging)
    if dialect_of(connection).try_cast:
        return _first_failing_try_cast(connection, staging, casts, sql, line)
    return _first_failing_by_halves(connection, sql.q(staging), casts, line)


def _first_failing_try_cast(
    connection: sa.Connection, staging: str, casts: list[_Cast], sql: _Sql, line: str
) -> tuple[int, _Cast] | None:
    """:func:`_first_failing_cast` in one scan: TRY_CAST gives NULL where CAST would fail."""
    # One scan finds each column's first bad line. The texts are computed once, into a table of their own:
    # naming each text twice in one query made DuckDB plan for seconds.
    texts = sql.q(f"{staging}_texts")
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE {texts} AS SELECT {line} AS _hs_line, "
        + ", ".join(f"{c.text} AS c{i}" for i, c in enumerate(casts))
        + f" FROM {sql.q(staging)}"
    )
    firsts = connection.exec_driver_sql(
        "SELECT "
        + ", ".join(
            f"min(CASE WHEN c{i} IS NOT NULL AND TRY_CAST(c{i} AS {c.type_sql}) IS NULL THEN _hs_line END)"
            for i, c in enumerate(casts)
        )
        + f" FROM {texts}"
    ).one()
    found = [(first, i) for i, first in enumerate(firsts) if first is not None]
    if not found:
        return None
    first, index = min(found)
    return int(first), casts[index]


def _first_failing_by_halves(
    connection: sa.Connection, table: str, casts: list[_Cast], line: str
) -> tuple[int, _Cast] | None:
    """:func:`_first_failing_cast` without TRY_CAST (PostgreSQL 15 has neither it
    nor pg_input_is_valid): the casts are probed in savepoints, halving the
    range of lines until one line is left."""

    def bad(low: int, high: int, chosen: list[_Cast]) -> bool:
        counted = ", ".join(f"count(CAST({c.text} AS {c.type_sql}))" for c in chosen)
        return _fails(connection, f"SELECT {counted} FROM {table} WHERE {line} BETWEEN {low} AND {high}")

    low = 2
    high = connection.exec_driver_sql(f"SELECT max({line}) FROM {table}").scalar() or 1
    if high < low or not bad(low, high, casts):
        return None
    while low < high:
        middle = (low + high) // 2
        if bad(low, middle, casts):
            high = middle
        else:
            low = middle + 1
    failing = next((c for c in casts if bad(low, low, [c])), None)
    return (low, failing) if failing is not None else None


def _kind(type_: sa.types.TypeEngine) -> str:
    """What a column of this type accepts, for a refusal message."""
    if isinstance(type_, sa.Integer):
        return "a whole number"
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float) and type_.precision is not None:
        before = type_.precision - (type_.scale or 0)
        return f"a number of at most {before} digits before the decimal point"
    return "a number"


def _describe_bad_value(
    session: Session, ds: Dataset, columns: list[str], spelled: dict[str, str], path: Path
) -> str | None:
    """After the typed INSERT was refused: which cell the database could not convert.

    Runs in a transaction of its own, rolled back at the end: the file is
    staged again with line numbers, then searched. None when every cell
    converts (the INSERT failed for another reason, such as a repeated key).
    """
    connection = session.connection()
    sql = _Sql(connection.dialect)
    staging = f"hs_check_{uuid.uuid4().hex[:12]}"
    try:
        _stage(connection, staging, columns, path, numbered=True)
        skipped = [c for c in columns if c == "_row_number"]
        casts = _select_list(ds, columns[len(skipped) :], sql)[2]
        found = _first_failing_cast(connection, staging, casts, sql)
        if found is None:
            return None
        line, cast = found
        value = connection.exec_driver_sql(
            f"SELECT {sql.q(cast.source)} FROM {sql.q(staging)} WHERE {_line_number(connection, staging)} = {line}"
        ).scalar()
    finally:
        session.rollback()
    return (
        f"line {line}, column {spelled[cast.source]}: {value!r} is not {_kind(cast.type)} "
        "(lines counted from the header, line 1)"
    )


@audited_call("reference_load", details=reference_details, describe=from_reference_load)
def load_dataset(
    session: Session,
    name: str,
    path: str | Path,
    *,
    replace: bool = False,
    release: str | None = None,
) -> LoadResult:
    """Load ``path`` into the table of dataset ``name`` within the session's transaction.

    Without ``replace`` a dataset already loaded is refused. Does not commit
    (the caller or ``session_scope`` does); on any failure the session is
    rolled back before raising, so the previous rows stay as they were.
    """
    ds = dataset(name)
    path = Path(path).expanduser().resolve()
    header = read_header(path)
    skipped = 1 if ds.row_number_column and not header[0].strip() else 0
    chosen = match_release(ds, header[skipped:], path, release)
    # The row-number column is staged (the bulk readers take every column) under
    # a name no published header has, and never selected into the table.
    columns = ["_row_number"] * skipped + [snake_case(h) for h in header[skipped:]]
    connection = session.connection()
    sql = _Sql(connection.dialect)
    staging = f"hs_stage_{uuid.uuid4().hex[:12]}"
    try:
        previous = connection.execute(
            sa.select(_REGISTRY.c.release, _REGISTRY.c.source_file).where(_REGISTRY.c.dataset == ds.name)
        ).first()
        if not replace:
            if previous is not None:
                raise ReferenceDataError(
                    f"{ds.name} already holds release {previous.release} from {previous.source_file}; "
                    "pass --replace (replace=True) to load another file in its place"
                )
            if connection.execute(sa.select(sa.exists().select_from(ds.table))).scalar():
                raise ReferenceDataError(
                    f"{ds.name} holds rows that no load recorded; pass --replace (replace=True) to replace them"
                )
        digest = file_sha256(path)
        _stage(connection, staging, columns, path)
        _check_codes(connection, ds, staging, path, sql)
        targets, exprs, _ = _select_list(ds, columns[skipped:], sql)
        table = sql.table(ds.table)
        connection.execute(sa.delete(ds.table))
        try:
            connection.exec_driver_sql(
                f"INSERT INTO {table} ({', '.join(sql.q(t) for t in targets)}) "
                f"SELECT {', '.join(exprs)} FROM {sql.q(staging)}"
            )
        except sa.exc.DBAPIError as exc:
            # The database's own message names neither the column nor the row:
            # find the cell again, after undoing everything this load did.
            session.rollback()
            spelled = dict(zip(columns, (h.strip() for h in header), strict=True))
            described = _describe_bad_value(session, ds, columns, spelled, path)
            raise ReferenceDataError(
                f"{path.name} could not be loaded into {ds.name}, nothing was changed: {described or database_message(exc)}"
            ) from exc
        rows = connection.execute(sa.select(sa.func.count()).select_from(ds.table)).scalar_one()
        if rows == 0:
            raise ReferenceDataError(f"{path.name} has a header but no data rows; nothing was loaded")
        connection.exec_driver_sql(f"DROP TABLE {sql.q(staging)}")
        result = LoadResult(
            dataset=ds.name,
            release=chosen.name,
            source_file=path.name,
            sha256=digest,
            row_count=rows,
            loaded_at=dt.datetime.now(dt.UTC),
        )
        connection.execute(sa.delete(_REGISTRY).where(_REGISTRY.c.dataset == ds.name))
        connection.execute(sa.insert(_REGISTRY).values(**asdict(result)))
    except ReferenceDataError:
        session.rollback()
        raise
    except sa.exc.DBAPIError as exc:
        session.rollback()
        raise ReferenceDataError(
            f"{path.name} could not be loaded into {ds.name}, nothing was changed: {database_message(exc)}"
        ) from exc
    except BaseException:
        session.rollback()
        raise
    return result


@dataclass(frozen=True)
class DatasetStatus:
    """One dataset as ``reference status`` shows it; ``loaded`` is None when never loaded."""

    dataset: str
    title: str
    accepted_releases: tuple[str, ...]
    loaded: LoadResult | None


def dataset_status(session: Session) -> list[DatasetStatus]:
    """Every reference dataset, with what its table holds, in one query."""
    rows = session.connection().execute(sa.select(_REGISTRY)).mappings().all()
    loaded = {row["dataset"]: LoadResult(**row) for row in rows}
    return [DatasetStatus(ds.name, ds.title, ds.release_names, loaded.get(ds.name)) for ds in DATASETS.values()]
