"""Synthea's directory, payers, coverage, claims and expenses as canonical entities.

The :class:`~healthsim_state.formats.synthea.targets.Target` declarations of
organizations.csv, providers.csv, payers.csv, payer_transitions.csv (coverage
periods and the member each covered patient becomes), claims.csv and
claims_transactions.csv (claim lines), and :func:`patient_expenses_sql`, the
piece of the patient target that folds patient_expenses.csv into it.

Every target here brings its own ``query``: a callable
``query(loaded, documents) -> str`` where ``loaded`` is the reader's
:class:`~healthsim_state.formats.synthea.reader.Loaded` (which files are
present and which columns each file has) and ``documents(entity_type)``
returns the SQL of another target's documents (the member takes its person
block from the patient document, so both are the same person). The query
yields one row per entity, columns named like document keys, in file order.
What it reads depends on the files present: a reference into a file that is
absent is left out and its column kept in ``extensions`` instead (it could
not resolve), and a target whose ``needs`` are absent does not run.

Every column of the file that no field maps (and every column of a later
layout's or no release's the file has) is kept verbatim under
``extensions["synthea"]``; the transactions folded into a claim line are
kept whole under ``synthea_transactions``, the expense rows folded into a
patient under ``synthea_expenses``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from healthsim_state.formats.synthea.sql import date, decimal, derived_uuid, integer, timestamp
from healthsim_state.formats.synthea.targets import EXTENSION_KEY, Field, Target

if TYPE_CHECKING:
    from healthsim_state.formats.synthea.reader import Loaded

#: The document key of the transactions folded into a claim line.
TRANSACTIONS_KEY = "synthea_transactions"
#: The document key of the patient_expenses.csv rows folded into a patient.
EXPENSES_KEY = "synthea_expenses"

#: Returns the SQL of the documents of an entity type (``documents("patient")``).
Documents = Callable[[str], str]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(loaded: Loaded, stem: str) -> tuple[str, ...]:
    """The columns ``stem``'s file has (known ones in the latest spelling, then unknown ones), in file order."""
    lf = loaded.files[stem]
    return (*lf.present, *lf.unknown)


def _verbatim(alias: str, columns: tuple[str, ...]) -> str | None:
    """SQL: a STRUCT of ``columns`` of ``alias`` as their text (NULL for an empty cell), or None for no column."""
    if not columns:
        return None
    return "struct_pack(" + ", ".join(f"{_ident(c)} := {alias}.{_ident(c)}" for c in columns) + ")"


@dataclass(frozen=True)
class _Select:
    """A one-row-per-row target: its fields, and the parts that depend on other files being present.

    ``optional`` maps a field path to the file it reads (through a join in
    ``joins``): without that file the field is NULL and its columns are kept
    in extensions. ``joins`` maps a file to the FROM clause that reads it.
    """

    fields: tuple[Field, ...]
    where: str | None = None
    optional: Mapping[str, str] = field(default_factory=dict)
    joins: Mapping[str, str] = field(default_factory=dict)
    also_kept: tuple[str, ...] = ()

    def sql(self, file: str, loaded: Loaded) -> str:
        present = [f for f in self.fields if self.optional.get(f.path, file) in loaded.files]
        absent = [f for f in self.fields if f not in present]
        mapped = {c for f in present for c in f.columns} - set(self.also_kept)
        parts = [f"{f.sql} AS {_ident(f.path)}" for f in present]
        parts += [f"NULL AS {_ident(f.path)}" for f in absent]
        extension = _verbatim("s", tuple(c for c in _columns(loaded, file) if c not in mapped))
        if extension is not None:
            parts.append(f"{extension} AS {EXTENSION_KEY}")
        joins = " ".join(j for need, j in self.joins.items() if need in loaded.files)
        where = f" WHERE {self.where}" if self.where else ""
        return f"SELECT {', '.join(parts)} FROM {_ident(file)} s {joins}{where} ORDER BY s._line"


