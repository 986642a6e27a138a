"""The value rules of canonical-models.md that column types cannot express.

Pure data, keyed by entity type and field name (dotted document path).
:mod:`healthsim_state.codec.checks` applies them.
"""

from __future__ import annotations

import re

NPI = re.compile(r"\d{10}")
NDC = re.compile(r"\d{11}")
SSN = re.compile(r"\d{9}")
STATE = re.compile(r"[A-Z]{2}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
BIN = re.compile(r"\d{6}")
SUBJECT_ID = re.compile(r"[0-9]{4}")
SITE_ID = re.compile(r"[0-9]{3,4}")
USUBJID = re.compile(r"[A-Z0-9-]+-[0-9]+-[0-9]+")
DIGIT = re.compile(r"[0-9]")

PERSON_PATTERNS = {"ssn": SSN, "address.state": STATE, "contact.email": EMAIL}

# field -> compiled pattern the whole value must match
PATTERNS: dict[str, dict[str, re.Pattern[str]]] = {
    "patient": PERSON_PATTERNS,
    "member": {**PERSON_PATTERNS, "pcp_npi": NPI},
    "subject": {**PERSON_PATTERNS, "subject_id": SUBJECT_ID, "usubjid": USUBJID, "site_id": SITE_ID},
    "procedure": {"provider_npi": NPI},
    "order": {"ordering_provider.npi": NPI},
    "claim": {"provider_npi": NPI, "facility_npi": NPI},
    "claim_line": {"ndc_code": NDC},
    "prescription": {"ndc": NDC, "prescriber_npi": NPI, "daw_code": DIGIT},
    "pharmacy_claim": {
        "ndc": NDC,
        "pharmacy_npi": NPI,
        "prescriber_npi": NPI,
        "bin": BIN,
        "daw_code": DIGIT,
    },
}

GENDER = frozenset({"M", "F", "O", "U"})

ENUMS: dict[str, dict[str, frozenset[str]]] = {
    "patient": {"gender": GENDER},
    "member": {"gender": GENDER, "relationship_code": frozenset({"18", "01", "19"})},
    "subject": {
        "gender": GENDER,
        "status": frozenset(
            {
                "Screening",
                "Screen Failed",
                "Enrolled",
                "Randomized",
                "Active",
                "Completed",
                "Discontinued",
                "Lost to Follow-up",
                "Withdrawn",
            }
        ),
        "race": frozenset(
            {
                "American Indian or Alaska Native",
                "Asian",
                "Black or African American",
                "Native Hawaiian or Other Pacific Islander",
                "White",
                "Multiple",
                "Unknown",
                "Not Reported",
            }
        ),
        "ethnicity": frozenset({"Hispanic or Latino", "Not Hispanic or Latino", "Unknown", "Not Reported"}),
    },
    "encounter": {
        "class_code": frozenset({"I", "O", "E", "U", "OBS"}),
        "status": frozenset({"planned", "arrived", "in-progress", "on-hold", "finished", "cancelled"}),
    },
    "diagnosis": {"type": frozenset({"admitting", "working", "final", "differential"})},
    "procedure": {
        "code_system": frozenset({"CPT", "HCPCS", "ICD-10-PCS", "SNOMED"}),
        "status": frozenset(
            {
                "preparation",
                "in-progress",
                "completed",
                "not-done",
                "stopped",
                "entered-in-error",
            }
        ),
    },
    "medication": {"status": frozenset({"active", "completed", "stopped", "on-hold"})},
    "lab_result": {"abnormal_flag": frozenset({"H", "L", "HH", "LL", "A", "N"})},
    "order": {
        "order_type": frozenset({"LAB", "RAD", "MEDICATION", "PROCEDURE"}),
        "code_system": frozenset({"CPT", "LOINC", "ICD-10-PCS", "HCPCS"}),
        "priority": frozenset({"stat", "asap", "routine", "preop", "timed"}),
        "status": frozenset({"new", "accepted", "scheduled", "in_progress", "completed", "cancelled"}),
    },
    "claim": {"claim_type": frozenset({"PROFESSIONAL", "INSTITUTIONAL", "DENTAL", "RX"})},
    "pharmacy_claim": {"transaction_code": frozenset({"B1", "B2", "B3"})},
    "trial_visit": {"visit_status": frozenset({"Completed", "Missed", "Partially Completed", "Unscheduled"})},
    "adverse_event": {
        "aesev": frozenset({"Mild", "Moderate", "Severe"}),
        "aetoxgr": frozenset({"1", "2", "3", "4", "5"}),
        "aeser": frozenset({"Y", "N"}),
        "aerel": frozenset({"Not Related", "Unlikely", "Possibly", "Probably", "Definitely"}),
        "aeacn": frozenset({"None", "Dose Reduced", "Drug Interrupted", "Drug Withdrawn", "Not Applicable"}),
        "aeout": frozenset(
            {
                "Recovered/Resolved",
                "Recovering/Resolving",
                "Not Recovered/Not Resolved",
                "Recovered with Sequelae",
                "Fatal",
                "Unknown",
            }
        ),
    },
    "exposure": {
        "dose_modification": frozenset({"None", "Reduction", "Delay", "Interruption", "Discontinuation"}),
    },
}

# field -> (minimum, maximum), inclusive; None for an open end
RANGES: dict[str, dict[str, tuple[float | None, float | None]]] = {
    "vital_sign": {
        "temperature": (90, 110),
        "heart_rate": (0, 300),
        "respiratory_rate": (0, 100),
        "systolic_bp": (0, 300),
        "diastolic_bp": (0, 200),
        "spo2": (0, 100),
        "height_cm": (0, 300),
        "weight_kg": (0, 500),
    },
    "claim_line": {"line_number": (1, None), "units": (0, None)},
    "prescription": {
        "quantity_prescribed": (0, None),
        "days_supply": (0, None),
        "refills_authorized": (0, None),
        "refills_remaining": (0, None),
    },
    "pharmacy_claim": {"fill_number": (0, None), "quantity_dispensed": (0, None), "days_supply": (0, None)},
    "adverse_event": {"aeseq": (1, None)},
    "exposure": {"exseq": (1, None)},
}

# (start field, end field): the end may not come before the start
ORDERINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "encounter": (("admission_time", "discharge_time"),),
    "diagnosis": (("diagnosed_date", "resolved_date"),),
    "medication": (("start_date", "end_date"),),
    "lab_result": (("collected_time", "resulted_time"),),
    "member": (("coverage_start", "coverage_end"),),
    "claim": (("admission_date", "discharge_date"),),
    "prescription": (("written_date", "expiration_date"),),
    "adverse_event": (("aestdtc", "aeendtc"),),
    "exposure": (("exstdtc", "exendtc"),),
}

