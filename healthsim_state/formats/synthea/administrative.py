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


#: What a claim reads from other rows and files, staged before the claims are read (see ``Target.staged``).
_FACTS = "claim_facts"


def _claim_facts(target: Target, loaded: Loaded) -> tuple[Stage, ...]:
    """Per claims.csv row (in file order, so that a range of lines is a range of the table): whether it is kept,
    the sum of AMOUNT of its CHARGE rows and of PAYMENTS of its PAYMENT rows (NULL when none), and its
    practitioner's NPI. One pass over the other files, rather than one per chunk of claims read, whose
    joins would each hold those files whole."""
    if loaded.has("claims_transactions"):
        totals = (
            f"SELECT x.CLAIMID, sum(CASE WHEN x.TYPE = 'CHARGE' THEN {decimal('x.AMOUNT')} END) AS charged,"
            f" sum(CASE WHEN x.TYPE = 'PAYMENT' THEN {decimal('x.PAYMENTS')} END) AS paid"
            " FROM claims_transactions x GROUP BY x.CLAIMID"
        )
    else:
        totals = (
            "SELECT NULL::VARCHAR AS CLAIMID, NULL::DECIMAL(38, 2) AS charged, NULL::DECIMAL(38, 2) AS paid WHERE false"
        )
    facts = (
        f"SELECT s._line, {_claim_kept('s')} AS kept, t.charged::DECIMAL(18, 2) AS charged,"
        " t.paid::DECIMAL(18, 2) AS paid, (SELECT p.NPI FROM providers p WHERE p.Id = s.PROVIDERID) AS npi"
        f" FROM claims s LEFT JOIN ({totals}) t ON t.CLAIMID = s.Id ORDER BY s._line"
    )
    return (Stage(_FACTS, facts),)


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
            "k.npi",
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
            "k.charged",
            (),
            "the sum of AMOUNT over the claim's CHARGE rows in claims_transactions.csv (empty without it)",
            needs=("claims_transactions",),
        ),
        Field(
            "total_paid",
            "coalesce(k.paid, 0)",
            (),
            "the sum of PAYMENTS over the claim's PAYMENT rows in claims_transactions.csv (0 when none; empty"
            " without the file)",
            needs=("claims_transactions",),
        ),
    ),
    where="k.kept",
    joins=(f"JOIN {_FACTS} k ON k._line = s._line",),
    needs=("payer_transitions", "providers"),
    staged=_claim_facts,
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
_KEYS, _OWNED, _CHARGES = "claim_transactions_keys", "claim_transactions_owned", "claim_transactions_charges"


def _claim_lines_staged(target: Target, loaded: Loaded) -> tuple[Stage, ...]:
    """The transaction rows' keys (narrow: no cell but those the fold reads), and each non-CHARGE row's owner."""
    # A transaction belongs to the CHARGE of its claim with the greatest
    # CHARGEID not above its own: Synthea writes a charge, then the rows that
    # settle it, numbering every row of the export in turn. One window over
    # the keys alone: a window (or an aggregate) over the 33 cells of every
    # row costs several times more.
    keys = (
        "SELECT x._line, x.CLAIMID, x.TYPE, CAST(x.CHARGEID AS BIGINT) AS _charge,"
        f" CASE WHEN x.TYPE = 'PAYMENT' THEN {decimal('x.PAYMENTS')} END AS _paid,"
        " max(CASE WHEN x.TYPE = 'CHARGE' THEN CAST(x.CHARGEID AS BIGINT) END) OVER w AS _owner,"
        " count(CASE WHEN x.TYPE = 'CHARGE' THEN 1 END) OVER w AS _line_number"
        " FROM claims_transactions x"
        " WINDOW w AS (PARTITION BY x.CLAIMID ORDER BY CAST(x.CHARGEID AS BIGINT), x._line ROWS UNBOUNDED PRECEDING)"
    )
    # Each non-CHARGE row with the line of the CHARGE row that owns it, in the
    # order the line lists them (by owner, then CHARGEID and line), so a range
    # of owners is a range of the table.
    owned = (
        f"SELECT c._line AS _owner, n._line, n._charge, n._paid FROM {_KEYS} n"
        f" JOIN {_KEYS} c ON c.CLAIMID = n.CLAIMID AND c._charge = n._owner AND c.TYPE = 'CHARGE'"
        " WHERE n.TYPE <> 'CHARGE' ORDER BY c._line, n._charge, n._line"
    )
    # Per CHARGE row of a claim that is kept, in file order (a range of lines
    # is a range of the table): what the line reads from other rows and files,
    # so that a chunk of the file's lines joins nothing else.
    system = "CASE WHEN rx.CODE IS NOT NULL THEN 'RxNorm' WHEN cvx.CODE IS NOT NULL THEN 'CVX' ELSE 'SNOMED' END"
    charges = (
        f"SELECT s._line, k._line_number, p._paid, {system} AS _system, c.SERVICEDATE AS _claim_date"
        f" FROM {_KEYS} k JOIN claims_transactions s ON s._line = k._line"
        " JOIN claims c ON c.Id = s.CLAIMID"
        f" LEFT JOIN (SELECT _owner, sum(_paid) AS _paid FROM {_OWNED} GROUP BY _owner) p"
        " ON p._owner = k._line"
        f" LEFT JOIN {_codes(loaded, 'medications')} rx"
        " ON rx.PATIENT = s.PATIENTID AND rx.ENCOUNTER = s.APPOINTMENTID AND rx.CODE = s.PROCEDURECODE"
        f" LEFT JOIN {_codes(loaded, 'immunizations')} cvx"
        " ON cvx.PATIENT = s.PATIENTID AND cvx.ENCOUNTER = s.APPOINTMENTID AND cvx.CODE = s.PROCEDURECODE"
        f" WHERE k.TYPE = 'CHARGE' AND {_claim_kept('c')} ORDER BY s._line"
    )
    return (Stage(_KEYS, keys), Stage(_OWNED, owned), Stage(_CHARGES, charges))


