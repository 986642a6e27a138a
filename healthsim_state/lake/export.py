""":func:`export_lake`: the store's scenarios (and the derived tables) as a lake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from healthsim_models.errors import LakeError
from healthsim_models.registry import ENTITY_TYPES, EntityType
from healthsim_state.analytics.omop.schema import DEFAULT_SCHEMA as OMOP_SCHEMA
from healthsim_state.analytics.star import DEFAULT_SCHEMA as STAR_SCHEMA
from healthsim_state.lake import delta, manifest, parquet
from healthsim_state.lake.layout import DERIVED, FORMATS, derived_path, partition_dir
from healthsim_state.lake.schemas import SCENARIO, table_schema
from healthsim_state.lake.source import (
    ScenarioKey,
    chosen_scenarios,
    derived_tables,
    latest_update,
    scenario_batches,
    table_batches,
)
from healthsim_state.lake.target import Target, parse_target
from healthsim_state.store.audit import record_read

#: The derived table groups an export may include.
INCLUDES = DERIVED


@dataclass
class LakeSummary:
    """What an export wrote: per dataset path, its rows per scenario (a derived table's
    under ``"*"``), the rows written this time (Delta writes only changes), the rows
    removed, and the Delta version (None for Parquet, or when nothing changed)."""

    target: str
    format: str
    exported_at: dt.datetime
    scenarios: list[str]
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "format": self.format,
            "exported_at": self.exported_at.isoformat(),
            "scenarios": self.scenarios,
            "tables": {
                path: {
                    "rows": sum(counts.values()),
                    "written": self.written.get(path, 0),
                    "removed": self.removed.get(path, 0),
                    **({"version": self.versions[path]} if self.format == "delta" else {}),
                }
                for path, counts in self.rows.items()
            },
        }


def check_request(format: str, include: Iterable[str]) -> list[str]:
    """Refuse an unknown format or derived group (before any store is opened); the groups, once each."""
    if format not in FORMATS:
        raise LakeError(f"unknown lake format {format!r}: choose {' or '.join(FORMATS)}")
    groups = list(dict.fromkeys(include))
    unknown = [g for g in groups if g not in INCLUDES]
    if unknown:
        raise LakeError(f"unknown --include {', '.join(map(repr, unknown))}: choose from {', '.join(INCLUDES)}")
    return groups


def export_lake(
    session: Session,
    target: str | Path,
    scenarios: Sequence[str] | None = None,
    format: str = "parquet",
    include: Iterable[str] = (),
    *,
    storage_options: Mapping[str, str] | None = None,
    omop_schema: str = OMOP_SCHEMA,
    star_schema: str = STAR_SCHEMA,
) -> LakeSummary:
    """Write ``scenarios`` (names or ids; None: every scenario) to the lake at ``target``
    (a directory or an object-store URI with ``storage_options``) as ``format``, one
    dataset per canonical table partitioned by scenario, plus the derived tables of
    ``include`` (``"omop"``, ``"star"``) as built in ``omop_schema`` / ``star_schema``.
    Reads in the caller's session and writes nothing to the store but, when reads are
    audited, its ``lake_export`` event (kept when the caller commits)."""
    groups = check_request(format, include)
    where = parse_target(target, storage_options)
    fs, root = where.filesystem()
    with _storage_errors(where):
        previous = manifest.read(fs, root)
    if previous is not None and previous.get("format") != format:
        raise LakeError(
            f"{where.uri} holds a {previous.get('format')} lake; a {format} export cannot be added to it: "
            "give another target"
        )
    chosen = chosen_scenarios(session, scenarios)
    derived = {}
    for group in groups:
        schema = omop_schema if group == "omop" else star_schema
        tables = derived_tables(session, schema)
        if not tables:
            command = "omop" if group == "omop" else "star"
            raise LakeError(
                f"--include {group}: the store has no tables in schema {schema!r}; "
                f"build them first with 'healthsim analytics {command}'"
            )
        derived[group] = tables
    now = dt.datetime.now(dt.UTC)
    summary = LakeSummary(where.uri, format, now, [s.name for s in chosen])
    # Scenarios the lake holds that the store no longer has, removed by an export of every scenario.
    gone = [] if scenarios is not None else _gone(previous, chosen)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    with _storage_errors(where):
        if format == "delta":  # every table checked before the first is written
            for et in ENTITY_TYPES:
                table = et.model.__table__
                delta.check_columns(where.join(table.name), where.options, table_schema(table))
        _write(session, where, fs, root, chosen, gone, derived, scenarios is None, stamp, summary)
        manifest.write(fs, root, _manifest(session, previous, summary, chosen, gone))
    record_read(
        session,
        "lake_export",
        scenario=chosen[0].name if len(chosen) == 1 else None,
        counts={path: sum(counts.values()) for path, counts in summary.rows.items()},
        details={"target": where.uri, "format": format, "scenarios": summary.scenarios, "include": groups},
    )
    return summary


@contextmanager
def _storage_errors(where: Target) -> Iterator[None]:
    """The file system's and Delta's errors as a :class:`LakeError` that names the target."""
    try:
        yield
    except (OSError, *_delta_errors()) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise LakeError(f"cannot write the lake at {where.uri}: {reason}") from exc


def _delta_errors() -> tuple[type[Exception], ...]:
    try:
        from deltalake.exceptions import DeltaError
    except ImportError:  # installed without the lake extra: Parquet only
        return ()
    return (DeltaError,)


def _write(
    session: Session,
    where: Target,
    fs: Any,
    root: str,
    chosen: Sequence[ScenarioKey],
    gone: Sequence[str],
    derived: Mapping[str, list[sa.Table]],
    every: bool,
    stamp: str,
    summary: LakeSummary,
) -> None:
    """Write every canonical table, then the derived ones."""
    format, now = summary.format, summary.exported_at
    for et in ENTITY_TYPES:
        if format == "parquet":
            _parquet_table(session, fs, root, et, chosen, gone, stamp, summary)
        else:
            _delta_table(session, where, et, chosen, every, summary)
    for group, tables in derived.items():
        for table in tables:
            path = derived_path(group, table.name)
            counts = summary.rows.setdefault(path, {"*": 0})
            batches = _counted(table_batches(session, table), counts, "*")
            schema = table_schema(table, scenario_columns=False)
            if format == "parquet":
                parquet.write_table(fs, f"{root}/{path}", schema, batches, stamp=stamp)
                summary.versions[path] = None
            else:
                summary.versions[path] = delta.overwrite(where.join(path), schema, batches, where.options, now)
            summary.written[path] = counts["*"]


def _counted(batches: Iterable[pa.RecordBatch], counts: dict[str, int], key: str) -> Iterator[pa.RecordBatch]:
    counts[key] = 0
    for batch in batches:
        counts[key] += batch.num_rows
        yield batch


def _gone(previous: dict[str, Any] | None, chosen: Sequence[ScenarioKey]) -> list[str]:
    kept = {s.name for s in chosen}
    return sorted(set((previous or {}).get("scenarios", {})) - kept)


def _parquet_table(
    session: Session,
    fs: Any,
    root: str,
    et: EntityType,
    chosen: Sequence[ScenarioKey],
    gone: Sequence[str],
    stamp: str,
    summary: LakeSummary,
) -> None:
    path = et.model.__table__.name
    counts = summary.rows.setdefault(path, {})

    def batches() -> Iterator[pa.RecordBatch]:
        for scenario in chosen:
            yield from _counted(scenario_batches(session, et, scenario), counts, scenario.name)

    parquet.write_table(
        fs,
        f"{root}/{path}",
        table_schema(et.model.__table__),
        batches(),
        stamp=stamp,
        partitions=[*(s.name for s in chosen), *gone],
    )
    summary.written[path] = sum(counts.values())
    summary.versions[path] = None


def _delta_table(
    session: Session, where: Target, et: EntityType, chosen: Sequence[ScenarioKey], every: bool, summary: LakeSummary
) -> None:
    path = et.model.__table__.name
    uri = where.join(path)
    table = delta.open_table(uri, where.options)
    names = [s.name for s in chosen]
    # An export of every scenario also empties the partitions of scenarios the store no longer has.
    stale = [name for name in delta.lake_scenarios(table) if name not in names] if every else []
    previous = delta.last_watermark(table) if table is not None else None
    latest = latest_update(session, et, chosen) if chosen else None
    watermark = max((w for w in (previous, latest) if w is not None), default=None)
    changes = delta.Changes(table_schema(et.model.__table__), previous, delta.lake_ids(table, names + stale))
    counts = summary.rows.setdefault(path, {})

    def part(scenario: ScenarioKey) -> tuple[str, Any]:
        return scenario.name, lambda: _counted(scenario_batches(session, et, scenario), counts, scenario.name)

    parts = [part(s) for s in chosen] + [(name, lambda: iter(())) for name in stale]
    summary.versions[path] = delta.merge_changes(
        uri, table, changes, parts, where.options, summary.exported_at, watermark
    )
    summary.written[path] = changes.written
    summary.removed[path] = changes.removed
    for scenario in chosen:
        counts.setdefault(scenario.name, 0)  # a scenario whose rows were not read (nothing changed before it)


def _manifest(
    session: Session,
    previous: dict[str, Any] | None,
    summary: LakeSummary,
    chosen: Sequence[ScenarioKey],
    gone: Sequence[str],
) -> dict[str, Any]:
    old = previous or {}
    scenarios = {k: v for k, v in old.get("scenarios", {}).items() if k not in gone}
    scenarios.update({s.name: {"id": str(s.id), "partition": partition_dir(s.name)} for s in chosen})
    tables = dict(old.get("tables", {}))
    for path, counts in summary.rows.items():
        entry = dict(tables.get(path, {}))
        if "*" in counts:
            entry.update(path=path, rows=counts["*"])
        else:
            rows = {k: v for k, v in entry.get("rows", {}).items() if k in scenarios}
            rows.update(counts)
            entry.update(path=path, entity_type=_type_of(path), rows=rows)
        if summary.format == "delta" and summary.versions.get(path) is not None:
            entry["version"] = summary.versions[path]
        tables[path] = entry
    return {
        "format": summary.format,
        "schema_revision": MigrationContext.configure(session.connection()).get_current_revision(),
        "exported_at": summary.exported_at.isoformat(),
        "generator": manifest.generator(),
        "partition_column": SCENARIO,
        "scenarios": dict(sorted(scenarios.items())),
        "tables": tables,
    }


def _type_of(path: str) -> str:
    return next(et.name for et in ENTITY_TYPES if et.model.__table__.name == path)