def _target(
    file: str,
    entity_type: str,
    identity: tuple[str, ...],
    select: _Select,
    *,
    needs: tuple[str, ...] = (),
    exclusions: tuple[str, ...] = (),
    note: str = "",
) -> Target:
    return Target(
        file=file,
        entity_type=entity_type,
        identity=identity,
        fields=select.fields,
        where=select.where,
        joins=tuple(select.joins.values()),
        needs=needs,
        also_kept=select.also_kept,
        query=lambda loaded, documents=None: select.sql(file, loaded),
        exclusions=exclusions,
        note=note,
    )


def _f(path: str, sql: str, *columns: str, note: str = "") -> Field:
    return Field(path, sql, tuple(columns), note)


def _col(name: str) -> str:
    return f"s.{_ident(name)}"


def _address(state: str = "STATE") -> tuple[Field, ...]:
    return (
        _f("street_address", _col("ADDRESS"), "ADDRESS"),
        _f("city", _col("CITY"), "CITY"),
        _f("state", _col(state), state, note="a two-letter code in Synthea's files, taken as it is"),
        _f("postal_code", _col("ZIP"), "ZIP", note="as written (Synthea drops a leading zero in some)"),
    )


def _position() -> tuple[Field, ...]:
    return (
        _f("latitude", decimal(_col("LAT"), 6), "LAT", note="rounded to 6 decimals"),
        _f("longitude", decimal(_col("LON"), 6), "LON", note="rounded to 6 decimals"),
    )


# -- the directory -----------------------------------------------------------------

_NPI_NOTE = "a later layout's column; absent (NULL) in v3.0"

ORGANIZATIONS = _target(
    "organizations",
    "organization",
    ("Id",),
    _Select(
        (
            _f("id", _col("Id"), "Id", note="the Synthea Id: the entity's identity"),
            _f("organization_id", _col("Id"), "Id"),
            _f("name", _col("NAME"), "NAME"),
            _f("npi", _col("NPI"), "NPI", note=_NPI_NOTE),
            *_address(),
            *_position(),
            _f("phone", _col("PHONE"), "PHONE"),
        )
    ),
    note="REVENUE and UTILIZATION (simulation statistics) are kept in extensions.",
)

PROVIDERS = _target(
    "providers",
    "practitioner",
    ("Id",),
    _Select(
        (
            _f("id", _col("Id"), "Id", note="the Synthea Id: the entity's identity"),
            _f("practitioner_id", _col("Id"), "Id"),
            _f("name", _col("NAME"), "NAME"),
            _f("npi", _col("NPI"), "NPI", note=_NPI_NOTE),
            _f("gender", _col("GENDER"), "GENDER", note="M or F, as written"),
            _f("specialty", _col("SPECIALITY"), "SPECIALITY"),
            _f(
                "organization_id",
                _col("ORGANIZATION"),
                "ORGANIZATION",
                note="the employing organization; without organizations.csv left out and kept in extensions",
            ),
            *_address(),
            *_position(),
        ),
        optional={"organization_id": "organizations"},
    ),
    note="UTILIZATION (v3.0), ENCOUNTERS and PROCEDURES (later layouts) are kept in extensions.",
)

PAYERS = _target(
    "payers",
    "payer",
    ("Id",),
    _Select(
        (
            _f("id", _col("Id"), "Id", note="the Synthea Id: the entity's identity"),
            _f("payer_id", _col("Id"), "Id"),
            _f("name", _col("NAME"), "NAME", note="NO_INSURANCE is a payer row of its own, imported as one"),
            _f("ownership", _col("OWNERSHIP"), "OWNERSHIP", note="a later layout's column; NULL in v3.0"),
            *_address("STATE_HEADQUARTERED"),
            _f("phone", _col("PHONE"), "PHONE"),
        )
    ),
    note="The amounts and counts (AMOUNT_COVERED ... MEMBER_MONTHS) are kept in extensions.",
)

# -- coverage and members --------------------------------------------------------

_RELATIONSHIP = (
    f"CASE {_col('PLAN_OWNERSHIP')} WHEN 'Self' THEN 'self' WHEN 'Spouse' THEN 'spouse'"
    " WHEN 'Guardian' THEN 'child' END"
)

