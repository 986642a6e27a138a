"""Data-quality checks of an OMOP CDM 5.4 schema, in the spirit of the OHDSI Data Quality Dashboard.

The checks are generated from the CDM's own field specification
(``spec/OMOP_CDMv5.4_Field_Level.csv``, shipped beside this module): which
tables and fields exist, which fields are required, their types and
lengths, the primary and foreign keys. Each check is an aggregate SQL
query, the same on DuckDB and PostgreSQL; one query measures every field a
check kind covers in one table. Checks of an empty table are not run: they
report no rows checked (:attr:`CheckResult.status` "not applicable").

A check fails when any row violates it (no threshold): a generated export
should be clean. :data:`CHECKS` describes each one.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources

from sqlalchemy import text
from sqlalchemy.orm import Session

from healthsim_models.errors import OmopSchemaNotFoundError
from healthsim_state.analytics.omop.schema import DEFAULT_SCHEMA, schema_name

#: Days an event may follow its person's death before it counts as implausible (DQD's grace,
#: for records dated on the day a claim or a test result was filed rather than done).
DEATH_GRACE_DAYS = 60

#: Each check's name (DQD's where DQD has the check) and what it counts as a violation.
CHECKS: dict[str, str] = {
    "cdmTable": "the table of the specification is missing from the schema",
    "cdmField": "the field of the specification is missing from its table",
    "isRequired": "rows with NULL in a field the specification requires (isRequired = Yes)",
    "fieldLength": "values longer than the field's varchar(n) length (cdmDatatype)",
    "isPrimaryKey": "rows whose primary key value occurs more than once",
    "isForeignKey": "rows whose value is not a key of the table the field refers to (fkTableName.fkFieldName)",
    "plausibleAfterBirth": "rows of a person dated before the person's birth (birth_datetime, "
    "else year/month/day of birth, the first month and day where missing)",
    "plausibleBeforeDeath": f"rows of a person dated more than {DEATH_GRACE_DAYS} days after the person's death_date",
    "plausibleStartBeforeEnd": "rows whose start date is after their end date (compared as dates)",
    "withinObservationPeriod": "clinical events whose date falls in none of the person's observation periods",
}

#: Tables with a person_id whose rows are not clinical events that an observation period must
#: cover: the person, the periods themselves, death (often recorded after observation ends) and
#: health-plan enrolment.
_NOT_EVENTS = frozenset({"person", "observation_period", "death", "payer_plan_period"})

#: Quotes an identifier (a table's name in the schema, or a column's).
Quote = Callable[[str], str]
#: Column names per table of the checked schema.
Columns = dict[str, set[str]]

_VARCHAR = re.compile(r"varchar\((\d+)\)")


@dataclass(frozen=True)
class SpecField:
    """One row of the CDM field specification."""

    table: str
    name: str
    required: bool
    datatype: str
    primary_key: bool
    fk_table: str | None
    fk_field: str | None

    @property
    def length(self) -> int | None:
        """The n of varchar(n); None for other types and varchar(MAX)."""
        match = _VARCHAR.fullmatch(self.datatype)
        return int(match.group(1)) if match else None

    @property
    def is_date(self) -> bool:
        return self.datatype in ("date", "datetime")


@cache
def specification() -> dict[str, tuple[SpecField, ...]]:
    """The CDM 5.4 fields per table, in the specification's order."""
    raw = resources.files(__package__).joinpath("spec", "OMOP_CDMv5.4_Field_Level.csv").read_text("utf-8-sig")
    tables: dict[str, list[SpecField]] = {}
    for row in csv.DictReader(io.StringIO(raw)):
        foreign = row["isForeignKey"] == "Yes" and row["fkTableName"] not in ("", "NA")
        field = SpecField(
            table=row["cdmTableName"].lower(),
            name=row["cdmFieldName"].strip('"').lower(),  # note_nlp's "offset", quoted as a reserved word
            required=row["isRequired"] == "Yes",
            datatype=row["cdmDatatype"].lower(),
            primary_key=row["isPrimaryKey"] == "Yes",
            fk_table=row["fkTableName"].lower() if foreign else None,
            fk_field=row["fkFieldName"].lower() if foreign else None,
        )
        tables.setdefault(field.table, []).append(field)
    return {table: tuple(fields) for table, fields in tables.items()}


@dataclass(frozen=True)
class CheckResult:
    """One check of one table (and field): how many rows it looked at and how many broke it."""

    check: str
    table: str
    field: str | None
    rows_violating: int
    rows_checked: int

    @property
    def percentage(self) -> float | None:
        """Violating rows as a percentage of the rows checked; None when no row was checked."""
        return 100.0 * self.rows_violating / self.rows_checked if self.rows_checked else None

    @property
    def passed(self) -> bool:
        return self.rows_violating == 0

    @property
    def status(self) -> str:
        """ "pass", "fail", or "not applicable" (no row to check)."""
        if not self.passed:
            return "fail"
        return "pass" if self.rows_checked else "not applicable"

    def as_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "table": self.table,
            "field": self.field,
            "rows_violating": self.rows_violating,
            "rows_checked": self.rows_checked,
            "percentage": self.percentage,
            "status": self.status,
        }


