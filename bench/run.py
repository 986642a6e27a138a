"""Save and load throughput of the repository against bare baselines, in one run.

    python -m bench.run --patients 1000 10000     # sizes to measure
    python -m bench.run --patients 100000 --skip-orm

Each measurement runs in a fresh subprocess (so peak RSS is its own) on a
fresh DuckDB file, with the same deterministic data (healthsim_state.demo):

- repository: ScenarioRepository.save / .load / .entities_frame, and the
  frame's rows fetched by hand-written SQL on the same DuckDB connection
  (in turns with entities_frame);
- baseline (a): a bare DuckDB connection; per type, flat dicts ->
  pyarrow.Table.from_pylist -> INSERT ... SELECT ... ON CONFLICT DO UPDATE;
  commit and close (the checkpoint the repository's session close also pays);
  reads with sql(...).to_arrow_table().to_pylist(); a whole-table Arrow scan;
- baseline (b): SQLAlchemy ORM, session.merge per entity (small sizes only);
- chunked (with --chunk N): the repository saving N patients per transaction;
- generation: the cost of producing the dicts alone. It is included in every
  save time; each save also measures the time spent inside its input
  generators (InputClock), and the "save paths alone" ratios subtract it.

Every method but the chunked save runs --repeat times, in rounds (each
round in another order), so that the methods compared within a round see
the same spell of this shared machine; the table gives each method's median
time and the ratios are medians of the ratios within each round, with their
range. Imports are outside every timing; everything
a save does after them (SQLAlchemy's mapper setup on a process's first ORM
use included) is inside.

Prints entities per second, peak memory and the ratios the targets use.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

BATCH = 20_000


def _flat(doc: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "_provenance" or isinstance(value, dict):
            row.update(value)
        elif isinstance(value, list):
            row[key] = json.dumps(value)
        else:
            row[key] = value
    return row


class InputClock:
    """Seconds spent inside the input generators during a save, so that a
    save's own time is its total minus these, measured in the same run.
    Garbage collection that happens to run inside a generator is left to the
    save (its allocations are what trigger it)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._gc_seconds = 0.0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_seconds += time.perf_counter() - self._gc_started

    def streams(self, entities: dict[str, Any]) -> dict[str, Any]:
        return {name: self._timed(stream) for name, stream in entities.items()}

    def _timed(self, stream: Any) -> Any:
        iterator = iter(stream)
        clock = time.perf_counter
        done = object()
        while True:
            start, collecting = clock(), self._gc_seconds
            doc = next(iterator, done)
            self.seconds += clock() - start - (self._gc_seconds - collecting)
            if doc is done:
                return
            yield doc


def measure_generation(patients: int) -> dict[str, Any]:
    from healthsim_state.demo import scenario

    start = time.perf_counter()
    count = sum(1 for stream in scenario(patients).values() for _ in stream)
    return {"entities": count, "save_s": time.perf_counter() - start}


def measure_repository(patients: int, path: str) -> dict[str, Any]:
    return _measure_repository(patients, f"duckdb:///{path}")


def _measure_repository(patients: int, url: str) -> dict[str, Any]:
    from healthsim_models import create_store_engine, session_scope
    from healthsim_state import ScenarioRepository
    from healthsim_state.demo import scenario

    engine = create_store_engine(url)
    inputs = InputClock()
    start = time.perf_counter()
    with session_scope(engine) as session:
        summary = ScenarioRepository(session).save("bench", inputs.streams(scenario(patients)))
    save_s = time.perf_counter() - start
    save_peak_mb = _peak_mb()
    count = sum(summary.counts.values())
    start = time.perf_counter()
    with session_scope(engine) as session:
        loaded = ScenarioRepository(session).load("bench")
    load_s = time.perf_counter() - start
    assert sum(len(v) for v in loaded.entities.values()) == count
    del loaded
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        scenario_id = str(repo.scenario_summary("bench").id)
        frame_s, raw_s, frame_rows, raw_rows = _frames(session, repo, scenario_id)
    engine.dispose()
    assert raw_rows == frame_rows
    return {
        "entities": count,
        "save_s": save_s,
        "input_s": inputs.seconds,
        "load_s": load_s,
        "frame_s": frame_s,
        "raw_frame_s": raw_s,
        "frame_rows": frame_rows,
        "save_peak_mb": save_peak_mb,
    }


