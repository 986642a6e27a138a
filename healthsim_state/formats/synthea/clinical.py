"""The clinical Synthea files as canonical PatientSim entities: the declarations.

patients, encounters, conditions, medications, observations (lab results,
vital signs folded per patient, encounter and time, other observations),
procedures, allergies, care plans, devices, immunizations, imaging studies
and supplies. The administrative files are :mod:`.administrative`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from healthsim_state.codec.layout import layout
from healthsim_state.formats.synthea.sql import (
    code_system,
    date,
    decimal,
    derived_uuid,
    integer,
    quote,
    state_code,
    timestamp,
)
from healthsim_state.formats.synthea.targets import Field, Refusal, Target

if TYPE_CHECKING:
    from healthsim_state.formats.synthea.reader import Loaded

_PATIENT = Field("patient_mrn", "s.PATIENT", ("PATIENT",), "the patient's Id (the patient's mrn)")
_ENCOUNTER = Field(
    "encounter_id",
    "s.ENCOUNTER",
    ("ENCOUNTER",),
    "the encounter's Id (empty on some rows)",
    needs=("encounters",),
)
_NATURAL_NOTE = "a UUID derived from PATIENT, ENCOUNTER, CODE and {date} (the file has no Id)"


def _natural(when: str) -> tuple[str, ...]:
    return ("PATIENT", "ENCOUNTER", "CODE", when)


def _snomed(column: str = "CODE") -> Field:
    return Field("code_system", "'SNOMED'", (), f"'SNOMED' (Synthea's {column} codes are SNOMED CT)")


# -- patients ----------------------------------------------------------------

_EXPENSE_COLUMNS = ("PATIENT_ID", "YEAR", "PAYER_ID", "HEALTHCARE_EXPENSES", "INSURANCE_COSTS", "COVERED_COSTS")

PATIENTS = Target(
    file="patients",
    entity_type="patient",
    identity=("Id",),
    fields=(
        Field("mrn", "s.Id", ("Id",), "the patient's Id (global identity: a re-import updates the patient)"),
        Field("name.prefix", "s.PREFIX", ("PREFIX",)),
        Field("name.given_name", "s.FIRST", ("FIRST",)),
        Field("name.middle_name", "s.MIDDLE", ("MIDDLE",), "later layout only"),
        Field("name.family_name", "s.LAST", ("LAST",)),
        Field("name.suffix", "s.SUFFIX", ("SUFFIX",)),
        Field("birth_date", date("s.BIRTHDATE"), ("BIRTHDATE",)),
        Field("gender", "upper(s.GENDER)", ("GENDER",), "M or F as in the file"),
        Field("ssn", "regexp_replace(s.SSN, '[^0-9]', '', 'g')", ("SSN",), "digits only: 999-17-5017 -> 999175017"),
        Field("deceased", "s.DEATHDATE IS NOT NULL", ("DEATHDATE",), "true when DEATHDATE is given"),
        Field("death_date", date("s.DEATHDATE"), ("DEATHDATE",)),
        Field("race", "s.RACE", ("RACE",), "verbatim (Synthea's words: white, black, asian, ...)"),
        Field("ethnicity", "s.ETHNICITY", ("ETHNICITY",), "verbatim (hispanic, nonhispanic)"),
        Field("address.street_address", "s.ADDRESS", ("ADDRESS",)),
        Field("address.city", "s.CITY", ("CITY",)),
        Field(
            "address.state",
            state_code("s.STATE"),
            ("STATE",),
            "the two-letter code of the state's name (50 states, DC, territories); an unknown name leaves it "
            "empty; the name is kept in extensions either way",
        ),
        Field("address.postal_code", "s.ZIP", ("ZIP",)),
        Field("address.country", "'US'", (), "'US' (Synthea simulates US residents)"),
        Field(
            "synthea_expenses",
            "(SELECT list(struct_pack("
            + ", ".join(f'"{c}" := e."{c}"' for c in _EXPENSE_COLUMNS)
            + ") ORDER BY e._line) FROM patient_expenses e WHERE e.PATIENT_ID = s.Id)",
            _EXPENSE_COLUMNS,
            "patient_expenses.csv rows of the patient, verbatim, as a list in extensions (later layout)",
            needs=("patient_expenses",),
            source="patient_expenses",
        ),
    ),
    also_kept=("STATE",),
    note="One patient per row.",
)

# -- encounters --------------------------------------------------------------

_CLASSES = {
    "inpatient": "I",
    "emergency": "E",
    "urgentcare": "U",
    "ambulatory": "O",
    "wellness": "O",
    "outpatient": "O",
    "virtual": "O",
    "home": "O",
    "snf": "I",
    "hospice": "I",
}
_CLASS_SQL = (
    "CASE lower(s.ENCOUNTERCLASS) " + " ".join(f"WHEN {quote(k)} THEN {quote(v)}" for k, v in _CLASSES.items()) + " END"
)

ENCOUNTERS = Target(
    file="encounters",
    entity_type="encounter",
    identity=("Id",),
    fields=(
        Field("encounter_id", "s.Id", ("Id",), "the encounter's Id"),
        _PATIENT,
        Field(
            "class_code",
            _CLASS_SQL,
            ("ENCOUNTERCLASS",),
            ", ".join(f"{k} {v}" for k, v in _CLASSES.items())
            + "; any other class is refused; the class is kept verbatim in extensions (the map is lossy)",
            refuse=Refusal(
                f"s.ENCOUNTERCLASS IS NOT NULL AND ({_CLASS_SQL}) IS NULL",
                "is not an encounter class Synthea writes (" + ", ".join(_CLASSES) + ")",
            ),
        ),
        Field(
            "status",
            "CASE WHEN s.STOP IS NULL THEN 'in-progress' ELSE 'finished' END",
            ("STOP",),
            "finished when STOP is given, else in-progress",
        ),
        Field("admission_time", timestamp("s.START"), ("START",)),
        Field("discharge_time", timestamp("s.STOP"), ("STOP",)),
        Field(
            "organization_id", "s.ORGANIZATION", ("ORGANIZATION",), "the organization's Id", needs=("organizations",)
        ),
        Field("practitioner_id", "s.PROVIDER", ("PROVIDER",), "the provider's Id", needs=("providers",)),
        Field("payer_id", "s.PAYER", ("PAYER",), "the payer's Id", needs=("payers",)),
        Field(
            "chief_complaint",
            "s.REASONDESCRIPTION",
            ("REASONDESCRIPTION",),
            "the reason's description; REASONCODE (SNOMED) and the encounter type (CODE, DESCRIPTION) stay in extensions",
        ),
    ),
    also_kept=("ENCOUNTERCLASS",),
    note="One encounter per row. References to organizations, providers and payers are filled when their file "
    "is in the folder (else kept in extensions).",
)

# -- conditions --------------------------------------------------------------

CONDITIONS = Target(
    file="conditions",
    entity_type="diagnosis",
    identity=_natural("START"),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field(
            "code",
            "s.CODE",
            ("CODE",),
            "the SNOMED CT code as is: the field that holds ICD-10-CM codes elsewhere holds the SNOMED code here, "
            "marked by code_system SNOMED; no ICD-10 code is invented",
        ),
        Field(
            "code_system",
            code_system("s.SYSTEM", "SNOMED"),
            ("SYSTEM",),
            "from SYSTEM (later layout: SNOMED-CT -> SNOMED); SNOMED when the file has no SYSTEM",
        ),
        Field("description", "s.DESCRIPTION", ("DESCRIPTION",)),
        Field("diagnosed_date", date("s.START"), ("START",)),
        Field("resolved_date", date("s.STOP"), ("STOP",)),
        Field("type", "'final'", (), "'final'"),
    ),
    also_kept=("SYSTEM",),
    note=_NATURAL_NOTE.format(date="START"),
)

# -- medications -------------------------------------------------------------

# Strengths in an RxNorm name: "5 MG", "0.4 MG/ACTUAT", "150 MG/ML", "0.12/0.015 MG".
_STRENGTH = r"[0-9.]+(/[0-9.]+)? (MG|MCG|UNT|MEQ|%)(/[A-Z0-9.]+)?"
_DOSE_SQL = (
    f"coalesce(nullif(array_to_string(regexp_extract_all(s.DESCRIPTION, {quote(_STRENGTH)}), ' / '), ''), 'UNK')"
)
_ROUTES = (
    ("Inhal", "INH"),
    ("Inject|Syringe|Auto-Injector|Cartridge|Pen Injector", "INJ"),
    ("Transdermal|Patch", "TD"),
    ("Topical|Cream|Ointment|Lotion", "TOP"),
    ("Nasal", "NASAL"),
    ("Oral|Tablet|Capsule|Chewable|Syrup|Suspension|Elixir", "PO"),
)
_ROUTE_SQL = (
    "CASE "
    + " ".join(f"WHEN regexp_matches(s.DESCRIPTION, {quote(p)}, 'i') THEN {quote(r)}" for p, r in _ROUTES)
    + " ELSE 'UNK' END"
)

MEDICATIONS = Target(
    file="medications",
    entity_type="medication",
    identity=_natural("START"),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("name", "s.DESCRIPTION", ("DESCRIPTION",), "the RxNorm name"),
        Field("code", "s.CODE", ("CODE",), "the RxNorm code"),
        Field(
            "dose",
            _DOSE_SQL,
            ("DESCRIPTION",),
            "the strengths in the RxNorm name (5 MG; 325 MG / 7.5 MG for combinations), else 'UNK'",
        ),
        Field(
            "route",
            _ROUTE_SQL,
            ("DESCRIPTION",),
            "from the dose form words of the name: "
            + "; ".join(f"{p.replace('|', ', ')} -> {r}" for p, r in _ROUTES)
            + "; else 'UNK'",
        ),
        Field("frequency", "'UNK'", (), "'UNK' (HL7 NullFlavor unknown: Synthea does not export a frequency)"),
        Field("start_date", timestamp("s.START"), ("START",)),
        Field("end_date", timestamp("s.STOP"), ("STOP",)),
        Field(
            "status",
            "CASE WHEN s.STOP IS NULL THEN 'active' ELSE 'completed' END",
            ("STOP",),
            "completed when STOP is given, else active",
        ),
        Field(
            "indication",
            "s.REASONDESCRIPTION",
            ("REASONDESCRIPTION",),
            "the reason's description (REASONCODE in extensions)",
        ),
    ),
    note=_NATURAL_NOTE.format(date="START"),
)

# -- observations ------------------------------------------------------------

_OBS_KEY = _natural("DATE")
_LAB_WHERE = "s.CATEGORY = 'laboratory' AND s.VALUE IS NOT NULL"
_VITAL_WHERE = "s.CATEGORY = 'vital-signs'"

LAB_RESULTS = Target(
    file="observations",
    entity_type="lab_result",
    identity=_OBS_KEY,
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("test_name", "coalesce(s.DESCRIPTION, s.CODE)", ("DESCRIPTION",), "the LOINC name (the code when empty)"),
        Field("loinc_code", "s.CODE", ("CODE",)),
        Field("value", "s.VALUE", ("VALUE",), "verbatim text"),
        Field("unit", "s.UNITS", ("UNITS",), "UCUM, verbatim"),
        Field("collected_time", timestamp("s.DATE"), ("DATE",)),
    ),
    where=_LAB_WHERE,
    note="Rows of CATEGORY laboratory that have a VALUE; " + _NATURAL_NOTE.format(date="DATE") + ".",
)

_OBSERVATION_CATEGORIES = (
    "activity",
    "exam",
    "imaging",
    "laboratory",
    "procedure",
    "social-history",
    "survey",
    "therapy",
    "vital-signs",
)

OBSERVATIONS = Target(
    file="observations",
    entity_type="observation",
    identity=_OBS_KEY,
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field(
            "category",
            f"CASE WHEN s.CATEGORY IN ({', '.join(map(quote, _OBSERVATION_CATEGORIES))}) THEN s.CATEGORY END",
            ("CATEGORY",),
            "the FHIR observation category when it is one (empty for the yearly QALY, DALY and QOLS scores); "
            "kept verbatim in extensions",
        ),
        Field("status", "'final'", (), "'final'"),
        Field("effective_datetime", timestamp("s.DATE"), ("DATE",)),
        Field("value", "s.VALUE", ("VALUE",), "verbatim text"),
        Field("value_type", "s.TYPE", ("TYPE",), "numeric or text"),
        Field("unit", "s.UNITS", ("UNITS",)),
        Field("code", "s.CODE", ("CODE",)),
        Field(
            "code_system",
            "CASE WHEN regexp_full_match(s.CODE, '[0-9]+-[0-9]') THEN 'LOINC' END",
            ("CODE",),
            "LOINC when the code is shaped like one; empty for Synthea's own QALY, DALY and QOLS codes",
        ),
        Field("description", "s.DESCRIPTION", ("DESCRIPTION",)),
    ),
    # coalesce: a row without CATEGORY (QALY, DALY, QOLS) is neither a vital sign nor a lab result.
    where=f"NOT coalesce({_VITAL_WHERE}, false) AND NOT coalesce({_LAB_WHERE}, false)",
    also_kept=("CATEGORY",),
    note="Every row that is neither a lab result nor a vital sign (surveys, exams, procedures, QALY/DALY/QOLS, "
    "laboratory rows without a value); " + _NATURAL_NOTE.format(date="DATE") + ".",
)


def _number(v: str, u: str) -> str:
    return decimal(v)


def _whole(v: str, u: str) -> str:
    return integer(v)


def _fahrenheit(v: str, u: str) -> str:
    number = f"CAST({v} AS DECIMAL(38, 10))"
    return f"CASE {u} WHEN 'Cel' THEN round({number} * 9 / 5 + 32, 2) WHEN '[degF]' THEN round({number}, 2) END"


# LOINC code -> (vital_sign field, SQL converting the text value ``v`` of unit ``u`` to the field's unit).
_VITALS = {
    "8302-2": ("height_cm", _number),
    "29463-7": ("weight_kg", _number),
    "8867-4": ("heart_rate", _whole),
    "9279-1": ("respiratory_rate", _whole),
    "8480-6": ("systolic_bp", _whole),
    "8462-4": ("diastolic_bp", _whole),
    "8310-5": ("temperature", _fahrenheit),
    "2708-6": ("spo2", _whole),
    "59408-5": ("spo2", _whole),
}
_WHOLE_VITALS = frozenset(n for n, convert in _VITALS.values() if convert is _whole)
# Columns of a vital-signs row that the fold reads for the whole group.
_GROUP_COLUMNS = ("PATIENT", "ENCOUNTER", "DATE", "CATEGORY")


def _in_range(name: str, value: str) -> str:
    """SQL: ``value`` lies within the vital_sign field's declared range (0 when it declares no minimum)."""
    fld = next(f for f in layout("vital_sign").fields if f.column == name)
    low = 0 if fld.minimum is None else fld.minimum
    high = f" AND {value} <= {fld.maximum}" if fld.maximum is not None else ""
    return f"{value} >= {low}{high}"