def _claim_lines_sql(target: Target, loaded: Loaded) -> str:
    """One claim line per CHARGE row of a claim kept (from the staged tables); its transactions are attached batch
    by batch (:func:`_claim_line_transactions`)."""
    parts = [
        "s.ID AS id",
        "s.CLAIMID AS claim_id",
        "k._line_number AS line_number",
        "s.PROCEDURECODE AS procedure_code",
        "k._system AS procedure_code_system",
        f"{_non_null_list(['s.MODIFIER1', 's.MODIFIER2'])} AS procedure_modifiers",
        f"coalesce({date('s.FROMDATE')}, {date('k._claim_date')}) AS service_date",
        f"{decimal('s.UNITS')} AS units",
        f"{decimal('s.AMOUNT')} AS charge_amount",
        "coalesce(k._paid, 0)::DECIMAL(18, 2) AS paid_amount",
        f"{_non_null_list([integer('s.' + c) for c in _POINTERS])} AS diagnosis_pointers",
        f"NULL AS {TRANSACTIONS_KEY}",  # where the attached list goes (Target.attach)
    ]
    # The CHARGE row's columns no field consumes, but ID (the line's id).
    kept = tuple(c for c in kept_columns(target, loaded) if c != "ID")
    if kept:
        parts.append(f"{_verbatim('s', kept)} AS {EXTENSION_KEY}")
    parts.append("s._line AS _line")
    return f"SELECT {', '.join(parts)} FROM claims_transactions s JOIN {_CHARGES} k ON k._line = s._line"


def _claim_line_transactions(target: Target, loaded: Loaded, first: int, last: int) -> str:
    """The transactions the CHARGE rows of lines ``first`` to ``last`` own: their owner's line and the row, whole
    and verbatim (every column the file has, text as written), in the order the line lists them."""
    lf = loaded.files[target.file]
    # The rows lie near their charges in the file: bounding their lines lets DuckDB skip the rest of the file.
    low, high = loaded.con.execute(
        f"SELECT min(_line), max(_line) FROM {_OWNED} WHERE _owner BETWEEN ? AND ?", [first, last]
    ).fetchone()  # type: ignore[misc]
    return (
        f"SELECT o._owner, {_verbatim('x', (*lf.present, *lf.unknown))} AS value FROM {_OWNED} o"
        " JOIN claims_transactions x ON x._line = o._line"
        f" WHERE o._owner BETWEEN {first} AND {last} AND x._line BETWEEN {low or 0} AND {high or 0}"
        " ORDER BY o._owner, o._charge, o._line"
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
    row_wise=True,
    staged=_claim_lines_staged,
    attach={TRANSACTIONS_KEY: _claim_line_transactions},
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
