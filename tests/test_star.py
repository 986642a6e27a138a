"""The star schema (healthsim_state.analytics.star) on DuckDB and PostgreSQL: row counts against the
source, person identity across products, length of stay and readmission, claim measures, rebuilds
of one scenario, a Synthea scenario beside a demo scenario, the CLI and the MCP tool."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from healthsim_models import session_scope
from healthsim_models.errors import InvalidArgumentError, ScenarioNotFoundError
from healthsim_state import ScenarioRepository, demo
from healthsim_state.analytics.star import StarSummary, build_star
from healthsim_state.analytics.star.sql import FACT_DATE_KEYS
from healthsim_state.analytics.star.tables import BUILD_ORDER, SCENARIO_TABLES
from healthsim_state.formats.synthea import import_synthea
from healthsim_state.interfaces.cli import app, main
from healthsim_state.interfaces.mcp import tools
from healthsim_state.interfaces.mcp.catalog import TOOLS
from healthsim_state.store.transaction import run_in_transaction
from tests.helpers import FIXTURES

runner = CliRunner()
AS_OF = dt.date(2025, 6, 30)


def _save(engine: Engine, name: str, entities: dict[str, list[dict[str, Any]]], overwrite: bool = False) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save(name, entities, overwrite=overwrite)


def _demo(engine: Engine, name: str, patients: int, seed: int = demo.DEFAULT_SEED) -> None:
    with session_scope(engine) as session:
        demo.save_demo(ScenarioRepository(session), name=name, patients=patients, seed=seed)


def _build(engine: Engine, scenarios: list[str] | None = None, **kwargs: Any) -> StarSummary:
    with session_scope(engine) as session:
        return build_star(session, scenarios, as_of=kwargs.pop("as_of", AS_OF), **kwargs)


def _rows(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(sql), params)]


def _keyed(engine: Engine, sql: str) -> dict[Any, tuple[Any, ...]]:
    """The rows of ``sql`` by their first column."""
    return {row[0]: row[1:] for row in _rows(engine, sql)}


def _scenario_rows(engine: Engine, scenario: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every scenario table that belongs to ``scenario``, sorted."""
    return {
        table.name: sorted(
            _rows(
                engine,
                f"SELECT t.* FROM analytics.{table.name} t JOIN scenarios s ON s.id = t.scenario_key "
                "WHERE s.name = :name",
                name=scenario,
            ),
            key=repr,
        )
        for table in SCENARIO_TABLES
    }


def _person(given: str, birth: str = "1980-01-01", ssn: str | None = None, **more: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"name": {"given_name": given, "family_name": "Test"}, "birth_date": birth, "gender": "F"}
    if ssn:
        block["ssn"] = ssn
    return {**block, **more}


def _patient(mrn: str, **person: Any) -> dict[str, Any]:
    return {"id": f"P-{mrn}", "mrn": mrn, **_person(mrn, **person)}


def _member(member_id: str, **person: Any) -> dict[str, Any]:
    return {
        "id": f"M-{member_id}",
        "member_id": member_id,
        "group_id": "G1",
        "plan_code": "PPO",
        "coverage_start": "2024-01-01",
        **_person(member_id, **person),
    }


def _subject(number: str, patient_ref: str | None = None, **person: Any) -> dict[str, Any]:
    ref = {"patient_ref": patient_ref} if patient_ref else {}
    return {
        "id": f"S-{number}",
        "subject_id": number,
        "usubjid": f"STUDY-1-{number}",
        "study_id": "STUDY-1",
        "site_id": "001",
        "informed_consent_date": "2024-02-01",
        **ref,
        **_person(number, **person),
    }


def _prescription(number: str, patient_mrn: str | None, member_id: str | None) -> dict[str, Any]:
    links = {k: v for k, v in (("patient_mrn", patient_mrn), ("member_id", member_id)) if v}
    return {
        "prescription_number": number,
        **links,
        "ndc": "00093715001",
        "drug_name": "Lisinopril 10 MG",
        "quantity_prescribed": 30,
        "days_supply": 30,
        "prescriber_npi": "1234567893",
        "written_date": "2024-03-01",
        "expiration_date": "2025-03-01",
    }


def _pharmacy_claim(claim_id: str, member_id: str, **amounts: Any) -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "transaction_code": "B1",
        "service_date": "2024-03-02",
        "pharmacy_npi": "1234567893",
        "member_id": member_id,
        "cardholder_id": "C1",
        "pcn": "RX",
        "group_number": "G1",
        "prescription_number": "RX-NONE",
        "bin": "019876",
        "ndc": "00093715001",
        "quantity_dispensed": 30,
        "days_supply": 30,
        "prescriber_npi": "1234567893",
        **{key: Decimal(value) for key, value in amounts.items()},
    }