def measure_chunked(patients: int, path: str, chunk: int) -> dict[str, Any]:
    """The same scenario saved ``chunk`` patients at a time, one transaction
    each: save() for the first chunk, add_entities() for the rest."""
    from healthsim_models import create_store_engine, session_scope
    from healthsim_state import ScenarioRepository
    from healthsim_state.demo import scenario

    engine = create_store_engine(f"duckdb:///{path}")
    inputs = InputClock()
    start = time.perf_counter()
    for first in range(0, patients, chunk):
        entities = inputs.streams(scenario(min(chunk, patients - first), start=first))
        with session_scope(engine) as session:
            repo = ScenarioRepository(session)
            summary = repo.save("bench", entities) if first == 0 else repo.add_entities("bench", entities)
    save_s = time.perf_counter() - start
    engine.dispose()
    return {
        "entities": sum(summary.counts.values()),
        "save_s": save_s,
        "input_s": inputs.seconds,
        "save_peak_mb": _peak_mb(),
    }


FRAME_TRIES = 5


def _timed(call):  # type: ignore[no-untyped-def]
    """Seconds one call took, and its result."""
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def _best_of(tries: int, call):  # type: ignore[no-untyped-def]
    """The fastest of ``tries`` calls (reads are short: one slow call is noise) and the last result."""
    best = float("inf")
    for _ in range(tries):
        seconds, result = _timed(call)
        best = min(best, seconds)
    return best, result


def _frames(session, repo, scenario_id: str) -> tuple[float, float, int, int]:  # type: ignore[no-untyped-def]
    """Fastest times of entities_frame("lab_result") and of the same rows fetched
    by hand-written SQL on the session's own DuckDB connection, taken in turns
    (so a slow spell of this shared machine hits both), and their row counts."""
    import pyarrow as pa

    from healthsim_models import LabResult

    columns = ", ".join(f"t.{c.name}" for c in LabResult.__table__.columns)
    sql = (
        f"SELECT {columns} FROM scenario_entities se JOIN lab_results t ON t.id = se.entity_id "
        "WHERE se.scenario_id = CAST({marker} AS UUID) AND se.entity_type = 'lab_result' ORDER BY se.position"
    )
    raw = session.connection().connection.driver_connection
    if session.bind.dialect.name == "duckdb":

        def fetch() -> Any:
            return raw.sql(sql.format(marker="?"), params=[scenario_id]).to_arrow_table()
    else:  # PostgreSQL: the rows by the driver's cursor, made a table

        def fetch() -> Any:
            with raw.cursor() as cursor:
                cursor.execute(sql.format(marker="%s"), (scenario_id,))
                names = [d.name for d in cursor.description]
                rows = cursor.fetchall()
            return pa.table({name: pa.array([r[i] for r in rows]) for i, name in enumerate(names)})

    frame_s = raw_s = float("inf")
    for _ in range(FRAME_TRIES):
        seconds, frame = _timed(lambda: repo.entities_frame("bench", "lab_result"))
        frame_s = min(frame_s, seconds)
        seconds, table = _timed(fetch)
        raw_s = min(raw_s, seconds)
    return frame_s, raw_s, frame.num_rows, table.num_rows


