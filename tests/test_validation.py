"""Every value rule refuses a bad value, naming the field and the reason.

The cases derive from the field layouts and the rules declared on the model
columns (healthsim_models.columns), so a rule added there is tested here. Each case changes one field
of a valid document from the canonical example and runs what a save runs
before writing (encode, then check_row); the repository tests show that
those problems reach the caller, on both backends, and that nothing is
written.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from healthsim_models import ENTITY_TYPES
from healthsim_state.codec import document as serialization
from healthsim_state.codec import values
from healthsim_state.codec.checks import check_row
from healthsim_state.codec.document import encode
from healthsim_state.codec.layout import Field, layout
from tests.helpers import fixture

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
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


#: ASCII digits to Arabic-Indic ones, which Python's \d (and int()) would take for digits.
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _digits_of(type_name: str, dotted: str) -> str | None:
    """The example document's value of the field when it is a text of digits only."""
    value: Any = EXAMPLE[type_name][0]
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value.isascii() and value.isdigit() else None


def _day(kind: str, day: int) -> str:
    return f"2030-01-{day:02d}" + ("T00:00:00Z" if kind == "datetime" else "")


def _cases() -> list[Any]:
    cases = []

    def case(type_name: str, changes: dict[str, Any], field: str, reason: str) -> None:
        cases.append(pytest.param(type_name, changes, field, reason, id=f"{type_name}.{field}:{reason}"))

    for et in ENTITY_TYPES:
        for f in layout(et.name).fields:
            if f.pattern is not None:
                case(et.name, {f.name: "x"}, f.name, "does not match the pattern")
                digits = _digits_of(et.name, f.name)
                if digits is not None:  # the example's value in another script's digits
                    case(et.name, {f.name: digits.translate(_ARABIC_INDIC)}, f.name, "does not match the pattern")
            if f.enum:
                case(et.name, {f.name: "not-a-code"}, f.name, "is not one of")
            if f.minimum is not None:
                case(et.name, {f.name: f.minimum - 1}, f.name, "is outside")
            if f.maximum is not None:
                case(et.name, {f.name: f.maximum + 1}, f.name, "is outside")
            if f.not_before is not None:
                days = {f.not_before: _day(f.kind, 2), f.name: _day(f.kind, 1)}
                case(et.name, days, f.name, f"is before {f.not_before}")
            if f.kind == "array":
                case(et.name, {f.name: [1] if f.items == "str" else ["a"]}, f.name, "item 0 should be")
                if f.items == "object":  # what is inside an object item, named by its path
                    case(et.name, {f.name: [{}, {"note": "a\x00"}]}, f.name, "item 1.note contains a NUL")
                    case(et.name, {f.name: [{"severity": float("nan")}]}, f.name, "item 0.severity nan is not")
                if f.max_items is not None:
                    case(et.name, {f.name: ["A"] * (f.max_items + 1)}, f.name, f"at most {f.max_items} items")
                if f.item_enum:
                    case(et.name, {f.name: ["not-a-code"]}, f.name, "is not one of")
            if f.required:
                case(et.name, {f.name: _DROP}, f.name, "required")
            if f.kind == "str":
                case(et.name, {f.name: 5}, f.name, "expected a string")
            elif f.kind == "date":
                case(et.name, {f.name: "2024-02-30"}, f.name, "not a real calendar day")
                case(et.name, {f.name: "2024-01-15".translate(_ARABIC_INDIC)}, f.name, "expected a date YYYY-MM-DD")
            elif f.kind == "datetime":
                case(et.name, {f.name: "2024-01-01 10:00"}, f.name, "expected a date-time")
                case(et.name, {f.name: "2024-01-15T10:00:00Z".translate(_ARABIC_INDIC)}, f.name, "expected a date-time")
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


def _ruled(predicate: Callable[[Field], object]) -> list[tuple[str, Field]]:
    return [(et.name, f) for et in ENTITY_TYPES for f in layout(et.name).fields if predicate(f)]


def test_every_column_rule_has_a_case() -> None:
    cases = [(p.values[0], p.values[2], p.values[3]) for p in _cases()]

    def count(type_name: str, field: str, reason: str) -> int:
        return sum(1 for t, f, r in cases if (t, f) == (type_name, field) and reason in r)

    for predicate, reason in (
        (lambda f: f.pattern is not None, "does not match"),
        (lambda f: f.enum or f.item_enum, "is not one of"),
        (lambda f: f.kind == "array", "item 0 should be"),
        (lambda f: f.not_before is not None, "is before"),
    ):
        for type_name, f in _ruled(predicate):
            assert count(type_name, f.name, reason), (type_name, f.name)
    for type_name, f in _ruled(lambda f: f.minimum is not None or f.maximum is not None):
        # each bound on its own
        assert count(type_name, f.name, "is outside") == (f.minimum is not None) + (f.maximum is not None)
    # The vocabulary's rules are all in use (a sample that the models declare them).
    assert len(_ruled(lambda f: f.pattern is not None)) >= 20
    assert len(_ruled(lambda f: f.not_before is not None)) == 13
    assert _ruled(lambda f: f.items == "object")  # arrays of objects (allergy.reactions)