def _claim(claim_id: str, member_id: str, lines: list[dict[str, Any]] | None = None, **totals: Any) -> dict[str, Any]:
    nested = {"claim_lines": lines} if lines is not None else {}
    return {
        "claim_id": claim_id,
        "claim_type": "PROFESSIONAL",
        "member_id": member_id,
        "provider_npi": "1234567893",
        "service_date": "2024-03-01",
        "principal_diagnosis": "I10",
        **{key: Decimal(value) for key, value in totals.items()},
        **nested,
    }


def _line(number: int, charge: str, allowed: str | None, paid: str | None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "line_number": number,
        "procedure_code": "99213",
        "service_date": "2024-03-01",
        "charge_amount": Decimal(charge),
    }
    if allowed is not None:
        line["allowed_amount"] = Decimal(allowed)
    if paid is not None:
        line["paid_amount"] = Decimal(paid)
    return line


# -- counts against the source; a Synthea scenario beside a demo scenario --------------------------


def test_a_demo_and_a_synthea_scenario_side_by_side(engine: Engine) -> None:
    _demo(engine, "demo", 40)
    with session_scope(engine) as session:
        import_synthea(session, FIXTURES / "synthea-27", scenario="synthea-27")
    summary = _build(engine)
    assert summary.scenarios == ("demo", "synthea-27") and summary.schema == "analytics"
    assert list(summary.rows) == [t.name for t in BUILD_ORDER]

    for name in ("demo", "synthea-27"):
        with session_scope(engine) as session:
            counts = ScenarioRepository(session).scenario_summary(name).entity_counts
        rows = {table: len(found) for table, found in _scenario_rows(engine, name).items()}

        def n(*types: str, counts: dict[str, int] = counts) -> int:
            return sum(counts.get(t, 0) for t in types)

        assert rows == {
            "dim_scenario": 1,
            "bridge_person": n("patient", "member", "subject"),
            # Every member and subject of both sources is a patient too.
            "dim_patient": n("patient"),
            "dim_provider": n("organization", "practitioner"),
            "fact_encounter": n("encounter"),
            "fact_diagnosis": n("diagnosis"),
            "fact_medication": n("medication", "prescription"),
            "fact_lab": n("lab_result"),
            "fact_claim": n("claim"),
            "fact_pharmacy_claim": n("pharmacy_claim"),
            "fact_trial_visit": n("trial_visit"),
        }, name
    assert summary.rows["dim_patient"] == 40 + 27

    # Synthea's members are its patients (same person block): matched by SSN; the demo's by
    # prescription where one names both, else by SSN; its subjects by patient_ref.
    rules = dict(
        _rows(
            engine,
            "SELECT s.name || ' ' || b.entity_type || ' ' || b.match_rule, COUNT(*) FROM analytics.bridge_person b "
            "JOIN scenarios s ON s.id = b.scenario_key GROUP BY 1",
        )
    )
    assert set(rules) == {
        "demo patient self",
        "demo member prescription",
        "demo member ssn",
        "demo subject patient_ref",
        "synthea-27 patient self",
        "synthea-27 member ssn",
    }

    # Every key a fact holds names a row of its dimension (or fact), every date key a day of dim_date,
    # and dim_date has no gap.
    with_persons = [t.name for t in SCENARIO_TABLES if "patient_key" in t.c and t.name != "dim_patient"]
    assert len(with_persons) == 8  # bridge_person and the seven facts
    references = [(table, "patient_key", "dim_patient", "patient_key") for table in with_persons]
    references += [
        ("fact_encounter", "provider_key", "dim_provider", "provider_key"),
        ("fact_encounter", "organization_key", "dim_provider", "provider_key"),
        ("fact_claim", "provider_key", "dim_provider", "provider_key"),
        ("dim_provider", "organization_key", "dim_provider", "provider_key"),
        ("fact_diagnosis", "encounter_key", "fact_encounter", "encounter_key"),
        ("fact_medication", "encounter_key", "fact_encounter", "encounter_key"),
        ("fact_lab", "encounter_key", "fact_encounter", "encounter_key"),
        ("dim_patient", "scenario_key", "dim_scenario", "scenario_key"),
    ]
    references += [(fact, column, "dim_date", "date_key") for fact, column in FACT_DATE_KEYS]
    for table, column, target, key in references:
        orphans = _rows(
            engine,
            f"SELECT COUNT(*) FROM analytics.{table} t LEFT JOIN analytics.{target} d ON d.{key} = t.{column} "
            f"WHERE t.{column} IS NOT NULL AND d.{key} IS NULL",
        )
        assert orphans == [(0,)], (table, column)
    linked = _rows(engine, "SELECT COUNT(*) FROM analytics.fact_diagnosis WHERE encounter_key IS NOT NULL")
    assert linked[0][0] > 0
    ((first, last, days),) = _rows(engine, "SELECT MIN(full_date), MAX(full_date), COUNT(*) FROM analytics.dim_date")
    assert days == (last - first).days + 1 == summary.rows["dim_date"]

    # The worked analysis of docs/analytics.md: condition prevalence by age band, per scenario.
    prevalence = _rows(
        engine,
        """
        SELECT s.name, p.age_band, COUNT(DISTINCT d.patient_key) AS with_condition
        FROM analytics.fact_diagnosis d
        JOIN analytics.dim_patient p ON p.patient_key = d.patient_key
        JOIN analytics.dim_scenario s ON s.scenario_key = d.scenario_key
        WHERE d.code IN ('I10', '59621000')
        GROUP BY s.name, p.age_band
        """,
    )
    assert {name for name, _, _ in prevalence} == {"demo", "synthea-27"}
    assert all(count > 0 for _, _, count in prevalence)