COVERAGES = _target(
    "payer_transitions",
    "coverage",
    ("PATIENT", "START_DATE"),
    _Select(
        (
            _f(
                "id",
                derived_uuid("payer_transitions", _col("PATIENT"), _col("START_DATE")),
                "PATIENT",
                "START_DATE",
                note="derived from PATIENT and START_DATE (a patient's periods do not overlap)",
            ),
            _f("member_id", _col("PATIENT"), "PATIENT", note="the member made of the patient (below)"),
            _f("payer_id", _col("PAYER"), "PAYER", note="NO_INSURANCE periods are coverages of that payer"),
            _f("secondary_payer_id", _col("SECONDARY_PAYER"), "SECONDARY_PAYER"),
            _f("subscriber_id", _col("MEMBERID"), "MEMBERID", note="the plan's member number, as issued"),
            _f(
                "relationship",
                _RELATIONSHIP,
                "PLAN_OWNERSHIP",
                note="Self -> self, Spouse -> spouse, Guardian -> child (the beneficiary is the guardian's"
                " dependant), else NULL; PLAN_OWNERSHIP (OWNERSHIP in v3.0) also kept verbatim",
            ),
            _f("policy_holder", _col("OWNER_NAME"), "OWNER_NAME", note="OWNERNAME in v3.0"),
            _f(
                "period_start",
                timestamp(_col("START_DATE")),
                "START_DATE",
                note="START_YEAR in v3.0, which holds a date-time despite its name",
            ),
            _f("period_end", timestamp(_col("END_DATE")), "END_DATE", note="END_YEAR in v3.0"),
            _f("status", "'active'", note="always active: FHIR's status is the record's, not the period's"),
        ),
        also_kept=("PLAN_OWNERSHIP",),
    ),
    needs=("payers",),
    note="One coverage per row; the target runs when payers.csv is present (a coverage names its payer).",
)

_MEMBER_RELATIONSHIP = (
    "CASE t.PLAN_OWNERSHIP WHEN 'Self' THEN '18' WHEN 'Spouse' THEN '01' WHEN 'Guardian' THEN '19' END"
)
_PERSON_KEYS = ("name", "address", "birth_date", "gender", "ssn", "deceased", "death_date")


def _members_sql(loaded: Loaded, documents: Documents | None = None) -> str:
    if documents is None:
        raise TypeError("the member target needs documents('patient'): the member's person block is the patient's")
    plan = "pay.NAME" if "payers" in loaded.files else "t.PAYER"
    payers = "LEFT JOIN payers pay ON pay.Id = t.PAYER" if "payers" in loaded.files else ""
    # The latest period (by START_DATE, then file order) gives the plan and the relationship.
    latest = (
        f"SELECT t.PATIENT, t.PAYER AS group_id, {plan} AS plan_code, {_MEMBER_RELATIONSHIP} AS relationship_code"
        f" FROM payer_transitions t {payers}"
        " QUALIFY row_number() OVER (PARTITION BY t.PATIENT"
        " ORDER BY CAST(t.START_DATE AS TIMESTAMPTZ) DESC, t._line DESC) = 1"
    )
    spans = (
        f"SELECT t.PATIENT, min({date('t.START_DATE')}) AS coverage_start, max({date('t.END_DATE')}) AS coverage_end,"
        " min(t._line) AS first_line FROM payer_transitions t GROUP BY t.PATIENT"
    )
    person = ", ".join(f"pt.{k}" for k in _PERSON_KEYS)
    return (
        f"SELECT {derived_uuid('member', 'p.PATIENT')} AS id, p.PATIENT AS member_id, {person},"
        " l.relationship_code, l.group_id, l.plan_code, p.coverage_start, p.coverage_end"
        f" FROM ({spans}) p JOIN ({latest}) l ON l.PATIENT = p.PATIENT"
        f" LEFT JOIN ({documents('patient')}) pt ON pt.mrn = p.PATIENT"
        " ORDER BY p.first_line"
    )


