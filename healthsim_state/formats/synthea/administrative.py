"""Synthea's directory, payers, coverage and claims as canonical entities: the declarations.

organizations.csv -> organization, providers.csv -> practitioner,
payers.csv -> payer, payer_transitions.csv -> coverage (one per row) and
member (one per patient with coverage rows, with the patient's person
block), claims.csv -> claim, claims_transactions.csv -> claim_line (one per
CHARGE row; the PAYMENT, ADJUSTMENT, TRANSFERIN and TRANSFEROUT rows that
settle a charge fold into its line, kept whole under
``synthea_transactions``). The clinical files, and patient_expenses.csv
(folded into the patient), are :mod:`.clinical`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from healthsim_state.formats.synthea.clinical import PATIENTS
from healthsim_state.formats.synthea.sql import date, decimal, derived_uuid, ident, integer, state_code, timestamp
from healthsim_state.formats.synthea.targets import (
    EXTENSION_KEY,
    PART,
    Exclusion,
    Field,
    Stage,
    Target,
    kept_columns,
    select_sql,
)

if TYPE_CHECKING:
    from healthsim_state.formats.synthea.reader import Loaded

#: The document key of the transactions folded into a claim line (kept in extensions).
TRANSACTIONS_KEY = "synthea_transactions"


def _col(name: str) -> str:
    return f"s.{ident(name)}"


def _verbatim(alias: str, columns: tuple[str, ...]) -> str:
    """SQL: a STRUCT of ``columns`` of ``alias`` as their text (NULL for an empty cell)."""
    return "struct_pack(" + ", ".join(f"{ident(c)} := {alias}.{ident(c)}" for c in columns) + ")"


def _address(state: str = "STATE") -> tuple[Field, ...]:
    return (
        Field("street_address", _col("ADDRESS"), ("ADDRESS",)),
        Field("city", _col("CITY"), ("CITY",)),
        Field(
            "state",
            state_code(_col(state)),
            (state,),
            "the two-letter code (Synthea writes codes; a state name becomes its code, anything else is left"
            " empty); also kept verbatim",
        ),
        Field("postal_code", _col("ZIP"), ("ZIP",), "as written (Synthea drops a leading zero in some)"),
    )


def _position() -> tuple[Field, ...]:
    return (
        Field("latitude", decimal(_col("LAT"), 6), ("LAT",), "rounded to 6 decimals"),
        Field("longitude", decimal(_col("LON"), 6), ("LON",), "rounded to 6 decimals"),
    )


_ID_NOTE = "the Synthea Id, which is also the entity's identity (a re-import updates it)"
_NPI_NOTE = "NPI columns appear in later releases; empty (NULL) without one"

# -- the directory -----------------------------------------------------------------

ORGANIZATIONS = Target(
    file="organizations",
    entity_type="organization",
    identity=("Id",),
    fields=(
        Field("organization_id", _col("Id"), ("Id",), _ID_NOTE),
        Field("name", _col("NAME"), ("NAME",)),
        Field("npi", _col("NPI"), ("NPI",), _NPI_NOTE),
        *_address(),
        *_position(),
        Field("phone", _col("PHONE"), ("PHONE",)),
    ),
    also_kept=("STATE",),
    note="One organization per row; REVENUE and UTILIZATION (simulation statistics) are kept in extensions.",
)

PROVIDERS = Target(
    file="providers",
    entity_type="practitioner",
    identity=("Id",),
    fields=(
        Field("practitioner_id", _col("Id"), ("Id",), _ID_NOTE),
        Field("name", _col("NAME"), ("NAME",)),
        Field("npi", _col("NPI"), ("NPI",), _NPI_NOTE),
        Field(
            "gender",
            f"CASE WHEN upper({_col('GENDER')}) IN ('M', 'F') THEN upper({_col('GENDER')}) END",
            ("GENDER",),
            "M or F (anything else is left empty); also kept verbatim",
        ),
        Field("specialty", _col("SPECIALITY"), ("SPECIALITY",), "Synthea's words (GENERAL PRACTICE, ...)"),
        Field(
            "organization_id",
            _col("ORGANIZATION"),
            ("ORGANIZATION",),
            "the employing organization; without organizations.csv left out (it could not resolve) and kept in"
            " extensions",
            needs=("organizations",),
        ),
        *_address(),
        *_position(),
    ),
    also_kept=("STATE", "GENDER"),
    note="One practitioner per row; UTILIZATION (v3.0), ENCOUNTERS and PROCEDURES (later layouts) are kept in"
    " extensions.",
)

PAYERS = Target(
    file="payers",
    entity_type="payer",
    identity=("Id",),
    fields=(
        Field("payer_id", _col("Id"), ("Id",), _ID_NOTE),
        Field("name", _col("NAME"), ("NAME",), "NO_INSURANCE, Synthea's payer of the uninsured, is a payer too"),
        Field("ownership", _col("OWNERSHIP"), ("OWNERSHIP",), "later layouts; NULL in v3.0"),
        *_address("STATE_HEADQUARTERED"),
        Field("phone", _col("PHONE"), ("PHONE",)),
    ),
    also_kept=("STATE_HEADQUARTERED",),
    note="One payer per row; the amounts and counts (AMOUNT_COVERED ... MEMBER_MONTHS) are kept in extensions.",
)

# -- coverage and members --------------------------------------------------------

COVERAGES = Target(
    file="payer_transitions",
    entity_type="coverage",
    identity=("PATIENT", "START_DATE", "PAYER"),
    fields=(
        Field("member_id", _col("PATIENT"), ("PATIENT",), "the member made of the patient (see member)"),
        Field("payer_id", _col("PAYER"), ("PAYER",), "NO_INSURANCE periods are coverages of that payer, as written"),
        Field("secondary_payer_id", _col("SECONDARY_PAYER"), ("SECONDARY_PAYER",)),
        Field("subscriber_id", _col("MEMBERID"), ("MEMBERID",), "the plan's member number, as the payer issued it"),
        Field(
            "relationship",
            f"CASE {_col('PLAN_OWNERSHIP')} WHEN 'Self' THEN 'self' WHEN 'Spouse' THEN 'spouse'"
            " WHEN 'Guardian' THEN 'child' END",
            ("PLAN_OWNERSHIP",),
            "Self -> self, Spouse -> spouse, Guardian -> child (the beneficiary is the guardian's dependant), else"
            " empty; PLAN_OWNERSHIP (OWNERSHIP in v3.0) is also kept verbatim",
        ),
        Field("policy_holder", _col("OWNER_NAME"), ("OWNER_NAME",), "OWNERNAME in v3.0"),
        Field(
            "period_start",
            timestamp(_col("START_DATE")),
            ("START_DATE",),
            "START_YEAR in v3.0, which holds a date-time despite its name",
        ),
        Field("period_end", timestamp(_col("END_DATE")), ("END_DATE",), "END_YEAR in v3.0"),
        Field("status", "'active'", (), "active: FHIR's status is the record's, not whether the period is over"),
    ),
    needs=("payers",),
    also_kept=("PLAN_OWNERSHIP",),
    note="One coverage per row, identified by PATIENT, START_DATE and PAYER (Synthea writes zero-length periods"
    " that start with the next one); runs when payers.csv is present (a coverage names its payer).",
)

_PERSON_KEYS = ("name", "address", "birth_date", "gender", "ssn", "deceased", "death_date")
_MEMBER_RELATIONSHIP = (
    "CASE t.PLAN_OWNERSHIP WHEN 'Self' THEN '18' WHEN 'Spouse' THEN '01' WHEN 'Guardian' THEN '19' END"
)


def _members_sql(target: Target, loaded: Loaded) -> str:
    """One member per patient of payer_transitions.csv: the patient's person block, the plan of the latest period."""
    with_payers = loaded.has("payers")
    plan = "pay.NAME" if with_payers else "t.PAYER"
    payers = "LEFT JOIN payers pay ON pay.Id = t.PAYER" if with_payers else ""
    latest = (
        f"SELECT t.PATIENT, t.PAYER AS group_id, {plan} AS plan_code, {_MEMBER_RELATIONSHIP} AS relationship_code"
        f" FROM payer_transitions t {payers}"
        " QUALIFY row_number() OVER (PARTITION BY t.PATIENT"
        f" ORDER BY {timestamp('t.START_DATE')} DESC, t._line DESC) = 1"
    )
    spans = (
        f"SELECT t.PATIENT, min({date('t.START_DATE')}) AS coverage_start, max({date('t.END_DATE')}) AS coverage_end,"
        " min(t._line) AS _line FROM payer_transitions t GROUP BY t.PATIENT"
    )
    person = ", ".join(f"pt.{k}" for k in _PERSON_KEYS)
    return (
        f"SELECT {derived_uuid('member', 'p.PATIENT')} AS id, p.PATIENT AS member_id, {person},"
        " l.relationship_code, l.group_id, l.plan_code, p.coverage_start, p.coverage_end, p._line"
        f" FROM ({spans}) p JOIN ({latest}) l ON l.PATIENT = p.PATIENT"
        f" LEFT JOIN ({select_sql(PATIENTS, loaded)}) pt ON pt.mrn = p.PATIENT"
    )


