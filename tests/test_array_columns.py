"""Array fields (lists of texts or integers) encoded a column at a time give
what the value-at-a-time encoding gives, or are refused where it refuses."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthsim_state.codec import columns
from healthsim_state.codec.layout import layout

_FIELDS = {
    "modifiers (texts, at most 4)": ("claim_line", "procedure_modifiers"),
    "pointers (integers)": ("claim_line", "diagnosis_pointers"),
    "criteria (texts of a code list)": ("adverse_event", "aesae_criteria"),
    "codes (texts)": ("procedure", "diagnosis_codes"),
}


def _field(entity: str, name: str) -> Any:
    return next(f for f in layout(entity).fields if f.name == name)


_texts = st.one_of(
    st.text(max_size=6),
    st.sampled_from(
        ['a"b', "back\\slash", "line\nbreak", "\x01\x1f\x7f", "é中😀", "a\x00b", "\ud800", "Hospitalization", "Death"]
    ),
)
_items = st.one_of(
    st.lists(_texts, max_size=6),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6),
    st.lists(st.none() | _texts, max_size=3),
)
_values = st.lists(st.none() | _items, min_size=1, max_size=8)


def _by_row(field: Any, array: pa.Array) -> list[str | None] | None:
    try:
        return columns._arrays_by_row(field, array).to_pylist()
    except columns.Refused:
        return None


def _by_column(field: Any, array: pa.Array) -> list[str | None] | None:
    try:
        return columns._arrays(field, array).to_pylist()
    except columns.Refused:
        return None


@pytest.mark.parametrize("which", sorted(_FIELDS))
def test_column_at_a_time_equals_value_at_a_time(which: str) -> None:
    field = _field(*_FIELDS[which])

    @settings(max_examples=300, deadline=None)
    @given(values=_values, cut=st.integers(0, 3))
    def check(values: list[Any], cut: int) -> None:
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
            return  # texts and integers mixed in one column, or a lone surrogate: no Arrow list
        if not pa.types.is_list(array.type):
            return
        for sliced in (array, array.slice(min(cut, len(array)))):  # a slice's own items only
            assert _by_column(field, sliced) == _by_row(field, sliced)

    check()


def test_plain_lists_take_the_column_path() -> None:
    field = _field("claim_line", "procedure_modifiers")
    array = pa.array([["25", 'a"b'], None, [], ["é"]])
    assert columns._plain_arrays(field, array).to_pylist() == ['["25","a\\"b"]', None, "[]", '["é"]']
    assert columns._plain_arrays(field, pa.array([[{"k": 1}]])) is None  # objects: value at a time
    with pytest.raises(columns.Refused):
        columns._plain_arrays(field, pa.array([["1", "2", "3", "4", "5"]]))  # more than 4 items