# -- person identity and age bands ------------------------------------------------------------------


def test_one_person_across_products(engine: Engine) -> None:
    _save(
        engine,
        "people",
        {
            "patient": [
                _patient("MRN-1", ssn="900000001", birth="1990-07-01"),
                _patient("MRN-2", birth="1990-06-30"),
                _patient("MRN-B", ssn="900000005", birth="1930-01-01", deceased=True, death_date="2000-01-01"),
                _patient("MRN-A", ssn="900000005", birth="2010-01-01"),
            ],
            "member": [
                _member("M1", ssn="900000001"),
                _member("M2", ssn="900000002"),  # no patient has it: the prescription links it
                _member("M3", ssn="900000003"),  # nobody's: a person of its own, and the subject S2's
                _member("M4"),
                _member("M5", ssn="900000005"),  # two patients have it: the lower MRN wins
            ],
            "subject": [
                _subject("0001", patient_ref="MRN-1", ssn="900000009"),
                _subject("0002", ssn="900000003", birth="1950-01-01"),
                _subject("0003"),
            ],
            "prescription": [_prescription("RX-2", "MRN-2", "M2"), _prescription("RX-4", None, "M4")],
            "pharmacy_claim": [_pharmacy_claim("RXC-1", "M1"), _pharmacy_claim("RXC-3", "M3")],
        },
    )
    _build(engine, ["people"])
    bridge = dict(
        _rows(engine, "SELECT b.entity_type || ' ' || b.match_rule, COUNT(*) FROM analytics.bridge_person b GROUP BY 1")
    )
    assert bridge == {
        "patient self": 4,
        "member ssn": 2,
        "member prescription": 1,
        "member self": 2,
        "subject patient_ref": 1,
        "subject member_ssn": 1,
        "subject self": 1,
    }
    people = _keyed(
        engine,
        "SELECT COALESCE(mrn, member_id, usubjid), anchor_type, member_id, usubjid, is_patient, is_member, "
        "is_subject, member_records, age, age_band, deceased FROM analytics.dim_patient",
    )
    assert people == {
        "MRN-1": ("patient", "M1", "STUDY-1-0001", True, True, True, 1, 34, "18-34", False),
        "MRN-2": ("patient", "M2", None, True, True, False, 1, 35, "35-49", False),
        "MRN-A": ("patient", "M5", None, True, True, False, 1, 15, "0-17", False),
        # Age on the death date.
        "MRN-B": ("patient", None, None, True, False, False, 0, 70, "65-79", True),
        "M3": ("member", "M3", "STUDY-1-0002", False, True, True, 1, 45, "35-49", False),
        "M4": ("member", "M4", None, False, True, False, 1, 45, "35-49", False),
        "STUDY-1-0003": ("subject", None, "STUDY-1-0003", False, False, True, 0, 45, "35-49", False),
    }
    # Facts of a member land on the member's person: the pharmacy claim of M1 on MRN-1, of M3 on M3;
    # a prescription naming only a member on that member's person.
    facts = _rows(
        engine,
        "SELECT f.claim_id, COALESCE(p.mrn, p.member_id) FROM analytics.fact_pharmacy_claim f "
        "JOIN analytics.dim_patient p ON p.patient_key = f.patient_key ORDER BY 1",
    )
    assert facts == [("RXC-1", "MRN-1"), ("RXC-3", "M3")]
    medications = _rows(
        engine,
        "SELECT f.source_type, COALESCE(p.mrn, p.member_id) FROM analytics.fact_medication f "
        "JOIN analytics.dim_patient p ON p.patient_key = f.patient_key ORDER BY 2",
    )
    assert medications == [("prescription", "M4"), ("prescription", "MRN-2")]