PROVENANCE_CASES = [
    ({"source_type": "made-up"}, "_provenance.source_type", "is not one of"),
    ({"source_system": "patientsim"}, "_provenance.source_type", "required in _provenance"),
    ({"source_type": "generated", "source_system": "othersim"}, "_provenance.source_system", "is not one of"),
    ({"source_type": "generated", "skill_used": 5}, "_provenance.skill_used", "expected a string"),
    ({"source_type": "generated", "generation_seed": 2**63}, "_provenance.generation_seed", "64-bit seed"),
    ({"source_type": "generated", "generation_seed": "7"}, "_provenance.generation_seed", "expected an integer"),
    ({"source_type": "generated", "generation_seed": True}, "_provenance.generation_seed", "expected an integer"),
    ({"source_type": "generated", "created_at": "noon"}, "_provenance.created_at", "expected a date-time"),
    ("generated", "_provenance", "expected an object"),
]


@pytest.mark.parametrize(("provenance", "field", "reason"), PROVENANCE_CASES)
def test_a_bad_provenance_is_refused_with_field_and_reason(provenance: Any, field: str, reason: str) -> None:
    problems = _problems("patient", _with(EXAMPLE["patient"][0], "_provenance", provenance))
    assert any(f == field and reason in r for f, r in problems), problems


@pytest.mark.parametrize(("first", "then"), [(True, 1), (1, True), (1.0, 1), (1, 1.0)])
def test_equal_but_differently_typed_seeds_are_judged_each_on_its_own(
    first: Any, then: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Provenance blocks are parsed once per distinct block; True == 1 == 1.0
    # must not make one block's verdict the other's.
    monkeypatch.setattr(serialization, "_PROV_CACHE", {})

    def seed_problems(seed: Any) -> list[tuple[str, str]]:
        prov = {"source_type": "generated", "generation_seed": seed}
        return [
            p
            for p in _problems("patient", _with(EXAMPLE["patient"][0], "_provenance", prov))
            if p[0] == "_provenance.generation_seed"
        ]

    seed_problems(first)
    assert (seed_problems(then) == []) is (then.__class__ is int)


def test_a_number_accepted_in_one_column_is_judged_anew_in_another() -> None:
    # Floats are checked once per (value, precision, scale): a value that
    # fits exdose DECIMAL(12, 4) must still be refused by temperature
    # DECIMAL(5, 2), every time it comes.
    values.DECIMAL_CACHE.clear()
    for value in (1.2345, 1234.5):
        assert not [
            p for p in _problems("exposure", _with(EXAMPLE["exposure"][0], "exdose", value)) if p[0] == "exdose"
        ]
        for _ in range(2):
            problems = _problems("vital_sign", _with(EXAMPLE["vital_sign"][0], "temperature", value))
            assert any(f == "temperature" and ("decimal places" in r or "too large" in r) for f, r in problems)
    row, _ = encode(layout("vital_sign"), _with(EXAMPLE["vital_sign"][0], "temperature", 98.6), NOW)
    again, _ = encode(layout("vital_sign"), _with(EXAMPLE["vital_sign"][0], "temperature", 98.6), NOW)
    assert row["temperature"] == again["temperature"] == Decimal("98.6")


def test_a_repeated_date_time_keeps_its_text_every_time() -> None:
    # Date-time texts are parsed once; each document still records its offset text.
    doc = _with(EXAMPLE["encounter"][0], "admission_time", "2025-03-04T09:15:00-05:00")
    rows = [encode(layout("encounter"), doc, NOW)[0] for _ in range(2)]
    for row in rows:
        assert row["admission_time"] == dt.datetime(2025, 3, 4, 14, 15, tzinfo=dt.UTC)
        assert '"admission_time":"2025-03-04T09:15:00-05:00"' in row["extensions"]


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
    bare = _ruled(lambda f: f.bare_date_ok)
    assert {(t, f.name) for t, f in bare} == {
        ("medication", "start_date"),
        ("medication", "end_date"),
        ("observation", "effective_datetime"),
        ("allergy", "onset_datetime"),
        ("allergy", "abatement_datetime"),
        ("immunization", "occurrence_datetime"),
        ("care_plan", "period_start"),
        ("care_plan", "period_end"),
        ("device", "period_start"),
        ("device", "period_end"),
        ("supply", "occurrence_datetime"),
        ("imaging_study", "started"),
        ("coverage", "period_start"),
        ("coverage", "period_end"),
    }
    for type_name, f in bare:
        day = "2099-03-01" if f.not_before else "1999-03-01"  # an end after its start, a start before its end
        assert _problems(type_name, _with(EXAMPLE[type_name][0], f.name, day)) == [], f.name
    problems = _problems("encounter", _with(EXAMPLE["encounter"][0], "admission_time", "2024-03-01"))
    assert any(f == "admission_time" and "expected a date-time" in r for f, r in problems)