MEMBERS = Target(
    file="payer_transitions",
    entity_type="member",
    identity=("PATIENT",),
    fields=(
        Field("member_id", "s.PATIENT", ("PATIENT",), "the patient's Id: one member per patient with coverage rows"),
        *(
            Field(key, f"the patient's {key}", (), "the person block of the patient of the same Id, as imported")
            for key in _PERSON_KEYS
        ),
        Field(
            "relationship_code",
            _MEMBER_RELATIONSHIP,
            ("PLAN_OWNERSHIP",),
            "the latest period's: Self 18, Spouse 01, Guardian 19; none (an uninsured period) gives the default 18",
        ),
        Field("group_id", "s.PAYER", ("PAYER",), "the latest period's payer"),
        Field("plan_code", "payers.NAME", ("PAYER",), "the latest period's payer's NAME (its Id without payers.csv)"),
        Field("coverage_start", date("s.START_DATE"), ("START_DATE",), "the earliest START_DATE's date"),
        Field("coverage_end", date("s.END_DATE"), ("END_DATE",), "the latest END_DATE's date"),
    ),
    query=_members_sql,
    exclusions=("every row is a coverage; the rows of one patient also make one member",),
    note="id: a UUID derived from 'member' and the patient's Id. The latest period is the one with the latest"
    " START_DATE (among equals the last in the file).",
)

