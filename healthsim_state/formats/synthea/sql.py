"""SQL building blocks of the Synthea mapping (DuckDB dialect).

The source tables hold every cell as text (VARCHAR, NULL for an empty
cell); the reader has checked that typed columns parse, so these
expressions convert without failing.
"""

from __future__ import annotations

import uuid

#: The namespace of the UUIDs derived for Synthea rows without an ``Id``
#: (RFC 4122 version 5): ``uuid.uuid5(SYNTHEA_NAMESPACE, name)``, where
#: ``name`` is the file stem and the natural key's values joined by U+001F.
SYNTHEA_NAMESPACE = uuid.UUID("6f1c1d0e-5b7a-5c1e-9a57-5e7a0a11c5a1")

_SEPARATOR = "\x1f"


def quote(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def derived_uuid(file: str, *exprs: str) -> str:
    """SQL for the version-5 UUID of a row identified by ``exprs`` (text) in ``file``.

    Equal to ``uuid.uuid5(SYNTHEA_NAMESPACE, file + "\\x1f" + "\\x1f".join(values))``
    with NULL values as empty text, so Python and SQL derive the same id.
    """
    parts = " || ".join([quote(file), *(f"{quote(_SEPARATOR)} || coalesce({e}, '')" for e in exprs)])
    digest = f"sha1(unhex({quote(SYNTHEA_NAMESPACE.hex)}) || encode({parts}))"
    # RFC 4122: the first 16 bytes of the SHA-1, version nibble 5, variant bits 10.
    hexed = (
        f"substr({digest}, 1, 12) || '5' || substr({digest}, 14, 3)"
        f" || substr('89ab', (('0x' || substr({digest}, 17, 1))::INTEGER & 3) + 1, 1)"
        f" || substr({digest}, 18, 15)"
    )
    return (
        f"(SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-'"
        f" || substr(h, 17, 4) || '-' || substr(h, 21, 12) FROM (SELECT {hexed} AS h))"
    )


def derived_uuid_py(file: str, *values: str | None) -> uuid.UUID:
    """The UUID :func:`derived_uuid` computes, in Python (tests, and callers that hold one row)."""
    return uuid.uuid5(SYNTHEA_NAMESPACE, _SEPARATOR.join([file, *(v or "" for v in values)]))


def timestamp(expr: str) -> str:
    """SQL: a Synthea date (``2009-09-27``) or date-time (``2023-01-27T16:17:47Z``) as TIMESTAMPTZ (UTC)."""
    return f"CAST({expr} AS TIMESTAMPTZ)"


def date(expr: str) -> str:
    """SQL: a Synthea date or date-time as the DATE it falls on in UTC."""
    return f"CAST(timezone('UTC', CAST({expr} AS TIMESTAMPTZ)) AS DATE)"


def decimal(expr: str, scale: int = 2) -> str:
    """SQL: a number text as DECIMAL(18, scale), rounded half away from zero."""
    return f"round(CAST({expr} AS DECIMAL(38, 10)), {scale})::DECIMAL(18, {scale})"


def integer(expr: str) -> str:
    """SQL: a number text (``"73.0"``) as a BIGINT, rounded half away from zero."""
    return f"CAST(round(CAST({expr} AS DOUBLE)) AS BIGINT)"


#: US state, district and territory names (as Synthea writes them) -> USPS codes.
STATE_CODES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI",
    "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
    "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Puerto Rico": "PR", "Guam": "GU", "American Samoa": "AS",
    "Northern Mariana Islands": "MP", "U.S. Virgin Islands": "VI", "United States Virgin Islands": "VI",
}  # fmt: skip


def state_code(expr: str) -> str:
    """SQL: the two-letter code of a state name (any case), a two-letter code as is, else NULL."""
    names = " ".join(f"WHEN {quote(name.upper())} THEN {quote(code)}" for name, code in STATE_CODES.items())
    upper = f"upper(trim({expr}))"
    return f"CASE {upper} {names} ELSE CASE WHEN regexp_full_match({upper}, '[A-Z]{{2}}') THEN {upper} END END"


#: How Synthea names code systems (SYSTEM columns: names or FHIR URIs) -> the canonical code_system values.
CODE_SYSTEMS = {
    "SNOMED-CT": "SNOMED",
    "SNOMED": "SNOMED",
    "SNOMEDCT": "SNOMED",
    "HTTP://SNOMED.INFO/SCT": "SNOMED",
    "RXNORM": "RxNorm",
    "HTTP://WWW.NLM.NIH.GOV/RESEARCH/UMLS/RXNORM": "RxNorm",
    "LOINC": "LOINC",
    "HTTP://LOINC.ORG": "LOINC",
    "CVX": "CVX",
    "HTTP://HL7.ORG/FHIR/SID/CVX": "CVX",
    "ICD-10-CM": "ICD-10-CM",
    "ICD10CM": "ICD-10-CM",
    "ICD-10": "ICD-10-CM",
    "HTTP://HL7.ORG/FHIR/SID/ICD-10-CM": "ICD-10-CM",
    "ICD-10-PCS": "ICD-10-PCS",
    "DICOM": "DICOM",
    "CPT": "CPT",
    "HCPCS": "HCPCS",
    "UNII": "UNII",
}


def code_system(expr: str, default: str | None = None) -> str:
    """SQL: a Synthea SYSTEM value as the canonical code system; ``default`` when empty, NULL when unknown."""
    names = " ".join(f"WHEN {quote(k)} THEN {quote(v)}" for k, v in CODE_SYSTEMS.items())
    empty = quote(default) if default else "NULL"
    return f"CASE WHEN {expr} IS NULL THEN {empty} ELSE CASE upper(trim({expr})) {names} END END"