# -- length of stay and readmission -----------------------------------------------------------------


def _encounter(encounter_id: str, mrn: str, class_code: str, admitted: str, discharged: str | None, **more: Any):
    times = {"admission_time": admitted, **({"discharge_time": discharged} if discharged else {})}
    return {"encounter_id": encounter_id, "patient_mrn": mrn, "class_code": class_code, "status": "finished"} | (
        times | more
    )


def test_length_of_stay_and_30_day_readmission(engine: Engine) -> None:
    _save(
        engine,
        "stays",
        {
            "patient": [_patient("MRN-1"), _patient("MRN-2")],
            "encounter": [
                # 23:30 UTC is the next day in no session time zone's favour: dates are UTC dates.
                _encounter("E1", "MRN-1", "I", "2024-01-01T23:30:00Z", "2024-01-05T08:00:00Z"),
                # Admitted exactly 30 days after E1's discharge: a readmission.
                _encounter("E2", "MRN-1", "I", "2024-02-04T08:00:00Z", "2024-02-06T06:00:00Z"),
                # 30 days and 3 hours after E2's discharge: not one.
                _encounter("E3", "MRN-1", "I", "2024-03-07T09:00:00Z", "2024-03-07T18:00:00Z"),
                _encounter("E4", "MRN-1", "O", "2024-03-10T09:00:00Z", "2024-03-10T10:00:00Z"),
                _encounter("E5", "MRN-1", "I", "2024-03-15T09:00:00Z", None, status="cancelled"),
                _encounter("E6", "MRN-1", "I", "2024-05-01T09:00:00Z", None, status="in-progress"),
                # Another person's stay soon after E3 is not E3's readmission.
                _encounter("Q1", "MRN-2", "I", "2024-03-10T09:00:00Z", "2024-03-12T09:00:00Z"),
            ],
        },
    )
    with session_scope(engine) as session:
        zone = {"duckdb": "SET TimeZone = 'Pacific/Kiritimati'", "postgresql": "SET TIME ZONE 'Pacific/Kiritimati'"}
        session.execute(sa.text(zone[engine.dialect.name]))  # UTC+14
        build_star(session, ["stays"], as_of=AS_OF)
    found = _keyed(
        engine,
        "SELECT encounter_id, admission_date_key, discharge_date_key, length_of_stay_days, is_inpatient, "
        "readmitted_within_30_days, is_readmission FROM analytics.fact_encounter",
    )
    assert found == {
        "E1": (20240101, 20240105, 4, True, True, False),
        "E2": (20240204, 20240206, 2, True, False, True),
        "E3": (20240307, 20240307, 0, True, False, False),
        "E4": (20240310, 20240310, 0, False, False, False),
        "E5": (20240315, None, None, False, False, False),
        "E6": (20240501, None, None, True, False, False),
        "Q1": (20240310, 20240312, 2, True, False, False),
    }
    ((weekday, weekend, month),) = _rows(
        engine, "SELECT iso_day_of_week, is_weekend, year_month FROM analytics.dim_date WHERE date_key = 20240106"
    )
    assert (weekday, weekend, month) == (6, True, "2024-01")  # a Saturday


# -- claim measures ---------------------------------------------------------------------------------


