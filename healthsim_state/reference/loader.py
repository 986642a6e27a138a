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

    @staticmethod
    def literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

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


def _select_list(ds: Dataset, columns: list[str], sql: _Sql) -> tuple[list[str], list[str]]:
    """Target columns and the typed expressions that fill them from the text staging table."""
    table = ds.table
    targets: list[str] = []
    exprs: list[str] = []
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
                targets.append(column.name)
                exprs.append(f"CAST({bound} AS {sql.type_of(column)})")
        elif isinstance(table.c[name].type, sa.String):
            targets.append(name)
            exprs.append(value)
        else:
            column = table.c[name]
            cast = f"CAST({value} AS {sql.type_of(column)})"
            if ds.markers and (not ds.marker_columns or name in ds.marker_columns):
                cast = f"CASE WHEN {is_marker} THEN NULL ELSE {cast} END"
                if ds.companion_suffix:
                    targets.append(f"{name}{ds.companion_suffix}")
                    exprs.append(f"CASE WHEN {is_marker} THEN {raw} END")
                else:
                    marked.append(name)
            targets.append(name)
            exprs.append(cast)
    if marked:
        # A concatenation rather than concat_ws: PostgreSQL functions take at most 100 arguments.
        listed = " || ".join(
            f"CASE WHEN {_marker_test(sql.q(name), ds.markers)} THEN '{name},' ELSE '' END" for name in marked
        )
        targets.append("suppressed_columns")
        exprs.append(f"NULLIF(rtrim({listed}, ','), '')")
    return targets, exprs


def _stage(connection: sa.Connection, staging: str, columns: list[str], path: Path, sql: _Sql) -> None:
    """Copy the file's rows, as text, into a temporary table named ``staging``."""
    if connection.dialect.name == "duckdb":
        declared = ", ".join(f"{sql.literal(c)}: 'VARCHAR'" for c in columns)
        connection.exec_driver_sql(
            f"CREATE TEMP TABLE {sql.q(staging)} AS SELECT * FROM read_csv({sql.literal(str(path))}, "
            f"header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
            f"columns = {{{declared}}})"
        )
        return
    import psycopg  # the PostgreSQL driver; only this branch needs it

    definition = ", ".join(f"{sql.q(c)} text" for c in columns)
    connection.exec_driver_sql(f"CREATE TEMP TABLE {sql.q(staging)} ({definition}) ON COMMIT DROP")
    cursor = connection.connection.driver_connection.cursor()
    try:
        with cursor.copy(f"COPY {sql.q(staging)} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            with path.open("rb") as handle:
                while chunk := handle.read(_COPY_CHUNK):
                    copy.write(chunk)
    except psycopg.Error as exc:
        raise ReferenceDataError(
            f"{path.name} could not be read as CSV, nothing was changed: {_first_line(exc)}"
        ) from exc
    finally:
        cursor.close()


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


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
        _stage(connection, staging, columns, path, sql)
        _check_codes(connection, ds, staging, path, sql)
        targets, exprs = _select_list(ds, columns[skipped:], sql)
        table = sql.table(ds.table)
        connection.execute(sa.delete(ds.table))
        connection.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(sql.q(t) for t in targets)}) "
            f"SELECT {', '.join(exprs)} FROM {sql.q(staging)}"
        )
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
            loaded_at=dt.datetime.now(dt.timezone.utc),
        )
        connection.execute(sa.delete(_REGISTRY).where(_REGISTRY.c.dataset == ds.name))
        connection.execute(sa.insert(_REGISTRY).values(**asdict(result)))
    except ReferenceDataError:
        session.rollback()
        raise
    except sa.exc.DBAPIError as exc:
        session.rollback()
        raise ReferenceDataError(
            f"{path.name} could not be loaded into {ds.name}, nothing was changed: {_first_line(exc)}"
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
    return [
        DatasetStatus(ds.name, ds.title, ds.release_names, loaded.get(ds.name)) for ds in DATASETS.values()
    ]