def _mapped_vital(code: str) -> str:
    """SQL over an observations row ``o``: the converted value when its CODE is ``code`` and the value is in range."""
    name, convert = _VITALS[code]
    value = convert("o.VALUE", "o.UNITS")
    return f"CASE WHEN o.CODE = {quote(code)} AND o.VALUE IS NOT NULL AND ({_in_range(name, value)}) THEN {value} END"


def _vital_query(target: Target, loaded: Loaded) -> str:
    """One vital_sign per (PATIENT, ENCOUNTER, DATE) of the vital-signs rows; other rows listed in extensions."""
    fields: dict[str, list[str]] = {}
    for code, (name, _) in _VITALS.items():
        fields.setdefault(name, []).append(_mapped_vital(code))
    values = {name: f"coalesce({', '.join(exprs)})" if len(exprs) > 1 else exprs[0] for name, exprs in fields.items()}
    mapped = " OR ".join(f"{v} IS NOT NULL" for v in values.values())
    # The last row in file order wins when one time has the same vital twice.
    picks = [f"arg_max({v}, o._line) FILTER (WHERE {v} IS NOT NULL) AS {name}" for name, v in values.items()]
    lf = loaded.files[target.file]
    unknown = [f'"{c}" := o."{c}"' for c in lf.unknown]
    row = [f'"{c}" := o."{c}"' for c in lf.present if c not in _GROUP_COLUMNS] + unknown
    kept = [
        "CATEGORY := any_value(o.CATEGORY)",
        f"observations := list(struct_pack({', '.join(row)}) ORDER BY o._line) FILTER (WHERE NOT ({mapped}))",
    ]
    if unknown:
        kept.append(
            f"mapped := list(struct_pack(CODE := o.CODE, {', '.join(unknown)}) ORDER BY o._line) FILTER (WHERE {mapped})"
        )
    encounter = "o.ENCOUNTER"
    if not loaded.has("encounters"):
        encounter = "NULL"
        kept.append("ENCOUNTER := o.ENCOUNTER")
    return (
        f"SELECT {derived_uuid('observations:vital-signs', 'o.PATIENT', 'o.ENCOUNTER', 'o.DATE')} AS id,"
        f" o.PATIENT AS patient_mrn, {encounter} AS encounter_id,"
        f" {timestamp('o.DATE')} AS observation_time, {', '.join(picks)},"
        f" struct_pack({', '.join(kept)}) AS synthea, min(o._line) AS _line"
        f" FROM observations o WHERE {_VITAL_WHERE.replace('s.', 'o.')} GROUP BY o.PATIENT, o.ENCOUNTER, o.DATE"
    )


