"""The Synthea CSV files: their columns in every known layout.

Each :class:`SyntheaFile` lists its columns in the latest layout's order
and spelling; a :class:`Column` says which layouts have it, its declared
type (checked by the reader), its earlier spellings, whether the header
must have it (``required``) and every row a value (``filled``), and which
file's ``Id`` it holds (``references``: checked when that file is present).

Layouts (:data:`LAYOUTS`, oldest first):

- ``v3.0``: Synthea v3.0 (``tests/fixtures/synthea-27``);
- ``later``: what Synthea exports after v3.0: patients.csv adds MIDDLE,
  FIPS and INCOME; conditions.csv and procedures.csv add SYSTEM;
  payer_transitions.csv renames START_YEAR/END_YEAR to START_DATE/END_DATE,
  OWNERSHIP to PLAN_OWNERSHIP and OWNERNAME to OWNER_NAME; payers.csv adds
  OWNERSHIP; providers.csv has ENCOUNTERS and PROCEDURES instead of
  UTILIZATION; patient_expenses.csv appears;
- ``later-npi``: ``later`` plus NPI in organizations.csv and providers.csv.
"""

from __future__ import annotations

from dataclasses import dataclass

V3_0 = "v3.0"
LATER = "later"
LATER_NPI = "later-npi"
#: The known layouts, oldest first.
LAYOUTS = (V3_0, LATER, LATER_NPI)

# Declared column types (the reader checks every non-empty cell).
TEXT = "text"
DATE = "date"  # Synthea writes a date; a date-time is accepted too
DATETIME = "date-time"  # Synthea writes a date-time (...Z); a date is accepted too (midnight UTC)
DECIMAL = "decimal"  # a number; NaN is accepted (payers.csv QOLS_AVG)
INTEGER = "integer"  # a whole number ("73" or "73.0")
KINDS = (TEXT, DATE, DATETIME, DECIMAL, INTEGER)

_ALL = frozenset(LAYOUTS)
_SINCE_LATER = frozenset({LATER, LATER_NPI})
_ONLY_V3_0 = frozenset({V3_0})
_NPI = frozenset({LATER_NPI})


@dataclass(frozen=True)
class Column:
    """One column of a Synthea file, by its latest spelling."""

    name: str
    kind: str = TEXT
    required: bool = False
    filled: bool = False
    layouts: frozenset[str] = _ALL
    old_names: tuple[str, ...] = ()
    references: str | None = None

    def spelling(self, layout: str) -> str:
        """The column's header name in ``layout`` (the oldest spelling for v3.0)."""
        return self.old_names[0] if layout == V3_0 and self.old_names else self.name


@dataclass(frozen=True)
class SyntheaFile:
    """One CSV file of a Synthea folder: ``stem`` is its name without ``.csv``."""

    stem: str
    columns: tuple[Column, ...]
    required: bool = False
    description: str = ""

    @property
    def name(self) -> str:
        return f"{self.stem}.csv"

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    def header(self, layout: str) -> tuple[str, ...]:
        """The file's header in ``layout`` (empty when the layout has no such file)."""
        return tuple(c.spelling(layout) for c in self.columns if layout in c.layouts)

    @property
    def layouts(self) -> frozenset[str]:
        """The layouts that have this file."""
        return frozenset().union(*(c.layouts for c in self.columns))


def _c(name: str, kind: str = TEXT, **kw) -> Column:  # type: ignore[no-untyped-def]
    return Column(name, kind, **kw)


def _id() -> Column:
    return Column("Id", required=True, filled=True)


def _patient(name: str = "PATIENT") -> Column:
    return Column(name, required=True, filled=True, references="patients")


def _encounter() -> Column:
    # Empty on some observation rows (the yearly QALY/DALY/QOLS scores).
    return Column("ENCOUNTER", references="encounters")


def _code() -> Column:
    return Column("CODE", required=True, filled=True)


def _when(name: str, kind: str, *, required: bool = False) -> Column:
    return Column(name, kind, required=required, filled=required)