@dataclass(frozen=True)
class _Measure:
    """One result of a query: aggregate SQL for the rows checked and the rows violating."""

    check: str
    field: str | None
    checked: str
    violating: str


#: A query's FROM clause and what it measures.
Query = tuple[str, list[_Measure]]


def check_omop(session: Session, schema: str = DEFAULT_SCHEMA) -> list[CheckResult]:
    """Run every check on the OMOP CDM tables in ``schema``; read-only, in the caller's session.

    Results are ordered by check (as in :data:`CHECKS`), table and field in the
    specification's order. Raises :class:`~healthsim_models.errors.InvalidArgumentError` for a name no
    OMOP schema can have (as ``build_omop`` does), :class:`OmopSchemaNotFoundError`
    when the schema holds none of the CDM's tables.
    """
    spec = specification()
    present = _columns(session, schema_name(schema))
    if not present.keys() & spec.keys():
        raise OmopSchemaNotFoundError(schema)
    q = session.get_bind().dialect.identifier_preparer.quote_identifier

    def name(table: str) -> str:
        return f"{q(schema)}.{q(table)}"

    results: list[CheckResult] = []
    for table, fields in spec.items():
        results.append(CheckResult("cdmTable", table, None, int(table not in present), 1))
        if table in present:
            results += [CheckResult("cdmField", table, f.name, int(f.name not in present[table]), 1) for f in fields]
    counts: dict[str, int] = {}
    for table, fields in spec.items():
        if table not in present:
            continue
        have = [f for f in fields if f.name in present[table]]
        rows, measured = _run(session, f"FROM {name(table)} t", _field_measures(have, q))
        counts[table] = rows
        results += [CheckResult(c, table, f, v, n) for c, f, v, n in measured]
    for table, fields in spec.items():
        if table not in present:
            continue
        have = [f for f in fields if f.name in present[table]]
        for source, measures in _row_queries(table, have, present, name, q):
            if counts[table]:
                measured = _run(session, source, measures)[1]
            else:
                measured = [(m.check, m.field, 0, 0) for m in measures]
            results += [CheckResult(c, table, f, v, n) for c, f, v, n in measured]
    order = {check: i for i, check in enumerate(CHECKS)}
    tables = {table: i for i, table in enumerate(spec)}
    positions = {(f.table, f.name): i for fields in spec.values() for i, f in enumerate(fields)}
    results.sort(key=lambda r: (order[r.check], tables[r.table], positions.get((r.table, r.field), -1)))
    return results


def _columns(session: Session, schema: str) -> dict[str, set[str]]:
    """The tables of ``schema`` with their column names, lower-cased (the DDL's names are unquoted)."""
    rows = session.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = :schema AND table_catalog = current_database()"
        ),
        {"schema": schema},
    ).all()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table.lower(), set()).add(column.lower())
    return tables


def _run(session: Session, source: str, measures: list[_Measure]) -> tuple[int, list[tuple[str, str | None, int, int]]]:
    """One aggregate query over ``source``: its count(*), and per measure (check, field, rows violating,
    rows checked)."""
    columns = ["count(*)"] + [f"{m.checked}, {m.violating}" for m in measures]
    row = session.execute(text(f"SELECT {', '.join(columns)} {source}")).one()
    values = [int(v or 0) for v in row]  # SUM over no rows is NULL; PostgreSQL's SUM is numeric
    return values[0], [(m.check, m.field, values[2 + 2 * i], values[1 + 2 * i]) for i, m in enumerate(measures)]


def _violations(condition: str) -> str:
    return f"COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)"


def _field_measures(fields: Iterable[SpecField], q: Quote) -> list[_Measure]:
    """isRequired and fieldLength of one table's fields, measured in one scan."""
    measures = []
    for f in fields:
        column = f"t.{q(f.name)}"
        if f.required:
            measures.append(_Measure("isRequired", f.name, "count(*)", f"count(*) - count({column})"))
        if f.length is not None:
            long = f"length(CAST({column} AS VARCHAR)) > {f.length}"
            measures.append(_Measure("fieldLength", f.name, f"count({column})", _violations(long)))
    return measures


def _row_queries(table: str, fields: list[SpecField], present: Columns, name: Quote, q: Quote) -> Iterator[Query]:
    """(FROM clause, measures) of the checks on ``table`` beyond one scan of its own fields."""
    have = {f.name for f in fields}
    for f in fields:
        if f.primary_key:
            key = q(f.name)
            grouped = f"FROM (SELECT count(*) AS n FROM {name(table)} WHERE {key} IS NOT NULL GROUP BY {key}) t"
            duplicated = "COALESCE(SUM(CASE WHEN t.n > 1 THEN t.n ELSE 0 END), 0)"
            yield grouped, [_Measure("isPrimaryKey", f.name, "COALESCE(SUM(t.n), 0)", duplicated)]
    yield from _foreign_keys(table, fields, present, name, q)
    yield from _dates(table, fields, have, present, name, q)