VITAL_SIGNS = Target(
    file="observations",
    entity_type="vital_sign",
    identity=("PATIENT", "ENCOUNTER", "DATE"),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("observation_time", timestamp("s.DATE"), ("DATE",), "the rows' shared DATE"),
        *(
            Field(
                name,
                "",
                ("CODE", "VALUE", "UNITS"),
                f"VALUE where CODE is {' or '.join(c for c, (n, _) in _VITALS.items() if n == name)}"
                + (" (Cel converted to degrees F)" if name == "temperature" else "")
                + (" (rounded)" if name in _WHOLE_VITALS else ""),
            )
            for name in dict.fromkeys(n for n, _ in _VITALS.values())
        ),
        Field(
            "synthea.observations",
            "",
            ("CODE", "DESCRIPTION", "VALUE", "UNITS", "TYPE"),
            "the rows not mapped to a field, verbatim, as a list in extensions (DESCRIPTION and TYPE of the mapped "
            "rows are implied by their code)",
        ),
    ),
    where=_VITAL_WHERE,
    query=_vital_query,
    note="Rows of CATEGORY vital-signs folded: one vital_sign per PATIENT, ENCOUNTER and DATE (id derived from "
    "them); a value outside the field's range is not mapped. Rows of other codes (BMI, pain score, percentiles, head circumference) and out-of-range values are "
    "listed verbatim (CODE, DESCRIPTION, VALUE, UNITS, TYPE) under synthea.observations in extensions, so no row "
    "is lost; CATEGORY is kept there too. Columns no release has are kept per row (synthea.mapped for the rows "
    "mapped to fields).",
)

