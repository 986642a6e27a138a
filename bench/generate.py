"""A deterministic generator of realistic scenarios for benchmarks.

``scenario(patients, seed)`` returns one generator per entity type. Each
regenerates its entities patient by patient from RNGs seeded by (seed,
patient, type), so a scenario of any size streams without being held in
memory, and references line up across types: about 20 entities per patient,
every type present, every reference resolvable.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton", "Thompson"]
LABS = [("Hemoglobin A1c", "4548-4", "%"), ("Creatinine", "2160-0", "mg/dL"), ("Sodium", "2951-2", "mmol/L"),
        ("Potassium", "2823-3", "mmol/L"), ("Glucose", "2345-7", "mg/dL")]
DX = [("E11.9", "Type 2 diabetes mellitus without complications"), ("I10", "Essential (primary) hypertension"),
      ("J45.41", "Moderate persistent asthma with (acute) exacerbation"), ("E78.5", "Hyperlipidemia, unspecified")]
DRUGS = [("Metformin 500 mg tablet", "861007", "00093104801"), ("Lisinopril 10 mg tablet", "314076", "00378395177"),
         ("Atorvastatin 20 mg tablet", "617311", "00071015523")]
EPOCH = dt.date(2024, 1, 1)


def _rng(seed: int, patient: int, part: str) -> random.Random:
    return random.Random(f"{seed}:{patient}:{part}")


def _shape(seed: int, i: int) -> dict[str, Any]:
    r = _rng(seed, i, "shape")
    member = r.random() < 0.6
    return {
        "encounters": r.randint(2, 4),
        "member": member,
        "rx": member and r.random() < 0.7,  # a pharmacy claim needs a member
        "subject": r.random() < 0.15,
        "day": r.randint(0, 300),
    }


def _when(day: int, hour: int) -> str:
    return f"{(EPOCH + dt.timedelta(days=day)).isoformat()}T{hour:02d}:15:00-05:00"


def _prov(r: random.Random, system: str, seed: int) -> dict[str, Any]:
    return {"source_type": "generated", "source_system": system, "skill_used": "benchmark", "generation_seed": seed}


def _patients(n: int, seed: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        r = _rng(seed, i, "patient")
        yield {
            "id": f"PAT-{i}", "mrn": f"MRN-{i:07d}", "ssn": f"9{i:08d}",
            "name": {"given_name": r.choice(FIRST), "family_name": r.choice(LAST)},
            "birth_date": (dt.date(1940, 1, 1) + dt.timedelta(days=r.randint(0, 25000))).isoformat(),
            "gender": r.choice("MF"),
            "address": {"street_address": f"{r.randint(1, 9999)} Main St", "city": "Columbus", "state": "OH",
                        "postal_code": f"43{r.randint(100, 999)}"},
            "contact": {"phone": f"614-555-{r.randint(100, 199):04d}"},
            "_provenance": _prov(r, "patientsim", seed),
        }


def _per_encounter(n: int, seed: int, part: str, build) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    for i in range(n):
        shape = _shape(seed, i)
        r = _rng(seed, i, part)
        for k in range(shape["encounters"]):
            yield from build(r, i, k, shape["day"] + 20 * k)


def _encounter(r, i, k, day):  # type: ignore[no-untyped-def]
    yield {"encounter_id": f"ENC-{i}-{k}", "patient_mrn": f"MRN-{i:07d}", "class_code": r.choice("OEIU"),
           "status": "finished", "admission_time": _when(day, 9), "discharge_time": _when(day, 11),
           "facility": "Riverbend General", "_provenance": _prov(r, "patientsim", 1)}


def _diagnosis(r, i, k, day):  # type: ignore[no-untyped-def]
    code, text = r.choice(DX)
    yield {"code": code, "description": text, "patient_mrn": f"MRN-{i:07d}", "encounter_id": f"ENC-{i}-{k}",
           "diagnosed_date": (EPOCH + dt.timedelta(days=day)).isoformat(), "id": f"DX-{i}-{k}"}


def _labs(r, i, k, day):  # type: ignore[no-untyped-def]
    for j in range(2):
        name, loinc, unit = r.choice(LABS)
        yield {"id": f"LAB-{i}-{k}-{j}", "test_name": name, "loinc_code": loinc, "value": f"{r.uniform(1, 150):.1f}",
               "unit": unit, "abnormal_flag": r.choice(["N", "H", "L", None]), "patient_mrn": f"MRN-{i:07d}",
               "encounter_id": f"ENC-{i}-{k}", "collected_time": _when(day, 9)}


def _vitals(r, i, k, day):  # type: ignore[no-untyped-def]
    yield {"patient_mrn": f"MRN-{i:07d}", "encounter_id": f"ENC-{i}-{k}", "observation_time": _when(day, 9),
           "temperature": round(r.uniform(97, 101), 1), "heart_rate": r.randint(55, 110),
           "systolic_bp": r.randint(100, 160), "diastolic_bp": r.randint(60, 100), "spo2": r.randint(90, 100)}


def _medication(r, i, k, day):  # type: ignore[no-untyped-def]
    if k == 0:
        drug, rxnorm, _ = r.choice(DRUGS)
        yield {"id": f"MED-{i}", "name": drug, "code": rxnorm, "dose": "1 tab", "route": "PO", "frequency": "QD",
               "patient_mrn": f"MRN-{i:07d}", "encounter_id": f"ENC-{i}-{k}", "start_date": _when(day, 10)}


def _procedure(r, i, k, day):  # type: ignore[no-untyped-def]
    if k == 0:
        yield {"id": f"PROC-{i}", "code": "93000", "patient_mrn": f"MRN-{i:07d}", "encounter_id": f"ENC-{i}-{k}",
               "performed_datetime": _when(day, 10), "modifiers": ["26"]}


def _note(r, i, k, day):  # type: ignore[no-untyped-def]
    if k == 0:
        yield {"id": f"NOTE-{i}", "patient_mrn": f"MRN-{i:07d}", "encounter_id": f"ENC-{i}-{k}",
               "note_type": "progress_note", "note_datetime": _when(day, 11), "content": "Stable. Continue plan."}


def _order(r, i, k, day):  # type: ignore[no-untyped-def]
    if k == 0:
        yield {"order_id": f"ORD-{i}", "patient_mrn": f"MRN-{i:07d}", "encounter_id": f"ENC-{i}-{k}",
               "order_type": "LAB", "code": "83036", "status": "completed", "ordered_datetime": _when(day, 9),
               "ordering_provider": {"npi": "1648273914", "name": {"given_name": "Imogen", "family_name": "Tallis"}}}


def _filtered(n: int, seed: int, flag: str, part: str, build) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    for i in range(n):
        shape = _shape(seed, i)
        if shape[flag]:
            yield from build(_rng(seed, i, part), i, shape["day"])


def _member(r, i, day):  # type: ignore[no-untyped-def]
    yield {"id": f"MBR-{i}", "member_id": f"MEM-{i}", "subscriber_id": f"MEM-{i}", "ssn": f"9{i:08d}",
           "name": {"given_name": r.choice(FIRST), "family_name": r.choice(LAST)}, "birth_date": "1970-01-01",
           "gender": "U", "group_id": "GRP-1", "plan_code": "PPO", "coverage_start": "2024-01-01"}


def _claim(r, i, day):  # type: ignore[no-untyped-def]
    yield {"claim_id": f"CLM-{i}", "claim_type": "PROFESSIONAL", "member_id": f"MEM-{i}", "provider_npi": "1648273914",
           "service_date": (EPOCH + dt.timedelta(days=day)).isoformat(), "principal_diagnosis": "E11.9",
           "total_charge": 249.0}


def _claim_lines(r, i, day):  # type: ignore[no-untyped-def]
    for line in (1, 2):
        yield {"claim_id": f"CLM-{i}", "line_number": line, "procedure_code": "99214",
               "service_date": (EPOCH + dt.timedelta(days=day)).isoformat(), "charge_amount": 124.5}


def _prescription(r, i, day):  # type: ignore[no-untyped-def]
    drug, _, ndc = r.choice(DRUGS)
    written = EPOCH + dt.timedelta(days=day)
    yield {"prescription_number": f"RX-{i}", "patient_mrn": f"MRN-{i:07d}", "ndc": ndc, "drug_name": drug,
           "quantity_prescribed": 30, "days_supply": 30, "prescriber_npi": "1648273914",
           "written_date": written.isoformat(), "expiration_date": (written + dt.timedelta(days=365)).isoformat()}


def _pharmacy_claim(r, i, day):  # type: ignore[no-untyped-def]
    _, _, ndc = r.choice(DRUGS)
    yield {"claim_id": f"RXC-{i}", "transaction_code": "B1", "service_date": (EPOCH + dt.timedelta(days=day)).isoformat(),
           "pharmacy_npi": "1472059389", "member_id": f"MEM-{i}", "cardholder_id": f"C{i}", "pcn": "RX",
           "group_number": "G1", "prescription_number": f"RX-{i}", "bin": "019876", "ndc": ndc,
           "quantity_dispensed": 30, "days_supply": 30, "prescriber_npi": "1648273914", "gross_amount_due": 14.15}


def _subject(r, i, day):  # type: ignore[no-untyped-def]
    yield {"id": f"SUBJ-{i}", "subject_id": f"{i % 10000:04d}", "usubjid": f"STUDY1-101-{i}", "study_id": "STUDY1",
           "site_id": "101", "patient_ref": f"MRN-{i:07d}", "name": {"given_name": "A", "family_name": "B"},
           "birth_date": "1960-05-05", "gender": "F", "informed_consent_date": "2024-02-01"}


def _trial(r, i, day):  # type: ignore[no-untyped-def]
    for visit in (1, 2):
        yield {"usubjid": f"STUDY1-101-{i}", "visit_num": visit, "visit_date": f"2024-0{visit + 2}-01"}


def _adverse(r, i, day):  # type: ignore[no-untyped-def]
    yield {"usubjid": f"STUDY1-101-{i}", "aeseq": 1, "aeterm": "Headache", "aestdtc": "2024-03-05", "aesev": "Mild"}


def _exposure(r, i, day):  # type: ignore[no-untyped-def]
    yield {"usubjid": f"STUDY1-101-{i}", "exseq": 1, "extrt": "Drug X", "exdose": 10, "exstdtc": "2024-02-02"}


def scenario(patients: int, seed: int = 42) -> dict[str, Iterator[dict[str, Any]]]:
    """Entity generators per type for a scenario of ``patients`` patients."""
    n, s = patients, seed
    return {
        "patient": _patients(n, s),
        "encounter": _per_encounter(n, s, "encounter", _encounter),
        "diagnosis": _per_encounter(n, s, "diagnosis", _diagnosis),
        "procedure": _per_encounter(n, s, "procedure", _procedure),
        "medication": _per_encounter(n, s, "medication", _medication),
        "lab_result": _per_encounter(n, s, "lab", _labs),
        "vital_sign": _per_encounter(n, s, "vital", _vitals),
        "clinical_note": _per_encounter(n, s, "note", _note),
        "order": _per_encounter(n, s, "order", _order),
        "member": _filtered(n, s, "member", "member", _member),
        "claim": _filtered(n, s, "member", "claim", _claim),
        "claim_line": _filtered(n, s, "member", "line", _claim_lines),
        "prescription": _filtered(n, s, "rx", "rx", _prescription),
        "pharmacy_claim": _filtered(n, s, "rx", "rxc", _pharmacy_claim),
        "subject": _filtered(n, s, "subject", "subject", _subject),
        "trial_visit": _filtered(n, s, "subject", "visit", _trial),
        "adverse_event": _filtered(n, s, "subject", "ae", _adverse),
        "exposure": _filtered(n, s, "subject", "ex", _exposure),
    }
