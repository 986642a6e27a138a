"""The OMOP CDM 5.4 export (healthsim_state.analytics.omop), on both backends: the schema, rows per
table against the source, domain routing with a vocabulary, stable ids, per-scenario replacement,
foreign keys, eras, and one person's rows value by value."""

from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthsim_models import create_store_engine, session_scope
from healthsim_models.errors import InvalidArgumentError, ScenarioNotFoundError, VocabularyError
from healthsim_state import ScenarioRepository, demo
from healthsim_state.analytics.omop import build_omop, create_schema, omop_summary
from healthsim_state.analytics.omop.schema import ddl_statements, foreign_key_statements
from healthsim_state.formats.synthea import import_synthea
from tests.conftest import BACKENDS, throwaway_postgresql_database

FIXTURES = Path(__file__).parent / "fixtures"
SYNTHEA = FIXTURES / "synthea-27"
VOCABULARY = FIXTURES / "omop-vocabulary-sample"
DEMO_PATIENTS = 12


def _fill(engine: Engine) -> None:
    with session_scope(engine) as session:
        import_synthea(session, SYNTHEA, scenario="synthea")
    with session_scope(engine) as session:
        demo.save_demo(ScenarioRepository(session), patients=DEMO_PATIENTS)


def _build(engine: Engine, scenarios: list[str] | None = None, **options: Any) -> dict[str, Any]:
    with session_scope(engine) as session:
        return build_omop(session, scenarios, **options).as_dict()


def _rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql).all()]


def _one(engine: Engine, sql: str) -> Any:
    return _rows(engine, sql)[0][0]


@pytest.fixture(scope="module", params=BACKENDS)
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A store holding the Synthea fixture ('synthea') and a demo scenario ('demo'), per backend."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('omop') / 'store.duckdb'}"
        engine = create_store_engine(url)
        _fill(engine)
        yield engine
        engine.dispose()
        return
    with throwaway_postgresql_database() as url:
        engine = create_store_engine(url)
        _fill(engine)
        yield engine
        engine.dispose()


@pytest.fixture(scope="module")
def plain(filled: Engine) -> tuple[Engine, dict[str, Any]]:
    """The export without a vocabulary, in schema omop."""
    return filled, _build(filled)


@pytest.fixture(scope="module")
def mapped(filled: Engine) -> tuple[Engine, dict[str, Any]]:
    """The export with the vocabulary sample, in schema omop_v."""
    return filled, _build(filled, schema="omop_v", vocabulary=VOCABULARY)


# -- what the source holds ------------------------------------------------------------------

VITALS = (
    "temperature",
    "heart_rate",
    "respiratory_rate",
    "systolic_bp",
    "diastolic_bp",
    "spo2",
    "height_cm",
    "weight_kg",
)


#: A claim line's code system (NULL reads as CPT); RxNorm and CVX lines are drugs, LOINC lines measurements.
_LINE_SYSTEM = "coalesce(procedure_code_system, 'CPT')"