def _peak_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_baseline(patients: int, path: str) -> dict[str, Any]:
    import duckdb
    import pyarrow as pa

    from healthsim_models import ENTITY_TYPES, create_store_engine
    from healthsim_state.demo import scenario

    create_store_engine(f"duckdb:///{path}").dispose()  # same schema as the repository's
    tables = {et.name: et.model.__table__ for et in ENTITY_TYPES}
    hard_links = {
        name: [c.name for c in t.columns if c.name.endswith("_uuid") and not c.nullable] for name, t in tables.items()
    }
    inputs = InputClock()
    start = time.perf_counter()
    # Opening the file is part of a save, as the repository's session opens
    # its connection inside the timing.
    con = duckdb.connect(path)
    count = 0
    con.begin()
    for type_name, stream in inputs.streams(scenario(patients)).items():
        table = tables[type_name]
        batch: list[dict[str, Any]] = []
        for doc in stream:
            row = _flat(doc)
            row["id"] = str(uuid.uuid4())
            # No reference resolution in the bare path: NOT NULL links get any UUID.
            for column in hard_links[type_name]:
                row[column] = row["id"]
            batch.append(row)
            if len(batch) == BATCH:
                count += _baseline_upsert(con, pa, table, batch)
                batch = []
        if batch:
            count += _baseline_upsert(con, pa, table, batch)
    con.commit()
    # The repository's save ends when its session closes, and closing the last
    # connection checkpoints the file: the baseline closes too, so both pay it.
    con.close()
    save_s = time.perf_counter() - start
    save_peak_mb = _peak_mb()
    start = time.perf_counter()
    con = duckdb.connect(path)
    loaded = 0
    for table in tables.values():
        loaded += len(con.sql(f"SELECT * FROM {table.name}").to_arrow_table().to_pylist())
    load_s = time.perf_counter() - start
    frame_s, frame = _best_of(FRAME_TRIES, lambda: con.sql("SELECT * FROM lab_results").to_arrow_table())
    con.close()
    return {
        "entities": count,
        "save_s": save_s,
        "input_s": inputs.seconds,
        "load_s": load_s,
        "frame_s": frame_s,
        "frame_rows": frame.num_rows,
        "save_peak_mb": save_peak_mb,
    }


def _baseline_upsert(con, pa, table, rows) -> int:  # type: ignore[no-untyped-def]
    known = set(table.columns.keys())
    columns = [c for c in rows[0] if c in known]
    return _insert_ready(con, table, columns, pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]))


def _documents(patients: int) -> dict[str, list[dict[str, Any]]]:
    from healthsim_state.demo import scenario

    return {name: list(stream) for name, stream in scenario(patients).items()}


def measure_arrow(patients: int, path: str) -> dict[str, Any]:
    return _measure_arrow(patients, f"duckdb:///{path}")


def _measure_arrow(patients: int, url: str) -> dict[str, Any]:
    """The repository saving the scenario given as Arrow tables (one per
    type, a column per document key, made before the timing)."""
    import pyarrow as pa

    from healthsim_models import create_store_engine, session_scope
    from healthsim_state import ScenarioRepository

    # Column by column over every key: Table.from_pylist takes the first document's keys only.
    tables = {
        name: pa.table({k: [doc.get(k) for doc in docs] for k in dict.fromkeys(k for doc in docs for k in doc)})
        for name, docs in _documents(patients).items()
    }
    engine = create_store_engine(url)
    start = time.perf_counter()
    with session_scope(engine) as session:
        summary = ScenarioRepository(session).save("bench", tables)
    save_s = time.perf_counter() - start
    engine.dispose()
    return {"entities": sum(summary.counts.values()), "save_s": save_s, "input_s": 0.0, "save_peak_mb": _peak_mb()}


def measure_raw_arrow(patients: int, path: str) -> dict[str, Any]:
    """Baseline (a)'s statements given its Arrow batches ready (flattened
    rows, ``from_pylist`` per batch, made before the timing): the insert
    alone, in one transaction, commit and close."""
    import duckdb
    import pyarrow as pa

    from healthsim_models import ENTITY_TYPES, create_store_engine

    create_store_engine(f"duckdb:///{path}").dispose()
    tables = {et.name: et.model.__table__ for et in ENTITY_TYPES}
    batches = []
    for type_name, docs in _documents(patients).items():
        table = tables[type_name]
        known = set(table.columns.keys())
        hard_links = [c.name for c in table.columns if c.name.endswith("_uuid") and not c.nullable]
        rows = []
        for doc in docs:
            row = _flat(doc)
            row["id"] = str(uuid.uuid4())
            for column in hard_links:
                row[column] = row["id"]
            rows.append(row)
        columns = [c for c in rows[0] if c in known]
        for first in range(0, len(rows), BATCH):
            part = [{c: r.get(c) for c in columns} for r in rows[first : first + BATCH]]
            batches.append((table, columns, pa.Table.from_pylist(part)))
    start = time.perf_counter()
    con = duckdb.connect(path)
    con.begin()
    count = 0
    for table, columns, batch in batches:
        count += _insert_ready(con, table, columns, batch)
    con.commit()
    con.close()
    save_s = time.perf_counter() - start
    return {"entities": count, "save_s": save_s, "input_s": 0.0, "save_peak_mb": _peak_mb()}