def test_claim_measures(engine: Engine) -> None:
    _save(
        engine,
        "claims",
        {
            "member": [_member("M1")],
            "claim": [
                _claim(
                    "C1",
                    "M1",
                    [_line(1, "100.00", "80.00", "70.00")],
                    total_charge="150.00",
                    total_allowed="120.00",
                    total_paid="100.00",
                    member_responsibility="15.00",
                ),
                _claim("C2", "M1", [_line(1, "100.00", "80.00", "72.00"), _line(2, "50.00", "40.00", "36.00")]),
                _claim("C3", "M1", [_line(1, "100.00", "80.00", "72.00"), _line(2, "50.00", None, "36.00")]),
                _claim("C4", "M1"),
            ],
            "pharmacy_claim": [
                _pharmacy_claim("X1", "M1", gross_amount_due="41.75", patient_pay_amount="10.00"),
                _pharmacy_claim(
                    "X2",
                    "M1",
                    ingredient_cost_submitted="20.00",
                    dispensing_fee_submitted="1.75",
                    patient_pay_amount="5.00",
                ),
            ],
        },
    )
    _build(engine, ["claims"])
    claims = _keyed(
        engine,
        "SELECT claim_id, line_count, billed_amount, allowed_amount, paid_amount, member_responsibility "
        "FROM analytics.fact_claim",
    )
    d = Decimal
    assert claims == {
        "C1": (1, d("150.00"), d("120.00"), d("100.00"), d("15.00")),  # the header's totals
        "C2": (2, d("150.00"), d("120.00"), d("108.00"), d("12.00")),  # the lines' sums; allowed - paid
        "C3": (2, d("150.00"), None, d("108.00"), None),  # a line without allowed: no allowed sum
        "C4": (0, None, None, None, None),
    }
    pharmacy = _keyed(
        engine,
        "SELECT claim_id, billed_amount, patient_pay_amount, plan_paid_amount FROM analytics.fact_pharmacy_claim",
    )
    assert pharmacy == {"X1": (d("41.75"), d("10.00"), d("31.75")), "X2": (d("21.75"), d("5.00"), d("16.75"))}


# -- rebuilds ---------------------------------------------------------------------------------------


def test_a_rebuild_keeps_keys_and_replaces_only_the_named_scenario(engine: Engine) -> None:
    _demo(engine, "a", 6)
    _demo(engine, "b", 5, seed=7)
    _build(engine)
    a_before, b_before = _scenario_rows(engine, "a"), _scenario_rows(engine, "b")
    dates = _rows(engine, "SELECT COUNT(*) FROM analytics.dim_date")

    def keys(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[Any]]:
        # Everything but dim_scenario's build time (its fifth column) is the same on a rebuild.
        return {
            table: [row[:4] + row[5:] if table == "dim_scenario" else row for row in found]
            for table, found in rows.items()
        }

    _build(engine, ["a"])
    assert keys(_scenario_rows(engine, "a")) == keys(a_before)
    assert _scenario_rows(engine, "b") == b_before
    assert _rows(engine, "SELECT COUNT(*) FROM analytics.dim_date") == dates

    # Scenario a shrinks to 3 patients: its rebuild replaces its rows, b's stay as they were.
    with session_scope(engine) as session:
        demo.save_demo(ScenarioRepository(session), name="a", patients=3)
    summary = _build(engine, ["a", "a"])
    assert summary.scenarios == ("a",)
    counts = demo.entity_counts(3)
    assert summary.rows["fact_encounter"] == counts["encounter"]
    assert summary.rows["dim_patient"] == 3
    assert _scenario_rows(engine, "b") == b_before
    # The encounters a kept (the first 3 patients') have the rows and keys they had.
    kept = _scenario_rows(engine, "a")["fact_encounter"]
    assert kept == [row for row in a_before["fact_encounter"] if row[0] in {r[0] for r in kept}]

    # A build of every scenario also drops the rows of a scenario deleted since.
    with session_scope(engine) as session:
        ScenarioRepository(session).delete("b")
    _build(engine)
    assert _rows(engine, "SELECT COUNT(*) FROM analytics.fact_encounter") == [(counts["encounter"],)]
    assert _rows(engine, "SELECT name FROM analytics.dim_scenario") == [("a",)]


def _planned_rows(session: Any, table: str) -> int:
    """How many rows the planner expects a scan of ``table`` to give, in the session's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        (plan,) = session.execute(sa.text(f"EXPLAIN (FORMAT JSON) SELECT * FROM {table}")).scalar_one()
        return plan["Plan"]["Plan Rows"]
    text = "\n".join(row[1] for row in session.execute(sa.text(f"EXPLAIN SELECT * FROM {table}")))
    return int(re.search(r"~(\d+) rows", text).group(1))


def test_the_planner_knows_how_many_persons_before_the_facts_read_them(engine: Engine) -> None:
    """The facts join bridge_person, filled in the same transaction, and the build reads tables a
    save may just have filled: on PostgreSQL their statistics are refreshed first (a planner that
    took them for empty joined them by nested loops, 20-77 s instead of 3 s at 10,000 patients);
    DuckDB's planner counts rows itself."""
    _demo(engine, "a", 20)
    with session_scope(engine) as session:
        built = build_star(session, ["a"], as_of=AS_OF)
        assert _planned_rows(session, "analytics.bridge_person") == built.rows["bridge_person"] > 20
        ((links,),) = session.execute(sa.text("SELECT COUNT(*) FROM scenario_entities")).all()
        assert _planned_rows(session, "scenario_entities") == links