# -- claims -------------------------------------------------------------------------

_COVERED = "EXISTS (SELECT 1 FROM payer_transitions t WHERE t.PATIENT = {alias}.PATIENTID)"


def _claim_kept(alias: str) -> str:
    """SQL: true when the claims.csv row ``alias`` becomes a claim."""
    return f"{alias}.DIAGNOSIS1 IS NOT NULL AND {_COVERED.format(alias=alias)}"


_NO_MEMBER = "claims of patients without payer_transitions rows: no member to bill"
_NO_DIAGNOSIS = "claims without DIAGNOSIS1: a canonical claim needs its principal diagnosis"
_DIAGNOSES = tuple(f"DIAGNOSIS{i}" for i in range(2, 9))


def _non_null_list(exprs: list[str]) -> str:
    listed = f"list_filter([{', '.join(exprs)}], lambda x: x IS NOT NULL)"
    return f"CASE WHEN len({listed}) > 0 THEN {listed} END"


def _sum_of(kind: str, column: str) -> str:
    return (
        f"(SELECT sum({decimal('x.' + column)})::DECIMAL(18, 2) FROM claims_transactions x"
        f" WHERE x.CLAIMID = s.Id AND x.TYPE = '{kind}')"
    )


CLAIMS = Target(
    file="claims",
    entity_type="claim",
    identity=("Id",),
    fields=(
        Field("claim_id", _col("Id"), ("Id",), _ID_NOTE),
        Field(
            "claim_type",
            f"CASE {integer(_col('HEALTHCARECLAIMTYPEID1'))} WHEN 1 THEN 'PROFESSIONAL' WHEN 2 THEN 'INSTITUTIONAL' END",
            ("HEALTHCARECLAIMTYPEID1",),
            "1 PROFESSIONAL, 2 INSTITUTIONAL",
        ),
        Field("member_id", _col("PATIENTID"), ("PATIENTID",), "the patient's member"),
        Field("practitioner_id", _col("PROVIDERID"), ("PROVIDERID",), "the rendering clinician"),
        Field(
            "provider_npi",
            "(SELECT p.NPI FROM providers p WHERE p.Id = s.PROVIDERID)",
            (),
            "the NPI of the claim's practitioner when providers.csv has NPI (later releases), else empty",
        ),
        Field(
            "payer_id",
            f"nullif({_col('PRIMARYPATIENTINSURANCEID')}, '0')",
            ("PRIMARYPATIENTINSURANCEID",),
            "empty for '0' (no insurance); left out without payers.csv (it could not resolve); also kept verbatim",
            needs=("payers",),
        ),
        Field("service_date", date(_col("SERVICEDATE")), ("SERVICEDATE",), "its date (UTC)"),
        Field("principal_diagnosis", _col("DIAGNOSIS1"), ("DIAGNOSIS1",), "a SNOMED code"),
        Field(
            "other_diagnoses",
            _non_null_list([_col(c) for c in _DIAGNOSES]),
            _DIAGNOSES,
            "the non-empty ones in column order; empty when none",
        ),
        Field("diagnosis_code_system", "'SNOMED'", (), "'SNOMED' (Synthea's diagnoses are SNOMED CT codes)"),
        Field(
            "total_charge",
            _sum_of("CHARGE", "AMOUNT"),
            (),
            "the sum of AMOUNT over the claim's CHARGE rows in claims_transactions.csv (empty without it)",
            needs=("claims_transactions",),
        ),
        Field(
            "total_paid",
            f"coalesce({_sum_of('PAYMENT', 'PAYMENTS')}, 0)",
            (),
            "the sum of PAYMENTS over the claim's PAYMENT rows in claims_transactions.csv (0 when none; empty"
            " without the file)",
            needs=("claims_transactions",),
        ),
    ),
    where=_claim_kept("s"),
    needs=("payer_transitions", "providers"),
    also_kept=("PRIMARYPATIENTINSURANCEID",),
    exclusions=(_NO_MEMBER, _NO_DIAGNOSIS),
    excluded=(
        Exclusion(_NO_MEMBER, f"NOT {_COVERED.format(alias='s')}"),
        Exclusion(_NO_DIAGNOSIS, f"s.DIAGNOSIS1 IS NULL AND {_COVERED.format(alias='s')}"),
    ),
    note="One claim per row. Runs when payer_transitions.csv (the members) and providers.csv (a claim names its"
    " rendering practitioner) are present. Place of service: the model's default, 11 (Synthea's claims carry"
    " none).",
)