def _insert_ready(con, table, columns, batch) -> int:  # type: ignore[no-untyped-def]
    con.register("batch", batch)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "id")
    con.execute(
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM batch "
        f"ON CONFLICT (id) DO UPDATE SET {updates}"
    )
    con.unregister("batch")
    return batch.num_rows


# -- PostgreSQL (with --postgres SERVER_URL): each measurement in a database of its own


@contextmanager
def _postgresql_database() -> Iterator[str]:
    """The URL of a fresh database on the --postgres server, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(os.environ[POSTGRES_ENV])
    name = f"hs_bench_{uuid.uuid4().hex[:12]}"
    options = {"host": server.host, "port": server.port, "user": server.username, "password": server.password}
    with psycopg.connect(**options, dbname=server.database or "postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        from healthsim_models.engine import dispose_engines

        dispose_engines()
        with psycopg.connect(**options, dbname=server.database or "postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure_pg_repository(patients: int, path: str) -> dict[str, Any]:
    with _postgresql_database() as url:
        return _measure_repository(patients, url)


def measure_pg_arrow(patients: int, path: str) -> dict[str, Any]:
    with _postgresql_database() as url:
        return _measure_arrow(patients, url)


def _flat_rows(patients: int, documents: Any) -> Iterator[tuple[Any, list[str], list[tuple[Any, ...]]]]:
    """Baseline (a)'s flattened rows, per type in batches: (table, columns, rows as tuples)."""
    from healthsim_models import ENTITY_TYPES

    tables = {et.name: et.model.__table__ for et in ENTITY_TYPES}
    for type_name, stream in documents.items():
        table = tables[type_name]
        known = set(table.columns.keys())
        hard_links = [c.name for c in table.columns if c.name.endswith("_uuid") and not c.nullable]
        columns: list[str] | None = None
        batch: list[tuple[Any, ...]] = []
        for doc in stream:
            row = _flat(doc)
            row["id"] = str(uuid.uuid4())
            for column in hard_links:
                row[column] = row["id"]
            if columns is None:
                columns = [c for c in row if c in known]
            batch.append(tuple(row.get(c) for c in columns))
            if len(batch) == BATCH:
                yield table, columns, batch
                batch = []
        if batch and columns is not None:
            yield table, columns, batch


def _copy(connection: Any, table: Any, columns: list[str], rows: list[tuple[Any, ...]]) -> int:
    with connection.cursor() as cursor, cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)


def measure_pg_baseline(patients: int, path: str) -> dict[str, Any]:
    """Baseline (a) on PostgreSQL: flattened rows COPYed into the same tables
    (one transaction, generation included); reads: every table's rows as
    dicts, and lab_results as an Arrow table."""
    import psycopg
    import pyarrow as pa
    from psycopg.rows import dict_row
    from sqlalchemy.engine import make_url

    from healthsim_models import ENTITY_TYPES, create_store_engine
    from healthsim_state.demo import scenario

    with _postgresql_database() as url:
        create_store_engine(url).dispose()
        target = make_url(url)
        options = {"host": target.host, "port": target.port, "user": target.username, "password": target.password}
        inputs = InputClock()
        start = time.perf_counter()
        count = 0
        with psycopg.connect(**options, dbname=target.database) as connection:
            for table, columns, rows in _flat_rows(patients, inputs.streams(scenario(patients))):
                count += _copy(connection, table, columns, rows)
            connection.commit()
        save_s = time.perf_counter() - start
        save_peak_mb = _peak_mb()
        start = time.perf_counter()
        loaded = 0
        with psycopg.connect(**options, dbname=target.database, row_factory=dict_row) as connection:
            for et in ENTITY_TYPES:
                loaded += len(connection.execute(f"SELECT * FROM {et.model.__table__.name}").fetchall())
            load_s = time.perf_counter() - start

            def frame() -> Any:
                rows = connection.execute("SELECT * FROM lab_results").fetchall()
                return pa.Table.from_pylist(rows)

            frame_s, table = _best_of(FRAME_TRIES, frame)
    return {
        "entities": count,
        "save_s": save_s,
        "input_s": inputs.seconds,
        "load_s": load_s,
        "frame_s": frame_s,
        "frame_rows": table.num_rows,
        "save_peak_mb": save_peak_mb,
    }


