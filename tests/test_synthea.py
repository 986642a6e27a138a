"""Synthea CSV import (healthsim_state.formats.synthea.import_synthea) into DuckDB and PostgreSQL
stores: counts, references, values, identity on re-import, the later layout, refused input
leaving the store unchanged, and the round trip through the canonical JSON document."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import shutil
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from healthsim_models import create_store_engine, session_scope
from healthsim_models.errors import ScenarioExistsError, SyntheaError
from healthsim_models.registry import ENTITY_TYPES
from healthsim_state import ScenarioRepository, export_scenario, import_scenario
from healthsim_state.formats.synthea import SyntheaSummary, import_synthea, importer
from tests.helpers import FIXTURES, normalise

V3 = FIXTURES / "synthea-27"
LATER = FIXTURES / "synthea-later"
PATIENT = "3edac2e3-d223-6fae-d515-daf96ef6bc76"
CLINICAL = (
    "patient",
    "encounter",
    "diagnosis",
    "medication",
    "lab_result",
    "vital_sign",
    "observation",
    "procedure",
    "allergy",
    "care_plan",
    "device",
    "immunization",
    "imaging_study",
    "supply",
)


def run(engine, folder: Path, name: str = "synthea", **kwargs: Any) -> SyntheaSummary:
    with session_scope(engine) as session:
        return import_synthea(session, folder, scenario=name, **kwargs)


def csv_rows(folder: Path, file: str) -> list[dict[str, str]]:
    with open(folder / f"{file}.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sql_count(folder: Path, query: str) -> int:
    """``query`` over ``read_csv`` views of the folder's files (an oracle independent of the importer)."""
    con = duckdb.connect()
    try:
        for path in folder.glob("*.csv"):
            con.execute(f"CREATE VIEW \"{path.stem}\" AS SELECT * FROM read_csv('{path}', all_varchar = true)")
        return int(con.execute(query).fetchone()[0])
    finally:
        con.close()


def documents(engine, name: str, type_name: str) -> list[dict[str, Any]]:
    with session_scope(engine) as session:
        return ScenarioRepository(session).documents(name, type_name)