# Array fields: (item kind, maximum length or None)
ARRAYS: dict[str, dict[str, tuple[str, int | None]]] = {
    "procedure": {"modifiers": ("str", 4), "diagnosis_codes": ("str", None)},
    "order": {"diagnosis_codes": ("str", None)},
    "claim": {"other_diagnoses": ("str", None)},
    "claim_line": {"procedure_modifiers": ("str", 4), "diagnosis_pointers": ("int", None)},
    "prescription": {"diagnosis_codes": ("str", None)},
    "adverse_event": {"aesae_criteria": ("str", None)},
}

AE_SAE_CRITERIA = frozenset(
    {
        "Death",
        "Life-threatening",
        "Hospitalization",
        "Disability",
        "Congenital Anomaly",
        "Important Medical Event",
    }
)

# Fields of type date-time that also accept a bare date (canonical-models §12.10).
BARE_DATE_OK: dict[str, frozenset[str]] = {"medication": frozenset({"start_date", "end_date"})}

SOURCE_TYPES = frozenset({"generated", "loaded", "derived"})
SOURCE_SYSTEMS = frozenset(
    {
        "patientsim",
        "membersim",
        "rxmembersim",
        "trialsim",
        "populationsim",
        "networksim",
        "import",
    }
)

# Characters of an indexed text field, at most: every text column in an index
# or key (business keys, names, codes; fields.Field.max_length says which), and
# scenario names and tags. PostgreSQL refuses a B-tree entry above 2,704 bytes
# ("index row requires ... bytes"); 500 characters are at most 2,000 bytes of
# UTF-8, with room for the other column of a two-column index. DuckDB has no
# such limit, but the same value is refused on both backends.
INDEXED_TEXT_MAX_CHARS = 500
