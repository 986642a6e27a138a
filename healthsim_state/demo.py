"""The demo scenario: deterministic synthetic data spanning all four products.

``scenario(patients, seed)`` returns one generator per entity type, in
registry order. Each generator regenerates its entities patient by patient
from random generators seeded by (seed, patient, type), so a scenario of any
size streams (holding four bytes per patient: the plans the generators
share), the same seed always gives the same entities, and references line
up across types:

- a small provider directory (three organizations, three practitioners)
  and three payers come with the first patient; every encounter is at
  Riverbend General with one of the practitioners, and names the patient's
  payer when the patient is a member;
- every patient has 2-4 encounters, each with a diagnosis, two lab results
  and a set of vitals; the first encounter also has a procedure, a
  medication, a clinical note, an order, two observations (smoking status
  and a depression screening score), an immunization and a care plan;
  about 30% of patients have an allergy, 20% a glucose meter with test
  strips, 20% a chest X-ray;
- about 60% of patients are also health-plan members (same person: same
  SSN, name and birth date) with a coverage by their payer and a claim of
  two lines, half of the claims also naming the practitioner; most members
  also have a prescription and its pharmacy claim;
- about 15% are also trial subjects, with two visits, an adverse event and
  an exposure;
- the first patient always has every kind of record above (so every entity
  type is present for any size).

Fields and types added to the demo later draw from random generators of
their own, so the documents of a seed keep every field they had.

:func:`save_demo` saves such a scenario through the repository; ``healthsim
demo`` and the benchmarks (``python -m bench.run``) use this module.
"""

from __future__ import annotations

import datetime as dt
import random
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from healthsim_models.errors import InvalidArgumentError, ScenarioExistsError
from healthsim_models.registry import ENTITY_TYPES
from healthsim_state.store.repository import SaveSummary, ScenarioRepository

DEFAULT_NAME = "demo"
DEFAULT_PATIENTS = 100
DEFAULT_SEED = 42
#: The most patients one demo scenario has: beyond it a typo (an extra digit or ten), not a plan.
MAX_PATIENTS = 10_000_000
#: Above this many patients ``healthsim demo`` uses the batch writer, DEFAULT_BATCH patients at a time.
AUTO_BATCH_ABOVE = 20_000
DEFAULT_BATCH = 5_000
#: Written to the scenario's metadata; marks a scenario that ``save_demo`` may replace.
GENERATOR = "healthsim demo"

Document = dict[str, Any]

LABS_PER_ENCOUNTER = 2
LINES_PER_CLAIM = 2
VISITS_PER_SUBJECT = 2