# -- procedures, allergies, care plans, devices, immunizations, imaging, supplies ---

PROCEDURES = Target(
    file="procedures",
    entity_type="procedure",
    identity=_natural("START"),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("code", "s.CODE", ("CODE",)),
        Field(
            "code_system",
            code_system("s.SYSTEM", "SNOMED"),
            ("SYSTEM",),
            "from SYSTEM (later layout); SNOMED when the file has no SYSTEM",
        ),
        Field("description", "s.DESCRIPTION", ("DESCRIPTION",)),
        Field("performed_datetime", timestamp("s.START"), ("START",)),
        Field("status", "'completed'", (), "'completed'"),
    ),
    also_kept=("SYSTEM",),
    note=_NATURAL_NOTE.format(date="START") + "; STOP, BASE_COST and the reason stay in extensions.",
)

_REACTION = "struct_pack(code := s.REACTION{n}, description := s.DESCRIPTION{n}, severity := lower(s.SEVERITY{n}))"

ALLERGIES = Target(
    file="allergies",
    entity_type="allergy",
    identity=_natural("START"),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("code", "s.CODE", ("CODE",)),
        Field("code_system", code_system("s.SYSTEM", "SNOMED"), ("SYSTEM",), "SNOMED-CT -> SNOMED, RxNorm"),
        Field("description", "s.DESCRIPTION", ("DESCRIPTION",)),
        Field("type", "lower(s.TYPE)", ("TYPE",), "allergy or intolerance"),
        Field(
            "category",
            "CASE lower(s.CATEGORY) WHEN 'drug' THEN 'medication' ELSE lower(s.CATEGORY) END",
            ("CATEGORY",),
            "food, medication (drug), environment, biologic",
        ),
        Field(
            "clinical_status",
            "CASE WHEN s.STOP IS NULL THEN 'active' ELSE 'resolved' END",
            ("STOP",),
            "resolved when STOP is given, else active",
        ),
        Field("onset_datetime", timestamp("s.START"), ("START",)),
        Field("abatement_datetime", timestamp("s.STOP"), ("STOP",)),
        Field(
            "reactions",
            "list_filter([" + ", ".join(_REACTION.format(n=n) for n in (1, 2)) + "],"
            " lambda r: r.code IS NOT NULL OR r.description IS NOT NULL)",
            ("REACTION1", "DESCRIPTION1", "SEVERITY1", "REACTION2", "DESCRIPTION2", "SEVERITY2"),
            "{code, description, severity (lowercased)} per reaction given",
        ),
    ),
    also_kept=("SYSTEM",),
    note=_NATURAL_NOTE.format(date="START") + ".",
)

