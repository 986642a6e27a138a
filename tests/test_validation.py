"""Every value rule refuses a bad value, naming the field and the reason.

The cases derive from the rule tables (healthsim_state.rules) and the field
layouts, so a rule added there is tested here. Each case changes one field
of a valid document from the canonical example and runs what a save runs
before writing (encode, then check_row); the repository tests show that
those problems reach the caller, on both backends, and that nothing is
written.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from healthsim_models import ENTITY_TYPES
from healthsim_state import rules
from healthsim_state.fields import layout
from healthsim_state.serialization import encode
from healthsim_state.validation import check_row
from tests.helpers import fixture

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
EXAMPLE = fixture("scenario-canonical.json")["entities"]
_DROP = object()  # remove the field instead of setting it


def _with(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *outer, last = dotted.split(".")
    target = doc
    for key in outer:
        target = target.setdefault(key, {})
    if value is _DROP:
        target.pop(last, None)
    else:
        target[last] = value
    return doc


def _problems(type_name: str, doc: dict[str, Any]) -> list[tuple[str, str]]:
    lay = layout(type_name)
    row, problems = encode(lay, doc, NOW)
    return problems + check_row(lay, row)


def _kind(type_name: str, dotted: str) -> str:
    return next(f.kind for f in layout(type_name).fields if f.name == dotted)


def _day(kind: str, day: int) -> str:
    return f"2030-01-{day:02d}" + ("T00:00:00Z" if kind == "datetime" else "")


def _cases() -> list[Any]:
    cases = []

    def case(type_name: str, changes: dict[str, Any], field: str, reason: str) -> None:
        cases.append(pytest.param(type_name, changes, field, reason, id=f"{type_name}.{field}:{reason}"))

    for type_name, fields in rules.PATTERNS.items():
        for name in fields:
            case(type_name, {name: "x"}, name, "does not match the pattern")
    for type_name, fields in rules.ENUMS.items():
        for name in fields:
            case(type_name, {name: "not-a-code"}, name, "is not one of")
    for type_name, fields in rules.RANGES.items():
        for name, (low, high) in fields.items():
            case(type_name, {name: low - 1 if low is not None else high + 1}, name, "is outside")
    for type_name, pairs in rules.ORDERINGS.items():
        for start, end in pairs:
            kind = _kind(type_name, start)
            case(type_name, {start: _day(kind, 2), end: _day(kind, 1)}, end, f"is before {start}")
    for type_name, fields in rules.ARRAYS.items():
        for name, (item_kind, max_len) in fields.items():
            case(type_name, {name: [1] if item_kind == "str" else ["a"]}, name, "item 0 should be")
            if max_len is not None:
                case(type_name, {name: ["A"] * (max_len + 1)}, name, f"at most {max_len} items")
    for et in ENTITY_TYPES:
        for f in layout(et.name).fields:
            if f.required:
                case(et.name, {f.name: _DROP}, f.name, "required")
            if f.kind == "str":
                case(et.name, {f.name: 5}, f.name, "expected a string")
            elif f.kind == "date":
                case(et.name, {f.name: "2024-02-30"}, f.name, "not a real calendar day")
            elif f.kind == "datetime":
                case(et.name, {f.name: "2024-01-01 10:00"}, f.name, "expected a date-time")
            elif f.kind == "int":
                case(et.name, {f.name: 2**31}, f.name, "out of the integer range")
                case(et.name, {f.name: True}, f.name, "expected an integer")
            elif f.kind == "bool":
                case(et.name, {f.name: "yes"}, f.name, "expected true or false")
            elif f.kind == "decimal":
                assert f.precision is not None and f.scale is not None
                places = "1." + "1" * (f.scale + 1)
                case(et.name, {f.name: float(places)}, f.name, f"more than {f.scale} decimal places")
                case(et.name, {f.name: 10 ** (f.precision - f.scale)}, f.name, "too large")
                case(et.name, {f.name: "12"}, f.name, "expected a number")
            elif f.kind == "array":
                case(et.name, {f.name: "A"}, f.name, "expected an array")
    return cases


def test_the_example_documents_are_valid() -> None:
    for type_name, docs in EXAMPLE.items():
        for doc in docs:
            assert _problems(type_name, doc) == [], (type_name, doc.get("id"))


@pytest.mark.parametrize(("type_name", "changes", "field", "reason"), _cases())
def test_a_bad_value_is_refused_with_field_and_reason(
    type_name: str, changes: dict[str, Any], field: str, reason: str
) -> None:
    doc = EXAMPLE[type_name][0]
    for name, value in changes.items():
        doc = _with(doc, name, value)
    problems = _problems(type_name, doc)
    assert any(f == field and reason in r for f, r in problems), problems


def test_every_entity_type_has_cases() -> None:
    covered = {p.values[0] for p in _cases()}
    assert covered == {et.name for et in ENTITY_TYPES}


def test_prescription_refill_rules() -> None:
    doc = _with(EXAMPLE["prescription"][0], "refills_authorized", 1)
    doc = _with(doc, "refills_remaining", 2)
    assert ("refills_remaining", "2 is more than refills_authorized 1") in _problems("prescription", doc)
    doc = _with(_with(EXAMPLE["prescription"][0], "patient_mrn", _DROP), "member_id", _DROP)
    assert any(f == "patient_mrn" and "needs patient_mrn or member_id" in r for f, r in _problems("prescription", doc))


def test_person_death_rules() -> None:
    doc = _with(_with(EXAMPLE["patient"][0], "deceased", False), "death_date", "2020-01-01")
    assert ("death_date", "given without deceased: true") in _problems("patient", doc)
    doc = _with(_with(EXAMPLE["patient"][0], "deceased", True), "death_date", "1900-01-01")
    assert any(f == "death_date" and "is before birth_date" in r for f, r in _problems("patient", doc))


def test_serious_adverse_event_criteria_are_checked() -> None:
    doc = _with(EXAMPLE["adverse_event"][0], "aesae_criteria", ["Hospitalization", "Bad Day"])
    assert any(f == "aesae_criteria" and "'Bad Day' is not one of" in r for f, r in _problems("adverse_event", doc))


def test_a_bare_date_is_a_date_time_only_where_the_reference_allows_it() -> None:
    assert _problems("medication", _with(EXAMPLE["medication"][0], "start_date", "2024-03-01")) == []
    problems = _problems("encounter", _with(EXAMPLE["encounter"][0], "admission_time", "2024-03-01"))
    assert any(f == "admission_time" and "expected a date-time" in r for f, r in problems)
