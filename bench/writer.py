"""Peak memory and speed of the batch writer at two sizes, against one save of the same data.

    python -m bench.writer                                 # 2,000 and 20,000 patients, DuckDB
    python -m bench.writer --patients 1000 10000 --batch 2000
    python -m bench.writer --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m bench.writer --patients 20000 100000 --batch 5000 --writer-only   # large: no save

Each run is a process of its own (so its peak resident set size, from
``resource.getrusage``, is its own), into a new store: the demo scenario of
N patients through ``save_demo(batch=B)`` (the batch writer), and as the
baseline through one ``save_demo`` (one save, one transaction). Prints
entities/s and peak RSS per run, the writer against the save at each size,
and the growth of each from the smaller size to the larger: the writer's
peak should not grow with the data, the save's does. Run by hand; never
part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url


def _child(url: str, patients: int, batch: int | None) -> None:
    """One measured run, in this process: prints its numbers as JSON."""
    from healthsim_models.engine import create_store_engine, session_scope
    from healthsim_state import ScenarioRepository, demo

    engine = create_store_engine(url)
    started = time.perf_counter()
    with session_scope(engine) as session:
        summary = demo.save_demo(ScenarioRepository(session), patients=patients, batch=batch)
    seconds = time.perf_counter() - started
    engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    print(json.dumps({"entities": sum(summary.counts.values()), "seconds": seconds, "peak": peak}))


def _run(url: str, patients: int, batch: int | None) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.writer", "--child", url, str(patients), str(batch or 0)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"run of {patients} patients failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _store(server: str | None, directory: Path) -> tuple[str, object]:
    """A new empty store: a DuckDB file, or a new database on the PostgreSQL ``server``; and how to drop it."""
    if server is None:
        path = directory / f"{uuid.uuid4().hex}.duckdb"
        return f"duckdb:///{path}", lambda: [p.unlink() for p in directory.glob(path.name + "*")]
    import psycopg

    url = make_url(server)
    name = f"hs_bench_{uuid.uuid4().hex[:10]}"
    admin = dict(host=url.host, port=url.port, user=url.username, password=url.password, autocommit=True)
    with psycopg.connect(dbname=url.database or "postgres", **admin) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(dbname=url.database or "postgres", **admin) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs=2, default=[2_000, 20_000])
    parser.add_argument("--batch", type=int, default=2_000, help="patients per add")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: DuckDB files)")
    parser.add_argument("--writer-only", action="store_true", help="no baseline save (for sizes a save cannot take)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, patients, batch = args.child
        _child(url, int(patients), int(batch) or None)
        return
    mb = 2**20
    results: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for patients in args.patients:
            for how, batch in (("writer", args.batch), ("save", None))[: 1 if args.writer_only else 2]:
                url, drop = _store(args.database_url, Path(directory))
                try:
                    results[how, patients] = found = _run(url, patients, batch)
                finally:
                    drop()  # type: ignore[operator]
                rate = found["entities"] / found["seconds"]
                print(
                    f"{how:6} {patients:>7,} patients {int(found['entities']):>9,} entities "
                    f"{found['seconds']:7.1f} s {rate:9,.0f} entities/s  peak RSS {found['peak'] / mb:6.0f} MB",
                    flush=True,
                )
    small, large = args.patients
    hows = ("writer",) if args.writer_only else ("writer", "save")
    for patients in args.patients if not args.writer_only else ():
        writer, save = results["writer", patients], results["save", patients]
        speed = (writer["entities"] / writer["seconds"]) / (save["entities"] / save["seconds"])
        print(f"{patients:,} patients: writer/save speed {speed:.2f}x, peak RSS {writer['peak'] / save['peak']:.2f}x")
    for how in hows:
        growth = results[how, large]["peak"] / results[how, small]["peak"]
        print(f"{how}: peak RSS at {large:,} / at {small:,} patients = {growth:.2f}x (data: {large / small:.0f}x)")


if __name__ == "__main__":
    main()