def test_builds_side_by_side_take_turns(engine: Engine) -> None:
    """Builds of one schema at once (of all scenarios, of one, of the other) all succeed, one after
    another, and leave what one build alone leaves."""
    _demo(engine, "a", 4)
    _demo(engine, "b", 3, seed=9)
    _build(engine)
    expected = {name: _scenario_rows(engine, name) for name in ("a", "b")}
    errors: list[BaseException] = []

    def build(scenarios: list[str] | None) -> None:
        try:
            # Five builders on DuckDB collide and retry; a loaded machine can take more than the default six turns.
            run_in_transaction(
                engine, lambda session: build_star(session, scenarios, as_of=AS_OF), what="a build", attempts=30
            )
        except BaseException as exc:  # reported below, from the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(names,)) for names in (None, ["a"], ["b"], None, ["a", "b"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for name in ("a", "b"):
        rows = _scenario_rows(engine, name)
        assert {t: len(r) for t, r in rows.items()} == {t: len(r) for t, r in expected[name].items()}
        assert rows["fact_encounter"] == expected[name]["fact_encounter"]


def test_refusals(engine: Engine) -> None:
    assert set(_build(engine).rows.values()) == {0}  # an empty store
    _demo(engine, "a", 1)
    with pytest.raises(ScenarioNotFoundError):
        _build(engine, ["a", "no-such"])
    for bad in ("Analytics", "1x", "a-b", "main", "public", "population", ""):
        with pytest.raises(InvalidArgumentError, match="schema"):
            _build(engine, schema=bad)
    assert _build(engine, "a").scenarios == ("a",)  # one name given as such
    # Nothing was created by the refused calls; another schema holds a build of its own.
    summary = _build(engine, schema="star_two")
    assert summary.rows["dim_patient"] == 1
    assert _rows(engine, "SELECT COUNT(*) FROM star_two.dim_patient") == [(1,)]


# -- the CLI and the MCP tool -----------------------------------------------------------------------


def test_the_command(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.invoke(app, ["demo", "--patients", "4", "--database-url", store_url]).exit_code == 0
    result = runner.invoke(app, ["analytics", "star", "--json", "--database-url", store_url])
    assert result.exit_code == 0, result.output
    built = json.loads(result.stdout)
    assert built["scenarios"] == ["demo"] and built["schema"] == "analytics"
    assert built["rows"]["dim_patient"] == 4

    result = runner.invoke(app, ["analytics", "star", "demo", "--schema", "mine", "--database-url", store_url])
    assert result.exit_code == 0, result.output
    assert "star schema 'mine'" in result.stdout and "dim_patient" in result.stdout

    for argv, message in (
        (
            ["demo", "no-such"],
            "error: no scenario named or with id 'no-such'; list them with 'healthsim scenario list'",
        ),
        (["--schema", "public"], "error: schema: 'public' holds the store's or the database's own tables"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["analytics", "star", *argv, "--database-url", store_url])
        assert exit_info.value.code == 1
        assert capsys.readouterr().err.strip().startswith(message)


def test_the_mcp_tool(store_url: str) -> None:
    (spec,) = [spec for spec in TOOLS if spec.name == "analytics_star"]
    assert (spec.read_only, spec.destructive, spec.writes) == (False, False, True)
    assert set(spec.input_schema()["properties"]) == {"scenarios", "schema"}
    store = tools.Store(store_url)
    try:
        store.write(lambda repo: demo.save_demo(repo, patients=2), what="the demo")
        result = tools.analytics_star(store, scenarios=["demo"])
        assert result["scenarios"] == ["demo"] and result["rows"]["dim_patient"] == 2
        assert tools.query(store, "SELECT COUNT(*) AS n FROM analytics.fact_encounter")["rows"] == [
            [result["rows"]["fact_encounter"]]
        ]
        with pytest.raises(ScenarioNotFoundError):
            tools.analytics_star(store, scenarios=["no-such"])
    finally:
        store.close()