def measure_pg_raw_arrow(patients: int, path: str) -> dict[str, Any]:
    """The PostgreSQL counterpart of raw_arrow: baseline (a)'s rows made
    ready before the timing, then COPYed in one transaction."""
    import psycopg
    from sqlalchemy.engine import make_url

    from healthsim_models import create_store_engine

    with _postgresql_database() as url:
        create_store_engine(url).dispose()
        target = make_url(url)
        batches = list(_flat_rows(patients, _documents(patients)))
        start = time.perf_counter()
        count = 0
        with psycopg.connect(
            host=target.host, port=target.port, user=target.username, password=target.password, dbname=target.database
        ) as connection:
            for table, columns, rows in batches:
                count += _copy(connection, table, columns, rows)
            connection.commit()
        save_s = time.perf_counter() - start
    return {"entities": count, "save_s": save_s, "input_s": 0.0, "save_peak_mb": _peak_mb()}


def measure_orm(patients: int, path: str) -> dict[str, Any]:
    import datetime as dt
    from decimal import Decimal

    import sqlalchemy as sa

    from healthsim_models import ENTITY_TYPES, create_store_engine, session_scope
    from healthsim_state.demo import scenario

    engine = create_store_engine(f"duckdb:///{path}")
    models = {et.name: et.model for et in ENTITY_TYPES}
    inputs = InputClock()
    start = time.perf_counter()
    count = 0
    with session_scope(engine) as session:
        for type_name, stream in inputs.streams(scenario(patients)).items():
            model = models[type_name]
            table = model.__table__
            for doc in stream:
                row = {k: v for k, v in _flat(doc).items() if k in table.columns and k != "id"}
                for name, value in list(row.items()):
                    kind = table.columns[name].type
                    if isinstance(value, str) and isinstance(kind, sa.DateTime):
                        row[name] = dt.datetime.fromisoformat(value)
                    elif isinstance(value, str) and isinstance(kind, sa.Date):
                        row[name] = dt.date.fromisoformat(value)
                    elif isinstance(value, float):
                        row[name] = Decimal(str(value))
                    elif isinstance(kind, sa.JSON) and isinstance(value, str):
                        row[name] = json.loads(value)
                for ref_column in (c.name for c in table.columns if c.name.endswith("_uuid") and not c.nullable):
                    row[ref_column] = uuid.uuid4()
                session.merge(model(id=uuid.uuid4(), **row))
                count += 1
    save_s = time.perf_counter() - start
    engine.dispose()
    return {"entities": count, "save_s": save_s, "input_s": inputs.seconds, "save_peak_mb": _peak_mb()}


MEASURES = {
    "generation": measure_generation,
    "repository": measure_repository,
    "baseline": measure_baseline,
    "orm": measure_orm,
    "chunked": measure_chunked,
    "arrow": measure_arrow,
    "raw_arrow": measure_raw_arrow,
    "pg_repository": measure_pg_repository,
    "pg_baseline": measure_pg_baseline,
    "pg_arrow": measure_pg_arrow,
    "pg_raw_arrow": measure_pg_raw_arrow,
}
POSTGRES_ENV = "BENCH_POSTGRES_URL"  # the --postgres server, for the measuring subprocesses
PG_METHODS = ("pg_repository", "pg_baseline", "pg_arrow", "pg_raw_arrow")


