"""The analytics builds (OMOP CDM export, star schema) against a plain copy of their input, in one run.

    python -m bench.analytics                          # 1,000 and 10,000 demo patients
    python -m bench.analytics --patients 2000 20000    # other sizes (the last is compared with the first)

Each size runs in a fresh subprocess on a fresh DuckDB file holding the demo
scenario (healthsim_state.demo) of that many patients, saved beforehand
(untimed). Then, each timed and committed on its own:

- omop: ``build_omop`` of the scenario into the ``omop`` schema (its schema
  created by the build); each target table is given the time of the
  statements from the previous table's INSERT to its own (SQLAlchemy's
  cursor events): its staging, ids and deletes, and any step shared by the
  tables that follow (the routing of clinical events by domain lands on
  the first routed table); the commit and what follows the last INSERT are
  "(after)";
- check: ``check_omop`` over what the build wrote;
- star: ``build_star`` into the ``analytics`` schema, per table as above;
- copy (the baseline): ``CREATE TABLE ... AS SELECT *`` of every canonical
  table the scenario filled, into a schema of its own: reading and writing
  the same input with no mapping, no join, no key.

Prints seconds, rows and rows/s per target table, each build's time over
the copy's, and the growth of each build's time from the first size to the
last against the growth of the entities (linear: 10x the data within about
11x the time). Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: How much slower than the data's growth a build may grow and still count as linear.
LINEAR_SLACK = 1.1
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(?:\"?\w+\"?\.)?\"?(\w+)\"?", re.IGNORECASE)


@contextmanager
def statement_clock(engine: Any) -> Iterator[list[tuple[str | None, float]]]:
    """Every statement run while the block runs, in order: the table it inserts into (None when it
    is no INSERT) and its seconds."""
    from sqlalchemy import event

    statements: list[tuple[str | None, float]] = []
    started: list[float] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started.append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        match = _INSERT.match(statement)
        statements.append((match.group(1).lower() if match else None, time.perf_counter() - started.pop()))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def per_table(statements: list[tuple[str | None, float]], targets: set[str]) -> dict[str, float]:
    """Seconds per target table: the statements after the previous target's INSERT up to its own
    (staging, ids, deletes: the work that leads to it); what follows the last one is "(after)"."""
    seconds: dict[str, float] = defaultdict(float)
    pending = 0.0
    for table, elapsed in statements:
        pending += elapsed
        if table in targets:
            seconds[table] += pending
            pending = 0.0
    seconds["(after)"] += pending
    return seconds


def _timed_build(engine: Any, build: Callable[[Any], dict[str, int]]) -> dict[str, Any]:
    """``build(session)`` (it returns rows per table) committed, with its total and per-table seconds."""
    from healthsim_models import session_scope

    with statement_clock(engine) as statements:
        start = time.perf_counter()
        with session_scope(engine) as session:
            rows = build(session)
        seconds = time.perf_counter() - start
    spent = per_table(statements, set(rows))
    tables = {name: {"rows": rows.get(name, 0), "seconds": spent.get(name, 0.0)} for name in [*rows, "(after)"]}
    return {"seconds": seconds, "rows": sum(rows.values()), "tables": tables}


def _omop(session: Any) -> dict[str, int]:
    from healthsim_state.analytics.omop import build_omop

    return dict(build_omop(session, ["bench"]).rows)


def _star(session: Any) -> dict[str, int]:
    from healthsim_state.analytics.star import build_star

    return dict(build_star(session, ["bench"]).rows)


def _check(session: Any) -> dict[str, int]:
    """The data-quality checks of the export; their count and the failed ones' (reported, not fatal:
    the bench times the checks whatever they find)."""
    from healthsim_state.analytics.omop.check import check_omop

    results = check_omop(session)
    return {"checks": len(results), "failed": sum(not r.passed for r in results)}


def _copy(session: Any) -> dict[str, int]:
    """Every canonical table the scenario filled, copied whole into the schema ``bench_copy``."""
    from sqlalchemy import text

    from healthsim_models import ENTITY_TYPES

    session.execute(text("CREATE SCHEMA bench_copy"))
    rows = {}
    for et in ENTITY_TYPES:
        table = et.model.__table__.name
        count = session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
        if count:
            session.execute(text(f"CREATE TABLE bench_copy.{table} AS SELECT * FROM {table}"))
            rows[table] = count
    return rows


def _has_star() -> bool:
    try:
        import healthsim_state.analytics.star  # noqa: F401
    except ImportError:
        return False
    return True


def measure(patients: int, path: str) -> dict[str, Any]:
    """The demo scenario of ``patients`` saved, then each build timed on the same file."""
    from healthsim_models import create_store_engine, session_scope
    from healthsim_state import ScenarioRepository
    from healthsim_state.demo import scenario

    engine = create_store_engine(f"duckdb:///{path}")
    with session_scope(engine) as session:
        summary = ScenarioRepository(session).save("bench", scenario(patients))
    result: dict[str, Any] = {"patients": patients, "entities": sum(summary.counts.values())}
    result["omop"] = _timed_build(engine, _omop)
    result["check"] = _timed_build(engine, _check)
    if _has_star():
        result["star"] = _timed_build(engine, _star)
    result["copy"] = _timed_build(engine, _copy)
    engine.dispose()
    return result


def _run(patients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-m", "bench.analytics", "--child", str(patients), os.path.join(tmp, "bench.duckdb")],
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        raise SystemExit(f"{patients} patients failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(result: dict[str, Any]) -> None:
    copy = result["copy"]
    print(f"\n{result['patients']:,} patients, {result['entities']:,} entities")
    for build in ("omop", "star"):
        if build not in result:
            continue
        r = result[build]
        print(f"  {build}: {r['seconds']:.2f} s, {r['rows']:,} rows, {r['rows'] / r['seconds']:,.0f} rows/s")
        print(f"    {'table':<24} {'rows':>10} {'seconds':>8} {'rows/s':>11}")
        for name, t in sorted(r["tables"].items(), key=lambda item: -item[1]["seconds"]):
            rate = f"{t['rows'] / t['seconds']:,.0f}" if t["seconds"] else "-"
            print(f"    {name:<24} {t['rows']:>10,} {t['seconds']:>8.3f} {rate:>11}")
        spent = sum(t["seconds"] for t in r["tables"].values())
        print(f"    (SQL statements {spent:.2f} s of the {r['seconds']:.2f} s; the rest is Python and the commit)")
        print(f"    {build} / copy time: {r['seconds'] / copy['seconds']:.1f}x")
    check = result["check"]["tables"]
    print(
        f"  check: {result['check']['seconds']:.2f} s ({check['checks']['rows']:,} checks, "
        f"{check['failed']['rows']} failed)"
    )
    print(f"  copy: {copy['seconds']:.2f} s, {copy['rows']:,} rows, {copy['rows'] / copy['seconds']:,.0f} rows/s")


def linearity(first: dict[str, Any], last: dict[str, Any]) -> None:
    growth = last["entities"] / first["entities"]
    print(f"\nfrom {first['patients']:,} to {last['patients']:,} patients: {growth:.1f}x the entities")
    for build in ("omop", "star", "check", "copy"):
        if build in first and build in last:
            times = last[build]["seconds"] / first[build]["seconds"]
            verdict = "linear" if times <= growth * LINEAR_SLACK else "NOT linear"
            print(f"  {build:<6} {times:5.1f}x the time ({verdict}: limit {growth * LINEAR_SLACK:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, nargs="+", default=[1000, 10000], help="sizes to measure")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1])))
        return
    results = [_run(patients) for patients in args.patients]
    for result in results:
        report(result)
    if len(results) > 1:
        linearity(results[0], results[-1])


if __name__ == "__main__":
    main()