def _source_counts(engine: Engine) -> dict[str, int]:
    """Rows each OMOP table should get from the store's two scenarios, counted from the source tables."""

    def count(sql: str) -> int:
        return int(_one(engine, sql))

    vitals = " + ".join(f"count({v})" for v in VITALS)
    return {
        "person": count("SELECT count(*) FROM patients"),  # every member and subject is also a patient here
        "visit_occurrence": count(
            "SELECT (SELECT count(*) FROM encounters) + (SELECT count(*) FROM claims) + "
            "(SELECT count(*) FROM trial_visits WHERE coalesce(visit_status, '') <> 'Missed')"
        ),
        "visit_detail": count("SELECT count(*) FROM encounters WHERE department IS NOT NULL"),
        "condition_occurrence": count(
            "SELECT (SELECT count(*) FROM diagnoses) + (SELECT count(*) FROM adverse_events)"
        ),
        "procedure_occurrence": count(
            "SELECT (SELECT count(*) FROM procedures) + (SELECT count(*) FROM imaging_studies) + (SELECT count(*) "
            f"FROM claim_lines WHERE {_LINE_SYSTEM} NOT IN ('RxNorm', 'CVX', 'LOINC'))"
        ),
        "drug_exposure": count(
            "SELECT (SELECT count(*) FROM medications) + (SELECT count(*) FROM immunizations WHERE status = 'completed') "
            "+ (SELECT count(*) FROM prescriptions) + (SELECT count(*) FROM pharmacy_claims WHERE transaction_code <> 'B2') "
            "+ (SELECT count(*) FROM exposures) "
            f"+ (SELECT count(*) FROM claim_lines WHERE {_LINE_SYSTEM} IN ('RxNorm', 'CVX'))"
        ),
        "device_exposure": count("SELECT (SELECT count(*) FROM devices) + (SELECT count(*) FROM supplies)"),
        "measurement": count(
            f"SELECT (SELECT count(*) FROM lab_results) + (SELECT {vitals} FROM vital_signs) "
            f"+ (SELECT count(*) FROM claim_lines WHERE {_LINE_SYSTEM} = 'LOINC')"
        ),
        "observation": count("SELECT (SELECT count(*) FROM observations) + (SELECT count(*) FROM allergies)"),
        "note": count("SELECT count(*) FROM clinical_notes"),
        "specimen": count("SELECT count(*) FROM orders WHERE specimen_type IS NOT NULL"),
        "death": count("SELECT count(*) FROM patients WHERE death_date IS NOT NULL"),
        "payer_plan_period": count("SELECT count(*) FROM coverages"),
        "cost": count(
            "SELECT (SELECT count(*) FROM claims) + (SELECT count(*) FROM pharmacy_claims WHERE transaction_code <> 'B2')"
        ),
        "care_site": count("SELECT count(*) FROM organizations"),
        "provider": count("SELECT count(*) FROM practitioners"),
    }


ROUTED = (
    "condition_occurrence",
    "procedure_occurrence",
    "drug_exposure",
    "device_exposure",
    "measurement",
    "observation",
)


def _table_counts(engine: Engine, schema: str, tables: Any) -> dict[str, int]:
    return {t: int(_one(engine, f"SELECT count(*) FROM {schema}.{t}")) for t in tables}


# -- the schema -------------------------------------------------------------------------------


