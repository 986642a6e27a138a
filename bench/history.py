"""The cost of keeping history: an overwrite with history on beside the same overwrite with it off.

    python -m bench.history                       # 10,000 patients, DuckDB, 2 rounds
    python -m bench.history --patients 1000 --repeat 3
    python -m bench.history --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

The case that matters (issue 19): an existing 10,000-patient demo scenario
overwritten with 10% of its entities changed. One store (a fresh DuckDB file,
or the database given, which must be empty: it is left holding the scenario
and its history) gets the demo scenario once, untimed. Then each round
overwrites it twice, once with ``history.enabled`` off and once on (the
order alternating between rounds), each time with every tenth entity of
every type changed (an extension field flips between two values, so each
overwrite changes the same 10% against the state before it, whatever ran
first). Both overwrites of a round run on the same store in the same spell
of this shared machine; the ratio printed is the median over rounds of the
on/off ratio within a round, with its range. Document generation is outside
the timings.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _changed(documents: dict[str, list[dict[str, Any]]], flip: int) -> dict[str, list[dict[str, Any]]]:
    """The documents with every tenth of each type changed (extension field ``x_bench`` = ``flip``)."""
    return {
        name: [{**doc, "x_bench": flip} if i % 10 == 0 else doc for i, doc in enumerate(docs)]
        for name, docs in documents.items()
    }


def _overwrite(engine: Any, documents: dict[str, list[dict[str, Any]]], history: bool) -> tuple[float, int]:
    """Seconds of one overwrite (committed) and the history rows it added."""
    import sqlalchemy as sa

    from healthsim_models import HISTORY, session_scope
    from healthsim_state import ScenarioRepository
    from healthsim_state.store.settings import change_setting

    with session_scope(engine) as session:
        change_setting(session, "history.enabled", "true" if history else "false")

    def kept() -> int:
        with engine.connect() as connection:
            query = sa.union_all(*(sa.select(sa.func.count()).select_from(h) for h in HISTORY.values()))
            return sum(connection.execute(query).scalars())

    before = kept()
    start = time.perf_counter()
    with session_scope(engine) as session:
        ScenarioRepository(session).save("bench-history", documents, overwrite=True)
    seconds = time.perf_counter() - start
    return seconds, kept() - before


def run(patients: int, repeat: int, url: str) -> None:
    from healthsim_models import create_store_engine, session_scope
    from healthsim_state import ScenarioRepository
    from healthsim_state.demo import scenario

    documents = {name: list(docs) for name, docs in scenario(patients).items()}
    entities = sum(len(docs) for docs in documents.values())
    engine = create_store_engine(url)
    start = time.perf_counter()
    with session_scope(engine) as session:
        ScenarioRepository(session).save("bench-history", _changed(documents, 0), overwrite=True)
    print(f"{patients} patients, {entities} entities; first save {time.perf_counter() - start:.1f}s (untimed)")
    ratios, times = [], {True: [], False: []}
    flip = 0
    for round_ in range(repeat):
        seconds = {}
        for history in (False, True) if round_ % 2 == 0 else (True, False):
            flip += 1
            seconds[history], rows = _overwrite(engine, _changed(documents, flip), history)
            times[history].append(seconds[history])
            print(
                f"  round {round_ + 1}: history {'on ' if history else 'off'} {seconds[history]:.2f}s, {rows} versions kept"
            )
        ratios.append(seconds[True] / seconds[False])
    engine.dispose()
    changed = sum(len(docs[::10]) for docs in documents.values())
    print(
        f"overwrite with {changed} of {entities} entities changed: history off {statistics.median(times[False]):.2f}s, "
        f"on {statistics.median(times[True]):.2f}s (medians)"
    )
    spread = f" (range {min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
    print(f"  history on / off: {statistics.median(ratios):.2f}x{spread} (target <= 1.3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2, help="rounds (each: one overwrite off, one on)")
    parser.add_argument("--database-url", help="an empty store to use instead of a fresh DuckDB file")
    args = parser.parse_args()
    if args.database_url:
        run(args.patients, args.repeat, args.database_url)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(args.patients, args.repeat, f"duckdb:///{Path(tmp) / 'bench.duckdb'}")


if __name__ == "__main__":
    main()