FILES: tuple[SyntheaFile, ...] = (
    SyntheaFile(
        "patients",
        (
            _id(),
            _when("BIRTHDATE", DATE, required=True),
            _c("DEATHDATE", DATE),
            _c("SSN"),
            _c("DRIVERS"),
            _c("PASSPORT"),
            _c("PREFIX"),
            _c("FIRST", required=True, filled=True),
            _c("MIDDLE", layouts=_SINCE_LATER),
            _c("LAST", required=True, filled=True),
            _c("SUFFIX"),
            _c("MAIDEN"),
            _c("MARITAL"),
            _c("RACE"),
            _c("ETHNICITY"),
            _c("GENDER", required=True, filled=True),
            _c("BIRTHPLACE"),
            _c("ADDRESS"),
            _c("CITY"),
            _c("STATE"),
            _c("COUNTY"),
            _c("FIPS", layouts=_SINCE_LATER),
            _c("ZIP"),
            _c("LAT", DECIMAL),
            _c("LON", DECIMAL),
            _c("HEALTHCARE_EXPENSES", DECIMAL),
            _c("HEALTHCARE_COVERAGE", DECIMAL),
            _c("INCOME", DECIMAL, layouts=_SINCE_LATER),
        ),
        required=True,
        description="one row per patient",
    ),
    SyntheaFile(
        "encounters",
        (
            _id(),
            _when("START", DATETIME, required=True),
            _c("STOP", DATETIME),
            _patient(),
            _c("ORGANIZATION", references="organizations"),
            _c("PROVIDER", references="providers"),
            _c("PAYER", references="payers"),
            _c("ENCOUNTERCLASS", required=True, filled=True),
            _c("CODE"),
            _c("DESCRIPTION"),
            _c("BASE_ENCOUNTER_COST", DECIMAL),
            _c("TOTAL_CLAIM_COST", DECIMAL),
            _c("PAYER_COVERAGE", DECIMAL),
            _c("REASONCODE"),
            _c("REASONDESCRIPTION"),
        ),
        description="one row per encounter",
    ),
    SyntheaFile(
        "conditions",
        (
            _when("START", DATE, required=True),
            _c("STOP", DATE),
            _patient(),
            _encounter(),
            _c("SYSTEM", layouts=_SINCE_LATER),
            _code(),
            _c("DESCRIPTION", required=True, filled=True),
        ),
        description="one row per condition (diagnosis) episode",
    ),
    SyntheaFile(
        "medications",
        (
            _when("START", DATETIME, required=True),
            _c("STOP", DATETIME),
            _patient(),
            _c("PAYER", references="payers"),
            _encounter(),
            _code(),
            _c("DESCRIPTION", required=True, filled=True),
            _c("BASE_COST", DECIMAL),
            _c("PAYER_COVERAGE", DECIMAL),
            _c("DISPENSES", INTEGER),
            _c("TOTALCOST", DECIMAL),
            _c("REASONCODE"),
            _c("REASONDESCRIPTION"),
        ),
        description="one row per medication order",
    ),
    SyntheaFile(
        "observations",
        (
            _when("DATE", DATETIME, required=True),
            _patient(),
            _encounter(),
            _c("CATEGORY"),
            _code(),
            _c("DESCRIPTION"),
            _c("VALUE"),
            _c("UNITS"),
            _c("TYPE"),
        ),
        description="one row per observed value (labs, vital signs, surveys, ...)",
    ),
    SyntheaFile(
        "procedures",
        (
            _when("START", DATETIME, required=True),
            _c("STOP", DATETIME),
            _patient(),
            _encounter(),
            _c("SYSTEM", layouts=_SINCE_LATER),
            _code(),
            _c("DESCRIPTION"),
            _c("BASE_COST", DECIMAL),
            _c("REASONCODE"),
            _c("REASONDESCRIPTION"),
        ),
        description="one row per procedure performed",
    ),
    SyntheaFile(
        "allergies",
        (
            _when("START", DATE, required=True),
            _c("STOP", DATE),
            _patient(),
            _encounter(),
            _code(),
            _c("SYSTEM"),
            _c("DESCRIPTION"),
            _c("TYPE"),
            _c("CATEGORY"),
            _c("REACTION1"),
            _c("DESCRIPTION1"),
            _c("SEVERITY1"),
            _c("REACTION2"),
            _c("DESCRIPTION2"),
            _c("SEVERITY2"),
        ),
        description="one row per allergy or intolerance",
    ),
    SyntheaFile(
        "careplans",
        (
            _id(),
            _when("START", DATE, required=True),
            _c("STOP", DATE),
            _patient(),
            _encounter(),
            _code(),
            _c("DESCRIPTION"),
            _c("REASONCODE"),
            _c("REASONDESCRIPTION"),
        ),
        description="one row per care plan",
    ),
    SyntheaFile(
        "devices",
        (
            _when("START", DATETIME, required=True),
            _c("STOP", DATETIME),
            _patient(),
            _encounter(),
            _code(),
            _c("DESCRIPTION"),
            _c("UDI"),
        ),
        description="one row per device affixed",
    ),
    SyntheaFile(
        "immunizations",
        (
            _when("DATE", DATETIME, required=True),
            _patient(),
            _encounter(),
            _code(),
            _c("DESCRIPTION"),
            _c("BASE_COST", DECIMAL),
        ),
        description="one row per vaccine given",
    ),
    SyntheaFile(
        "imaging_studies",
        (
            _id(),
            _when("DATE", DATETIME, required=True),
            _patient(),
            _encounter(),
            _c("SERIES_UID"),
            _c("BODYSITE_CODE"),
            _c("BODYSITE_DESCRIPTION"),
            _c("MODALITY_CODE"),
            _c("MODALITY_DESCRIPTION"),
            _c("INSTANCE_UID", required=True, filled=True),
            _c("SOP_CODE"),
            _c("SOP_DESCRIPTION"),
            _c("PROCEDURE_CODE"),
        ),
        description="one row per image instance of a study series",
    ),
    SyntheaFile(
        "supplies",
        (
            _when("DATE", DATE, required=True),
            _patient(),
            _encounter(),
            _code(),
            _c("DESCRIPTION"),
            _c("QUANTITY", DECIMAL),
        ),
        description="one row per supply used",
    ),
    SyntheaFile(
        "organizations",
        (
            _id(),
            _c("NPI", layouts=_NPI),
            _c("NAME"),
            _c("ADDRESS"),
            _c("CITY"),
            _c("STATE"),
            _c("ZIP"),
            _c("LAT", DECIMAL),
            _c("LON", DECIMAL),
            _c("PHONE"),
            _c("REVENUE", DECIMAL),
            _c("UTILIZATION", INTEGER),
        ),
        description="one row per provider organization",
    ),
    SyntheaFile(
        "providers",
        (
            _id(),
            _c("NPI", layouts=_NPI),
            _c("ORGANIZATION", references="organizations"),
            _c("NAME"),
            _c("GENDER"),
            _c("SPECIALITY"),
            _c("ADDRESS"),
            _c("CITY"),
            _c("STATE"),
            _c("ZIP"),
            _c("LAT", DECIMAL),
            _c("LON", DECIMAL),
            _c("UTILIZATION", INTEGER, layouts=_ONLY_V3_0),
            _c("ENCOUNTERS", INTEGER, layouts=_SINCE_LATER),
            _c("PROCEDURES", INTEGER, layouts=_SINCE_LATER),
        ),
        description="one row per clinician",
    ),
    SyntheaFile(
        "payers",
        (
            _id(),
            _c("NAME"),
            _c("OWNERSHIP", layouts=_SINCE_LATER),
            _c("ADDRESS"),
            _c("CITY"),
            _c("STATE_HEADQUARTERED"),
            _c("ZIP"),
            _c("PHONE"),
            _c("AMOUNT_COVERED", DECIMAL),
            _c("AMOUNT_UNCOVERED", DECIMAL),
            _c("REVENUE", DECIMAL),
            _c("COVERED_ENCOUNTERS", INTEGER),
            _c("UNCOVERED_ENCOUNTERS", INTEGER),
            _c("COVERED_MEDICATIONS", INTEGER),
            _c("UNCOVERED_MEDICATIONS", INTEGER),
            _c("COVERED_PROCEDURES", INTEGER),
            _c("UNCOVERED_PROCEDURES", INTEGER),
            _c("COVERED_IMMUNIZATIONS", INTEGER),
            _c("UNCOVERED_IMMUNIZATIONS", INTEGER),
            _c("UNIQUE_CUSTOMERS", INTEGER),
            _c("QOLS_AVG", DECIMAL),
            _c("MEMBER_MONTHS", INTEGER),
        ),
        description="one row per payer (the last one is NO_INSURANCE)",
    ),
    SyntheaFile(
        "payer_transitions",
        (
            _patient(),
            _c("MEMBERID"),
            _c("START_DATE", DATETIME, required=True, filled=True, old_names=("START_YEAR",)),
            _c("END_DATE", DATETIME, old_names=("END_YEAR",)),
            _c("PAYER", required=True, filled=True, references="payers"),
            _c("SECONDARY_PAYER", references="payers"),
            _c("PLAN_OWNERSHIP", old_names=("OWNERSHIP",)),
            _c("OWNER_NAME", old_names=("OWNERNAME",)),
        ),
        description="one row per period of a patient's insurance",
    ),
    SyntheaFile(
        "claims",
        (
            _id(),
            _patient("PATIENTID"),
            _c("PROVIDERID", references="providers"),
            _c("PRIMARYPATIENTINSURANCEID"),
            _c("SECONDARYPATIENTINSURANCEID"),
            _c("DEPARTMENTID", INTEGER),
            _c("PATIENTDEPARTMENTID", INTEGER),
            *(_c(f"DIAGNOSIS{i}") for i in range(1, 9)),
            _c("REFERRINGPROVIDERID"),
            _c("APPOINTMENTID"),
            _c("CURRENTILLNESSDATE", DATETIME),
            _c("SERVICEDATE", DATETIME, required=True, filled=True),
            _c("SUPERVISINGPROVIDERID"),
            _c("STATUS1"),
            _c("STATUS2"),
            _c("STATUSP"),
            _c("OUTSTANDING1", DECIMAL),
            _c("OUTSTANDING2", DECIMAL),
            _c("OUTSTANDINGP", DECIMAL),
            _c("LASTBILLEDDATE1", DATETIME),
            _c("LASTBILLEDDATE2", DATETIME),
            _c("LASTBILLEDDATEP", DATETIME),
            _c("HEALTHCARECLAIMTYPEID1", INTEGER),
            _c("HEALTHCARECLAIMTYPEID2", INTEGER),
        ),
        description="one row per claim",
    ),
    SyntheaFile(
        "claims_transactions",
        (
            Column("ID", required=True, filled=True),
            _c("CLAIMID", required=True, filled=True, references="claims"),
            _c("CHARGEID", INTEGER, required=True, filled=True),
            _patient("PATIENTID"),
            _c("TYPE", required=True, filled=True),
            _c("AMOUNT", DECIMAL),
            _c("METHOD"),
            _c("FROMDATE", DATETIME),
            _c("TODATE", DATETIME),
            _c("PLACEOFSERVICE"),
            _c("PROCEDURECODE"),
            _c("MODIFIER1"),
            _c("MODIFIER2"),
            *(_c(f"DIAGNOSISREF{i}", INTEGER) for i in range(1, 5)),
            _c("UNITS", DECIMAL),
            _c("DEPARTMENTID", INTEGER),
            _c("NOTES"),
            _c("UNITAMOUNT", DECIMAL),
            _c("TRANSFEROUTID"),
            _c("TRANSFERTYPE"),
            _c("PAYMENTS", DECIMAL),
            _c("ADJUSTMENTS", DECIMAL),
            _c("TRANSFERS", DECIMAL),
            _c("OUTSTANDING", DECIMAL),
            _c("APPOINTMENTID"),
            _c("LINENOTE"),
            _c("PATIENTINSURANCEID"),
            _c("FEESCHEDULEID"),
            _c("PROVIDERID"),
            _c("SUPERVISINGPROVIDERID"),
        ),
        description="one row per charge, payment, adjustment or transfer of a claim line",
    ),
    # Folded into the patient (clinical.PATIENTS, extensions synthea_expenses): no entity type of its own.
    SyntheaFile(
        "patient_expenses",
        (
            Column("PATIENT_ID", required=True, filled=True, references="patients", layouts=_SINCE_LATER),
            _c("YEAR", DATETIME, layouts=_SINCE_LATER),
            _c("PAYER_ID", references="payers", layouts=_SINCE_LATER),
            _c("HEALTHCARE_EXPENSES", DECIMAL, layouts=_SINCE_LATER),
            _c("INSURANCE_COSTS", DECIMAL, layouts=_SINCE_LATER),
            _c("COVERED_COSTS", DECIMAL, layouts=_SINCE_LATER),
        ),
        description="one row per patient, plan period and payer: what the patient and the payer spent",
    ),
)

BY_STEM: dict[str, SyntheaFile] = {f.stem: f for f in FILES}


def synthea_file(stem: str) -> SyntheaFile:
    """The file declaration for ``stem`` (``"encounters"``)."""
    return BY_STEM[stem]