_EPOCH = dt.date(2024, 1, 1)
_FIRST = {"F": ["Ada", "Grace", "Barbara", "Frances", "Margaret"], "M": ["Alan", "Edsger", "Donald", "John", "Ken"]}
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton", "Thompson"]
_CITIES = [("Columbus", "OH", "43"), ("Dayton", "OH", "45"), ("Pittsburgh", "PA", "15"), ("Louisville", "KY", "40")]
#: (test, LOINC, unit, low, high, reference range, lowest and highest generated value)
_LABS = [
    ("Hemoglobin A1c", "4548-4", "%", 4.0, 5.6, "4.0-5.6", 4.5, 10.5),
    ("Creatinine", "2160-0", "mg/dL", 0.6, 1.3, "0.6-1.3", 0.5, 2.2),
    ("Sodium", "2951-2", "mmol/L", 136.0, 145.0, "136-145", 130.0, 150.0),
    ("Potassium", "2823-3", "mmol/L", 3.5, 5.1, "3.5-5.1", 3.0, 5.8),
    ("Glucose", "2345-7", "mg/dL", 70.0, 99.0, "70-99", 65.0, 240.0),
]
#: (ICD-10-CM, description, chief complaint)
_DIAGNOSES = [
    ("E11.9", "Type 2 diabetes mellitus without complications", "follow-up of blood sugar"),
    ("I10", "Essential (primary) hypertension", "high blood pressure readings"),
    ("J45.41", "Moderate persistent asthma with (acute) exacerbation", "wheezing"),
    ("E78.5", "Hyperlipidemia, unspecified", "cholesterol review"),
]
#: (drug, RxNorm CUI, NDC, sig, indication)
_DRUGS = [
    ("Metformin 500 mg tablet", "861007", "00093104801", "Take 1 tablet by mouth daily with food", "E11.9"),
    ("Lisinopril 10 mg tablet", "314076", "00378395177", "Take 1 tablet by mouth daily", "I10"),
    ("Atorvastatin 20 mg tablet", "617311", "00071015523", "Take 1 tablet by mouth at bedtime", "E78.5"),
]
_CLASSES = ["O", "O", "O", "E", "U", "I"]
_CLINICIANS = [
    ("Imogen", "Tallis", "1648273914"),
    ("Rafael", "Okafor", "1234567893"),
    ("Mei", "Lindqvist", "1902847561"),
]
_PHARMACY_NPI = "1472059389"
_FACILITY_NPI = "1811992334"
#: (organization_id, name, NPI, phone, street address, ZIP, latitude, longitude); all in Columbus, OH.
_ORGANIZATIONS = [
    ("ORG-RIVERBEND", "Riverbend General", _FACILITY_NPI, "614-555-0100", "1200 River Rd", "43215", 39.9612, -82.9988),
    ("ORG-RIVERBEND-LAB", "Riverbend Laboratory", None, "614-555-0140", "1210 River Rd", "43215", 39.9618, -82.9991),
    (
        "ORG-RIVERBEND-RX",
        "Riverbend Pharmacy",
        _PHARMACY_NPI,
        "614-555-0170",
        "1230 River Rd",
        "43215",
        39.9625,
        -82.9996,
    ),
]
_HOSPITAL = _ORGANIZATIONS[0][0]
#: Per clinician NPI (see _CLINICIANS): gender and specialty.
_CLINICIAN_DETAILS = {
    "1648273914": ("F", "Internal Medicine"),
    "1234567893": ("M", "Family Medicine"),
    "1902847561": ("F", "Endocrinology"),
}
#: (payer_id, name, ownership, street address, city, state, ZIP, phone)
_PAYERS = [
    ("PAY-BUCKEYE", "Buckeye Health Plan", "PRIVATE", "40 Capitol Sq", "Columbus", "OH", "43215", "800-555-0110"),
    ("PAY-ALLEGHENY", "Allegheny Mutual", "PRIVATE", "7 Grant St", "Pittsburgh", "PA", "15219", "800-555-0120"),
    ("PAY-BLUEGRASS", "Bluegrass Benefit Co", "PRIVATE", "310 Main St", "Louisville", "KY", "40202", "800-555-0130"),
]
#: (LOINC, name, category, value type, unit, values)
_OBSERVATIONS = [
    (
        "72166-2",
        "Tobacco smoking status",
        "social-history",
        "text",
        None,
        ["Never smoked tobacco (finding)", "Former smoker (finding)", "Smokes tobacco daily (finding)"],
    ),
    (
        "55758-7",
        "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]",
        "survey",
        "numeric",
        "{score}",
        [str(score) for score in range(7)],
    ),
]
#: (SNOMED CT, description, category, reactions)
_ALLERGIES = [
    (
        "91936005",
        "Allergy to penicillin",
        "medication",
        [{"code": "271807003", "description": "Eruption of skin (disorder)", "severity": "moderate"}],
    ),
    (
        "300913006",
        "Shellfish allergy",
        "food",
        [
            {"code": "39579001", "description": "Anaphylaxis (disorder)", "severity": "severe"},
            {"code": "247472004", "description": "Wheal (finding)", "severity": "moderate"},
        ],
    ),
    (
        "418689008",
        "Allergy to grass pollen",
        "environment",
        [{"code": "21719001", "description": "Allergic rhinitis caused by pollen (disorder)", "severity": "mild"}],
    ),
]
#: (SNOMED CT care plan category, its description, the ICD-10-CM reason from _DIAGNOSES)
_CARE_PLANS = [
    ("698360004", "Diabetes self management plan", "E11.9"),
    ("443402002", "Lifestyle education regarding hypertension", "I10"),
    ("699728000", "Asthma self management", "J45.41"),
    ("736285004", "Hyperlipidemia clinical management plan", "E78.5"),
]
_STUDY = "STUDY1"
_SUBJECTS_PER_SITE = 10_000  # subject_id has 4 digits: a site beyond that many starts again
_ADVERSE_EVENTS = [
    ("Headache", "Headache", "Nervous system disorders"),
    ("Nausea", "Nausea", "Gastrointestinal disorders"),
    ("Tiredness", "Fatigue", "General disorders and administration site conditions"),
]