# -- claim lines ----------------------------------------------------------------------

_POINTERS = tuple(f"DIAGNOSISREF{i}" for i in range(1, 5))


def _codes(loaded: Loaded, stem: str) -> str:
    """SQL: the (patient, encounter, code) triples of ``stem``'s file; none when it is absent."""
    if loaded.has(stem):
        return f"(SELECT DISTINCT PATIENT, ENCOUNTER, CODE FROM {ident(stem)})"
    return "(SELECT NULL::VARCHAR AS PATIENT, NULL::VARCHAR AS ENCOUNTER, NULL::VARCHAR AS CODE WHERE false)"


#: The tables the claim lines' query reads, staged first (see ``Target.staged``).
_OWNED, _FOLDED_ROWS = "claim_transactions_owned", "claim_transactions_folded"


def _claim_lines_staged(target: Target, loaded: Loaded) -> tuple[Stage, ...]:
    """Every transaction row with the CHARGE that owns it; the non-CHARGE rows folded per owning CHARGE."""
    lf = loaded.files[target.file]
    every = (*lf.present, *lf.unknown)
    # A transaction belongs to the CHARGE of its claim with the greatest
    # CHARGEID not above its own: Synthea writes a charge, then the rows that
    # settle it, numbering every row of the export in turn.
    owned = (
        "SELECT x.*, CAST(x.CHARGEID AS BIGINT) AS _charge,"
        " max(CASE WHEN x.TYPE = 'CHARGE' THEN CAST(x.CHARGEID AS BIGINT) END) OVER"
        " (PARTITION BY x.CLAIMID ORDER BY CAST(x.CHARGEID AS BIGINT), x._line ROWS UNBOUNDED PRECEDING) AS _owner"
        " FROM claims_transactions x"
    )
    folded = (
        f"SELECT o.CLAIMID, o._owner, list({_verbatim('o', every)} ORDER BY o._charge, o._line) AS transactions,"
        f" sum(CASE WHEN o.TYPE = 'PAYMENT' THEN {decimal('o.PAYMENTS')} END) AS paid"
        f" FROM {_OWNED} o WHERE o.TYPE <> 'CHARGE' AND {PART} GROUP BY o.CLAIMID, o._owner"
    )
    return (Stage(_OWNED, owned), Stage(_FOLDED_ROWS, folded, part_key="o.CLAIMID"))


