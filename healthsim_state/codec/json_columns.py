"""JSON text of Arrow arrays, column by column, as ``values.json_text`` writes each value.

:func:`json_texts` gives, for an array of texts, integers, booleans and
structs and lists of them (what a CSV importer keeps verbatim in
``extensions``), each value's compact JSON text, or None for input it does
not write (floats, decimals, dates, maps: the caller encodes those rows one
by one). Texts are escaped as Python's JSON encoder escapes them with
``ensure_ascii=False``; a text that no backend can store (a NUL, a lone
surrogate) raises :class:`~healthsim_state.codec.columns.Refused` through
the caller's text check, as ``json_problem`` would refuse the row.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from healthsim_state.codec.values import MAX_JSON_DEPTH, json_text, text_problem

# What Python's encoder escapes (ensure_ascii=False): the quote, the
# backslash and the control characters.
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'


def json_texts(array: pa.Array, check_texts: Callable[[pa.Array], None]) -> pa.Array | None:
    """Per value of ``array``, its JSON text (``null`` for a null); None when
    a value's type is not one written here. ``check_texts`` is called with
    every text array met (values and object keys)."""
    if _depth(array.type) >= MAX_JSON_DEPTH:
        return None
    return _texts(array, check_texts)


def _depth(kind: pa.DataType) -> int:
    if pa.types.is_struct(kind):
        return 1 + max((_depth(f.type) for f in kind), default=0)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return 1 + _depth(kind.value_type)
    return 0


def _texts(array: pa.Array, check_texts: Callable[[pa.Array], None]) -> pa.Array | None:
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        check_texts(array)
        texts = _quoted(array.cast(pa.string()))
    elif pa.types.is_integer(kind):
        texts = array.cast(pa.string())
    elif pa.types.is_boolean(kind):
        texts = pc.if_else(array, "true", "false")
    elif pa.types.is_null(kind):
        return pa.repeat(pa.scalar("null"), len(array))
    elif pa.types.is_struct(kind):
        texts = _object(array, check_texts)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        texts = _array(array, check_texts)
    else:
        return None
    if texts is None:
        return None
    return texts.fill_null("null") if array.null_count else texts


def may_match(texts: pa.Array, pattern: str) -> bool:
    """Whether a text of ``texts`` (a string array) may match the regex
    ``pattern``: False when no text does. The pattern is matched once against
    all the array's text bytes as one text, which costs a quarter of matching
    each text; it must be one that no join of texts can match where none of
    them does (a character class, a single character). Bytes under nulls count."""
    if len(texts) == texts.null_count:
        return False
    if pa.types.is_string(texts.type):
        width = pa.int32()
    elif pa.types.is_large_string(texts.type):
        width = pa.int64()
    else:
        return True  # another layout of texts (string views): not looked into
    n = len(texts)
    offsets = pa.Array.from_buffers(width, n + 1, [None, texts.buffers()[1]], offset=texts.offset)
    start, end = offsets[0].as_py(), offsets[n].as_py()
    bounds = pa.array([0, end - start], pa.int64()).buffers()[1]
    data = texts.buffers()[2]
    whole = pa.Array.from_buffers(pa.large_string(), 1, [None, bounds, data.slice(start, end - start)])
    return bool(pc.match_substring_regex(whole, pattern)[0].as_py())


def _quoted(texts: pa.Array) -> pa.Array:
    quoted = pc.binary_join_element_wise('"', texts, '"', "")
    if not may_match(texts, _NEEDS_ESCAPE):
        return quoted
    needs = pc.fill_null(pc.match_substring_regex(texts, _NEEDS_ESCAPE), False)
    if not pc.any(needs).as_py():
        return quoted
    # Few texts need escaping (a quote in a description): those by the encoder itself.
    escaped = [json_text(text) for text in texts.filter(needs).to_pylist()]
    return pc.replace_with_mask(quoted, needs, pa.array(escaped, type=pa.string()))


def _object(array: pa.StructArray, check_texts: Callable[[pa.Array], None]) -> pa.Array | None:
    names = [f.name for f in array.type]
    if len(set(names)) != len(names) or any(text_problem(name) is not None for name in names):
        return None  # repeated keys (the last wins in a dict) or keys no backend stores: row by row
    if not names:
        return pa.repeat(pa.scalar("{}"), len(array))
    parts: list[pa.Array | str] = []
    owed = ""  # the closing quote of a text member joined as it is
    for i, (name, child) in enumerate(zip(names, array.flatten(), strict=True)):
        opening = owed + ("{" if i == 0 else ",") + json_text(name) + ":"
        bare = _bare(child, check_texts)
        if bare is not None:
            # Texts with nothing to escape and no null: their quotes go in the join's literals, one copy less.
            parts += [opening + '"', bare]
            owed = '"'
            continue
        texts = _texts(child, check_texts)
        if texts is None:
            return None
        parts += [opening, texts]
        owed = ""
    texts = pc.binary_join_element_wise(*parts, owed + "}", "")
    return pc.if_else(array.is_valid(), texts, pa.scalar(None, pa.string())) if array.null_count else texts


def _bare(child: pa.Array, check_texts: Callable[[pa.Array], None]) -> pa.Array | None:
    """``child`` as texts when it is texts, none null and none needing an
    escape (checked by ``check_texts`` then); None otherwise."""
    if child.null_count or not (pa.types.is_string(child.type) or pa.types.is_large_string(child.type)):
        return None
    if may_match(child, _NEEDS_ESCAPE):
        return None
    check_texts(child)
    return child.cast(pa.string())


def _array(array: pa.ListArray, check_texts: Callable[[pa.Array], None]) -> pa.Array | None:
    offsets = array.offsets
    start = offsets[0].as_py()
    # Only this slice's items (.values is the whole child of the unsliced array).
    items = _texts(array.values.slice(start, offsets[-1].as_py() - start), check_texts)
    if items is None:
        return None
    # Offsets from 0, in a buffer of their own (from_arrays takes no sliced offsets with a mask).
    offsets = pc.subtract(offsets, pa.scalar(start, offsets.type))
    lists = type(array).from_arrays(offsets, items, mask=array.is_null() if array.null_count else None)
    return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")