def _child(method: str, patients: int, *extra: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.duckdb")
        args = (patients,) if method == "generation" else (patients, path, *extra)
        result = MEASURES[method](*args)
    result["peak_mb"] = _peak_mb()
    return result


def _own(result: dict[str, Any]) -> float:
    """Seconds of a save minus those spent generating its input (``InputClock``)."""
    return result["save_s"] - result["input_s"]


def run_child(method: str, patients: int, *extra: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.run", "--child", method, str(patients), *map(str, extra)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{method} at {patients} patients failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


ROUND_METHODS = ("generation", "repository", "baseline", "arrow", "raw_arrow")


def _median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One method's runs as one result: median times, largest memory."""
    merged: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        if key.endswith("_mb"):
            merged[key] = max(values)
        elif all(isinstance(v, int) for v in values):  # counts: the same in every run
            merged[key] = statistics.median_low(values)
        else:
            merged[key] = statistics.median(values)
    return merged


def _ratio(values: list[float], digits: int = 2) -> str:
    """The median of per-round ratios, with their range when there are several."""
    text = f"{statistics.median(values):.{digits}f}x"
    return text if len(values) == 1 else f"{text} (rounds {min(values):.{digits}f}-{max(values):.{digits}f})"


def measure_size(patients: int, repeat: int, orm: bool, chunk: int | None, postgres: bool = False) -> dict[str, Any]:
    """Every method at one size: ``repeat`` rounds of generation, repository,
    baseline, the Arrow input and its raw insert, (with ``orm``) the ORM
    baseline and (with ``postgres``) the PostgreSQL methods; the chunked save last."""
    methods = ROUND_METHODS + (("orm",) if orm else ()) + (PG_METHODS if postgres else ())
    rounds: list[dict[str, dict[str, Any]]] = []
    for round_number in range(repeat):
        # Rotate the order, so that whatever running first or last does to a
        # method (a cold file cache, a warm CPU) does not always hit the same one.
        shift = round_number % len(methods)
        rounds.append({m: run_child(m, patients) for m in methods[shift:] + methods[:shift]})
    results: dict[str, Any] = {m: _median_result([r[m] for r in rounds]) for m in methods}
    if chunk:
        results["chunked"] = run_child("chunked", patients, chunk)
    results["rounds"] = rounds
    return results


def report(patients: int, results: dict[str, Any]) -> None:
    rounds = results.pop("rounds")
    for method, r in results.items():
        save_rate = r["entities"] / r["save_s"]
        load_rate = r["entities"] / r["load_s"] if "load_s" in r else float("nan")
        print(
            f"{patients:>9} {method:<11} {r['entities']:>9} {save_rate:>9.0f} {load_rate:>9.0f} "
            f"{r.get('frame_s', float('nan')):>8.3f} {r.get('save_peak_mb', float('nan')):>8.0f} "
            f"{r['peak_mb']:>8.0f}"
        )
    repo, base = results["repository"], results["baseline"]

    def per_round(f: Any) -> list[float]:
        return [f(r["repository"], r["baseline"]) for r in rounds]

    print(
        f"  save  repository / baseline(a): {_ratio(per_round(lambda r, b: b['save_s'] / r['save_s']))} "
        f"(target >= 1.0); save paths alone: {_ratio(per_round(lambda r, b: _own(b) / _own(r)))}"
    )
    if "orm" in results:
        each = [r["orm"]["save_s"] / r["repository"]["save_s"] for r in rounds]
        own = [_own(r["orm"]) / _own(r["repository"]) for r in rounds]
        print(
            f"  save  repository / ORM merge(b): {_ratio(each, 0)} (target >= 100); save paths alone: {_ratio(own, 0)}"
        )
    arrow = [r["raw_arrow"]["save_s"] / r["arrow"]["save_s"] for r in rounds]
    print(f"  save  Arrow input: repository / raw insert of ready Arrow tables: {_ratio(arrow)} (target >= 0.5)")
    print(
        f"  load  repository / baseline(a): {_ratio(per_round(lambda r, b: b['load_s'] / r['load_s']))} (target >= 0.9)"
    )
    print(
        f"  frame entities_frame / raw Arrow fetch of the same rows: "
        f"{_ratio(per_round(lambda r, b: r['raw_frame_s'] / r['frame_s']))} (target >= 0.9)"
    )
    print(
        f"  frame entities_frame / whole-table Arrow scan (no scenario filter): "
        f"{_ratio(per_round(lambda r, b: b['frame_s'] / r['frame_s']))}"
    )
    if "pg_repository" in results:
        pg = [(r["pg_repository"], r["pg_baseline"], r["pg_arrow"], r["pg_raw_arrow"]) for r in rounds]
        print(
            f"  PostgreSQL save  repository / COPY baseline: {_ratio([b['save_s'] / r['save_s'] for r, b, _, _ in pg])} "
            f"(target >= 1.0); save paths alone: {_ratio([_own(b) / _own(r) for r, b, _, _ in pg])}"
        )
        print(
            "  PostgreSQL save  Arrow input: repository / COPY of ready rows: "
            f"{_ratio([c['save_s'] / a['save_s'] for _, _, a, c in pg])} (target >= 0.5)"
        )
        print(
            "  PostgreSQL load  repository / baseline rows as dicts: "
            f"{_ratio([b['load_s'] / r['load_s'] for r, b, _, _ in pg])} (target >= 0.9)"
        )
        print(
            "  PostgreSQL frame entities_frame / raw fetch of the same rows made a table: "
            f"{_ratio([r['raw_frame_s'] / r['frame_s'] for r, _, _, _ in pg])} (target >= 0.9)"
        )
    print(
        f"  generation alone: {results['generation']['save_s']:.2f}s; inside the saves: repository "
        f"{repo['input_s']:.2f}s, baseline {base['input_s']:.2f}s (included in every save time; "
        "'save paths alone' subtracts each save's own)"
    )
    if "chunked" in results:
        chunked = results["chunked"]
        print(
            f"  chunked save / one-transaction save: {repo['save_s'] / chunked['save_s']:.2f}x the speed, "
            f"{chunked['save_peak_mb']:.0f} MB against {repo['save_peak_mb']:.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--skip-orm", action="store_true", help="skip the ORM baseline (it runs at 1k patients only)")
    parser.add_argument(
        "--chunk",
        type=int,
        metavar="N",
        help="also save the scenario N patients per transaction (save, then add_entities), for peak memory",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="rounds of every method but the chunked save, per size (default 3); medians are reported",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure on PostgreSQL: a server URL whose user may create databases "
        "(each measurement creates one and drops it)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], *map(int, args.child[1:]))))
        return
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    if args.postgres:
        os.environ[POSTGRES_ENV] = args.postgres  # read by the measuring subprocesses

    print(
        f"{'patients':>9} {'method':<11} {'entities':>9} {'save/s':>9} {'load/s':>9} {'frame s':>8} "
        f"{'save MB':>8} {'peak MB':>8}"
    )
    measured = {}
    for patients in args.patients:
        orm = patients <= 1000 and not args.skip_orm
        measured[patients] = measure_size(patients, args.repeat, orm, args.chunk, postgres=bool(args.postgres))
        report(patients, measured[patients])
    linearity(measured)


#: (label, method, timing) of the costs whose growth with the data is checked.
GROWTH = (
    ("save, dicts", "repository", "save_s"),
    ("save, Arrow input", "arrow", "save_s"),
    ("load", "repository", "load_s"),
    ("entities_frame", "repository", "frame_s"),
    ("baseline (a) save", "baseline", "save_s"),
    ("raw Arrow insert", "raw_arrow", "save_s"),
    ("PostgreSQL save, dicts", "pg_repository", "save_s"),
    ("PostgreSQL save, Arrow input", "pg_arrow", "save_s"),
    ("PostgreSQL load", "pg_repository", "load_s"),
)


def linearity(measured: dict[int, dict[str, Any]]) -> None:
    """Per cost, from the smallest size to each larger one: the time's growth
    over the data's (1.0: linear; the target is at most 1.1)."""
    sizes = sorted(measured)
    if len(sizes) < 2:
        return
    small = measured[sizes[0]]
    for size in sizes[1:]:
        large = measured[size]
        data = large["repository"]["entities"] / small["repository"]["entities"]
        parts = [
            f"{label} {large[method][timing] / small[method][timing] / data:.2f}"
            for label, method, timing in GROWTH
            if method in large and method in small
        ]
        print(
            f"  growth {sizes[0]} -> {size} patients ({data:.1f}x the entities), time growth / data growth: "
            + ", ".join(parts)
            + " (target <= 1.1)"
        )


if __name__ == "__main__":
    main()
