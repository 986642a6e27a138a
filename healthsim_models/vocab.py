"""The vocabulary of value rules (canonical-models §3-§8, §10): patterns and
value sets that columns name in their rules (:mod:`healthsim_models.columns`).

Values only, no tables keyed by entity type: which column takes which
value is said on the column. A pattern must match the whole value.
"""

from __future__ import annotations

import re

# -- identifiers -----------------------------------------------------------------
# Digits are written [0-9]: Python's \d also matches other scripts' digits
# ("١٢٣"), which no identifier holds and which JSON Schema's \d refuses.

NPI = re.compile(r"[0-9]{10}")
NDC = re.compile(r"[0-9]{11}")
SSN = re.compile(r"[0-9]{9}")
STATE = re.compile(r"[A-Z]{2}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
BIN = re.compile(r"[0-9]{6}")
SUBJECT_ID = re.compile(r"[0-9]{4}")
SITE_ID = re.compile(r"[0-9]{3,4}")
USUBJID = re.compile(r"[A-Z0-9-]+-[0-9]+-[0-9]+")
DIGIT = re.compile(r"[0-9]")

# -- people -------------------------------------------------------------------------

GENDER = frozenset({"M", "F", "O", "U"})
RELATIONSHIP_CODE = frozenset({"18", "01", "19"})
RACE = frozenset(
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
)
ETHNICITY = frozenset({"Hispanic or Latino", "Not Hispanic or Latino", "Unknown", "Not Reported"})

# -- clinical ---------------------------------------------------------------------

ENCOUNTER_CLASS = frozenset({"I", "O", "E", "U", "OBS"})
ENCOUNTER_STATUS = frozenset({"planned", "arrived", "in-progress", "on-hold", "finished", "cancelled"})
DIAGNOSIS_TYPE = frozenset({"admitting", "working", "final", "differential"})
PROCEDURE_CODE_SYSTEM = frozenset({"CPT", "HCPCS", "ICD-10-PCS", "SNOMED"})
PROCEDURE_STATUS = frozenset({"preparation", "in-progress", "completed", "not-done", "stopped", "entered-in-error"})
MEDICATION_STATUS = frozenset({"active", "completed", "stopped", "on-hold"})
ABNORMAL_FLAG = frozenset({"H", "L", "HH", "LL", "A", "N"})
ORDER_TYPE = frozenset({"LAB", "RAD", "MEDICATION", "PROCEDURE"})
ORDER_CODE_SYSTEM = frozenset({"CPT", "LOINC", "ICD-10-PCS", "HCPCS"})
ORDER_PRIORITY = frozenset({"stat", "asap", "routine", "preop", "timed"})
ORDER_STATUS = frozenset({"new", "accepted", "scheduled", "in_progress", "completed", "cancelled"})

# -- claims ------------------------------------------------------------------------

CLAIM_TYPE = frozenset({"PROFESSIONAL", "INSTITUTIONAL", "DENTAL", "RX"})
TRANSACTION_CODE = frozenset({"B1", "B2", "B3"})

# -- trials -------------------------------------------------------------------------

SUBJECT_STATUS = frozenset(
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
)
VISIT_STATUS = frozenset({"Completed", "Missed", "Partially Completed", "Unscheduled"})
AE_SEVERITY = frozenset({"Mild", "Moderate", "Severe"})
AE_TOXICITY_GRADE = frozenset({"1", "2", "3", "4", "5"})
YES_NO = frozenset({"Y", "N"})
AE_RELATEDNESS = frozenset({"Not Related", "Unlikely", "Possibly", "Probably", "Definitely"})
AE_ACTION = frozenset({"None", "Dose Reduced", "Drug Interrupted", "Drug Withdrawn", "Not Applicable"})
AE_OUTCOME = frozenset(
    {
        "Recovered/Resolved",
        "Recovering/Resolving",
        "Not Recovered/Not Resolved",
        "Recovered with Sequelae",
        "Fatal",
        "Unknown",
    }
)
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
DOSE_MODIFICATION = frozenset({"None", "Reduction", "Delay", "Interruption", "Discontinuation"})

# -- types added for Synthea import (FHIR R4 value sets) ------------------------------

DIAGNOSIS_CODE_SYSTEM = frozenset({"ICD-10-CM", "SNOMED"})
CLINICAL_CODE_SYSTEM = frozenset(
    {"SNOMED", "RxNorm", "LOINC", "CVX", "ICD-10-CM", "ICD-10-PCS", "CPT", "HCPCS", "DICOM", "UNII"}
)
ALLERGY_TYPE = frozenset({"allergy", "intolerance"})
ALLERGY_CATEGORY = frozenset({"food", "medication", "environment", "biologic"})
ALLERGY_CLINICAL_STATUS = frozenset({"active", "inactive", "resolved"})
REACTION_SEVERITY = frozenset({"mild", "moderate", "severe"})
IMMUNIZATION_STATUS = frozenset({"completed", "entered-in-error", "not-done"})
CARE_PLAN_STATUS = frozenset({"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"})
DEVICE_STATUS = frozenset({"active", "inactive", "entered-in-error", "unknown"})
OBSERVATION_CATEGORY = frozenset(
    {"social-history", "vital-signs", "imaging", "laboratory", "procedure", "survey", "exam", "therapy", "activity"}
)
OBSERVATION_STATUS = frozenset({"registered", "preliminary", "final", "amended", "corrected", "cancelled"})
OBSERVATION_VALUE_TYPE = frozenset({"numeric", "text"})
COVERAGE_RELATIONSHIP = frozenset({"self", "spouse", "child", "parent", "common", "injured", "other"})
COVERAGE_STATUS = frozenset({"active", "cancelled", "draft", "entered-in-error"})

# -- provenance (canonical-models §10) ------------------------------------------------

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
# or key (business keys, names, codes; the codec's Field.max_length says which), and
# scenario names and tags. PostgreSQL refuses a B-tree entry above 2,704 bytes
# ("index row requires ... bytes"); 500 characters are at most 2,000 bytes of
# UTF-8, with room for the other column of a two-column index. DuckDB has no
# such limit, but the same value is refused on both backends.
INDEXED_TEXT_MAX_CHARS = 500
