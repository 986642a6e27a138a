"""Synthea CSV folders read and checked (healthsim_state.formats.synthea.reader), the mapping's
column coverage and the generated docs/synthea.md; no store involved."""

from __future__ import annotations

import csv
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from healthsim_models.errors import DocumentError, SyntheaError
from healthsim_state.formats.synthea.files import BY_STEM, FILES, LATER, LATER_NPI, LAYOUTS, V3_0
from healthsim_state.formats.synthea.importer import entity_source, targets
from healthsim_state.formats.synthea.reader import read_folder
from healthsim_state.formats.synthea.reference_doc import render
from healthsim_state.formats.synthea.targets import EXTENSION_KEY, is_id, select_sql
from tests.helpers import FIXTURES

REPO = Path(__file__).resolve().parent.parent
V3 = FIXTURES / "synthea-27"
LATER_DIR = FIXTURES / "synthea-later"


def copy(src: Path, tmp_path: Path) -> Path:
    folder = tmp_path / src.name
    shutil.copytree(src, folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    return header, rows


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def set_cell(folder: Path, file: str, row: int, column: str, value: str) -> None:
    """Row ``row`` (0 = first data row, on line 2) of ``file``.csv gets ``value`` in ``column``."""
    header, rows = read_rows(folder / f"{file}.csv")
    rows[row][header.index(column)] = value
    write_rows(folder / f"{file}.csv", header, rows)


def data_lines(path: Path) -> int:
    return len(read_rows(path)[1])


# -- reading -------------------------------------------------------------------


def test_the_v3_fixture_loads_every_file_with_its_rows_and_lines() -> None:
    with read_folder(V3) as loaded:
        assert set(loaded.files) == {p.stem for p in V3.glob("*.csv")}
        assert loaded.layout == V3_0 and set(loaded.layouts.values()) == {V3_0}
        for stem, lf in loaded.files.items():
            assert lf.rows == data_lines(V3 / f"{stem}.csv"), stem
            first, last = loaded.con.execute(f'SELECT min(_line), max(_line) FROM "{stem}"').fetchone()
            assert (first, last) == (2, lf.rows + 1), stem
            assert lf.unknown == ()
        # v3.0 spellings read under the latest ones; columns of the later layouts exist as NULL.
        start, owner = loaded.con.execute(
            "SELECT START_DATE, OWNER_NAME FROM payer_transitions WHERE _line = 2"
        ).fetchone()
        header, rows = read_rows(V3 / "payer_transitions.csv")
        assert (start, owner) == (rows[0][header.index("START_YEAR")], rows[0][header.index("OWNERNAME")])
        assert loaded.con.execute("SELECT count(MIDDLE) FROM patients").fetchone() == (0,)
        assert "MIDDLE" not in loaded.files["patients"].present


def test_the_later_fixture_matches_the_later_layouts() -> None:
    with read_folder(LATER_DIR) as loaded:
        assert loaded.layout == LATER_NPI
        assert loaded.layouts["patients.csv"] == LATER
        assert loaded.layouts["providers.csv"] == LATER_NPI
        assert loaded.layouts["payer_transitions.csv"] == LATER
        assert "patient_expenses" in loaded.files


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_header_is_read_as_that_layout(layout: str, tmp_path: Path) -> None:
    folder = tmp_path / layout
    folder.mkdir()
    for spec in FILES:
        if spec.header(layout):
            write_rows(folder / spec.name, list(spec.header(layout)), [])
    with read_folder(folder) as loaded:
        for lf in loaded.files.values():
            # Layouts whose headers are the same for this file are equally right.
            same = [x for x in LAYOUTS if set(lf.spec.header(x)) == set(lf.spec.header(layout))]
            assert lf.layout in same, lf.name
        assert loaded.layout == layout


def test_columns_in_another_order_and_unknown_columns(tmp_path: Path) -> None:
    folder = copy(V3, tmp_path)
    header, rows = read_rows(folder / "patients.csv")
    order = list(reversed(range(len(header))))
    write_rows(
        folder / "patients.csv",
        [header[i] for i in order] + ["FAVORITE_COLOR"],
        [[row[i] for i in order] + [f"blue{n}"] for n, row in enumerate(rows)],
    )
    with read_folder(V3) as before, read_folder(folder) as after:
        columns = ", ".join(f'"{c}"' for c in header)
        query = f"SELECT {columns}, _line FROM patients ORDER BY _line"
        assert after.con.execute(query).fetchall() == before.con.execute(query).fetchall()
        assert after.files["patients"].unknown == ("FAVORITE_COLOR",)
        patient = next(t for t in targets() if t.entity_type == "patient")
        docs = after.con.execute(select_sql(patient, after)).fetchall()
        names = [d[0] for d in after.con.description]
        kept = [dict(zip(names, d, strict=True))[EXTENSION_KEY]["FAVORITE_COLOR"] for d in docs]
        assert kept == [f"blue{n}" for n in range(len(rows))]


def test_dates_date_times_far_future_and_empty_encounters_are_accepted(tmp_path: Path) -> None:
    folder = copy(V3, tmp_path)
    set_cell(folder, "encounters", 0, "STOP", "9999-12-31T23:59:59Z")
    set_cell(folder, "medications", 0, "START", "2009-09-27")  # a date where a date-time is usual
    set_cell(folder, "conditions", 0, "START", "2023-01-27T00:00:00Z")  # a date-time where a date is usual
    with read_folder(folder) as loaded:
        assert loaded.con.execute("SELECT count(*) FROM observations WHERE ENCOUNTER IS NULL").fetchone()[0] > 0


def test_crlf_line_ends_and_a_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    folder = copy(V3, tmp_path)
    path = folder / "conditions.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    with read_folder(folder) as loaded:
        assert loaded.files["conditions"].rows == data_lines(V3 / "conditions.csv")


def test_only_patients_csv_is_required(tmp_path: Path) -> None:
    folder = tmp_path / "only"
    folder.mkdir()
    shutil.copy(V3 / "patients.csv", folder / "patients.csv")
    (folder / "notes.csv").write_text("a,b\n1,2\n")
    with read_folder(folder) as loaded:
        assert set(loaded.files) == {"patients"}
        assert loaded.ignored == ("notes.csv",)


# -- refused input -----------------------------------------------------------

Breaker = Callable[[Path], None]


def _truncate(folder: Path) -> None:
    path = folder / "observations.csv"
    data = path.read_bytes().rstrip(b"\n")
    path.write_bytes(data[: data.rindex(b",", 0, data.rindex(b","))])  # cut inside the last line


def _extra_cell(folder: Path) -> None:
    path = folder / "procedures.csv"
    lines = path.read_text().splitlines()
    lines[3] += ",surplus"
    path.write_text("\n".join(lines) + "\n")


def _not_utf8(folder: Path) -> None:
    path = folder / "patients.csv"
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b",,", b",M\xfcller,", 1)  # Latin-1, not UTF-8
    path.write_bytes(b"\n".join(lines))