def _claim_lines_sql(target: Target, loaded: Loaded) -> str:
    """One claim line per CHARGE row, with the transactions that settle it folded in (from the staged tables)."""
    system = "CASE WHEN rx.CODE IS NOT NULL THEN 'RxNorm' WHEN cvx.CODE IS NOT NULL THEN 'CVX' ELSE 'SNOMED' END"
    parts = [
        "s.ID AS id",
        "s.CLAIMID AS claim_id",
        "row_number() OVER (PARTITION BY s.CLAIMID ORDER BY s._charge, s._line) AS line_number",
        "s.PROCEDURECODE AS procedure_code",
        f"{system} AS procedure_code_system",
        f"{_non_null_list(['s.MODIFIER1', 's.MODIFIER2'])} AS procedure_modifiers",
        f"coalesce({date('s.FROMDATE')}, {date('c.SERVICEDATE')}) AS service_date",
        f"{decimal('s.UNITS')} AS units",
        f"{decimal('s.AMOUNT')} AS charge_amount",
        "coalesce(f.paid, 0)::DECIMAL(18, 2) AS paid_amount",
        f"{_non_null_list([integer('s.' + c) for c in _POINTERS])} AS diagnosis_pointers",
        f"coalesce(f.transactions, []) AS {TRANSACTIONS_KEY}",
    ]
    # The CHARGE row's columns no field consumes, but ID (the line's id).
    kept = tuple(c for c in kept_columns(target, loaded) if c != "ID")
    if kept:
        parts.append(f"{_verbatim('s', kept)} AS {EXTENSION_KEY}")
    parts.append("s._line AS _line")
    return (
        f"SELECT {', '.join(parts)} FROM {_OWNED} s"
        " JOIN claims c ON c.Id = s.CLAIMID"
        f" LEFT JOIN {_FOLDED_ROWS} f ON f.CLAIMID = s.CLAIMID AND f._owner = s._charge"
        f" LEFT JOIN {_codes(loaded, 'medications')} rx"
        " ON rx.PATIENT = s.PATIENTID AND rx.ENCOUNTER = s.APPOINTMENTID AND rx.CODE = s.PROCEDURECODE"
        f" LEFT JOIN {_codes(loaded, 'immunizations')} cvx"
        " ON cvx.PATIENT = s.PATIENTID AND cvx.ENCOUNTER = s.APPOINTMENTID AND cvx.CODE = s.PROCEDURECODE"
        f" WHERE s.TYPE = 'CHARGE' AND {_claim_kept('c')}"
    )


