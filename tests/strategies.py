"""Hypothesis strategies for valid canonical entities of every type.

Derived from the field layouts (kinds, required fields, defaults and the
rules declared on the columns), so a new column or rule is covered without
editing this file.
A scenario is drawn as: one parent of each keyed parent type, then every
type's entities referencing them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from healthsim_models import ENTITY_TYPES, vocab
from healthsim_state.codec.layout import Field, layout

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12
)
KEY_TEXT = st.from_regex(r"[A-Z0-9-]{1,10}", fullmatch=True)
DATES = st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31))


@st.composite
def datetime_text(draw: st.DrawFn, bare_ok: bool = False) -> str:
    """Date-times in every accepted spelling: Z, offsets, naive, fractions, no seconds."""
    moment = draw(st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2090, 1, 1)))
    style = draw(st.sampled_from(["Z", "offset", "naive", "minutes", "fraction"] + (["bare"] if bare_ok else [])))
    base = moment.replace(microsecond=0).isoformat()
    if style == "Z":
        return base + "Z"
    if style == "offset":
        hours = draw(st.integers(-12, 14))
        return f"{base}{'+' if hours >= 0 else '-'}{abs(hours):02d}:{draw(st.sampled_from(['00', '30']))}"
    if style == "naive":
        return base
    if style == "minutes":
        return base[:16] + "Z"
    if style == "fraction":
        return moment.isoformat(timespec="microseconds") + "Z"
    return moment.date().isoformat()


def _decimal(field: Field, low: float | None, high: float | None) -> st.SearchStrategy[Any]:
    assert field.precision is not None and field.scale is not None
    limit = Decimal(10) ** (field.precision - field.scale) - 1
    low_d = Decimal(str(low)) if low is not None else -limit
    high_d = min(Decimal(str(high)), limit) if high is not None else limit
    decimals = st.decimals(low_d, high_d, places=field.scale, allow_nan=False, allow_infinity=False)
    # Callers send floats (JSON numbers) or Decimals.
    return decimals | decimals.map(float).filter(lambda f: Decimal(str(f)).as_tuple().exponent >= -field.scale)


#: Items of arrays of objects: JSON objects of a few keys, one of them nested.
OBJECTS = st.dictionaries(
    st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
    st.none() | st.booleans() | st.integers(-10, 10) | TEXT | st.lists(TEXT, max_size=2),
    max_size=3,
)


def value_strategy(type_name: str, field: Field) -> st.SearchStrategy[Any]:
    if field.enum:
        return st.sampled_from(sorted(field.enum))
    pattern = field.pattern
    if pattern is vocab.EMAIL:
        return st.from_regex(r"[a-z0-9.]{1,8}@[a-z]{1,8}\.[a-z]{2,4}", fullmatch=True)
    if pattern is not None:
        # \d also matches non-ASCII digits; the rules mean 0-9.
        return st.from_regex(pattern.pattern.replace(r"\d", "[0-9]"), fullmatch=True)
    low, high = field.minimum, field.maximum
    if field.kind == "str":
        return TEXT
    if field.kind == "date":
        return DATES.map(dt.date.isoformat)
    if field.kind == "datetime":
        return datetime_text(bare_ok=field.bare_date_ok)
    if field.kind == "int":
        return st.integers(int(low) if low is not None else -1000, int(high) if high is not None else 100_000)
    if field.kind == "decimal":
        return _decimal(field, low, high)
    if field.kind == "bool":
        return st.booleans()
    if field.item_enum:
        items: st.SearchStrategy[Any] = st.sampled_from(sorted(field.item_enum))
    else:
        items = {"str": TEXT, "int": st.integers(1, 12), "object": OBJECTS}[field.items]
    return st.lists(items, max_size=field.max_items or 3)


# Fields whose values come from the scenario's parents or keep cross-field rules simple.
def _managed(type_name: str) -> set[str]:
    et = next(e for e in ENTITY_TYPES if e.name == type_name)
    managed = {ref.field for ref in et.references} | set(et.business_key)
    managed |= {f.name for f in layout(type_name).fields if f.not_before is not None}
    managed |= {"death_date", "deceased", "refills_remaining"}
    return managed


PROVENANCE = st.fixed_dictionaries(
    {"source_type": st.sampled_from(sorted(vocab.SOURCE_TYPES))},
    optional={
        "source_system": st.none() | st.sampled_from(sorted(vocab.SOURCE_SYSTEMS)),
        "skill_used": TEXT,
        "generation_seed": st.integers(-(2**63), 2**63 - 1),
        "created_at": datetime_text(),
        "derived_from": st.lists(TEXT, max_size=2),
        "generation_params": st.fixed_dictionaries({"seed": st.integers(0, 99)}),
    },
)
UNKNOWN = st.dictionaries(
    st.from_regex(r"x_[a-z]{1,6}", fullmatch=True),
    st.none() | st.booleans() | st.integers(-10, 10) | TEXT | st.lists(st.integers(0, 5), max_size=2),
    max_size=2,
)


@st.composite
def entity(draw: st.DrawFn, type_name: str, index: int, parents: dict[str, str]) -> dict[str, Any]:
    """One valid entity; ``parents`` maps reference fields to existing parent keys."""
    lay = layout(type_name)
    managed = _managed(type_name)
    doc: dict[str, Any] = {}
    for field in lay.fields:
        if field.name in managed or field.column in managed:
            continue
        if field.required:
            choice = "value"
        else:
            choice = draw(st.sampled_from(["value", "absent", "null"]))
        if choice == "absent":
            continue
        strategy = value_strategy(type_name, field)
        if field.required and field.kind == "str":
            strategy = strategy.filter(str.strip)  # required means non-blank
        value = None if choice == "null" else draw(strategy)
        if len(field.path) == 1:
            doc[field.name] = value
        else:
            doc.setdefault(field.path[0], {})[field.path[1]] = value
    et = lay.entity
    for key in et.business_key:
        if key not in parents:
            doc[key] = _key_value(lay.fields, key, index, type_name)
    doc.update(parents)
    for f in lay.fields:
        start, end = f.not_before, f.name
        if start is not None and doc.get(start) is not None and (f.required or draw(st.booleans())):
            doc[end] = doc[start]  # equal is allowed: the end is not before the start
    if "deceased" in lay.column_of:
        if draw(st.booleans()):
            doc["deceased"] = True
            if draw(st.booleans()):
                doc["death_date"] = doc["birth_date"]
        elif draw(st.booleans()):
            doc["deceased"] = False
    if type_name == "prescription" and "refills_authorized" in doc and doc["refills_authorized"] is not None:
        doc["refills_remaining"] = draw(st.integers(0, doc["refills_authorized"]))
    if type_name == "claim" and doc.get("provider_npi") is None and doc.get("practitioner_id") is None:
        doc["provider_npi"] = draw(st.from_regex(vocab.NPI.pattern, fullmatch=True))  # one of them is needed
    if et.person or draw(st.booleans()):
        doc["id"] = f"{type_name.upper()}-{index}"
    if draw(st.booleans()):
        doc["_provenance"] = draw(PROVENANCE)
    for key, value in draw(UNKNOWN).items():
        doc.setdefault(key, value)
    if lay.groups and draw(st.booleans()):
        group = draw(st.sampled_from(sorted(lay.groups)))
        if isinstance(doc.get(group), dict):
            doc[group]["x_nested"] = "kept"
    return doc


def _key_value(fields: tuple[Field, ...], key: str, index: int, type_name: str) -> Any:
    kind = next(f.kind for f in fields if f.column == key)
    if kind == "int":
        return index + 1
    if kind == "decimal":
        return Decimal(index + 1) + Decimal("0.1")
    if key == "usubjid":
        return f"STUDY-101-{index:04d}"
    return f"{type_name.upper()}-KEY-{index}"


PARENT_FIELDS = {
    "patient_mrn": ("patient", "mrn"),
    "patient_ref": ("patient", "mrn"),
    "encounter_id": ("encounter", "encounter_id"),
    "member_id": ("member", "member_id"),
    "subscriber_id": ("member", "member_id"),
    "claim_id": ("claim", "claim_id"),
    "prescription_number": ("prescription", "prescription_number"),
    "usubjid": ("subject", "usubjid"),
    "organization_id": ("organization", "organization_id"),
    "practitioner_id": ("practitioner", "practitioner_id"),
    "payer_id": ("payer", "payer_id"),
    "secondary_payer_id": ("payer", "payer_id"),
}


@st.composite
def scenario_entities(draw: st.DrawFn, max_per_type: int = 2) -> dict[str, list[dict[str, Any]]]:
    """Valid entities of every type with consistent references."""
    entities: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, str] = {}
    for et in ENTITY_TYPES:
        count = draw(
            st.integers(1 if (et.business_key and not et.references) or et.name in _PARENTS else 0, max_per_type)
        )
        docs = []
        for i in range(count):
            parents = {}
            for ref in et.references:
                parent_type, _ = PARENT_FIELDS[ref.field]
                if parent_type in keys and parent_type != et.name:
                    parents[ref.field] = keys[parent_type]
            if et.name == "subject":
                parents["usubjid"] = f"STUDY-101-{i:04d}"
                parents["study_id"] = "STUDY"
                parents["site_id"] = "101"
                parents["subject_id"] = f"{i:04d}"
            docs.append(draw(entity(et.name, i, parents)))
        if docs and et.business_key:
            keys[et.name] = docs[0][et.business_key[0]]
        entities[et.name] = docs
    return entities


_PARENTS = {"patient", "encounter", "member", "claim", "prescription", "subject"}


# -- arbitrary JSON values (tests/test_properties.py feeds them into every field) ------

#: Characters that stores trip on: NUL, lone surrogates (high, low), a line
#: separator, a BOM, 2- and 4-byte UTF-8.
AWKWARD = st.sampled_from(["\x00", "\udcff", "\ud800", "\ud83d", "\ude00", "\u2028", "\ufeff", "é", "\U0001f600"])
# A surrogate pair's halves in order are still two lone code points in Python.
ANY_TEXT = st.text(alphabet=st.characters() | AWKWARD, max_size=20) | st.just("pair \ud83d\ude00")
LONG_TEXT = st.integers(480, 3000).map(lambda n: "\U0001f600x" * (n // 2)) | st.just("y" * (1 << 20))
# Beyond 64 bits, up to either side of the 4,000 digits JSON values may have; not
# beyond 4,300 digits, which Python refuses to repr() (test_values.py has one).
HUGE_INTS = st.sampled_from([31, 63, 64, 100, 13_280, 13_300, 14_000]).flatmap(
    lambda bits: st.sampled_from([2**bits, -(2**bits) - 1])
)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
    | LONG_TEXT
    # Values some field accepts, so that saves succeed too.
    | st.sampled_from(["2024-01-02", "2024-01-02T10:00:00-05:00", "F", "1234567890", "Completed", "generated"])
)


def _nested(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


DEEP = st.builds(_nested, st.sampled_from([99, 100, 101, 5000]), st.just(1))
JSON_VALUES = (
    st.recursive(
        JSON_SCALARS,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(ANY_TEXT | st.sampled_from(["$store", "id", "name"]), children, max_size=3)
        ),
        max_leaves=8,
    )
    | DEEP
)