def _foreign_keys(table: str, fields: list[SpecField], present: Columns, name: Quote, q: Quote) -> Iterator[Query]:
    """isForeignKey of every referring field of ``table``, in one query with a join per field."""
    joins, measures = [], []
    for i, f in enumerate(f for f in fields if f.fk_table):
        column = f"t.{q(f.name)}"
        if f.fk_table in present and f.fk_field in present[f.fk_table]:
            keys = f"(SELECT DISTINCT {q(f.fk_field)} AS k FROM {name(f.fk_table)})"
            joins.append(f"LEFT JOIN {keys} k{i} ON k{i}.k = {column}")
            violating = _violations(f"{column} IS NOT NULL AND k{i}.k IS NULL")
        else:  # the referred table is missing (cdmTable says so): no value resolves
            violating = f"count({column})"
        measures.append(_Measure("isForeignKey", f.name, f"count({column})", violating))
    if measures:
        yield f"FROM {name(table)} t {' '.join(joins)}", measures


def _dates(
    table: str, fields: list[SpecField], have: set[str], present: Columns, name: Quote, q: Quote
) -> Iterator[Query]:
    """The date plausibility checks of ``table``."""
    dates = [f for f in fields if f.is_date]
    pairs = [(f, end) for f in dates if (end := _end_of(f, dates))]
    if pairs:
        yield (
            f"FROM {name(table)} t",
            [
                _Measure(
                    "plausibleStartBeforeEnd",
                    start.name,
                    f"count(CASE WHEN t.{q(start.name)} IS NOT NULL AND t.{q(end.name)} IS NOT NULL THEN 1 END)",
                    _violations(f"CAST(t.{q(start.name)} AS DATE) > CAST(t.{q(end.name)} AS DATE)"),
                )
                for start, end in pairs
            ],
        )
    if "person_id" not in have or table == "person" or not dates:
        return
    person = present.get("person", set())
    if {"person_id", "year_of_birth", "month_of_birth", "day_of_birth", "birth_datetime"} <= person:
        births = (
            f"(SELECT person_id, min({_birth()}) AS birth FROM {name('person')} "
            "WHERE year_of_birth BETWEEN 1 AND 9999 GROUP BY person_id)"
        )
        yield (
            f"FROM {name(table)} t JOIN {births} p ON p.person_id = t.person_id",
            [
                _Measure(
                    "plausibleAfterBirth",
                    f.name,
                    f"count(t.{q(f.name)})",
                    _violations(f"CAST(t.{q(f.name)} AS DATE) < CAST(p.birth AS DATE)"),
                )
                for f in dates
            ],
        )
    if table != "death" and {"person_id", "death_date"} <= present.get("death", set()):
        deaths = f"(SELECT person_id, min(death_date) AS death_date FROM {name('death')} GROUP BY person_id)"
        grace = f"d.death_date + INTERVAL '{DEATH_GRACE_DAYS} days'"
        yield (
            f"FROM {name(table)} t JOIN {deaths} d ON d.person_id = t.person_id",
            [
                _Measure(
                    "plausibleBeforeDeath",
                    f.name,
                    f"count(t.{q(f.name)})",
                    _violations(f"CAST(t.{q(f.name)} AS DATE) > {grace}"),
                )
                for f in dates
            ],
        )
    event = next((f for f in dates if f.required), None)
    periods = present.get("observation_period", set())
    wanted = {"person_id", "observation_period_start_date", "observation_period_end_date"}
    if table not in _NOT_EVENTS and event is not None and wanted <= periods:
        column = f"t.{q(event.name)}"
        covered = (
            f"EXISTS (SELECT 1 FROM {name('observation_period')} op WHERE op.person_id = t.person_id "
            f"AND CAST({column} AS DATE) BETWEEN op.observation_period_start_date AND op.observation_period_end_date)"
        )
        yield (
            f"FROM {name(table)} t",
            [
                _Measure(
                    "withinObservationPeriod",
                    event.name,
                    f"count({column})",
                    _violations(f"{column} IS NOT NULL AND NOT {covered}"),
                )
            ],
        )


def _end_of(start: SpecField, dates: list[SpecField]) -> SpecField | None:
    """The end field paired with a start field: x_start_date with x_end_date, procedure_date with procedure_end_date."""
    if "_start_" in start.name:
        candidate = start.name.replace("_start_", "_end_")
    elif "_end" in start.name:
        return None
    else:
        candidate = re.sub(r"_(date|datetime)$", r"_end_\1", start.name)
    return next((f for f in dates if f.name == candidate and f.datatype == start.datatype), None)


def _birth() -> str:
    """A person's birth date: birth_datetime, else built from year, month and day of birth (by
    adding months and days to 1 January, so that an impossible month or day cannot raise)."""
    built = (
        "make_date(year_of_birth, 1, 1) + (COALESCE(month_of_birth, 1) - 1) * INTERVAL '1 month' "
        "+ (COALESCE(day_of_birth, 1) - 1) * INTERVAL '1 day'"
    )
    return f"COALESCE(CAST(birth_datetime AS DATE), CAST({built} AS DATE))"
