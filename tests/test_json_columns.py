"""JSON text written column by column equals ``json_text`` of each value, for
the Arrow types it writes, whatever the texts hold; types it does not write
and texts no backend stores are left to the row-by-row path."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthsim_state.codec.columns import _NUL_OR_NOT_ASCII, Refused, _check_texts
from healthsim_state.codec.json_columns import _NEEDS_ESCAPE, json_texts, may_match
from healthsim_state.codec.values import json_text

_texts = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), _texts)


def _check(column: pa.Array) -> None:
    _check_texts(column, required=False)


@st.composite
def _typed_values(draw: st.DrawFn) -> tuple[pa.DataType, list[Any]]:
    """An Arrow type of texts, integers, booleans, structs and lists, and values of it."""

    def values_of(kind: pa.DataType) -> st.SearchStrategy[Any]:
        if pa.types.is_struct(kind):
            return st.none() | st.fixed_dictionaries({f.name: values_of(f.type) for f in kind})
        if pa.types.is_list(kind):
            return st.none() | st.lists(values_of(kind.value_type), max_size=3)
        return (
            st.none()
            | {pa.string(): _texts, pa.int64(): st.integers(-(2**63), 2**63 - 1), pa.bool_(): st.booleans()}[kind]
        )

    leaves = st.sampled_from([pa.string(), pa.int64(), pa.bool_()])
    names = st.lists(_texts, min_size=1, max_size=3, unique=True)
    kinds = st.recursive(
        leaves,
        lambda inner: (
            st.builds(pa.list_, inner)
            | names.flatmap(
                lambda ns: st.lists(inner, min_size=len(ns), max_size=len(ns)).map(
                    lambda ts, ns=ns: pa.struct(list(zip(ns, ts, strict=True)))
                )
            )
        ),
        max_leaves=6,
    )
    kind = draw(kinds)
    return kind, draw(st.lists(values_of(kind), min_size=1, max_size=6))


@given(typed=_typed_values(), cut=st.integers(0, 3))
def test_each_value_is_written_as_json_text_writes_it(typed: tuple[pa.DataType, list[Any]], cut: int) -> None:
    kind, values = typed
    array = pa.array(values, type=kind)
    array = array.slice(min(cut, len(array) - 1))  # slices read only their own items
    written = json_texts(array, _check)
    assert written is not None
    assert written.to_pylist() == [json_text(v) for v in array.to_pylist()]


def test_texts_that_need_escaping() -> None:
    values = ['a"b', "back\\slash", "line\nfeed\ttab\r\x08\x0c", "\x01\x1f\x7f", "é ☃ 😀", "", None]
    written = json_texts(pa.array(values), _check)
    assert written is not None and written.to_pylist() == [json_text(v) for v in values]


@pytest.mark.parametrize(
    "array",
    [pa.array([1.5, None]), pa.array([{"a": 1.5}]), pa.array([[pa.scalar(1, pa.decimal128(5, 2)).as_py()]])],
)
def test_types_it_does_not_write_are_left_to_the_rows(array: pa.Array) -> None:
    assert json_texts(array, _check) is None


def test_a_struct_with_repeated_keys_is_left_to_the_rows() -> None:
    array = pa.StructArray.from_arrays([pa.array(["x"]), pa.array(["y"])], names=["k", "k"])
    assert json_texts(array, _check) is None


def test_a_text_no_backend_stores_refuses_the_slice() -> None:
    with pytest.raises(Refused):
        json_texts(pa.array([{"a": "nul\x00"}]), _check)


_PATTERNS = [_NEEDS_ESCAPE, _NUL_OR_NOT_ASCII, r"\x00", r"[^\x00-\x7f]"]


@given(
    values=st.lists(st.none() | st.text(st.characters(blacklist_categories=["Cs"]), max_size=5), max_size=8),
    cut=st.integers(0, 3),
    large=st.booleans(),
)
def test_may_match_says_whether_any_text_matches(values: list[str | None], cut: int, large: bool) -> None:
    array = pa.array(values, type=pa.large_string() if large else pa.string()).slice(cut)
    for pattern in _PATTERNS:
        expected = any(v is not None and re.search(pattern, v) for v in array.to_pylist())
        assert may_match(array, pattern) == expected


def test_bytes_under_a_null_only_make_the_check_look_closer() -> None:
    # A producer may leave bytes under a null slot: "a", null over 'x"', "b".
    offsets = pa.array([0, 1, 3, 4], pa.int32()).buffers()[1]
    validity = pa.array([True, False, True]).buffers()[1]
    texts = pa.Array.from_buffers(pa.string(), 3, [validity, offsets, pa.py_buffer(b'ax"b')], null_count=1)
    assert may_match(texts, _NEEDS_ESCAPE)  # looks closer: no wrong answer
    struct = pa.StructArray.from_arrays([texts, pa.array(["c", "d", "e"])], names=["k", "m"])
    written = json_texts(struct, _check)
    assert written is not None
    assert written.to_pylist() == ['{"k":"a","m":"c"}', '{"k":null,"m":"d"}', '{"k":"b","m":"e"}']


def test_members_of_large_texts_are_written_as_texts() -> None:
    struct = pa.StructArray.from_arrays(
        [pa.array(["x", 'q"'], pa.large_string()), pa.array(["y", "z"], pa.large_string())], names=["a", "b"]
    )
    written = json_texts(struct, _check)
    assert written is not None
    assert written.to_pylist() == [json_text(v) for v in struct.to_pylist()]