def test_the_schema_is_the_official_ddl_with_its_keys(store_url: str) -> None:
    engine = create_store_engine(store_url)
    backend = engine.dialect.name
    tables = {re.search(r"CREATE TABLE omop\.(\w+)", s).group(1) for s in ddl_statements(backend, "ddl", "omop")}
    with session_scope(engine) as session:
        assert create_schema(session) is True
    with session_scope(engine) as session:
        assert create_schema(session) is False  # it exists: nothing to do
    found = {
        name
        for (name,) in _rows(engine, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'omop'")
    }
    assert len(tables) == 39 and tables | {"hs_id_map", "hs_row_scenario"} == found
    keys = _rows(
        engine,
        "SELECT constraint_type, count(*) FROM information_schema.table_constraints "
        "WHERE table_schema = 'omop' GROUP BY constraint_type",
    )
    counted = dict(keys)
    assert counted["PRIMARY KEY"] == len(ddl_statements(backend, "primary_keys", "omop"))
    if backend == "postgresql":
        assert counted["FOREIGN KEY"] == len(foreign_key_statements(backend, "omop")) > 150
    engine.dispose()


def test_bad_schema_names_and_scenarios_are_refused_before_writing(store_url: str) -> None:
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        for name in ("Omop", "main", "public", "1x", "a-b", ""):
            with pytest.raises(InvalidArgumentError):
                build_omop(session, schema=name)
        with pytest.raises(ScenarioNotFoundError):
            build_omop(session, ["no-such-scenario"])
        with pytest.raises(InvalidArgumentError, match="holds no OMOP export"):
            omop_summary(session)
    assert _rows(engine, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'omop'") == [(0,)]
    engine.dispose()


# -- rows per table ------------------------------------------------------------------------------


def test_without_a_vocabulary_every_source_row_has_its_table_and_concept_0(plain: tuple[Engine, dict]) -> None:
    engine, summary = plain
    expected = _source_counts(engine)
    assert _table_counts(engine, "omop", expected) == expected
    assert {t: summary["rows"][t] for t in expected} == expected
    for table in ROUTED:
        assert summary["unmapped"][table] == expected[table] > 0
    assert summary["unmapped"]["person"] == 0 and summary["unmapped"]["visit_occurrence"] == 0
    assert summary["rows"]["condition_era"] == summary["rows"]["drug_era"] == 0  # eras need concepts
    assert _one(engine, "SELECT count(*) FROM omop.observation_period") == expected["person"]
    assert _rows(engine, "SELECT cdm_version, cdm_version_concept_id FROM omop.cdm_source") == [("v5.4", 756265)]
    concepts = {cid for (cid,) in _rows(engine, "SELECT concept_id FROM omop.concept")}
    assert {0, 8507, 8532, 9201, 9202, 9203, 32817, 32810, 44818668} <= concepts


def test_with_the_vocabulary_rows_move_to_their_domain_and_none_is_lost(
    plain: tuple[Engine, dict], mapped: tuple[Engine, dict]
) -> None:
    engine, summary = mapped
    expected = _source_counts(engine)
    routed = _table_counts(engine, "omop_v", ROUTED)
    assert sum(routed.values()) == sum(expected[t] for t in ROUTED)
    others = [t for t in expected if t not in ROUTED]
    assert _table_counts(engine, "omop_v", others) == {t: expected[t] for t in others}
    assert routed["observation"] > expected["observation"]  # social-history findings coded as conditions
    assert routed["condition_occurrence"] < expected["condition_occurrence"]
    for table in ROUTED:
        assert summary["unmapped"][table] < plain[1]["unmapped"][table]
    assert summary["rows"]["condition_era"] > 0 and summary["rows"]["drug_era"] > 0


def test_a_snomed_condition_whose_standard_concept_is_an_observation_goes_to_observation(
    mapped: tuple[Engine, dict],
) -> None:
    engine, _ = mapped
    employed = int(_one(engine, "SELECT count(*) FROM diagnoses WHERE code = '160903007'"))  # Full-time employment
    assert employed > 0
    assert _rows(
        engine,
        "SELECT observation_concept_id, observation_source_concept_id, count(*) FROM omop_v.observation "
        "WHERE observation_source_value = '160903007' GROUP BY 1, 2",
    ) == [(4053118, 4053118, employed)]
    assert (
        _one(engine, "SELECT count(*) FROM omop_v.condition_occurrence WHERE condition_source_value = '160903007'") == 0
    )
    # A condition that stays one, with its standard concept.
    stress = _rows(
        engine,
        "SELECT DISTINCT condition_concept_id, condition_source_concept_id FROM omop_v.condition_occurrence "
        "WHERE condition_source_value = '73595000'",
    )
    assert stress == [(4251306, 4251306)]
    # A LOINC lab and its UCUM unit; a vital sign's component.
    assert _rows(
        engine,
        "SELECT DISTINCT measurement_concept_id, unit_concept_id FROM omop_v.measurement "
        "WHERE measurement_source_value = '8867-4'",
    ) == [(3027018, 8541)]


def test_every_concept_the_export_references_is_written_with_its_vocabulary_domain_and_class(
    mapped: tuple[Engine, dict],
) -> None:
    engine, _ = mapped
    missing = _rows(
        engine,
        "SELECT t.c FROM (SELECT condition_concept_id AS c FROM omop_v.condition_occurrence "
        "UNION SELECT condition_source_concept_id FROM omop_v.condition_occurrence "
        "UNION SELECT drug_concept_id FROM omop_v.drug_exposure UNION SELECT measurement_concept_id FROM omop_v.measurement "
        "UNION SELECT unit_concept_id FROM omop_v.measurement WHERE unit_concept_id IS NOT NULL "
        "UNION SELECT observation_concept_id FROM omop_v.observation UNION SELECT visit_concept_id FROM omop_v.visit_occurrence "
        "UNION SELECT gender_concept_id FROM omop_v.person UNION SELECT race_concept_id FROM omop_v.person "
        "UNION SELECT currency_concept_id FROM omop_v.cost UNION SELECT drug_type_concept_id FROM omop_v.drug_exposure) t "
        "WHERE t.c NOT IN (SELECT concept_id FROM omop_v.concept)",
    )
    assert missing == []
    for table, column in (
        ("vocabulary", "vocabulary_id"),
        ("domain", "domain_id"),
        ("concept_class", "concept_class_id"),
    ):
        assert (
            _rows(
                engine,
                f"SELECT DISTINCT {column} FROM omop_v.concept WHERE {column} NOT IN "
                f"(SELECT {column} FROM omop_v.{table})",
            )
            == []
        )
    assert _one(engine, "SELECT concept_name FROM omop_v.concept WHERE concept_id = 4053118") == "Full-time employment"


def test_the_foreign_keys_hold(mapped: tuple[Engine, dict]) -> None:
    """PostgreSQL holds the constraints and refuses an orphan; on DuckDB the same references are queried."""
    engine, _ = mapped
    for table, column, parent, key in (
        ("visit_occurrence", "person_id", "person", "person_id"),
        ("condition_occurrence", "visit_occurrence_id", "visit_occurrence", "visit_occurrence_id"),
        ("measurement", "person_id", "person", "person_id"),
        ("cost", "payer_plan_period_id", "payer_plan_period", "payer_plan_period_id"),
        ("person", "location_id", "location", "location_id"),
        ("provider", "care_site_id", "care_site", "care_site_id"),
    ):
        orphans = f"SELECT count(*) FROM omop_v.{table} WHERE {column} IS NOT NULL AND {column} NOT IN (SELECT {key} FROM omop_v.{parent})"
        assert _one(engine, orphans) == 0, (table, column)
    if engine.dialect.name == "postgresql":
        assert _one(
            engine,
            "SELECT count(*) FROM information_schema.table_constraints WHERE table_schema = 'omop_v' "
            "AND constraint_type = 'FOREIGN KEY'",
        ) == len(foreign_key_statements("postgresql", "omop_v"))
        with engine.connect() as connection, pytest.raises(sa.exc.IntegrityError):
            connection.exec_driver_sql(
                "INSERT INTO omop_v.observation_period VALUES (999999, 999999, DATE '2020-01-01', DATE '2020-01-02', 32817)"
            )


# -- one person, value by value ----------------------------------------------------------------------


def test_one_demo_patient_value_by_value(plain: tuple[Engine, dict]) -> None:
    engine, _ = plain
    with session_scope(engine) as session:
        entities = ScenarioRepository(session).load("demo").entities
    patient = entities["patient"][0]
    mrn = patient["mrn"]
    birth = dt.date.fromisoformat(patient["birth_date"])
    ((person_id, gender, year, month, day, race_source, source),) = _rows(
        engine,
        "SELECT person_id, gender_concept_id, year_of_birth, month_of_birth, day_of_birth, race_source_value, "
        f"person_source_value FROM omop.person WHERE person_source_value = '{mrn}'",
    )
    assert (gender, year, month, day) == ({"M": 8507, "F": 8532}[patient["gender"]], birth.year, birth.month, birth.day)
    assert (race_source, source) == (patient["race"], mrn)

    encounters = [e for e in entities["encounter"] if e["patient_mrn"] == mrn]
    visits = _rows(
        engine,
        "SELECT visit_start_datetime, visit_end_datetime, visit_concept_id, visit_source_value, visit_type_concept_id "
        f"FROM omop.visit_occurrence WHERE person_id = {person_id} AND visit_type_concept_id = 32817 "
        "AND visit_occurrence_id NOT IN (SELECT id FROM omop.hs_id_map WHERE omop_table = 'visit_occurrence' "
        "AND substr(source_key, 1, 6) = 'trial:') ORDER BY visit_start_datetime",
    )
    concept = {"I": 9201, "E": 9203, "U": 9203, "O": 9202, "OBS": 9202}
    assert visits == [
        (
            _naive(e["admission_time"]),
            _naive(e.get("discharge_time") or e["admission_time"]),
            concept[e["class_code"]],
            e["class_code"],
            32817,
        )
        for e in sorted(encounters, key=lambda e: e["admission_time"])
    ]

    diagnoses = [(d["diagnosed_date"], d["code"]) for d in entities["diagnosis"] if d["patient_mrn"] == mrn]
    # The same person's trial adverse events are conditions too (the subject names the patient).
    subjects = {s["usubjid"] for s in entities["subject"] if s.get("patient_ref") == mrn}
    events = [
        (e["aestdtc"], e.get("aedecod") or e["aeterm"]) for e in entities["adverse_event"] if e["usubjid"] in subjects
    ]
    assert subjects and events  # the demo's first patient is also a trial subject
    diagnoses = sorted(diagnoses + events)
    conditions = _rows(
        engine,
        "SELECT condition_start_date, condition_source_value, condition_concept_id, condition_type_concept_id "
        f"FROM omop.condition_occurrence WHERE person_id = {person_id} ORDER BY 1, 2",
    )
    assert conditions == [(dt.date.fromisoformat(day), code, 0, 32817) for day, code in diagnoses]

    labs = sorted(
        (lab["loinc_code"], Decimal(lab["value"]), lab.get("unit"), lab["collected_time"])
        for lab in entities["lab_result"]
        if lab["patient_mrn"] == mrn
    )
    measured = _rows(
        engine,
        "SELECT measurement_source_value, value_as_number, unit_source_value, measurement_datetime, range_low, range_high "
        f"FROM omop.measurement WHERE person_id = {person_id} AND measurement_source_value IN "
        f"({', '.join(repr(code) for code, *_ in labs)}) ORDER BY 1, 2",
    )
    assert [
        (code, Decimal(str(value)).quantize(Decimal("0.01")), unit, when) for code, value, unit, when, *_ in measured
    ] == [(code, value.quantize(Decimal("0.01")), unit, _naive(when)) for code, value, unit, when in labs]
    assert all(low is not None and high is not None and low < high for *_, low, high in measured)

    vitals = [v for v in entities["vital_sign"] if v["patient_mrn"] == mrn]
    given = sum(1 for v in vitals for column in VITALS if v.get(column) is not None)
    codes = "('8310-5', '8867-4', '9279-1', '8480-6', '8462-4', '2708-6', '8302-2', '29463-7')"
    assert (
        _one(
            engine,
            f"SELECT count(*) FROM omop.measurement WHERE person_id = {person_id} AND measurement_source_value IN {codes}",
        )
        == given
    )
    heart = sorted(v["heart_rate"] for v in vitals if v.get("heart_rate") is not None)
    assert [
        int(value)
        for (value,) in _rows(
            engine,
            "SELECT value_as_number FROM omop.measurement "
            f"WHERE person_id = {person_id} AND measurement_source_value = '8867-4' ORDER BY 1",
        )
    ] == heart

    medications = sorted(
        (m["code"], _naive(m["start_date"]), f"{m['dose']} {m['route']} {m['frequency']}", m["route"])
        for m in entities["medication"]
        if m["patient_mrn"] == mrn
    )
    assert medications
    drugs = _rows(
        engine,
        "SELECT drug_source_value, drug_exposure_start_datetime, sig, route_source_value FROM omop.drug_exposure "
        f"WHERE person_id = {person_id} AND drug_source_value IN ({', '.join(repr(m[0]) for m in medications)}) "
        "AND drug_type_concept_id = 32817 AND sig IS NOT NULL AND days_supply IS NULL ORDER BY 1, 2",
    )
    assert drugs == medications

    span = _rows(
        engine,
        "SELECT observation_period_start_date, observation_period_end_date FROM omop.observation_period "
        f"WHERE person_id = {person_id}",
    )
    assert span[0][0] <= min(_naive(e["admission_time"]).date() for e in encounters)


def _naive(text: str) -> dt.datetime:
    """An ISO 8601 time of a document as the UTC wall-clock time OMOP holds."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


# -- ids and replacement ------------------------------------------------------------------------------

SNAPSHOT_TABLES = {
    "person": "person_id",
    "visit_occurrence": "visit_occurrence_id",
    "condition_occurrence": "condition_occurrence_id",
    "drug_exposure": "drug_exposure_id",
    "measurement": "measurement_id",
    "observation_period": "observation_period_id",
    "cost": "cost_id",
}


def _snapshot(engine: Engine, schema: str) -> dict[str, set[tuple[Any, ...]]]:
    return {t: set(_rows(engine, f"SELECT * FROM {schema}.{t}")) for t in SNAPSHOT_TABLES}


def _patient(mrn: str, given: str, day: str, code: str) -> dict[str, Any]:
    """A patient with one encounter and one diagnosis; ids are UUIDs, the same in every scenario."""
    return {
        "patient": [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"patient/{mrn}")),
                "mrn": mrn,
                "name": {"given_name": given, "family_name": "Test"},
                "birth_date": "1970-01-01",
                "gender": "F",
            }
        ],
        "encounters": [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"encounter/{mrn}")),
                "encounter_id": f"E-{mrn}",
                "patient_mrn": mrn,
                "class_code": "O",
                "status": "finished",
                "admission_time": f"{day}T10:00:00Z",
            }
        ],
        "diagnoses": [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"diagnosis/{mrn}")),
                "patient_mrn": mrn,
                "encounter_id": f"E-{mrn}",
                "code": code,
                "description": "x",
                "diagnosed_date": day,
            }
        ],
    }


def test_ids_are_stable_and_a_rebuild_replaces_only_the_named_scenarios_rows(store_url: str) -> None:
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        demo.save_demo(repo, patients=4)
        repo.save("small", _patient("S-1", "Ann", "2024-03-01", "I10"))
    _build(engine)
    before = _snapshot(engine, "omop")
    _build(engine)
    assert _snapshot(engine, "omop") == before  # a rebuild of all: the same rows, the same ids
    _build(engine, ["demo"])
    assert _snapshot(engine, "omop") == before

    small_person = _one(engine, "SELECT person_id FROM omop.person WHERE person_source_value = 'S-1'")
    with session_scope(engine) as session:
        ScenarioRepository(session).save("small", _patient("S-2", "Bea", "2024-05-01", "E11.9"), overwrite=True)
    summary = _build(engine, ["small"])
    assert summary["scenarios"] == ["small"] and summary["rows"]["person"] == 1
    after = _snapshot(engine, "omop")
    sources = {v for (v,) in _rows(engine, "SELECT person_source_value FROM omop.person")}
    assert "S-1" not in sources and "S-2" in sources
    assert small_person not in {p for (p,) in _rows(engine, "SELECT person_id FROM omop.person")}
    # Everything the demo contributed is untouched, ids included.
    for table, rows in before.items():
        demo_rows = {r for r in rows if not _of_small(engine, table, r, small_person)}
        assert demo_rows <= after[table], table
    assert (
        _one(
            engine,
            "SELECT count(*) FROM omop.condition_occurrence WHERE condition_source_value = 'I10' "
            f"AND person_id = {small_person}",
        )
        == 0
    )
    assert _one(engine, "SELECT max(person_id) FROM omop.person") > small_person  # a new key, a new id
    engine.dispose()


def test_a_build_of_all_drops_what_deleted_scenarios_contributed(store_url: str) -> None:
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        repo.save("keep", _patient("K-1", "Flo", "2024-04-01", "I10"))
        repo.save("gone", _patient("G-1", "Gus", "2024-04-02", "I10"))
    _build(engine)
    kept = _rows(engine, "SELECT person_id, person_source_value FROM omop.person WHERE person_source_value = 'K-1'")
    with session_scope(engine) as session:
        ScenarioRepository(session).delete("gone")
    _build(engine, ["keep"])  # a named build leaves other scenarios' rows, even of a deleted one
    assert _one(engine, "SELECT count(*) FROM omop.person") == 2
    _build(engine)
    assert _rows(engine, "SELECT person_id, person_source_value FROM omop.person") == kept
    assert _one(engine, "SELECT count(*) FROM omop.condition_occurrence") == 1
    assert _one(engine, "SELECT count(DISTINCT scenario_id) FROM omop.hs_row_scenario") == 1
    engine.dispose()


def _of_small(engine: Engine, table: str, row: tuple[Any, ...], person_id: int) -> bool:
    """Whether a snapshot row belonged to the replaced person (the person table's rows: their id)."""
    return row[0] == person_id if table == "person" else row[1] == person_id


def test_an_entity_in_two_scenarios_is_one_row_that_stays_while_either_holds_it(store_url: str) -> None:
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        repo.save("a", _patient("M-1", "Cy", "2024-02-01", "I10"))
        repo.save("b", _patient("M-1", "Cy", "2024-02-01", "I10"))
    assert _one(engine, "SELECT count(*) FROM patients") == 1  # the same entity, linked twice
    _build(engine)
    assert _one(engine, "SELECT count(*) FROM omop.person") == 1
    assert _one(engine, "SELECT count(*) FROM omop.hs_row_scenario WHERE omop_table = 'person'") == 2
    with session_scope(engine) as session:
        ScenarioRepository(session).save("a", _patient("M-2", "Di", "2024-02-02", "I10"), overwrite=True)
    _build(engine, ["a"])
    assert sorted(v for (v,) in _rows(engine, "SELECT person_source_value FROM omop.person")) == ["M-1", "M-2"]
    assert _one(engine, "SELECT count(*) FROM omop.condition_occurrence") == 2
    engine.dispose()


# -- eras -------------------------------------------------------------------------------------------


def test_records_of_a_concept_within_30_days_are_one_era(store_url: str) -> None:
    engine = create_store_engine(store_url)
    days = ["2024-01-01", "2024-01-20", "2024-02-19", "2024-05-01"]  # gaps 19, 30 (joined), 72 (a new era)
    document = _patient("R-1", "Eve", days[0], "44054006")
    document["diagnoses"] = [
        {"patient_mrn": "R-1", "code": "44054006", "code_system": "SNOMED", "description": "T2DM", "diagnosed_date": d}
        for d in days
    ]
    with session_scope(engine) as session:
        ScenarioRepository(session).save("eras", document)
    _build(engine, vocabulary=VOCABULARY)
    assert _rows(
        engine,
        "SELECT condition_concept_id, condition_era_start_date, condition_era_end_date, condition_occurrence_count "
        "FROM omop.condition_era ORDER BY 2",
    ) == [
        (201826, dt.date(2024, 1, 1), dt.date(2024, 2, 19), 3),
        (201826, dt.date(2024, 5, 1), dt.date(2024, 5, 1), 1),
    ]
    engine.dispose()


# -- the vocabulary folder ------------------------------------------------------------------------------


def _athena_copy(target: Path) -> Path:
    """The vocabulary sample as Athena ships it: tab-separated, unquoted, dates YYYYMMDD."""
    target.mkdir()
    for source in VOCABULARY.glob("*.csv"):
        with source.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        lines = ["\t".join(re.sub(r"^(\d{4})-(\d{2})-(\d{2})$", r"\1\2\3", cell) for cell in row) for row in rows]
        (target / source.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def test_an_athena_folder_maps_as_the_comma_separated_sample_does(store_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        import_synthea(session, SYNTHEA, scenario="synthea")
    comma = _build(engine, schema="comma", vocabulary=VOCABULARY)
    tab = _build(engine, schema="tab", vocabulary=_athena_copy(tmp_path / "athena"))
    assert comma["rows"] == tab["rows"] and comma["unmapped"] == tab["unmapped"]
    query = "SELECT concept_id, concept_name, valid_start_date FROM {}.concept ORDER BY 1"
    assert _rows(engine, query.format("comma")) == _rows(engine, query.format("tab"))
    engine.dispose()


def test_a_vocabulary_folder_that_cannot_be_used_is_refused_before_writing(store_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "CONCEPT.csv").write_text("concept_id,concept_name\n1,x\n")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "CONCEPT.csv").write_text("concept_id,concept_name\n1,x\n")
    (wrong / "CONCEPT_RELATIONSHIP.csv").write_text("concept_id_1,concept_id_2,relationship_id,invalid_reason\n")
    for folder, message in (
        (tmp_path / "none", "is not a folder"),
        (incomplete, "has no CONCEPT_RELATIONSHIP.csv"),
        (wrong, "no column 'domain_id'"),
    ):
        with session_scope(engine) as session, pytest.raises(VocabularyError, match=message):
            build_omop(session, vocabulary=folder)
    engine.dispose()


# -- the summary -------------------------------------------------------------------------------------------


def test_the_summary_counts_per_scenario(mapped: tuple[Engine, dict]) -> None:
    engine, _ = mapped
    with session_scope(engine) as session:
        report = omop_summary(session, "omop_v", top=3)
    by_name = {s["scenario"]: s for s in report["scenarios"]}
    assert set(by_name) == {"demo", "synthea"}
    assert by_name["demo"]["persons"] == DEMO_PATIENTS
    visits = by_name["synthea"]["visits"]
    assert sum(v["visits"] for v in visits) == _one(
        engine,
        "SELECT count(*) FROM omop_v.visit_occurrence v JOIN omop_v.hs_row_scenario r ON r.id = v.visit_occurrence_id "
        "AND r.omop_table = 'visit_occurrence' JOIN scenarios s ON s.id = r.scenario_id WHERE s.name = 'synthea'",
    )
    assert {v["concept_name"] for v in visits} <= {"Inpatient Visit", "Outpatient Visit", "Emergency Room Visit"}
    top = by_name["synthea"]["top_conditions"]
    assert len(top) == 3 and top[0]["persons"] >= top[1]["persons"] >= top[2]["persons"]
    assert len(by_name["demo"]["top_drugs"]) == 3


def test_drug_eras_roll_up_to_ingredients_when_the_folder_has_concept_ancestor(
    mapped: tuple[Engine, dict], tmp_path: Path
) -> None:
    engine, _ = mapped
    folder = tmp_path / "with-ancestors"
    shutil.copytree(VOCABULARY, folder)
    # RxNorm: lisinopril (1308216) is the ingredient of lisinopril 10 MG and 20 MG Oral Tablet.
    (folder / "CONCEPT_ANCESTOR.csv").write_text(
        "ancestor_concept_id,descendant_concept_id,min_levels_of_separation,max_levels_of_separation\n"
        "1308216,19080128,2,2\n1308216,19080129,2,2\n19080128,19080128,0,0\n"
    )
    _build(engine, schema="omop_a", vocabulary=folder)
    tablets = int(
        _one(engine, "SELECT count(*) FROM omop_v.drug_exposure WHERE drug_concept_id IN (19080128, 19080129)")
    )
    assert tablets > 0
    assert _one(engine, "SELECT count(*) FROM omop_v.drug_era WHERE drug_concept_id = 19080128") > 0  # no ancestors
    assert _one(engine, "SELECT count(*) FROM omop_a.drug_era WHERE drug_concept_id IN (19080128, 19080129)") == 0
    assert (
        _one(engine, "SELECT sum(drug_exposure_count) FROM omop_a.drug_era WHERE drug_concept_id = 1308216") == tablets
    )
    # Only the ingredient ancestors of drugs the export holds are written (not the drug's own row).
    twenty = _one(engine, "SELECT count(*) FROM omop_a.drug_exposure WHERE drug_concept_id = 19080129")
    assert _rows(engine, "SELECT ancestor_concept_id, count(*) FROM omop_a.concept_ancestor GROUP BY 1") == [
        (1308216, 2 if twenty else 1)
    ]
    assert _one(engine, "SELECT concept_class_id FROM omop_a.concept WHERE concept_id = 1308216") == "Ingredient"


def test_the_official_ddl_is_package_data() -> None:
    """Every shipped DDL file is matched by the wheel's package data (an install without them cannot build)."""
    import fnmatch
    import tomllib

    root = Path(__file__).parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "healthsim_state.analytics.omop"
    ]
    package = root / "healthsim_state" / "analytics" / "omop"
    shipped = [p.relative_to(package).as_posix() for p in (package / "ddl").rglob("*") if p.is_file()]
    assert len(shipped) == 8
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in shipped)


def test_records_with_the_same_dates_fall_in_one_era() -> None:
    """Ties in the dates are ordered once for both windows of the era query: a parallel sort
    ordering them differently in each once gave two eras starting on one day (one id, twice)."""
    import duckdb

    from healthsim_state.analytics.omop.eras import _eras

    con = duckdb.connect(config={"threads": 4})
    con.execute("CREATE SCHEMA s")
    # 2,000 people x 3 drugs, 50 records each, ten on each of five dates, 30 days after the last end.
    con.execute(
        "CREATE TABLE s.drug_exposure AS SELECT i % 2000 AS person_id, 1 + i % 3 AS drug_concept_id, "
        "DATE '2020-01-01' + CAST(i // 60000 * 40 AS INTEGER) AS drug_exposure_start_date, "
        "DATE '2020-01-01' + CAST(i // 60000 * 40 + 10 AS INTEGER) AS drug_exposure_end_date FROM range(300000) t(i)"
    )
    eras = _eras("s", "drug_exposure", "drug_concept_id", "drug_exposure_start_date", "drug_exposure_end_date")
    for _ in range(16):
        per_start = con.execute(
            f"SELECT count(*), count(DISTINCT (person_id, concept_id, era_start)), sum(records) FROM ({eras}) e"
        ).fetchone()
        assert per_start == (6000, 6000, 300000)  # one era per person and drug: 30 days apart at most
    con.close()