def when(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def as_datetime(value: Any) -> dt.datetime:
    return when(value) if isinstance(value, str) else value


@pytest.fixture
def imported(engine) -> SyntheaSummary:
    return run(engine, V3)


def test_entities_per_type_equal_the_csv_rows_minus_documented_exclusions(engine, imported) -> None:
    expected = {
        "patient": sql_count(V3, "SELECT count(*) FROM patients"),
        "encounter": sql_count(V3, "SELECT count(*) FROM encounters"),
        "diagnosis": sql_count(V3, "SELECT count(*) FROM conditions"),
        # Two rows with one identity (PATIENT, ENCOUNTER, CODE, START): the last wins, reported.
        "medication": sql_count(V3, "SELECT count(DISTINCT (PATIENT, ENCOUNTER, CODE, START)) FROM medications"),
        "lab_result": sql_count(
            V3, "SELECT count(*) FROM observations WHERE CATEGORY = 'laboratory' AND VALUE IS NOT NULL"
        ),
        "vital_sign": sql_count(
            V3, "SELECT count(DISTINCT (PATIENT, ENCOUNTER, DATE)) FROM observations WHERE CATEGORY = 'vital-signs'"
        ),
        "observation": sql_count(
            V3,
            "SELECT count(*) FROM observations WHERE CATEGORY IS DISTINCT FROM 'vital-signs'"
            " AND NOT coalesce(CATEGORY = 'laboratory' AND VALUE IS NOT NULL, false)",
        ),
        "procedure": sql_count(V3, "SELECT count(*) FROM procedures"),
        "allergy": sql_count(V3, "SELECT count(*) FROM allergies"),
        "care_plan": sql_count(V3, "SELECT count(*) FROM careplans"),
        "device": sql_count(V3, "SELECT count(*) FROM devices"),
        "immunization": sql_count(V3, "SELECT count(*) FROM immunizations"),
        "imaging_study": sql_count(V3, "SELECT count(*) FROM imaging_studies"),
        "supply": sql_count(V3, "SELECT count(*) FROM supplies"),
    }
    assert {t: imported.entities.get(t) for t in CLINICAL} == expected
    with session_scope(engine) as session:
        counts = ScenarioRepository(session).count_entities_by_type("synthea")
    assert {t: counts.get(t) for t in CLINICAL} == expected
    rows = sql_count(V3, "SELECT count(*) FROM medications")
    assert imported.duplicates["medications.csv"] == {
        "count": rows - expected["medication"],
        "rule": "the last row in file order wins",
    }
    assert imported.rows_read["observations.csv"] == sql_count(V3, "SELECT count(*) FROM observations")
    assert imported.layout == "v3.0"
    assert imported.as_dict()["entities"] == imported.entities


#: References of the administrative files that synthea-27 fills.
_ADMINISTRATIVE_REFS = {
    "practitioner.organization_id",
    "coverage.member_id",
    "coverage.payer_id",
    "claim.member_id",
    "claim.practitioner_id",
    "claim.payer_id",
    "claim_line.claim_id",
}


def test_every_reference_resolves(engine, imported) -> None:
    checks = []
    for et in ENTITY_TYPES:
        name = et.name
        for ref in et.references:
            table = et.model.__table__
            checks.append(
                (
                    f"{name}.{ref.field}",
                    sa.select(sa.func.count()).where(
                        table.c[ref.field].is_not(None), table.c[ref.uuid_column].is_(None)
                    ),
                    sa.select(sa.func.count()).where(table.c[ref.field].is_not(None)),
                )
            )
    with session_scope(engine) as session:
        for label, unresolved, given in checks:
            assert session.execute(unresolved).scalar_one() == 0, label
            filled_here = label.split(".")[0] in CLINICAL and (
                label.endswith("patient_mrn") or label.startswith("encounter.")
            )
            if filled_here or label in _ADMINISTRATIVE_REFS:
                assert session.execute(given).scalar_one() > 0, label
        # A medication's PAYER stays in extensions (medications have no payer field): a payer of the import.
        payers = set(session.execute(sa.text("SELECT payer_id FROM payers")).scalars())
        named = {d["synthea"]["PAYER"] for d in documents(engine, "synthea", "medication")}
        assert named and named <= payers
    # Encounters point at the organizations, practitioners and payers imported with them.
    encounters = documents(engine, "synthea", "encounter")
    rows = {r["Id"]: r for r in csv_rows(V3, "encounters")}
    for doc in encounters:
        row = rows[doc.get("encounter_id")]
        assert (doc.get("organization_id"), doc.get("practitioner_id"), doc.get("payer_id")) == (
            row["ORGANIZATION"],
            row["PROVIDER"],
            row["PAYER"],
        )


def test_one_patients_records_match_the_csv_value_by_value(engine, imported) -> None:
    patient = next(p for p in documents(engine, "synthea", "patient") if p["mrn"] == PATIENT)
    row = next(r for r in csv_rows(V3, "patients") if r["Id"] == PATIENT)
    assert patient["name"]["given_name"] == row["FIRST"] and patient["name"]["family_name"] == row["LAST"]
    assert str(patient["birth_date"]) == row["BIRTHDATE"]
    assert patient["ssn"] == row["SSN"].replace("-", "")
    assert patient["address"]["state"] == "MA" and patient["synthea"]["STATE"] == row["STATE"]
    assert patient["synthea"]["HEALTHCARE_EXPENSES"] == row["HEALTHCARE_EXPENSES"]

    encounters = {
        d.get("encounter_id"): d for d in documents(engine, "synthea", "encounter") if d.get("patient_mrn") == PATIENT
    }
    rows = [r for r in csv_rows(V3, "encounters") if r["PATIENT"] == PATIENT]
    assert set(encounters) == {r["Id"] for r in rows}
    for r in rows:
        doc = encounters[r["Id"]]
        assert as_datetime(doc.get("admission_time")) == when(r["START"])
        assert as_datetime(doc.get("discharge_time")) == when(r["STOP"])
        assert doc["synthea"]["ENCOUNTERCLASS"] == r["ENCOUNTERCLASS"]
        assert doc.get("class_code") == {"wellness": "O", "ambulatory": "O", "outpatient": "O", "emergency": "E",
                                     "inpatient": "I", "urgentcare": "U"}[r["ENCOUNTERCLASS"]]  # fmt: skip
        assert doc.get("chief_complaint") == (r["REASONDESCRIPTION"] or None)
        assert doc["synthea"]["TOTAL_CLAIM_COST"] == r["TOTAL_CLAIM_COST"]

    conditions = sorted(
        (
            d.get("encounter_id"),
            d.get("code"),
            str(d.get("diagnosed_date")),
            str(d.get("resolved_date") or ""),
            d.get("description"),
        )
        for d in documents(engine, "synthea", "diagnosis")
        if d.get("patient_mrn") == PATIENT
    )
    expected = sorted(
        (r["ENCOUNTER"], r["CODE"], r["START"], r["STOP"], r["DESCRIPTION"])
        for r in csv_rows(V3, "conditions")
        if r["PATIENT"] == PATIENT
    )
    assert conditions == expected
    assert {d.get("code_system") for d in documents(engine, "synthea", "diagnosis")} == {"SNOMED"}

    medications = sorted(
        (
            d.get("encounter_id"),
            d.get("code"),
            d.get("name"),
            as_datetime(d.get("start_date")),
            d.get("status"),
            d["synthea"]["TOTALCOST"],
        )
        for d in documents(engine, "synthea", "medication")
        if d.get("patient_mrn") == PATIENT
    )
    expected = sorted(
        (
            r["ENCOUNTER"],
            r["CODE"],
            r["DESCRIPTION"],
            when(r["START"]),
            "completed" if r["STOP"] else "active",
            r["TOTALCOST"],
        )
        for r in csv_rows(V3, "medications")
        if r["PATIENT"] == PATIENT
    )
    assert medications == expected

    rows = [r for r in csv_rows(V3, "observations") if r["PATIENT"] == PATIENT]
    labs = {
        (d.get("encounter_id"), d.get("loinc_code"), as_datetime(d.get("collected_time"))): (
            d.get("value"),
            d.get("unit"),
        )
        for d in documents(engine, "synthea", "lab_result")
        if d.get("patient_mrn") == PATIENT
    }
    assert labs == {
        (r["ENCOUNTER"], r["CODE"], when(r["DATE"])): (r["VALUE"], r["UNITS"] or None)
        for r in rows
        if r["CATEGORY"] == "laboratory" and r["VALUE"]
    }
    others = {
        (d.get("encounter_id"), d.get("code"), as_datetime(d.get("effective_datetime"))): (
            d.get("value"),
            d["synthea"]["CATEGORY"],
        )
        for d in documents(engine, "synthea", "observation")
        if d.get("patient_mrn") == PATIENT
    }
    assert others == {
        (r["ENCOUNTER"] or None, r["CODE"], when(r["DATE"])): (r["VALUE"], r["CATEGORY"] or None)
        for r in rows
        if r["CATEGORY"] not in ("laboratory", "vital-signs") or not r["VALUE"]
    }
    vitals = {
        (d.get("encounter_id"), as_datetime(d.get("observation_time"))): d
        for d in documents(engine, "synthea", "vital_sign")
        if d.get("patient_mrn") == PATIENT
    }
    fields = {"8302-2": "height_cm", "29463-7": "weight_kg", "8867-4": "heart_rate", "9279-1": "respiratory_rate",
              "8480-6": "systolic_bp", "8462-4": "diastolic_bp"}  # fmt: skip
    for r in rows:
        if r["CATEGORY"] != "vital-signs":
            continue
        doc = vitals[(r["ENCOUNTER"], when(r["DATE"]))]
        if r["CODE"] in fields:
            assert normalise(doc[fields[r["CODE"]]]) == normalise(Decimal(r["VALUE"])), r
        else:
            listed = {(o["CODE"], o["VALUE"], o["UNITS"]) for o in doc["synthea"]["observations"]}
            assert (r["CODE"], r["VALUE"], r["UNITS"]) in listed, r


def test_reimporting_the_same_folder_updates_in_place(engine, imported) -> None:
    before = {t: sorted(d.get("id") for d in documents(engine, "synthea", t)) for t in CLINICAL}
    with pytest.raises(ScenarioExistsError):
        run(engine, V3)
    again = run(engine, V3, overwrite=True)
    assert again.entities == imported.entities
    assert {t: sorted(d.get("id") for d in documents(engine, "synthea", t)) for t in CLINICAL} == before
    with session_scope(engine) as session:
        assert ScenarioRepository(session).count_entities_by_type() == ScenarioRepository(
            session
        ).count_entities_by_type("synthea")


def rekeyed(tmp_path: Path) -> Path:
    """A copy of synthea-27 with every UUID replaced by another (a second Synthea run)."""
    folder = tmp_path / "run-2"
    folder.mkdir()
    for path in V3.glob("*.csv"):
        with open(path, newline="", encoding="utf-8") as handle:
            header, *rows = list(csv.reader(handle))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[_rekey(v) for v in row] for row in rows])
        (folder / path.name).write_text(out.getvalue(), encoding="utf-8")
    return folder


