"""The fixed OMOP concepts the export uses, and the SQL that picks them.

Where OMOP defines a standard concept for a value the store keeps as text
(gender, race, ethnicity, the kind of a visit) or for what kind of record a
row is (EHR, claim), the export writes that concept whatever the vocabulary
folder holds. Each is written to the CONCEPT table with its vocabulary,
domain and class rows, so that the foreign keys to CONCEPT hold without a
vocabulary download.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Concept:
    """One row of CONCEPT."""

    concept_id: int
    name: str
    domain_id: str
    vocabulary_id: str
    concept_class_id: str
    code: str
    standard: str | None = "S"


#: The code of a concept OMOP made up itself, where the export does not know the
#: vocabulary's own: a vocabulary folder that holds the concept gives its real row.
GENERATED = "OMOP generated"
NO_MATCH = 0
MALE, FEMALE = 8507, 8532
INPATIENT_VISIT, OUTPATIENT_VISIT, ER_VISIT = 9201, 9202, 9203
#: Type concepts: where a record comes from.
EHR, CLAIM, PHARMACY_CLAIM = 32817, 32810, 32869
USD = 44818668
UTF8 = 32678
CDM_5_4 = 756265
HISPANIC, NOT_HISPANIC = 38003563, 38003564
WHITE, BLACK, ASIAN, AMERICAN_INDIAN, PACIFIC_ISLANDER = 8527, 8516, 8515, 8657, 8557

FIXED: tuple[Concept, ...] = (
    Concept(NO_MATCH, "No matching concept", "Metadata", "None", "Undefined", "No matching concept", None),
    Concept(MALE, "MALE", "Gender", "Gender", "Gender", "M"),
    Concept(FEMALE, "FEMALE", "Gender", "Gender", "Gender", "F"),
    Concept(WHITE, "White", "Race", "Race", "Race", "5"),
    Concept(BLACK, "Black or African American", "Race", "Race", "Race", "3"),
    Concept(ASIAN, "Asian", "Race", "Race", "Race", "2"),
    Concept(AMERICAN_INDIAN, "American Indian or Alaska Native", "Race", "Race", "Race", "1"),
    Concept(PACIFIC_ISLANDER, "Native Hawaiian or Other Pacific Islander", "Race", "Race", "Race", "4"),
    Concept(HISPANIC, "Hispanic or Latino", "Ethnicity", "Ethnicity", "Ethnicity", "Hispanic"),
    Concept(NOT_HISPANIC, "Not Hispanic or Latino", "Ethnicity", "Ethnicity", "Ethnicity", "Not Hispanic"),
    Concept(INPATIENT_VISIT, "Inpatient Visit", "Visit", "Visit", "Visit", "IP"),
    Concept(OUTPATIENT_VISIT, "Outpatient Visit", "Visit", "Visit", "Visit", "OP"),
    Concept(ER_VISIT, "Emergency Room Visit", "Visit", "Visit", "Visit", "ER"),
    Concept(EHR, "EHR", "Type Concept", "Type Concept", "Type Concept", GENERATED),
    Concept(CLAIM, "Claim", "Type Concept", "Type Concept", "Type Concept", GENERATED),
    Concept(PHARMACY_CLAIM, "Pharmacy claim", "Type Concept", "Type Concept", "Type Concept", GENERATED),
    Concept(USD, "United States dollar", "Currency", "Currency", "Currency", "USD"),
    Concept(UTF8, "UTF-8", "Metadata", "Metadata", "Encoding", GENERATED),
    Concept(CDM_5_4, "OMOP CDM Version 5.4.0", "Metadata", "CDM", "CDM", GENERATED),
)

#: The store's code systems as OMOP vocabulary ids.
VOCABULARY_OF = {
    "SNOMED": "SNOMED",
    "ICD-10-CM": "ICD10CM",
    "ICD-10-PCS": "ICD10PCS",
    "CPT": "CPT4",
    "HCPCS": "HCPCS",
    "LOINC": "LOINC",
    "RxNorm": "RxNorm",
    "CVX": "CVX",
    "NDC": "NDC",
    "DICOM": "DICOM",
    "UNII": "UNII",
}

#: The OMOP table of each domain an event can be routed to.
TABLE_OF_DOMAIN = {
    "Condition": "condition_occurrence",
    "Procedure": "procedure_occurrence",
    "Drug": "drug_exposure",
    "Device": "device_exposure",
    "Measurement": "measurement",
    "Observation": "observation",
}

#: Vital-sign columns as measurements: (column, LOINC code, name, UCUM unit).
VITAL_SIGNS = (
    ("temperature", "8310-5", "Body temperature", "[degF]"),
    ("heart_rate", "8867-4", "Heart rate", "/min"),
    ("respiratory_rate", "9279-1", "Respiratory rate", "/min"),
    ("systolic_bp", "8480-6", "Systolic blood pressure", "mm[Hg]"),
    ("diastolic_bp", "8462-4", "Diastolic blood pressure", "mm[Hg]"),
    ("spo2", "2708-6", "Oxygen saturation in Arterial blood", "%"),
    ("height_cm", "8302-2", "Body height", "cm"),
    ("weight_kg", "29463-7", "Body weight", "kg"),
)


def vocabulary_sql(column: str, default: str) -> str:
    """SQL for the OMOP vocabulary id of a store code-system ``column`` (``default`` when NULL)."""
    cases = " ".join(f"WHEN '{system}' THEN '{vocabulary}'" for system, vocabulary in VOCABULARY_OF.items())
    return f"CASE coalesce({column}, '{default}') {cases} ELSE coalesce({column}, '{default}') END"


def gender_sql(column: str) -> str:
    return f"CASE {column} WHEN 'M' THEN {MALE} WHEN 'F' THEN {FEMALE} ELSE {NO_MATCH} END"


def race_sql(column: str) -> str:
    """The race concept of the demo's CDC words or Synthea's (white, black, asian, native, hawaiian)."""
    words = {
        WHITE: ("white",),
        BLACK: ("black", "black or african american"),
        ASIAN: ("asian",),
        AMERICAN_INDIAN: ("native", "american indian or alaska native"),
        PACIFIC_ISLANDER: ("hawaiian", "native hawaiian or other pacific islander"),
    }
    cases = " ".join(
        f"WHEN lower({column}) IN ({', '.join(repr(w) for w in spelled)}) THEN {concept}"
        for concept, spelled in words.items()
    )
    return f"CASE {cases} ELSE {NO_MATCH} END"


def ethnicity_sql(column: str) -> str:
    return (
        f"CASE WHEN lower({column}) IN ('hispanic', 'hispanic or latino') THEN {HISPANIC} "
        f"WHEN lower({column}) IN ('nonhispanic', 'not hispanic or latino') THEN {NOT_HISPANIC} "
        f"ELSE {NO_MATCH} END"
    )


def visit_of_class_sql(column: str) -> str:
    """An encounter class as a visit concept: inpatient, emergency and urgent care, the rest outpatient."""
    return (
        f"CASE {column} WHEN 'I' THEN {INPATIENT_VISIT} WHEN 'E' THEN {ER_VISIT} WHEN 'U' THEN {ER_VISIT} "
        f"WHEN 'O' THEN {OUTPATIENT_VISIT} WHEN 'OBS' THEN {OUTPATIENT_VISIT} ELSE {NO_MATCH} END"
    )


def table_of_domain_sql(domain: str, default: str) -> str:
    """SQL for the OMOP table of a ``domain`` column, ``default`` (a column) for any other domain."""
    cases = " ".join(f"WHEN '{d}' THEN '{t}'" for d, t in TABLE_OF_DOMAIN.items())
    return f"CASE {domain} {cases} ELSE {default} END"