CAREPLANS = Target(
    file="careplans",
    entity_type="care_plan",
    identity=("Id",),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("code", "s.CODE", ("CODE",)),
        _snomed(),
        Field("description", "s.DESCRIPTION", ("DESCRIPTION",)),
        Field(
            "status",
            "CASE WHEN s.STOP IS NULL THEN 'active' ELSE 'completed' END",
            ("STOP",),
            "completed when STOP is given, else active",
        ),
        Field("period_start", timestamp("s.START"), ("START",)),
        Field("period_end", timestamp("s.STOP"), ("STOP",)),
        Field("reason_code", "s.REASONCODE", ("REASONCODE",)),
        Field(
            "reason_code_system",
            "CASE WHEN s.REASONCODE IS NOT NULL THEN 'SNOMED' END",
            ("REASONCODE",),
            "SNOMED when a reason is given",
        ),
        Field("reason_description", "s.REASONDESCRIPTION", ("REASONDESCRIPTION",)),
    ),
    note="One care plan per row; the entity id is the care plan's Id.",
)

DEVICES = Target(
    file="devices",
    entity_type="device",
    identity=_natural("START"),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("code", "s.CODE", ("CODE",)),
        _snomed(),
        Field("description", "s.DESCRIPTION", ("DESCRIPTION",)),
        Field("udi_carrier", "s.UDI", ("UDI",), "the UDI carrier string, verbatim"),
        Field(
            "status",
            "CASE WHEN s.STOP IS NULL THEN 'active' ELSE 'inactive' END",
            ("STOP",),
            "inactive when STOP is given, else active",
        ),
        Field("period_start", timestamp("s.START"), ("START",)),
        Field("period_end", timestamp("s.STOP"), ("STOP",)),
    ),
    note=_NATURAL_NOTE.format(date="START") + ".",
)