_FOLDED = "PAYMENT, ADJUSTMENT, TRANSFERIN and TRANSFEROUT rows: folded into their claim line, not entities"
_LINE_OF_EXCLUDED = "CHARGE rows of the claims claims.csv leaves out (see claims.csv)"

CLAIM_LINES = Target(
    file="claims_transactions",
    entity_type="claim_line",
    identity=("ID",),
    fields=(
        Field("claim_id", "s.CLAIMID", ("CLAIMID",)),
        Field(
            "line_number",
            "row_number() OVER (PARTITION BY s.CLAIMID ORDER BY CHARGEID)",
            ("CHARGEID",),
            "the CHARGE row's position among its claim's CHARGE rows by CHARGEID (1, 2, ...): CHARGEID numbers"
            " every transaction row of the export (from 0), so it is no line number; kept verbatim",
        ),
        Field("procedure_code", "s.PROCEDURECODE", ("PROCEDURECODE",)),
        Field(
            "procedure_code_system",
            "'RxNorm' / 'CVX' / 'SNOMED'",
            ("PROCEDURECODE",),
            "RxNorm when medications.csv has the code for the claim's patient and encounter (APPOINTMENTID), CVX"
            " when immunizations.csv has it, else SNOMED (encounter, procedure, device and supply codes); without"
            " those files their codes cannot be told from SNOMED ones and are taken as SNOMED",
        ),
        Field(
            "procedure_modifiers",
            "[MODIFIER1, MODIFIER2]",
            ("MODIFIER1", "MODIFIER2"),
            "the non-empty ones; empty when none",
        ),
        Field(
            "service_date",
            date("s.FROMDATE"),
            ("FROMDATE",),
            "FROMDATE's date (the claim's SERVICEDATE's when empty); kept verbatim",
        ),
        Field("units", decimal("s.UNITS"), ("UNITS",), "the model's default, 1, when empty"),
        Field("charge_amount", decimal("s.AMOUNT"), ("AMOUNT",), "the CHARGE row's AMOUNT"),
        Field(
            "paid_amount",
            "sum(PAYMENTS)",
            ("PAYMENTS",),
            "the sum of PAYMENTS over the PAYMENT rows folded into the line (0 when none)",
        ),
        Field(
            "diagnosis_pointers",
            "[DIAGNOSISREF1, ..., DIAGNOSISREF4]",
            _POINTERS,
            "the non-empty ones as whole numbers (positions among the claim's DIAGNOSIS1..8)",
        ),
        Field(
            TRANSACTIONS_KEY,
            "list of the folded rows",
            ("TYPE",),
            "the PAYMENT, ADJUSTMENT, TRANSFERIN and TRANSFEROUT rows of the line, each whole and verbatim (every"
            " column the file has, text as written), in CHARGEID order; kept in extensions",
        ),
    ),
    needs=("claims", "payer_transitions", "providers"),
    also_kept=("CHARGEID", "FROMDATE", "TYPE", "PAYMENTS"),
    query=_claim_lines_sql,
    staged=_claim_lines_staged,
    exclusions=(_FOLDED, _LINE_OF_EXCLUDED),
    excluded=(
        Exclusion(_FOLDED, "s.TYPE <> 'CHARGE'"),
        Exclusion(
            _LINE_OF_EXCLUDED,
            f"s.TYPE = 'CHARGE' AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.Id = s.CLAIMID AND {_claim_kept('c')})",
        ),
    ),
    note="One line per CHARGE row (id: its ID). A transaction belongs to the CHARGE of its claim with the greatest"
    " CHARGEID not above its own (Synthea writes each charge followed by the rows that settle it).",
)

#: The targets of this module, parents before children.
TARGETS: tuple[Target, ...] = (ORGANIZATIONS, PROVIDERS, PAYERS, MEMBERS, COVERAGES, CLAIMS, CLAIM_LINES)