def _rekey(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        return value
    return str(uuid.UUID(hashlib.md5(f"run-2:{value}".encode()).hexdigest()))


def test_a_second_run_adds_to_the_store(engine, imported, tmp_path: Path) -> None:
    second = run(engine, rekeyed(tmp_path), name="synthea-2")
    assert second.entities == imported.entities
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        total = repo.count_entities_by_type()
        assert total == {t: 2 * n for t, n in repo.count_entities_by_type("synthea").items()}


def test_the_later_layout_imports(engine) -> None:
    summary = run(engine, LATER, name="later")
    assert summary.layout == "later-npi"
    assert summary.rows_read["patient_expenses.csv"] == len(csv_rows(LATER, "patient_expenses"))
    patients = {p["mrn"]: p for p in documents(engine, "later", "patient")}
    for row in csv_rows(LATER, "patients"):
        doc = patients[row["Id"]]
        assert doc["name"].get("middle_name") == (row["MIDDLE"] or None)
        assert (doc["synthea"]["FIPS"], doc["synthea"]["INCOME"]) == (row["FIPS"], row["INCOME"])
        expenses = [e for e in csv_rows(LATER, "patient_expenses") if e["PATIENT_ID"] == row["Id"]]
        assert (doc.get("synthea_expenses") or []) == expenses
    systems = {d.get("code_system") for d in documents(engine, "later", "diagnosis")}
    assert systems == {"SNOMED"}
    assert documents(engine, "later", "procedure")[0]["synthea"]["SYSTEM"] == "SNOMED-CT"


def test_refused_input_leaves_the_store_unchanged(engine, imported, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(V3, folder)
    path = folder / "conditions.csv"
    path.chmod(0o644)
    lines = path.read_text().splitlines()
    lines[7] = lines[7].replace(lines[7].split(",")[2], str(uuid.UUID(int=7)))  # PATIENT of line 8
    path.write_text("\n".join(lines) + "\n")
    with session_scope(engine) as session:
        before = ScenarioRepository(session).count_entities_by_type()
    with pytest.raises(SyntheaError, match=r"conditions\.csv, line 8, column PATIENT"):
        run(engine, folder, name="synthea", overwrite=True)
    with pytest.raises(SyntheaError):
        run(engine, folder, name="other")
    # A value the mapping has no answer for is refused the same way, before anything is saved.
    shutil.copy(V3 / "conditions.csv", path)
    encounters = folder / "encounters.csv"
    encounters.chmod(0o644)
    lines = encounters.read_text().splitlines()
    lines[5] = lines[5].replace(",ambulatory,", ",teleport,").replace(",wellness,", ",teleport,")
    encounters.write_text("\n".join(lines) + "\n")
    with pytest.raises(SyntheaError, match=r"encounters\.csv, line 6, column ENCOUNTERCLASS: 'teleport' is not an"):
        run(engine, folder, name="synthea", overwrite=True)
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        assert repo.count_entities_by_type() == before
        assert [s.name for s in repo.list()] == ["synthea"]


def test_small_chunks_batches_and_adds_give_the_same_scenario(engine, imported, monkeypatch) -> None:
    """The import reads a target by chunks of its file's lines, attaches the claim lines' transactions
    batch by batch and puts batches of several types in one add: with every size small, so that chunks,
    batches and adds end inside files, claims and types, the entities are those of the default sizes."""
    monkeypatch.setattr(importer, "CHUNK_LINES", 97)
    monkeypatch.setattr(importer, "BATCH_ROWS", 31)
    monkeypatch.setattr(importer, "ADD_ROWS", 250)
    monkeypatch.setattr(importer, "READ_AHEAD", 0)  # and batches read in turn, not ahead as by default
    small = run(engine, V3, "small")
    assert small.entities == imported.entities
    assert small.duplicates == imported.duplicates and small.duplicates  # synthea-27 repeats an identity
    for et in ENTITY_TYPES:
        assert normalise(documents(engine, "small", et.name)) == normalise(documents(engine, "synthea", et.name)), (
            et.name
        )


def test_a_failing_add_stops_the_reading_ahead_and_leaves_nothing(engine, imported, monkeypatch) -> None:
    """An add that fails while later batches are being read ahead: the error is the caller's, the
    reading thread has ended, and the store holds what it held."""
    monkeypatch.setattr(importer, "BATCH_ROWS", 50)
    monkeypatch.setattr(importer, "ADD_ROWS", 200)
    added = importer._add
    calls = []

    def add(writer, batches):  # type: ignore[no-untyped-def]
        calls.append(len(batches))
        if len(calls) == 3:
            raise RuntimeError("the disk is full")
        added(writer, batches)

    monkeypatch.setattr(importer, "_add", add)
    with session_scope(engine) as session:
        before = ScenarioRepository(session).count_entities_by_type()
    threads = threading.active_count()
    with pytest.raises(RuntimeError, match="the disk is full"):
        run(engine, V3, "failed")
    assert threading.active_count() == threads
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        assert repo.count_entities_by_type() == before
        assert [s.name for s in repo.list()] == ["synthea"]


def test_the_round_trip_through_the_json_document_to_the_other_backend(
    duckdb_url: str, postgresql_url: str, tmp_path: Path
) -> None:
    """Import into each backend, export the canonical JSON document, import it into a fresh store
    of the other backend: the same entities."""
    for source_url, target_url in ((duckdb_url, postgresql_url), (postgresql_url, duckdb_url)):
        source, target = create_store_engine(source_url), create_store_engine(target_url)
        try:
            run(source, V3)
            document = tmp_path / "synthea.json"
            with session_scope(source) as session:
                export_scenario(session, "synthea", document)
            with session_scope(target) as session:
                import_scenario(session, document)
            for name in (
                *CLINICAL,
                "organization",
                "practitioner",
                "payer",
                "member",
                "coverage",
                "claim",
                "claim_line",
            ):
                assert normalise(documents(target, "synthea", name)) == normalise(documents(source, "synthea", name)), (
                    name
                )
        finally:
            source.dispose()
            target.dispose()
        # The next direction starts from empty stores.
        for url in (source_url, target_url):
            with session_scope(create_store_engine(url)) as session:
                ScenarioRepository(session).delete("synthea")