MEMBERS = Target(
    file="payer_transitions",
    entity_type="member",
    identity=("PATIENT",),
    fields=(
        Field("id", derived_uuid("member", "PATIENT"), ("PATIENT",), "derived from 'member' and the patient Id"),
        Field("member_id", "PATIENT", ("PATIENT",), "the patient Id: one member per patient with coverage rows"),
        *(
            Field(key, f"the patient document's {key}", (), "the person block of the patient of the same Id")
            for key in _PERSON_KEYS
        ),
        Field(
            "relationship_code",
            _MEMBER_RELATIONSHIP,
            ("PLAN_OWNERSHIP",),
            "from the latest period: Self 18, Spouse 01, Guardian 19; none (NO_INSURANCE periods) -> 18",
        ),
        Field("group_id", "PAYER", ("PAYER",), "the latest period's payer"),
        Field("plan_code", "payers.NAME", ("PAYER",), "the latest period's payer's NAME (its Id without payers.csv)"),
        Field("coverage_start", date("START_DATE"), ("START_DATE",), "the earliest START_DATE (its date)"),
        Field("coverage_end", date("END_DATE"), ("END_DATE",), "the latest END_DATE (its date)"),
    ),
    query=_members_sql,
    exclusions=("rows fold into one member per patient (each row is also a coverage)",),
    note="The latest period is the one with the latest START_DATE (the last in the file among equals).",
)

# -- claims -------------------------------------------------------------------------


# A claim is imported when its patient became a member (has payer_transitions
# rows: a canonical claim names its member) and it has a principal diagnosis.
def _claim_kept(alias: str) -> str:
    """SQL: true when the claims.csv row ``alias`` becomes a claim."""
    return (
        f"{alias}.DIAGNOSIS1 IS NOT NULL"
        f" AND EXISTS (SELECT 1 FROM payer_transitions t WHERE t.PATIENT = {alias}.PATIENTID)"
    )


_CLAIM_EXCLUSIONS = (
    "claims of patients without payer_transitions rows (no member to bill)",
    "claims without DIAGNOSIS1 (a canonical claim needs its principal diagnosis)",
)
_DIAGNOSES = tuple(f"DIAGNOSIS{i}" for i in range(2, 9))


def _non_null_list(exprs: list[str]) -> str:
    listed = f"list_filter([{', '.join(exprs)}], lambda x: x IS NOT NULL)"
    return f"CASE WHEN len({listed}) > 0 THEN {listed} END"


_TOTALS = (
    "SELECT x.CLAIMID,"
    f" sum(CASE WHEN x.TYPE = 'CHARGE' THEN {decimal('x.AMOUNT')} END)::DECIMAL(18, 2) AS total_charge,"
    f" coalesce(sum(CASE WHEN x.TYPE = 'PAYMENT' THEN {decimal('x.PAYMENTS')} END), 0)::DECIMAL(18, 2) AS total_paid"
    " FROM claims_transactions x GROUP BY x.CLAIMID"
)