def _unterminated(folder: Path) -> None:
    path = folder / "supplies.csv"
    path.write_text(path.read_text() + '2020-10-07,x,"unterminated\n')


def _without_column(file: str, column: str) -> Breaker:
    def breaker(folder: Path) -> None:
        header, rows = read_rows(folder / f"{file}.csv")
        i = header.index(column)
        write_rows(folder / f"{file}.csv", header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows])

    return breaker


def _cell(file: str, row: int, column: str, value: str) -> Breaker:
    return lambda folder: set_cell(folder, file, row, column, value)


def _unknown_id() -> str:
    return str(uuid.UUID(int=12345))


BAD: dict[str, tuple[Breaker, str, int | None, str | None, str]] = {
    # case: (breaker, file, line, column, words of the message)
    "bad date": (_cell("encounters", 15, "START", "2023-13-01"), "encounters.csv", 17, "START", "not a date"),
    "bad date-only": (_cell("conditions", 0, "STOP", "2023-02-30"), "conditions.csv", 2, "STOP", "not a date"),
    "bad number": (
        _cell("medications", 4, "BASE_COST", "12,50 EUR"),
        "medications.csv",
        6,
        "BASE_COST",
        "not a number",
    ),
    "bad whole number": (
        _cell("medications", 4, "DISPENSES", "2.5"),
        "medications.csv",
        6,
        "DISPENSES",
        "whole number",
    ),
    "unknown PATIENT": (
        _cell("encounters", 9, "PATIENT", _unknown_id()),
        "encounters.csv",
        11,
        "PATIENT",
        "no Id in patients.csv",
    ),
    "unknown ENCOUNTER": (
        _cell("conditions", 3, "ENCOUNTER", _unknown_id()),
        "conditions.csv",
        5,
        "ENCOUNTER",
        "no Id in encounters.csv",
    ),
    "too many cells": (_extra_cell, "procedures.csv", 4, None, "too many cells"),
    "truncated last line": (_truncate, "observations.csv", 991, None, "too few cells"),
    "not UTF-8": (_not_utf8, "patients.csv", 6, None, "not UTF-8"),
    "unterminated quote": (_unterminated, "supplies.csv", 74, None, "quote"),
    "required column missing": (
        _without_column("conditions", "CODE"),
        "conditions.csv",
        1,
        "CODE",
        "required column missing",
    ),
    "required cell empty": (_cell("patients", 2, "Id", ""), "patients.csv", 4, "Id", "empty"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_malformed_folder_is_refused_with_file_line_and_column(case: str, tmp_path: Path) -> None:
    breaker, file, line, column, words = BAD[case]
    folder = copy(V3, tmp_path)
    breaker(folder)
    with pytest.raises(SyntheaError) as caught, read_folder(folder):
        pass
    error = caught.value
    assert isinstance(error, DocumentError)
    assert (error.file, error.line) == (file, line), str(error)
    assert words in str(error), str(error)
    assert str(error).startswith(f"{file}, line {line}"), str(error)
    if column is not None:
        assert error.column == column
        assert f"column {column}" in str(error)


def test_a_folder_without_patients_csv_or_with_an_empty_file_is_refused(tmp_path: Path) -> None:
    folder = copy(V3, tmp_path)
    (folder / "patients.csv").unlink()
    with pytest.raises(SyntheaError, match=r"patients\.csv is missing"), read_folder(folder):
        pass
    folder = copy(V3, tmp_path / "second")
    (folder / "devices.csv").write_bytes(b"")
    with pytest.raises(SyntheaError, match=r"devices\.csv, line 1: the file is empty"), read_folder(folder):
        pass
    with pytest.raises(SyntheaError, match="not a folder"), read_folder(tmp_path / "nowhere"):
        pass


def test_a_header_with_a_column_twice_is_refused(tmp_path: Path) -> None:
    folder = copy(V3, tmp_path)
    header, rows = read_rows(folder / "devices.csv")
    write_rows(folder / "devices.csv", [*header, "udi"], [[*r, "x"] for r in rows])
    twice = r"devices\.csv, line 1, column udi: the header has this column twice"
    with pytest.raises(SyntheaError, match=twice), read_folder(folder):
        pass


# -- declarations, coverage, docs ---------------------------------------------


def test_every_file_is_declared_and_references_name_declared_files() -> None:
    assert {p.stem for p in V3.glob("*.csv")} <= set(BY_STEM)
    for spec in FILES:
        assert spec.header(LATER), spec.name
        for col in spec.columns:
            assert col.references is None or col.references in BY_STEM
    assert {t.file for t in targets()} | {"patient_expenses"} == set(BY_STEM)


@pytest.mark.parametrize("folder", [V3, LATER_DIR], ids=["v3.0", "later"])
def test_every_column_of_every_file_lands_in_a_field_or_in_extensions(folder: Path) -> None:
    """By column name: each column a file has is read by a field of a target of that file
    (or folded into another file's entity), or kept under extensions['synthea'] of its documents."""
    with read_folder(folder) as loaded:
        for stem, lf in loaded.files.items():
            mapped: set[str] = set()
            kept: set[str] = set()
            for target in targets():
                mapped |= {c for f in target.fields_on(loaded) if (f.source or target.file) == stem for c in f.columns}
                if target.file != stem or not target.runs_on(loaded):
                    continue
                if is_id(target):
                    mapped.add(target.identity[0])
                schema = (
                    loaded.con.sql(f"SELECT * FROM ({entity_source(target, loaded)}) LIMIT 0").to_arrow_table().schema
                )
                if EXTENSION_KEY in schema.names:
                    struct = schema.field(EXTENSION_KEY).type
                    kept |= {struct.field(i).name for i in range(struct.num_fields)}
            missing = [c for c in (*lf.present, *lf.unknown) if c not in mapped | kept]
            assert missing == [], f"{lf.name}: {missing}"


def test_docs_synthea_md_is_generated_from_the_declarations() -> None:
    assert (REPO / "docs" / "synthea.md").read_text() == render(), (
        "docs/synthea.md is stale: python -m healthsim_state.formats.synthea.reference_doc > docs/synthea.md"
    )


def test_interrupt_stops_a_query_running_on_a_cursor_in_use() -> None:
    """What the import's reading ahead calls when the writer gives up: a long query on a cursor of
    the loaded folder, run by another thread, ends at once."""
    outcome: list[str] = []
    with read_folder(V3) as loaded:

        def run() -> None:
            with loaded.cursor() as cursor:
                try:
                    cursor.sql("SELECT sum(hash(i)) FROM range(100000000000) t(i)").fetchall()
                    outcome.append("finished")
                except duckdb.InterruptException:
                    outcome.append("interrupted")

        reader = threading.Thread(target=run)
        reader.start()
        time.sleep(0.5)
        loaded.interrupt()
        reader.join(30)
        assert not reader.is_alive()
        assert outcome == ["interrupted"]
        with loaded.cursor() as cursor:  # the folder's other cursors still work
            assert cursor.execute("SELECT count(*) FROM patients").fetchone() == (27,)
