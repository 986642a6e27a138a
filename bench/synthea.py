"""Synthea CSV import against DuckDB's raw CSV load of the same rows, in one run.

    python -m bench.synthea                       # 2,025 patients (75 copies of synthea-27)
    python -m bench.synthea --copies 20 75        # sizes: the peak memory should not grow
    python -m bench.synthea --source DIR          # another Synthea folder to multiply

The source folder is multiplied by re-keying: copy ``k`` of every row gets
its UUIDs replaced by ``md5(k || uuid)`` shaped as a UUID and its DICOM
UIDs suffixed with ``.k``, so each copy is a new set of patients with the
same shape (references stay consistent). DuckDB writes the copies.

Two measurements per size, each in a fresh subprocess on a fresh DuckDB file:

- import: ``import_synthea`` into a new scenario and commit, the path
  ``healthsim import synthea`` takes (reading, mapping, validation, the
  bulk save, the commit);
- raw: the rows that import stored, written out as one CSV file per table
  beforehand (untimed), then loaded into an empty store's same tables with
  DuckDB's own CSV reader (``COPY table FROM file``) and committed: no
  mapping, no validation, no identity or reference resolution.

Prints rows/s, peak memory and the ratio raw time / import time (the target
is at least 0.5). Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: Columns whose values are DICOM UIDs (unique per instance or series): suffixed per copy.
_DICOM_UID_COLUMNS = {"SERIES_UID", "INSTANCE_UID"}
_DEFAULT_SOURCE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "synthea-27"


def multiply(source: Path, target: Path, copies: int) -> int:
    """Write ``copies`` re-keyed copies of every CSV of ``source`` into ``target``; the patient count."""
    import duckdb

    target.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(
            "CREATE MACRO rekey(v, k) AS CASE WHEN regexp_full_match(v, ?) THEN "
            "(SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' "
            "|| substr(h, 17, 4) || '-' || substr(h, 21, 12) FROM (SELECT md5(k::VARCHAR || v) AS h)) "
            "ELSE v END".replace("?", f"'{_UUID}'")
        )
        con.execute(f"CREATE TABLE copies AS SELECT range AS k FROM range({copies})")
        for csv in sorted(source.glob("*.csv")):
            header = con.execute(
                "SELECT * FROM read_csv(?, header = true, all_varchar = true) LIMIT 0", [str(csv)]
            ).description
            names = [d[0] for d in header]
            columns = ", ".join(
                (
                    f'CASE WHEN s."{n}" IS NULL THEN NULL ELSE s."{n}" || \'.\' || c.k END'
                    if n in _DICOM_UID_COLUMNS
                    else f'rekey(s."{n}", c.k)'
                )
                + f' AS "{n}"'
                for n in names
            )
            out = target / csv.name
            con.execute(
                f"COPY (SELECT {columns} FROM read_csv(?, header = true, all_varchar = true) s, copies c "
                f"ORDER BY c.k) TO '{out}' (HEADER, DELIMITER ',')",
                [str(csv)],
            )
        patients = con.execute(
            "SELECT count(*) FROM read_csv(?, header = true, all_varchar = true)", [str(target / "patients.csv")]
        ).fetchone()
    return int(patients[0]) if patients else 0


def _peak_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_import(folder: str, path: str, dump: str) -> dict[str, Any]:
    """Import ``folder`` into a new DuckDB store at ``path``; dump what landed to ``dump`` for the raw load."""
    import duckdb

    from healthsim_models import create_store_engine, session_scope
    from healthsim_state.formats.synthea import import_synthea

    engine = create_store_engine(f"duckdb:///{path}")
    start = time.perf_counter()
    with session_scope(engine) as session:
        summary = import_synthea(session, Path(folder), scenario="bench")
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    engine.dispose()
    entities = sum(summary.as_dict()["entities"].values())
    with duckdb.connect(path) as con:
        tables = [
            r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
        ]
        rows = 0
        for table in tables:
            count = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            if count and count[0] and table != "alembic_version":
                con.execute(f"COPY \"{table}\" TO '{os.path.join(dump, table + '.csv')}' (HEADER)")
                rows += count[0]
    return {"entities": entities, "rows": rows, "seconds": seconds, "peak_mb": peak}


def measure_raw(dump: str, path: str) -> dict[str, Any]:
    """Load the dumped tables into an empty store's same tables with DuckDB's CSV reader."""
    import duckdb

    from healthsim_models import create_store_engine

    create_store_engine(f"duckdb:///{path}").dispose()  # the schema, at the current revision
    rows = 0
    start = time.perf_counter()
    with duckdb.connect(path) as con:
        con.execute("BEGIN")
        for csv in sorted(Path(dump).glob("*.csv")):
            con.execute(f'DELETE FROM "{csv.stem}"')  # tables the new store fills itself (none expected)
            con.execute(f"COPY \"{csv.stem}\" FROM '{csv}' (HEADER)")
            count = con.execute(f'SELECT count(*) FROM "{csv.stem}"').fetchone()
            rows += count[0] if count else 0
        con.execute("COMMIT")
    return {"rows": rows, "seconds": time.perf_counter() - start, "peak_mb": _peak_mb()}


def _child(method: str, *args: str) -> None:
    result = {"import": measure_import, "raw": measure_raw}[method](*args)
    print(json.dumps(result))


def _run(method: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.synthea", "--child", method, *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{method} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(source: Path, copies: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder, dump = Path(tmp, "csv"), Path(tmp, "dump")
        dump.mkdir()
        patients = multiply(source, folder, copies)
        imported = _run("import", str(folder), str(Path(tmp, "import.duckdb")), str(dump))
        raw = _run("raw", str(dump), str(Path(tmp, "raw.duckdb")))
    if raw["rows"] != imported["rows"]:
        raise SystemExit(f"the raw load stored {raw['rows']} rows, the import {imported['rows']}")
    return {"patients": patients, "import": imported, "raw": raw}


def report(result: dict[str, Any]) -> None:
    imported, raw = result["import"], result["raw"]
    print(f"\n{result['patients']:,} patients: {imported['entities']:,} entities, {imported['rows']:,} table rows")
    print(f"  {'method':<10} {'seconds':>9} {'rows/s':>10} {'peak MB':>9}")
    for name, r in (("import", imported), ("raw", raw)):
        print(f"  {name:<10} {r['seconds']:>9.2f} {r['rows'] / r['seconds']:>10,.0f} {r['peak_mb']:>9.0f}")
    print(f"  import / raw speed: {raw['seconds'] / imported['seconds']:.2f}x (target >= 0.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, nargs="+", default=[75], help="copies of the source folder")
    parser.add_argument("--source", type=Path, default=_DEFAULT_SOURCE, help="a Synthea CSV folder")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    results = [measure(args.source, copies) for copies in args.copies]
    for result in results:
        report(result)
    if len(results) > 1:
        first, last = results[0], results[-1]
        growth = last["import"]["peak_mb"] / first["import"]["peak_mb"]
        print(
            f"\npeak memory of the import: {first['import']['peak_mb']:.0f} MB at {first['patients']:,} patients, "
            f"{last['import']['peak_mb']:.0f} MB at {last['patients']:,} ({growth:.2f}x for "
            f"{last['patients'] / first['patients']:.1f}x the patients)"
        )


if __name__ == "__main__":
    main()