CLAIMS = _target(
    "claims",
    "claim",
    ("Id",),
    _Select(
        (
            _f("id", _col("Id"), "Id", note="the Synthea Id: the entity's identity"),
            _f("claim_id", _col("Id"), "Id"),
            _f(
                "claim_type",
                f"CASE {integer(_col('HEALTHCARECLAIMTYPEID1'))} WHEN 1 THEN 'PROFESSIONAL' WHEN 2 THEN 'INSTITUTIONAL' END",
                "HEALTHCARECLAIMTYPEID1",
                note="1 PROFESSIONAL, 2 INSTITUTIONAL",
            ),
            _f("member_id", _col("PATIENTID"), "PATIENTID", note="the patient's member"),
            _f("practitioner_id", _col("PROVIDERID"), "PROVIDERID", note="the rendering clinician"),
            _f(
                "provider_npi",
                "prov.NPI",
                note="the NPI of the claim's practitioner when providers.csv has NPI (later layouts), else NULL",
            ),
            _f(
                "payer_id",
                f"CASE WHEN {_col('PRIMARYPATIENTINSURANCEID')} <> '0' THEN {_col('PRIMARYPATIENTINSURANCEID')} END",
                "PRIMARYPATIENTINSURANCEID",
                note="NULL for '0' (no insurance) or without payers.csv; the column is also kept verbatim",
            ),
            _f("service_date", date(_col("SERVICEDATE")), "SERVICEDATE", note="its date (UTC)"),
            _f("principal_diagnosis", _col("DIAGNOSIS1"), "DIAGNOSIS1", note="a SNOMED code"),
            _f(
                "other_diagnoses",
                _non_null_list([_col(c) for c in _DIAGNOSES]),
                *_DIAGNOSES,
                note="the non-empty ones in column order; NULL when none",
            ),
            _f("diagnosis_code_system", "'SNOMED'", note="Synthea's diagnoses are SNOMED codes"),
            _f(
                "total_charge",
                "tot.total_charge",
                note="the sum of the claim's CHARGE amounts in claims_transactions.csv (NULL without it)",
            ),
            _f(
                "total_paid",
                "tot.total_paid",
                note="the sum of the claim's PAYMENT amounts in claims_transactions.csv (NULL without it)",
            ),
        ),
        where=_claim_kept("s"),
        optional={
            "provider_npi": "providers",
            "payer_id": "payers",
            "total_charge": "claims_transactions",
            "total_paid": "claims_transactions",
        },
        joins={
            "providers": "LEFT JOIN providers prov ON prov.Id = s.PROVIDERID",
            "claims_transactions": f"LEFT JOIN ({_TOTALS}) tot ON tot.CLAIMID = s.Id",
        },
        also_kept=("PRIMARYPATIENTINSURANCEID",),
    ),
    needs=("payer_transitions", "providers"),
    exclusions=_CLAIM_EXCLUSIONS,
    note="Runs when payer_transitions.csv (members) and providers.csv (the rendering practitioner) are present."
    " The place of service is the model's default (11): Synthea's claims carry none.",
)


# -- claim lines ----------------------------------------------------------------------

# The CHARGE row's columns its line's fields consume; the rest of the row
# (CHARGEID and FROMDATE too: the mapping changes them) is kept verbatim.
_LINE_MAPPED = (
    "ID",
    "CLAIMID",
    "PROCEDURECODE",
    "MODIFIER1",
    "MODIFIER2",
    "UNITS",
    "AMOUNT",
    *(f"DIAGNOSISREF{i}" for i in range(1, 5)),
)


def _codes(loaded: Loaded, stem: str) -> str:
    """SQL: the (patient, encounter, code) triples of ``stem``'s file, or none when it is absent."""
    if stem in loaded.files:
        return f"(SELECT DISTINCT PATIENT, ENCOUNTER, CODE FROM {_ident(stem)})"
    return "(SELECT NULL::VARCHAR AS PATIENT, NULL::VARCHAR AS ENCOUNTER, NULL::VARCHAR AS CODE WHERE false)"