IMMUNIZATIONS = Target(
    file="immunizations",
    entity_type="immunization",
    identity=_natural("DATE"),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("vaccine_code", "s.CODE", ("CODE",), "the CVX code"),
        Field("vaccine_code_system", "'CVX'", (), "'CVX'"),
        Field("vaccine_description", "s.DESCRIPTION", ("DESCRIPTION",)),
        Field("status", "'completed'", (), "'completed'"),
        Field("occurrence_datetime", timestamp("s.DATE"), ("DATE",)),
    ),
    note=_NATURAL_NOTE.format(date="DATE") + "; BASE_COST stays in extensions.",
)

IMAGING_STUDIES = Target(
    file="imaging_studies",
    entity_type="imaging_study",
    identity=("Id", "SERIES_UID", "INSTANCE_UID"),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("study_id", "s.Id", ("Id",), "the study's Id (one study has a row per series instance)"),
        Field("instance_uid", "s.INSTANCE_UID", ("INSTANCE_UID",), "the DICOM SOP instance UID (the business key)"),
        Field("series_uid", "s.SERIES_UID", ("SERIES_UID",)),
        Field("started", timestamp("s.DATE"), ("DATE",)),
        Field("body_site_code", "s.BODYSITE_CODE", ("BODYSITE_CODE",), "SNOMED"),
        Field("body_site_description", "s.BODYSITE_DESCRIPTION", ("BODYSITE_DESCRIPTION",)),
        Field("modality_code", "s.MODALITY_CODE", ("MODALITY_CODE",), "DICOM modality"),
        Field("modality_description", "s.MODALITY_DESCRIPTION", ("MODALITY_DESCRIPTION",)),
        Field("sop_class_code", "s.SOP_CODE", ("SOP_CODE",), "DICOM SOP class UID"),
        Field("sop_class_description", "s.SOP_DESCRIPTION", ("SOP_DESCRIPTION",)),
        Field("procedure_code", "s.PROCEDURE_CODE", ("PROCEDURE_CODE",), "SNOMED"),
    ),
    note="One entity per row (an instance of a series of a study); id derived from Id, SERIES_UID and INSTANCE_UID.",
)

SUPPLIES = Target(
    file="supplies",
    entity_type="supply",
    identity=_natural("DATE"),
    fields=(
        _PATIENT,
        _ENCOUNTER,
        Field("code", "s.CODE", ("CODE",)),
        _snomed(),
        Field("description", "s.DESCRIPTION", ("DESCRIPTION",)),
        Field("quantity", decimal("s.QUANTITY"), ("QUANTITY",)),
        Field("occurrence_datetime", timestamp("s.DATE"), ("DATE",)),
    ),
    note=_NATURAL_NOTE.format(date="DATE") + ".",
)

#: The clinical targets, in the order the docs list them.
TARGETS: tuple[Target, ...] = (
    PATIENTS,
    ENCOUNTERS,
    CONDITIONS,
    MEDICATIONS,
    LAB_RESULTS,
    VITAL_SIGNS,
    OBSERVATIONS,
    PROCEDURES,
    ALLERGIES,
    CAREPLANS,
    DEVICES,
    IMMUNIZATIONS,
    IMAGING_STUDIES,
    SUPPLIES,
)