@dataclass(frozen=True)
class _Plan:
    """What one patient's record holds; every type's generator derives it alike."""

    index: int
    seed: int
    encounters: int
    member: bool
    rx: bool  # a prescription and its pharmacy claim; needs a member
    subject: bool
    day: int  # days after 2024-01-01 of the first encounter
    allergy: bool
    equipment: bool  # a glucose meter and its test strips
    imaging: bool  # a chest X-ray

    @property
    def mrn(self) -> str:
        return f"MRN-{self.index:07d}"

    @property
    def member_id(self) -> str:
        return f"MEM-{self.index}"

    @property
    def site_id(self) -> str:
        return str(101 + self.index // _SUBJECTS_PER_SITE)

    @property
    def subject_id(self) -> str:
        return f"{self.index % _SUBJECTS_PER_SITE:04d}"

    @property
    def usubjid(self) -> str:
        return f"{_STUDY}-{self.site_id}-{self.subject_id}"

    @property
    def first_encounter(self) -> str:
        return f"ENC-{self.index}-0"


def _rng(seed: int, patient: int, part: str) -> random.Random:
    return random.Random(f"{seed}:{patient}:{part}")


def _plan(seed: int, index: int) -> _Plan:
    r = _rng(seed, index, "shape")
    first = index == 0  # the first patient spans every product
    member = r.random() < 0.6 or first
    # Keyword arguments are evaluated in order: the draws of the first five
    # fields come first, as before the last three existed.
    return _Plan(
        index=index,
        seed=seed,
        encounters=r.randint(2, 4),
        member=member,
        rx=member and (r.random() < 0.7 or first),
        subject=r.random() < 0.15 or first,
        day=r.randint(0, 300),
        allergy=r.random() < 0.3 or first,
        equipment=r.random() < 0.2 or first,
        imaging=r.random() < 0.2 or first,
    )


class _Plans:
    """The plans of one :func:`scenario` call, drawn once and shared by its
    generators (drawing one costs about as much as building an entity),
    packed four bytes per patient so that a million patients take 4 MB.

    Every generator asks for its patients in order from ``start``, so the
    patient it asks for is at most one past the last drawn, however the
    generators are interleaved."""

    def __init__(self, seed: int, start: int) -> None:
        self.seed = seed
        self.start = start
        self.packed = array("I")

    def __call__(self, index: int) -> _Plan:
        offset = index - self.start
        if offset == len(self.packed):
            plan = _plan(self.seed, index)
            self.packed.append(
                plan.day << 8
                | plan.imaging << 7
                | plan.equipment << 6
                | plan.allergy << 5
                | (plan.encounters - 2) << 3
                | plan.member << 2
                | plan.rx << 1
                | plan.subject
            )
            return plan
        bits = self.packed[offset]
        return _Plan(
            index=index,
            seed=self.seed,
            encounters=(bits >> 3 & 3) + 2,
            member=bool(bits & 4),
            rx=bool(bits & 2),
            subject=bool(bits & 1),
            day=bits >> 8,
            allergy=bool(bits & 32),
            equipment=bool(bits & 64),
            imaging=bool(bits & 128),
        )


def _date(day: int) -> str:
    return (_EPOCH + dt.timedelta(days=day)).isoformat()


def _when(day: int, hour: int) -> str:
    return f"{_date(day)}T{hour:02d}:15:00-05:00"


def _provenance(plan: _Plan, system: str) -> Document:
    return {
        "source_type": "generated",
        "source_system": system,
        "skill_used": "healthsim-demo",
        "generation_seed": plan.seed,
    }


def _person(plan: _Plan) -> Document:
    """The Person block shared by a patient and the same person as member and subject."""
    r = _rng(plan.seed, plan.index, "person")
    gender = r.choice("FM")
    city, state, zip_prefix = r.choice(_CITIES)
    given, family = r.choice(_FIRST[gender]), r.choice(_LAST)
    return {
        "ssn": f"9{plan.index:08d}",  # 9xx numbers are never issued as real SSNs
        "name": {"given_name": given, "family_name": family},
        "birth_date": _date(-r.randint(18 * 365, 85 * 365)),
        "gender": gender,
        "address": {
            "street_address": f"{r.randint(1, 9999)} Main St",
            "city": city,
            "state": state,
            "postal_code": f"{zip_prefix}{r.randint(100, 999)}",
        },
        "contact": {
            "phone": f"614-555-{r.randint(0, 9999):04d}",
            "email": f"{given.lower()}.{family.lower()}{plan.index}@example.org",
        },
    }


def _race_and_ethnicity(plan: _Plan) -> tuple[str, str]:
    """One person's race and ethnicity, spelled as both patient and subject accept."""
    r = _rng(plan.seed, plan.index, "race")
    return (
        r.choice(["White", "Black or African American", "Asian", "Multiple"]),
        r.choice(["Not Hispanic or Latino", "Hispanic or Latino"]),
    )


def _clinician(r: random.Random) -> tuple[str, str, str]:
    return r.choice(_CLINICIANS)


def _practitioner_id(npi: str) -> str:
    return f"PRV-{npi}"


def _payer(plan: _Plan) -> str | None:
    """The payer of a member's coverage, encounters and claim; None for a patient who is not a member."""
    return _rng(plan.seed, plan.index, "payer").choice(_PAYERS)[0] if plan.member else None


def _first(plan: _Plan) -> int:
    """1 for the first patient, who brings the directory and the payers; 0 for the others."""
    return int(plan.index == 0)


_Builder = Callable[[random.Random, _Plan], Iterator[Document]]


@dataclass(frozen=True)
class _Factory:
    build: _Builder
    per_patient: Callable[[_Plan], int]  # how many entities ``build`` yields for a plan


#: The factory of each entity type the demo generates, by type name (see :func:`factory`).
_FACTORIES: dict[str, _Factory] = {}


def _once(plan: _Plan) -> int:
    return 1


def factory(type_name: str, per_patient: Callable[[_Plan], int] = _once) -> Callable[[_Builder], _Builder]:
    """Declare the decorated function the demo's generator of ``type_name``
    entities; ``per_patient(plan)`` says how many it yields for a plan."""

    def declare(build: _Builder) -> _Builder:
        _FACTORIES[type_name] = _Factory(build, per_patient)
        return build

    return declare


# -- NetworkSim and the payers: with the first patient ------------------------


@factory("organization", lambda p: len(_ORGANIZATIONS) * _first(p))
def _organization(r: random.Random, plan: _Plan) -> Iterator[Document]:
    for organization_id, name, npi, phone, street, postal_code, latitude, longitude in _ORGANIZATIONS:
        yield {
            "organization_id": organization_id,
            "name": name,
            **({"npi": npi} if npi else {}),
            "phone": phone,
            "street_address": street,
            "city": "Columbus",
            "state": "OH",
            "postal_code": postal_code,
            "latitude": latitude,
            "longitude": longitude,
            "_provenance": _provenance(plan, "networksim"),
        }


@factory("practitioner", lambda p: len(_CLINICIANS) * _first(p))
def _practitioner(r: random.Random, plan: _Plan) -> Iterator[Document]:
    for given, family, npi in _CLINICIANS:
        gender, specialty = _CLINICIAN_DETAILS[npi]
        yield {
            "practitioner_id": _practitioner_id(npi),
            "name": f"{given} {family}",
            "npi": npi,
            "gender": gender,
            "specialty": specialty,
            "organization_id": _HOSPITAL,
            "_provenance": _provenance(plan, "networksim"),
        }


@factory("payer", lambda p: len(_PAYERS) * _first(p))
def _payer_entity(r: random.Random, plan: _Plan) -> Iterator[Document]:
    for payer_id, name, ownership, street, city, state, postal_code, phone in _PAYERS:
        yield {
            "payer_id": payer_id,
            "name": name,
            "ownership": ownership,
            "street_address": street,
            "city": city,
            "state": state,
            "postal_code": postal_code,
            "phone": phone,
            "_provenance": _provenance(plan, "membersim"),
        }


# -- PatientSim -------------------------------------------------------------


@factory("patient")
def _patient(r: random.Random, plan: _Plan) -> Iterator[Document]:
    race, ethnicity = _race_and_ethnicity(plan)
    yield {
        "id": f"PAT-{plan.index}",
        "mrn": plan.mrn,
        **_person(plan),
        "race": race,
        "ethnicity": ethnicity,
        "language": r.choice(["en", "en", "en", "es"]),
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("encounter", lambda p: p.encounters)
def _encounter(r: random.Random, plan: _Plan) -> Iterator[Document]:
    payer = {"payer_id": payer_id} if (payer_id := _payer(plan)) else {}
    for k in range(plan.encounters):
        day = plan.day + 20 * k
        code, _, complaint = r.choice(_DIAGNOSES)
        given, family, npi = _clinician(r)
        yield {
            "encounter_id": f"ENC-{plan.index}-{k}",
            "patient_mrn": plan.mrn,
            "class_code": r.choice(_CLASSES),
            "status": "finished",
            "admission_time": _when(day, 9),
            "discharge_time": _when(day, 11),
            "facility": "Riverbend General",
            "department": "Internal Medicine",
            "chief_complaint": complaint,
            "admitting_diagnosis": code,
            "discharge_disposition": "01",
            "attending_physician": f"{given} {family}",
            "organization_id": _HOSPITAL,
            "practitioner_id": _practitioner_id(npi),
            **payer,
            "_provenance": _provenance(plan, "patientsim"),
        }


@factory("diagnosis", lambda p: p.encounters)
def _diagnosis(r: random.Random, plan: _Plan) -> Iterator[Document]:
    for k in range(plan.encounters):
        code, text, _ = r.choice(_DIAGNOSES)
        yield {
            "id": f"DX-{plan.index}-{k}",
            "code": code,
            "code_system": "ICD-10-CM",
            "description": text,
            "type": "final",
            "patient_mrn": plan.mrn,
            "encounter_id": f"ENC-{plan.index}-{k}",
            "diagnosed_date": _date(plan.day + 20 * k),
            "_provenance": _provenance(plan, "patientsim"),
        }


@factory("procedure")
def _procedure(r: random.Random, plan: _Plan) -> Iterator[Document]:
    given, family, npi = _clinician(r)
    yield {
        "id": f"PROC-{plan.index}",
        "code": "93000",
        "code_system": "CPT",
        "description": "Electrocardiogram, routine, with interpretation and report",
        "patient_mrn": plan.mrn,
        "encounter_id": f"ENC-{plan.index}-0",
        "performed_datetime": _when(plan.day, 10),
        "performer": f"{given} {family}",
        "provider_npi": npi,
        "status": "completed",
        "diagnosis_codes": [r.choice(_DIAGNOSES)[0]],
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("medication")
def _medication(r: random.Random, plan: _Plan) -> Iterator[Document]:
    drug, rxnorm, _, _, indication = r.choice(_DRUGS)
    given, family, _ = _clinician(r)
    yield {
        "id": f"MED-{plan.index}",
        "name": drug,
        "code": rxnorm,
        "dose": "1 tablet",
        "route": "PO",
        "frequency": "QD",
        "patient_mrn": plan.mrn,
        "encounter_id": f"ENC-{plan.index}-0",
        "start_date": _when(plan.day, 10),
        "status": "active",
        "prescriber": f"{given} {family}",
        "indication": indication,
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("lab_result", lambda p: LABS_PER_ENCOUNTER * p.encounters)
def _lab_result(r: random.Random, plan: _Plan) -> Iterator[Document]:
    for k in range(plan.encounters):
        day = plan.day + 20 * k
        for j in range(LABS_PER_ENCOUNTER):
            name, loinc, unit, low, high, reference, lowest, highest = r.choice(_LABS)
            value = round(r.uniform(lowest, highest), 1)
            flag = "H" if value > high else "L" if value < low else "N"
            yield {
                "id": f"LAB-{plan.index}-{k}-{j}",
                "test_name": name,
                "loinc_code": loinc,
                "value": f"{value:.1f}",
                "unit": unit,
                "reference_range": reference,
                "abnormal_flag": flag,
                "patient_mrn": plan.mrn,
                "encounter_id": f"ENC-{plan.index}-{k}",
                "collected_time": _when(day, 9),
                "resulted_time": _when(day, 13),
                "performing_lab": "Riverbend Laboratory",
                "_provenance": _provenance(plan, "patientsim"),
            }


@factory("vital_sign", lambda p: p.encounters)
def _vital_sign(r: random.Random, plan: _Plan) -> Iterator[Document]:
    height = round(r.uniform(150, 195), 1)
    for k in range(plan.encounters):
        yield {
            "patient_mrn": plan.mrn,
            "encounter_id": f"ENC-{plan.index}-{k}",
            "observation_time": _when(plan.day + 20 * k, 9),
            "temperature": round(r.uniform(97, 100.5), 1),
            "heart_rate": r.randint(55, 110),
            "respiratory_rate": r.randint(12, 20),
            "systolic_bp": r.randint(100, 160),
            "diastolic_bp": r.randint(60, 100),
            "spo2": r.randint(92, 100),
            "height_cm": height,
            "weight_kg": round(r.uniform(50, 120), 1),
            "_provenance": _provenance(plan, "patientsim"),
        }


@factory("clinical_note")
def _clinical_note(r: random.Random, plan: _Plan) -> Iterator[Document]:
    given, family, _ = _clinician(r)
    yield {
        "id": f"NOTE-{plan.index}",
        "patient_mrn": plan.mrn,
        "encounter_id": f"ENC-{plan.index}-0",
        "note_type": "progress_note",
        "note_datetime": _when(plan.day, 11),
        "author": f"{given} {family}",
        "content": r.choice(
            [
                "Stable. Continue current plan.",
                "Improving. Recheck labs in three months.",
                "Symptoms controlled. Reinforced diet and exercise.",
            ]
        ),
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("order")
def _order(r: random.Random, plan: _Plan) -> Iterator[Document]:
    given, family, npi = _clinician(r)
    yield {
        "order_id": f"ORD-{plan.index}",
        "patient_mrn": plan.mrn,
        "encounter_id": f"ENC-{plan.index}-0",
        "order_type": "LAB",
        "code": "83036",
        "code_system": "CPT",
        "description": "Hemoglobin A1c",
        "priority": r.choice(["routine", "routine", "stat"]),
        "status": "completed",
        "ordered_datetime": _when(plan.day, 9),
        "collected_datetime": _when(plan.day, 10),
        "resulted_datetime": _when(plan.day, 13),
        "specimen_type": "Blood",
        "ordering_provider": {"npi": npi, "name": {"given_name": given, "family_name": family}},
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("observation", lambda p: len(_OBSERVATIONS))
def _observation(r: random.Random, plan: _Plan) -> Iterator[Document]:
    for k, (loinc, name, category, value_type, unit, values) in enumerate(_OBSERVATIONS):
        yield {
            "id": f"OBS-{plan.index}-{k}",
            "patient_mrn": plan.mrn,
            "encounter_id": plan.first_encounter,
            "code": loinc,
            "code_system": "LOINC",
            "description": name,
            "category": category,
            "status": "final",
            "effective_datetime": _when(plan.day, 9),
            "value": r.choice(values),
            "value_type": value_type,
            **({"unit": unit} if unit else {}),
            "_provenance": _provenance(plan, "patientsim"),
        }


@factory("allergy", lambda p: int(p.allergy))
def _allergy(r: random.Random, plan: _Plan) -> Iterator[Document]:
    code, description, category, reactions = r.choice(_ALLERGIES)
    yield {
        "id": f"ALG-{plan.index}",
        "patient_mrn": plan.mrn,
        "encounter_id": plan.first_encounter,
        "code": code,
        "code_system": "SNOMED",
        "description": description,
        "type": "allergy",
        "category": category,
        "clinical_status": "active",
        # As recorded: a day, no time; within the 12 years before the first encounter, so after birth (18+).
        "onset_datetime": _date(plan.day - r.randint(30, 12 * 365)),
        "reactions": reactions,
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("immunization")
def _immunization(r: random.Random, plan: _Plan) -> Iterator[Document]:
    given, family, _ = _clinician(r)
    yield {
        "id": f"IMM-{plan.index}",
        "patient_mrn": plan.mrn,
        "encounter_id": plan.first_encounter,
        "vaccine_code": "140",
        "vaccine_code_system": "CVX",
        "vaccine_description": "Influenza, seasonal, injectable, preservative free",
        "status": "completed",
        "occurrence_datetime": _when(plan.day, 10),
        "lot_number": f"FLU{r.randint(10000, 99999)}",
        "site": r.choice(["Left arm", "Right arm"]),
        "route": "IM",
        "performer": f"{given} {family}",
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("care_plan")
def _care_plan(r: random.Random, plan: _Plan) -> Iterator[Document]:
    code, description, reason = r.choice(_CARE_PLANS)
    reason_text = next(text for icd, text, _ in _DIAGNOSES if icd == reason)
    yield {
        "id": f"CP-{plan.index}",
        "patient_mrn": plan.mrn,
        "encounter_id": plan.first_encounter,
        "code": code,
        "code_system": "SNOMED",
        "description": description,
        "status": "active",
        "period_start": _date(plan.day),
        "reason_code": reason,
        "reason_code_system": "ICD-10-CM",
        "reason_description": reason_text,
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("device", lambda p: int(p.equipment))
def _device(r: random.Random, plan: _Plan) -> Iterator[Document]:
    yield {
        "id": f"DEV-{plan.index}",
        "patient_mrn": plan.mrn,
        "encounter_id": plan.first_encounter,
        "code": "337414009",
        "code_system": "SNOMED",
        "description": "Blood glucose meter (physical object)",
        "udi_carrier": f"(01)00812345000019(11)230601(10)LOT{r.randint(100, 999)}(21)SN{plan.index:08d}",
        "status": "active",
        "period_start": _when(plan.day, 10),
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("supply", lambda p: int(p.equipment))
def _supply(r: random.Random, plan: _Plan) -> Iterator[Document]:
    yield {
        "id": f"SUP-{plan.index}",
        "patient_mrn": plan.mrn,
        "encounter_id": plan.first_encounter,
        "code": "337388004",
        "code_system": "SNOMED",
        "description": "Blood glucose testing strips (physical object)",
        "quantity": r.choice([50, 100]),
        "occurrence_datetime": _when(plan.day, 10),
        "_provenance": _provenance(plan, "patientsim"),
    }


@factory("imaging_study", lambda p: int(p.imaging))
def _imaging_study(r: random.Random, plan: _Plan) -> Iterator[Document]:
    # DICOM UIDs under the 2.25 root (a 128-bit number in decimal), drawn from the patient's own generator.
    study, series, instance = (f"2.25.{r.getrandbits(120)}" for _ in range(3))
    yield {
        "patient_mrn": plan.mrn,
        "encounter_id": plan.first_encounter,
        "instance_uid": instance,
        "study_id": study,
        "started": _when(plan.day, 10),
        "series_uid": series,
        "body_site_code": "51185008",
        "body_site_description": "Thoracic structure (body structure)",
        "modality_code": "DX",
        "modality_description": "Digital Radiography",
        "sop_class_code": "1.2.840.10008.5.1.4.1.1.1.1",
        "sop_class_description": "Digital X-Ray Image Storage - For Presentation",
        "procedure_code": "399208008",
        "_provenance": _provenance(plan, "patientsim"),
    }


# -- MemberSim --------------------------------------------------------------


@factory("member", lambda p: int(p.member))
def _member(r: random.Random, plan: _Plan) -> Iterator[Document]:
    yield {
        "id": f"MBR-{plan.index}",
        "member_id": plan.member_id,
        "subscriber_id": plan.member_id,
        "relationship_code": "18",
        **_person(plan),
        "group_id": f"GRP-{r.randint(1, 5)}",
        "plan_code": r.choice(["PPO", "HMO", "HDHP"]),
        "coverage_start": "2024-01-01",
        "coverage_end": "2025-12-31",
        "pcp_npi": _clinician(r)[2],
        "_provenance": _provenance(plan, "membersim"),
    }


@factory("coverage", lambda p: int(p.member))
def _coverage(r: random.Random, plan: _Plan) -> Iterator[Document]:
    payer = _payer(plan)
    secondary = {}
    if r.random() < 0.1 or plan.index == 0:  # a few members have a second payer for the same period
        secondary["secondary_payer_id"] = r.choice([p[0] for p in _PAYERS if p[0] != payer])
    yield {
        "member_id": plan.member_id,
        "payer_id": payer,
        **secondary,
        "subscriber_id": plan.member_id,
        "relationship": "self",
        "status": "active",
        "period_start": "2024-01-01",
        "period_end": "2025-12-31",
        "_provenance": _provenance(plan, "membersim"),
    }


def _claim_charges(r: random.Random) -> list[tuple[str, Decimal, Decimal]]:
    """(CPT code, charge, allowed) per line; the claim's totals are their sums."""
    office = r.choice([("99213", Decimal("124.50")), ("99214", Decimal("182.00"))])
    lab = ("83036", Decimal("38.25"))
    return [(code, charge, (charge * Decimal("0.8")).quantize(Decimal("0.01"))) for code, charge in (office, lab)]


@factory("claim", lambda p: int(p.member))
def _claim(r: random.Random, plan: _Plan) -> Iterator[Document]:
    lines = _claim_charges(_rng(plan.seed, plan.index, "charges"))
    charge = sum(line[1] for line in lines)
    allowed = sum(line[2] for line in lines)
    paid = (allowed * Decimal("0.9")).quantize(Decimal("0.01"))
    code = r.choice(_DIAGNOSES)[0]
    npi = _clinician(r)[2]
    # Half of the claims name the provider as a practitioner too (drawn last: the earlier draws are as they were).
    named = {"practitioner_id": _practitioner_id(npi)} if r.random() < 0.5 or plan.index == 0 else {}
    yield {
        "claim_id": f"CLM-{plan.index}",
        "claim_type": "PROFESSIONAL",
        "member_id": plan.member_id,
        "subscriber_id": plan.member_id,
        "provider_npi": npi,
        **named,
        "payer_id": _payer(plan),
        "facility_npi": _FACILITY_NPI,
        "service_date": _date(plan.day),
        "place_of_service": "11",
        "principal_diagnosis": code,
        "other_diagnoses": [] if code == "I10" else ["I10"],
        "diagnosis_code_system": "ICD-10-CM",
        "total_charge": charge,
        "total_allowed": allowed,
        "total_paid": paid,
        "member_responsibility": allowed - paid,
        "_provenance": _provenance(plan, "membersim"),
    }


@factory("claim_line", lambda p: LINES_PER_CLAIM * p.member)
def _claim_line(r: random.Random, plan: _Plan) -> Iterator[Document]:
    lines = _claim_charges(_rng(plan.seed, plan.index, "charges"))
    for number, (code, charge, allowed) in enumerate(lines[:LINES_PER_CLAIM], start=1):
        yield {
            "claim_id": f"CLM-{plan.index}",
            "line_number": number,
            "procedure_code": code,
            "procedure_code_system": "CPT",
            "service_date": _date(plan.day),
            "units": 1,
            "charge_amount": charge,
            "allowed_amount": allowed,
            "paid_amount": (allowed * Decimal("0.9")).quantize(Decimal("0.01")),
            "diagnosis_pointers": [1],
            "place_of_service": "11",
            "_provenance": _provenance(plan, "membersim"),
        }


# -- RxMemberSim ------------------------------------------------------------


def _drug(plan: _Plan) -> tuple[str, str, str, str, str]:
    """The member's drug: prescription and pharmacy claim must agree."""
    return _rng(plan.seed, plan.index, "drug").choice(_DRUGS)


def _prescriber(plan: _Plan) -> tuple[str, str, str]:
    return _clinician(_rng(plan.seed, plan.index, "prescriber"))


@factory("prescription", lambda p: int(p.rx))
def _prescription(r: random.Random, plan: _Plan) -> Iterator[Document]:
    drug, _, ndc, sig, indication = _drug(plan)
    given, family, npi = _prescriber(plan)
    written = _EPOCH + dt.timedelta(days=plan.day)
    yield {
        "prescription_number": f"RX-{plan.index}",
        "patient_mrn": plan.mrn,
        "member_id": plan.member_id,
        "encounter_id": f"ENC-{plan.index}-0",
        "ndc": ndc,
        "drug_name": drug,
        "quantity_prescribed": 30,
        "days_supply": 30,
        "refills_authorized": 5,
        "refills_remaining": 4,
        "prescriber_npi": npi,
        "prescriber_name": f"{given} {family}",
        "written_date": written.isoformat(),
        "expiration_date": (written + dt.timedelta(days=365)).isoformat(),
        "daw_code": "0",
        "diagnosis_codes": [indication],
        "directions": sig,
        "_provenance": _provenance(plan, "rxmembersim"),
    }


@factory("pharmacy_claim", lambda p: int(p.rx))
def _pharmacy_claim(r: random.Random, plan: _Plan) -> Iterator[Document]:
    _, _, ndc, _, _ = _drug(plan)
    ingredient = Decimal(r.randint(400, 4000)) / 100
    fee = Decimal("1.75")
    copay = min(Decimal("10.00"), ingredient + fee)
    yield {
        "claim_id": f"RXC-{plan.index}",
        "transaction_code": "B1",
        "service_date": _date(plan.day + 1),
        "pharmacy_npi": _PHARMACY_NPI,
        "member_id": plan.member_id,
        "cardholder_id": f"C{plan.index}",
        "person_code": "01",
        "bin": "019876",
        "pcn": "RX",
        "group_number": "G1",
        "prescription_number": f"RX-{plan.index}",
        "fill_number": 0,
        "ndc": ndc,
        "quantity_dispensed": 30,
        "days_supply": 30,
        "daw_code": "0",
        "prescriber_npi": _prescriber(plan)[2],
        "ingredient_cost_submitted": ingredient,
        "dispensing_fee_submitted": fee,
        "gross_amount_due": ingredient + fee,
        "patient_pay_amount": copay,
        "_provenance": _provenance(plan, "rxmembersim"),
    }


# -- TrialSim ---------------------------------------------------------------


@factory("subject", lambda p: int(p.subject))
def _subject(r: random.Random, plan: _Plan) -> Iterator[Document]:
    race, ethnicity = _race_and_ethnicity(plan)
    yield {
        "id": f"SUBJ-{plan.index}",
        "subject_id": plan.subject_id,
        "usubjid": plan.usubjid,
        "study_id": _STUDY,
        "site_id": plan.site_id,
        "patient_ref": plan.mrn,
        **_person(plan),
        "screening_date": "2024-01-20",
        "informed_consent_date": "2024-02-01",
        "randomization_date": "2024-02-02",
        "treatment_arm": r.choice(["A", "B"]),
        "status": "Active",
        "race": race,
        "ethnicity": ethnicity,
        "_provenance": _provenance(plan, "trialsim"),
    }


@factory("trial_visit", lambda p: VISITS_PER_SUBJECT * p.subject)
def _trial_visit(r: random.Random, plan: _Plan) -> Iterator[Document]:
    for visit in range(1, VISITS_PER_SUBJECT + 1):
        yield {
            "usubjid": plan.usubjid,
            "visit_num": visit,
            "visit_name": f"Week {4 * (visit - 1)}",
            "visit_date": _date(31 + 28 * (visit - 1)),
            "study_day": 1 + 28 * (visit - 1),
            "visit_status": "Completed",
            "window_deviation_days": r.randint(0, 2),
            "_provenance": _provenance(plan, "trialsim"),
        }


@factory("adverse_event", lambda p: int(p.subject))
def _adverse_event(r: random.Random, plan: _Plan) -> Iterator[Document]:
    term, decoded, body_system = r.choice(_ADVERSE_EVENTS)
    yield {
        "usubjid": plan.usubjid,
        "aeseq": 1,
        "aeterm": term,
        "aedecod": decoded,
        "aebodsys": body_system,
        "aestdtc": "2024-03-05",
        "aeendtc": "2024-03-07",
        "aesev": "Mild",
        "aetoxgr": "1",
        "aeser": "N",
        "aerel": r.choice(["Unlikely", "Possibly"]),
        "aeacn": "None",
        "aeout": "Recovered/Resolved",
        "_provenance": _provenance(plan, "trialsim"),
    }


@factory("exposure", lambda p: int(p.subject))
def _exposure(r: random.Random, plan: _Plan) -> Iterator[Document]:
    yield {
        "usubjid": plan.usubjid,
        "exseq": 1,
        "extrt": "Drug X",
        "exdose": r.choice([10, 20]),
        "exdosu": "mg",
        "exdosfrq": "QD",
        "exroute": "ORAL",
        "exstdtc": "2024-02-02",
        "exendtc": "2024-04-30",
        "planned_dose": 20,
        "dose_modification": "None",
        "_provenance": _provenance(plan, "trialsim"),
    }


def _check_size(value: int, name: str = "patients") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"{name}: expected a whole number >= 0, got {value!r}")


def _stream(patients: int, plans: _Plans, type_name: str) -> Iterator[Document]:
    made = _FACTORIES[type_name]
    seed = plans.seed
    for i in range(plans.start, plans.start + patients):
        plan = plans(i)
        if made.per_patient(plan):
            yield from made.build(_rng(seed, i, type_name), plan)


def scenario(patients: int, seed: int = DEFAULT_SEED, *, start: int = 0) -> dict[str, Iterator[Document]]:
    """One generator of canonical documents per entity type with a :func:`factory`
    (all of them; registry order) for ``patients`` patients.

    ``start`` skips the first patients: ``scenario(n, s, start=k)`` yields
    exactly what ``scenario(k + n, s)`` yields for patients k to k+n-1, so a
    large scenario can be generated (and saved) in chunks.
    """
    _check_size(patients)
    _check_size(start, "start")
    plans = _Plans(seed, start)
    return {et.name: _stream(patients, plans, et.name) for et in ENTITY_TYPES if et.name in _FACTORIES}


def _check_request(patients: int, seed: int) -> None:
    _check_size(patients)
    if patients > MAX_PATIENTS:
        raise InvalidArgumentError(f"patients: at most {MAX_PATIENTS:,} in one demo scenario, got {patients:,}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**63:
        # It is every entity's generation_seed, a 64-bit column.
        raise InvalidArgumentError(f"seed: expected a whole number that fits 64 bits (-2**63 to 2**63-1), got {seed!r}")


def entity_counts(patients: int, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """How many entities of each type ``scenario(patients, seed)`` yields, without generating them."""
    _check_request(patients, seed)
    counts = dict.fromkeys((et.name for et in ENTITY_TYPES if et.name in _FACTORIES), 0)
    for i in range(patients):
        plan = _plan(seed, i)
        for name in counts:
            counts[name] += _FACTORIES[name].per_patient(plan)
    return counts


def save_demo(
    repo: ScenarioRepository,
    *,
    name: str = DEFAULT_NAME,
    patients: int = DEFAULT_PATIENTS,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    wrap: Callable[[Iterable[Document]], Iterable[Document]] | None = None,
    batch: int | None = None,
) -> SaveSummary:
    """Generate the demo scenario and save it as ``name`` in one repository save,
    or with ``batch``, through the batch writer (:meth:`ScenarioRepository.writer`)
    ``batch`` patients at a time (the same entities; memory bounded at any size).

    A scenario of that name made by an earlier demo under that name is
    replaced; any other scenario of that name (an imported one, too) is refused with :class:`ScenarioExistsError` unless
    ``overwrite``. ``wrap`` sees each type's generator on its way to the
    repository (the CLI counts entities for its progress bar with it).
    """
    _check_request(patients, seed)
    if batch is not None:
        _check_size(batch, "batch")
        if batch == 0:
            raise InvalidArgumentError("batch: expected a whole number >= 1, got 0")
    replace = overwrite
    with repo.aside() as probe:  # for the writer: no transaction held open in the caller's session
        extra = (probe.scenario_summary(name).extra or {}) if not overwrite and probe.exists(name) else None
    if extra is not None:
        # The marker travels with an export, so it counts only under the name the demo saved it as:
        # a demo exported and imported as another scenario is that user's scenario now.
        if extra.get("generator") != GENERATOR or extra.get("generated_as") != name:
            raise ScenarioExistsError(
                f"a scenario named {name!r} exists and was not made by the demo under that name "
                "(it was imported or saved otherwise); pass --overwrite (overwrite=True) to replace it, "
                "or choose another --name"
            )
        replace = True
    metadata: dict[str, Any] = {
        "description": f"Demo: {patients} patients across PatientSim, MemberSim, RxMemberSim and TrialSim (seed {seed})",
        "tags": ["demo"],
        "overwrite": replace,
        "extra": {"generator": GENERATOR, "generated_as": name, "patients": patients, "seed": seed},
    }

    def wrapped(streams: dict[str, Iterator[Document]]) -> dict[str, Iterable[Document]]:
        return {type_name: wrap(stream) if wrap else stream for type_name, stream in streams.items()}

    if batch is None:
        return repo.save(name, wrapped(scenario(patients, seed)), **metadata)
    # scenario(n, seed, start=k) yields what the whole scenario yields for those
    # patients, type by type in order: the adds give the one-shot scenario.
    with repo.writer(name, **metadata) as writer:
        for start in range(0, patients, batch):
            writer.add(wrapped(scenario(min(batch, patients - start), seed, start=start)))
    assert writer.summary is not None, "a writer that ends without an error has published"
    return writer.summary