_LINE_FIELDS = (
    Field("id", "ID", ("ID",), "the CHARGE row's ID: the entity's identity"),
    Field("claim_id", "CLAIMID", ("CLAIMID",)),
    Field(
        "line_number",
        "row_number() OVER (PARTITION BY CLAIMID ORDER BY CHARGEID)",
        ("CHARGEID",),
        "the CHARGE row's position among its claim's CHARGE rows by CHARGEID (1, 2, ...): CHARGEID itself counts"
        " every transaction of the export (0 included), so it is no line number; kept verbatim",
    ),
    Field("procedure_code", "PROCEDURECODE", ("PROCEDURECODE",)),
    Field(
        "procedure_code_system",
        "RxNorm / CVX / SNOMED",
        ("PROCEDURECODE",),
        "RxNorm when medications.csv has the code for the claim's patient and encounter (APPOINTMENTID), CVX"
        " when immunizations.csv has it, else SNOMED (encounter, procedure and supply codes); without those"
        " files their codes cannot be told apart and are taken as SNOMED",
    ),
    Field(
        "procedure_modifiers",
        "[MODIFIER1, MODIFIER2]",
        ("MODIFIER1", "MODIFIER2"),
        "the non-empty ones; NULL when none",
    ),
    Field(
        "service_date",
        date("FROMDATE"),
        ("FROMDATE",),
        "FROMDATE's date (the claim's SERVICEDATE when empty); kept verbatim",
    ),
    Field("units", decimal("UNITS"), ("UNITS",), "1 when empty"),
    Field("charge_amount", decimal("AMOUNT"), ("AMOUNT",), "the CHARGE row's AMOUNT"),
    Field(
        "diagnosis_pointers",
        "[DIAGNOSISREF1, ..., DIAGNOSISREF4]",
        tuple(f"DIAGNOSISREF{i}" for i in range(1, 5)),
        "the non-empty ones as integers (positions in the claim's DIAGNOSIS1..8)",
    ),
    Field(
        "paid_amount",
        "sum(PAYMENTS)",
        ("PAYMENTS",),
        "the sum of PAYMENTS over the PAYMENT rows folded into the line (0 when none)",
    ),
    Field(
        TRANSACTIONS_KEY,
        "list of rows",
        ("TYPE",),
        "the PAYMENT, ADJUSTMENT, TRANSFERIN and TRANSFEROUT rows of the line, each whole and verbatim"
        " (every column, text as in the file), in CHARGEID order, in extensions",
    ),
)


def _claim_lines_sql(loaded: Loaded, documents: Documents | None = None) -> str:
    columns = _columns(loaded, "claims_transactions")
    mapped = set(_LINE_MAPPED)
    # Each transaction belongs to the CHARGE of its claim with the greatest
    # CHARGEID not above its own: Synthea writes a charge, then the payments,
    # adjustments and transfers that settle it, numbering every row in turn.
    owned = (
        "SELECT x.*, CAST(x.CHARGEID AS BIGINT) AS _charge,"
        " max(CASE WHEN x.TYPE = 'CHARGE' THEN CAST(x.CHARGEID AS BIGINT) END) OVER"
        " (PARTITION BY x.CLAIMID ORDER BY CAST(x.CHARGEID AS BIGINT), x._line ROWS UNBOUNDED PRECEDING) AS _owner"
        " FROM claims_transactions x"
    )
    rows = _verbatim("o", columns)
    folded = (
        f"SELECT o.CLAIMID, o._owner, list({rows} ORDER BY o._charge, o._line) AS transactions,"
        f" sum(CASE WHEN o.TYPE = 'PAYMENT' THEN {decimal('o.PAYMENTS')} END) AS paid"
        " FROM owned o WHERE o.TYPE <> 'CHARGE' GROUP BY o.CLAIMID, o._owner"
    )
    extension = _verbatim("s", tuple(c for c in columns if c not in mapped))
    modifiers = _non_null_list(["s.MODIFIER1", "s.MODIFIER2"])
    pointers = _non_null_list([integer(f"s.DIAGNOSISREF{i}") for i in range(1, 5)])
    system = "CASE WHEN rx.CODE IS NOT NULL THEN 'RxNorm' WHEN cvx.CODE IS NOT NULL THEN 'CVX' ELSE 'SNOMED' END"
    parts = [
        "s.ID AS id",
        "s.CLAIMID AS claim_id",
        "row_number() OVER (PARTITION BY s.CLAIMID ORDER BY s._charge, s._line) AS line_number",
        "s.PROCEDURECODE AS procedure_code",
        f"{system} AS procedure_code_system",
        f"{modifiers} AS procedure_modifiers",
        f"coalesce({date('s.FROMDATE')}, {date('c.SERVICEDATE')}) AS service_date",
        f"{decimal('s.UNITS')} AS units",
        f"{decimal('s.AMOUNT')} AS charge_amount",
        "coalesce(f.paid, 0)::DECIMAL(18, 2) AS paid_amount",
        f"{pointers} AS diagnosis_pointers",
        f"coalesce(f.transactions, []) AS {TRANSACTIONS_KEY}",
    ]
    if extension is not None:
        parts.append(f"{extension} AS {EXTENSION_KEY}")
    return (
        f"WITH owned AS ({owned}), folded AS ({folded})"
        f" SELECT {', '.join(parts)} FROM owned s"
        " JOIN claims c ON c.Id = s.CLAIMID"
        " LEFT JOIN folded f ON f.CLAIMID = s.CLAIMID AND f._owner = s._charge"
        f" LEFT JOIN {_codes(loaded, 'medications')} rx"
        " ON rx.PATIENT = s.PATIENTID AND rx.ENCOUNTER = s.APPOINTMENTID AND rx.CODE = s.PROCEDURECODE"
        f" LEFT JOIN {_codes(loaded, 'immunizations')} cvx"
        " ON cvx.PATIENT = s.PATIENTID AND cvx.ENCOUNTER = s.APPOINTMENTID AND cvx.CODE = s.PROCEDURECODE"
        f" WHERE s.TYPE = 'CHARGE' AND {_claim_kept('c')}"
        " ORDER BY s._line"
    )


CLAIM_LINES = Target(
    file="claims_transactions",
    entity_type="claim_line",
    identity=("ID",),
    fields=_LINE_FIELDS,
    needs=("claims", "payer_transitions", "providers"),
    also_kept=("CHARGEID", "FROMDATE"),
    query=_claim_lines_sql,
    exclusions=(
        "PAYMENT, ADJUSTMENT, TRANSFERIN and TRANSFEROUT rows fold into their claim line (not entities)",
        "the lines of the claims claims.csv leaves out (see claims.csv)",
    ),
    note="One line per CHARGE row. A transaction belongs to the CHARGE of its claim with the greatest CHARGEID"
    " not above its own (Synthea writes each charge followed by what settles it).",
)

#: The targets of this module, parents before children.
TARGETS: tuple[Target, ...] = (ORGANIZATIONS, PROVIDERS, PAYERS, MEMBERS, COVERAGES, CLAIMS, CLAIM_LINES)


# -- patient expenses (the patient target's hook) -------------------------------------


def patient_expenses_sql(loaded: Loaded) -> str | None:
    """SQL of the patient_expenses.csv rows folded per patient, or None when the file is absent.

    The hook of the patient target (later layouts): one row per patient with
    expense rows, columns ``PATIENT_ID`` (the patient's Id) and
    ``synthea_expenses`` (:data:`EXPENSES_KEY`), a list of the patient's rows
    in file order, each whole and verbatim (every column the file has, text as
    written). The patient target LEFT JOINs it on ``PATIENT_ID = s.Id`` and
    selects ``synthea_expenses`` as a document key, which the store keeps in
    the patient's extensions. This module imports nothing of the patient
    target's, so clinical.py may import this function.
    """
    if "patient_expenses" not in loaded.files:
        return None
    rows = _verbatim("e", _columns(loaded, "patient_expenses"))
    return (
        f"SELECT e.PATIENT_ID, list({rows} ORDER BY e._line) AS {EXPENSES_KEY}"
        " FROM patient_expenses e GROUP BY e.PATIENT_ID"
    )


#: The columns of patient_expenses.csv and where they land, for docs/synthea.md.
PATIENT_EXPENSES_NOTE = (
    "patient_expenses.csv (later layouts): every row folds into its patient (PATIENT_ID) as one entry of the"
    f" list {EXPENSES_KEY} in the patient's extensions, whole and verbatim, in file order."
)

__all__ = [
    "CLAIMS",
    "CLAIM_LINES",
    "COVERAGES",
    "EXPENSES_KEY",
    "MEMBERS",
    "ORGANIZATIONS",
    "PATIENT_EXPENSES_NOTE",
    "PAYERS",
    "PROVIDERS",
    "TARGETS",
    "TRANSACTIONS_KEY",
    "patient_expenses_sql",
]
