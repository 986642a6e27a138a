"""Documents encoded column by column, into the Arrow columns a table is written from.

:func:`encode_columns` gives, for a slice of a ``pyarrow.Table`` of documents
(one column per top-level key, nested objects as structs or as their flat
column names), what :func:`~healthsim_state.codec.document.encode` and
:func:`~healthsim_state.codec.checks.check_row` would give for each of its
rows (``table.to_pylist()``), but a column at a time: typed columns are cast,
texts parsed once per distinct value by the same parsers, and each rule of
the layout tested on whole columns. It answers only for input it can judge
completely and that passes every check; otherwise None, and the caller
encodes the rows one by one, which words each problem (same entity,
position, field and reason as for dict input). A column it does not know
as a field goes to ``extensions`` as encode() would put it; an inline child
array (claim lines in a claim) makes None, as do values of types it does
not read. :func:`documents_table` makes dicts such a table when Arrow can
hold them exactly (with the keys they lack noted beside it), so dict input
takes the same path.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from math import prod
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from healthsim_state.codec.document import (
    PROVENANCE,
    PROVENANCE_COLUMNS,
    STORE_KEY,
    extensions_text,
    nest_flat,
    provenance_parsed,
)
from healthsim_state.codec.json_columns import json_texts, may_match
from healthsim_state.codec.layout import Field, Layout
from healthsim_state.codec.values import (
    PARSERS,
    UTC,
    Invalid,
    json_problem,
    json_text,
    path_key,
    text_problem,
)

_TEXT = (pa.types.is_string, pa.types.is_large_string)
_UTC_US = pa.timestamp("us", tz="UTC")
# A text starting with a printable ASCII character other than a space is not
# blank to str.strip(); the others are looked at in Python.
_NOT_BLANK = r"^[\x21-\x7e]"


class Refused(Exception):
    """The slice cannot be encoded column by column (a problem, or input this
    module does not judge): encode its rows one by one."""


@dataclass
class Encoded:
    """One slice encoded: the table's columns (without ``id``, the ``*_uuid``
    columns and ``updated_at``) and the Python values some stages read."""

    rows: int
    columns: dict[str, pa.Array]
    external_ids: list[str | None]

    def values(self, column: str) -> list[Any]:
        """The column's values as Python objects (converted once)."""
        cached = self._values.get(column)
        if cached is None:
            cached = self._values[column] = self.columns[column].to_pylist()
        return cached

    def distinct_texts(self, column: str) -> set[str]:
        """The column's distinct values but null, each as its text (``str``)."""
        values = self.columns[column]
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            # Arrow's unique, not a set of every value: a Synthea batch's references repeat a few parents.
            return set(pc.unique(values).drop_null().to_pylist())
        return {str(v) for v in self.values(column) if v is not None}

    def __post_init__(self) -> None:
        self._values: dict[str, list[Any]] = {}


class _Rows(Mapping[str, Any]):
    """Row ``i`` of an :class:`Encoded`, for the entity types' row checks."""

    def __init__(self, encoded: Encoded) -> None:
        self.encoded = encoded
        self.i = 0

    def __getitem__(self, key: str) -> Any:
        return self.encoded.values(key)[self.i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.encoded.columns)

    def __len__(self) -> int:
        return len(self.encoded.columns)


def encode_columns(
    lay: Layout,
    table: pa.Table,
    now: dt.datetime,
    *,
    absent: dict[str, list[bool]] | None = None,
    from_dicts: bool = False,
) -> Encoded | None:
    """``table`` (a slice of documents) encoded column by column, or None
    when it must be encoded row by row (see the module's docstring).
    ``absent``: per key (``key`` or ``group.key``) the rows that lack it
    (:attr:`Documents.absent`, :func:`absent_nulls`). ``from_dicts``: the
    table is :attr:`Documents.table`; Arrow may have converted the dicts'
    typed temporal values (a datetime among dates becomes a date), so only
    texts are read."""
    try:
        return _encode(lay, table, now, absent or {}, from_dicts)
    except Refused:
        return None


def absent_nulls(lay: Layout, table: pa.Table) -> tuple[pa.Table, dict[str, list[bool]]]:
    """``table`` read as input where a null means "not given", as a CSV's
    empty cell does: the table with each group (or ``_provenance``) whose
    every key is null made null, and per key (``key``, ``group.key``) the
    rows that lack it, for :func:`encode_columns` and :func:`present_documents`.
    Objects that are no group (kept in ``extensions``) keep their null keys."""
    absent: dict[str, list[bool]] = {}
    columns = []
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        kind = column.type
        if (name in lay.groups or name == PROVENANCE) and pa.types.is_struct(kind) and kind.num_fields:
            children = column.flatten()
            empty = _all_null(children)
            if pc.any(empty).as_py():
                empty = pc.or_(empty, column.is_null())
                column = pa.StructArray.from_arrays(children, fields=list(kind), mask=empty)
            for field, child in zip(kind, children, strict=True):
                if child.null_count:
                    absent[f"{name}.{field.name}"] = child.is_null().to_pylist()
        if column.null_count:
            absent[name] = column.is_null().to_pylist()
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names), absent


def _all_null(children: list[pa.Array]) -> pa.Array:
    empty = children[0].is_null()
    for child in children[1:]:
        empty = pc.and_(empty, child.is_null())
    return empty


def present_documents(table: pa.Table, absent: dict[str, list[bool]]) -> list[dict[str, Any]]:
    """The rows of ``table`` as documents without the keys ``absent`` says
    they lack: what the row-by-row path reads for a slice encode_columns
    would not take."""
    docs = table.to_pylist()
    if not absent:
        return docs
    top = [(k, gone) for k, gone in absent.items() if "." not in k]
    inner = [(*k.split(".", 1), gone) for k, gone in absent.items() if "." in k]
    for i, doc in enumerate(docs):
        for outer, key, gone in inner:
            if gone[i] and (value := doc.get(outer)) is not None:
                del value[key]
        for key, gone in top:
            if gone[i]:
                del doc[key]
    return docs


@dataclass
class Documents:
    """Dicts as an Arrow table (:func:`documents_table`): ``absent`` lists, per
    key (``key`` or ``group.key``) some document lacks, the rows lacking it
    (True), which the table cannot tell from a null. ``plain``: every column
    but ``_provenance`` holds values of one type (text, integer, float or
    boolean; in objects, texts; in arrays, items of one such type), so the
    table's rows read back as the dicts were given."""

    table: pa.Table
    absent: dict[str, list[bool]]
    plain: bool = False


def documents_table(lay: Layout, docs: list[Any]) -> Documents | None:
    """``docs`` (dicts) as an Arrow table with what it cannot say (which
    keys were absent), or None when Arrow could not hold them exactly: one
    type per column (ints among floats become floats, a datetime among dates
    a date). So documents with an unknown field (its values could be of any
    type) are not taken, nor groups whose order differs between documents
    (it orders their nulls); objects in arrays and unknown keys in groups
    only when they come back as given (:func:`_read_back`); typed values
    Arrow converts are left to :func:`encode_columns` (given ``absent``).
    The table is the one ``pa.table`` infers from the documents' values,
    made a column (and a group's key) at a time with the type its values show."""
    if not docs:
        return None
    signatures: dict[tuple[str, ...], None] = {}
    for doc in docs:
        if doc.__class__ is not dict:
            return None
        signatures[tuple(doc)] = None
    if len(signatures) == 1:
        keys: dict[str, None] = dict.fromkeys(next(iter(signatures)))
        absent: dict[str, list[bool]] = {}
        values_of: dict[str, Sequence[Any]] = dict(zip(keys, _transposed(docs, len(keys)), strict=True))
    else:
        keys = dict.fromkeys(k for signature in signatures for k in signature)
        order = {k: i for i, k in enumerate(k for k in keys if k in lay.groups)}
        for signature in signatures:
            ranks = [order[k] for k in signature if k in order]
            if ranks != sorted(ranks):
                return None
        absent = {
            k: [k not in doc for doc in docs] for k in keys if not all(k in signature for signature in signatures)
        }
        values_of = {key: list(map(dict.get, docs, itertools.repeat(key))) for key in keys}
    if not lay.document_keys.issuperset(keys):
        return None
    decimals = {f.path[0]: f for f in lay.fields if f.kind == "decimal" and len(f.path) == 1}
    # Column by column (Table.from_pylist takes the first row's keys only),
    # each of plain values: Arrow's conversion of a deeply nested value
    # overflows the C stack, and an unknown type is encode()'s to word.
    columns: dict[str, Any] = {}
    plain = True
    try:
        for key in keys:
            values = values_of[key]
            kinds = set(map(type, values))
            if key in lay.groups or key == PROVENANCE:
                if not kinds <= _OBJECTS:
                    return None
                made = _struct(lay, key, values, type(None) in kinds, absent)
                if made is None:
                    return None
                columns[key], texts = made
                plain = plain and (key == PROVENANCE or texts)
            elif key in lay.object_arrays:
                if not kinds <= _LISTS or not _read_back(itertools.chain.from_iterable(filter(None, values))):
                    return None
                plain = False
                columns[key] = pa.array(values)
            elif key in lay.arrays:
                items = {type(v) for items in values if items for v in items}
                if not kinds <= _LISTS or not items <= _SCALARS:
                    return None
                plain = plain and _one_plain(items)
                columns[key] = pa.array(values)
            elif not kinds <= _SCALARS:
                return None
            else:
                plain = plain and _one_plain(kinds)
                field = decimals.get(key)
                if field is not None and kinds - _NONE == _DECIMAL:
                    # The field's own type: a value it cannot hold exactly fails here, as its cast would.
                    columns[key] = pa.array(values, type=pa.decimal128(field.precision, field.scale))
                else:
                    columns[key] = _scalars(values, kinds)
        return Documents(pa.table(columns), absent, plain)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None  # values Arrow cannot hold (mixed types, lone surrogates, huge integers)


def _struct(
    lay: Layout, key: str, values: Sequence[Any], nulls: bool, absent: dict[str, list[bool]]
) -> tuple[pa.Array, bool] | None:
    """A group's (or ``_provenance``'s) values as the struct Arrow infers
    from them, and whether its keys hold only texts (its known ones, and it
    has no others); None when a table cannot hold them exactly (see
    :func:`documents_table`). Keys some objects lack are noted in ``absent``."""
    given = [v for v in values if v is not None] if nulls else values
    if not given:
        return pa.array(values), True
    inner = dict.fromkeys(map(tuple, given))
    if () in inner:
        return None  # an empty object: encode() keeps it in extensions, a table cannot say it
    known = PROVENANCE_COLUMNS if key == PROVENANCE else lay.group_keys[key]
    union = dict.fromkeys(k for signature in inner for k in signature)
    if key == PROVENANCE and not set(union).issubset(known):
        return None  # unknown keys inside: values of any type
    if len(inner) == 1 and not nulls:
        children: Iterable[Sequence[Any]] = _transposed(values, len(union))
    else:
        for k in union:
            if not all(k in signature for signature in inner):
                absent[f"{key}.{k}"] = [(v or _NO_KEYS).get(k, _GONE) is _GONE for v in values]
        children = ([None if v is None else v.get(k) for v in values] for k in union)
    arrays = []
    texts = True
    for k, child in zip(union, children, strict=True):
        kinds = set(map(type, child))
        if k not in known:  # kept in extensions: written from the table, so it must read back as given
            texts = False
            if _one_plain(kinds):
                arrays.append(_scalars(child, kinds))
            elif kinds <= _OBJECTS and _read_back(child):
                arrays.append(pa.array(child))
            else:
                return None
            continue
        if not kinds <= _SCALARS:
            return None
        texts = texts and kinds <= _TEXTS
        arrays.append(_scalars(child, kinds))
    mask = pa.array([v is None for v in values], type=pa.bool_()) if nulls else None
    return pa.StructArray.from_arrays(arrays, names=list(union), mask=mask), texts


def _read_back(objects: Iterable[Any]) -> bool:
    """Whether these objects (None: null) come back from Arrow as given: Arrow
    gives each one every key of their struct, in its order, and one type per
    key; so they must all have one signature (not empty), and each key
    values of one plain type."""
    given = [o for o in objects if o is not None]
    if not given:
        return True
    if any(o.__class__ is not dict for o in given):
        return False
    signatures = dict.fromkeys(map(tuple, given))
    if len(signatures) != 1 or () in signatures:
        return False
    return all(_one_plain(set(map(type, child))) for child in _transposed(given, len(next(iter(signatures)))))


def _transposed(objects: Sequence[dict[str, Any]], width: int) -> list[list[Any]]:
    """The values of dicts of one signature (``width`` keys), per key: in C,
    and without an object per dict (``zip(*...)`` holds a view of each, and
    so many allocations set off the garbage collector over the whole heap)."""
    flat = list(itertools.chain.from_iterable(map(dict.values, objects)))
    return [flat[i::width] for i in range(width)]


def _scalars(values: Sequence[Any], kinds: set[type]) -> pa.Array:
    """Values of scalar types as Arrow infers them; values of one type Arrow
    keeps as it is converted with that type given (no inference pass)."""
    given = kinds - _NONE
    typed = _TYPED.get(next(iter(given))) if len(given) == 1 else None
    return pa.array(values) if typed is None else pa.array(values, type=typed)


_NONE = frozenset({type(None)})
_DECIMAL = frozenset({Decimal})
# Types whose values Arrow infers as these (ints are left to inference: it
# refuses those past 64 bits the same way, but words it differently).
_TYPED = {str: pa.string(), float: pa.float64(), bool: pa.bool_()}


_SCALARS = frozenset({str, int, float, bool, type(None), Decimal, dt.date, dt.datetime})
_OBJECTS = frozenset({dict, type(None)})
_TEXTS = frozenset({str, type(None)})
_PLAIN = frozenset({str, int, float, bool})


def _one_plain(kinds: set[type]) -> bool:
    """Whether values of these types are of one plain type (or null), which Arrow keeps as given."""
    given = kinds - {type(None)}
    return len(given) <= 1 and given <= _PLAIN


_LISTS = frozenset({list, type(None)})


_NO_KEYS: dict[str, Any] = {}
_GONE = object()  # a key a document lacks


# Integer digits a decimal column may have for floats read from dicts: a
# float holds every integer up to 2**53 exactly (an int among floats
# becomes one).
_EXACT_DIGITS = 15
_CREATED = Field(("created_at",), "created_at", "datetime", False, None)  # _provenance.created_at


def _encode(lay: Layout, table: pa.Table, now: dt.datetime, absent: dict[str, list[bool]], documents: bool) -> Encoded:
    n = table.num_rows
    given, unknown = _given(lay, table)
    columns: dict[str, pa.Array] = {}
    # Per row, in the order encode() notes them: a null group, a null id,
    # then per field (layout order) a null, a default or a verbatim text.
    group_nulls: list[tuple[str, list[bool]]] = []
    events: list[tuple[str, list[bool] | None, list[bool] | None, list[str | None] | None]] = []

    groups: dict[str, tuple[pa.StructArray | None, list[bool] | None]] = {}
    # What encode() keeps in extensions, in its order: the unknown columns,
    # then the unknown keys of each group given (name, rows where the group
    # is null, per key its values and the rows lacking it).
    group_extras: list[_GroupExtras] = []
    for name in table.column_names:
        if name in lay.groups:
            struct = table.column(name).combine_chunks()
            missing = struct.is_null().to_pylist() if struct.null_count else None
            groups[name] = (struct, missing)
            gone = absent.get(name)  # an absent group is no null: encode() never sees it
            nulls = (
                missing
                if gone is None or missing is None
                else [m and not g for m, g in zip(missing, gone, strict=True)]
            )
            if nulls is not None and any(nulls):
                group_nulls.append((name, nulls))
            known = lay.group_keys[name]
            others = [
                (f.name, struct.field(f.name), absent.get(f"{name}.{f.name}"))
                for f in struct.type
                if f.name not in known
            ]
            if others:
                group_extras.append((name, missing, others))
    extras = [(name, absent.get(name), table.column(name)) for name in unknown]

    external_ids = _external_ids(lay, table, n, events, absent.get("id"))

    for field in lay.fields:
        source, group_missing = _source(field, table, given, groups, absent)
        if source is None:  # never given: the default, or a problem
            if field.required:
                raise Refused
            columns[field.column] = _repeat(field.default, field, n)
            if field.default is not None:
                events.append((field.name, None, [True] * n, None))
            continue
        if field.required and (source.null_count or group_missing is not None):
            raise Refused
        if documents and not _exact(field, source.type):
            raise Refused
        values, verbatim = _convert(field, source)
        nulls = None
        if source.null_count:
            is_null = source.is_null()
            if group_missing is not None:  # under a null group: missing, not null
                is_null = pc.and_(is_null, pc.invert(_mask(group_missing)))
            nulls = is_null.to_pylist() if pc.any(is_null).as_py() else None
        defaulted = group_missing if field.default is not None else None
        if field.default is not None and values.null_count:
            values = values.fill_null(_scalar(field.default, field))
        columns[field.column] = values
        if nulls is not None or defaulted is not None or verbatim is not None:
            events.append((field.name, nulls, defaulted, verbatim))

    _check_rules(lay, columns)
    encoded = Encoded(n, columns, external_ids)
    if lay.entity.checks:
        row = _Rows(encoded)
        try:
            for i in range(n):
                row.i = i
                for check in lay.entity.checks:
                    if check(row):
                        raise Refused
        except (KeyError, TypeError):
            raise Refused from None
    if lay.derived:
        docs = [nest_flat(lay, doc) for doc in present_documents(table, absent)]
        for column, derive in lay.derived:
            columns[column] = pa.array([derive(doc) for doc in docs])
    if documents and PROVENANCE in given:
        kind = table.schema.field(PROVENANCE).type
        created = kind.get_field_index("created_at") if pa.types.is_struct(kind) else -1
        if created >= 0 and not _exact(_CREATED, kind.field(created).type):
            raise Refused
    _provenance_and_extensions(lay, table, now, n, columns, group_nulls, events, extras, group_extras, absent)
    columns["external_id"] = pa.array(external_ids, type=pa.string())
    return encoded


def _given(lay: Layout, table: pa.Table) -> tuple[set[str], list[str]]:
    """The table's column names, and those of them that are no field (kept
    in ``extensions``); a column encode() would refuse, or that is an inline
    child array, refuses the slice."""
    names = table.column_names
    if len(set(names)) != len(names):
        raise Refused
    flat = lay.flat_keys
    lifted = {nested.field for nested in lay.entity.nested}
    unknown = []
    for name in names:
        kind = table.schema.field(name).type
        if name in lay.top_fields or name == "id" or name == PROVENANCE:
            continue
        if name in lay.groups:
            if not pa.types.is_struct(kind) or len({f.name for f in kind}) != kind.num_fields:
                raise Refused  # not an object (or one of repeated keys)
            if not any(f.name in lay.group_keys[name] for f in kind):
                raise Refused  # no known field: encode() keeps the group in extensions
            continue
        if name in flat:
            if flat[name][0] in names:
                raise Refused  # flat fields beside their group: nest_flat merges them
            continue
        if name == STORE_KEY or name in lifted or text_problem(name) is not None:
            raise Refused
        unknown.append(name)
    return set(names), unknown


def _source(
    field: Field,
    table: pa.Table,
    given: set[str],
    groups: dict[str, tuple[pa.StructArray | None, list[bool] | None]],
    absent: dict[str, list[bool]],
) -> tuple[pa.Array | None, list[bool] | None]:
    """The column holding ``field`` (or None) and the rows where it is missing
    (absent, or its group null or absent), or None when none is."""
    if len(field.path) == 1 or field.path[0] not in groups:
        if field.column not in given:
            return None, None
        return table.column(field.column).combine_chunks(), absent.get(field.column)
    outer, inner = field.path
    struct, missing = groups[outer]
    if struct is None or struct.type.get_field_index(inner) < 0:
        return None, None
    child = struct.field(inner)
    if missing is not None:  # the child's own values under a null group are not given
        child = pc.if_else(_mask(missing), pa.nulls(len(child), child.type), child)
    gone = absent.get(field.name)
    if gone is not None:
        missing = gone if missing is None else [m or g for m, g in zip(missing, gone, strict=True)]
    return child, missing


def _mask(flags: list[bool]) -> pa.Array:
    return pa.array(flags, type=pa.bool_())


def _external_ids(lay: Layout, table: pa.Table, n: int, events: list[Any], gone: list[bool] | None) -> list[str | None]:
    if "id" not in table.column_names:
        if lay.entity.person:
            raise Refused
        return [None] * n
    column = table.column("id").combine_chunks()
    if pa.types.is_null(column.type):
        column = pa.nulls(n, pa.string())
    if not any(test(column.type) for test in _TEXT):
        raise Refused
    if column.null_count:
        if lay.entity.person:
            raise Refused
        nulls = column.is_null().to_pylist()
        if gone is not None:  # an absent id is no null
            nulls = [m and not g for m, g in zip(nulls, gone, strict=True)]
        events.append(("id", nulls, None, None))
    if pc.any(pc.equal(pc.utf8_length(column), 0)).as_py():
        raise Refused  # an id is a non-empty text
    _check_texts(column, required=False)
    return column.cast(pa.string()).to_pylist()


_NUL_OR_NOT_ASCII = r"[\x00]|[^\x00-\x7f]"


def _check_texts(column: pa.Array, *, required: bool) -> None:
    """What parse_str refuses in a text column: NUL, a lone surrogate, and
    (``required``) blank text."""
    if not len(column) - column.null_count:
        return
    unusual = None
    if may_match(column, _NUL_OR_NOT_ASCII):  # one look at all the bytes; most columns are plain ASCII
        if pc.any(pc.match_substring(column, "\x00")).as_py():
            raise Refused
        unusual = pc.invert(pc.string_is_ascii(column))
    if required:
        blank = pc.invert(pc.match_substring_regex(column, _NOT_BLANK))
        unusual = blank if unusual is None else pc.or_(unusual, blank)
    if unusual is None:
        return
    odd = column.filter(unusual)
    for text in odd.to_pylist():
        if text_problem(text) is not None or (required and not text.strip()):
            raise Refused


def _exact(field: Field, kind: pa.DataType) -> bool:
    """Whether a column Arrow made of dicts' values holds them as given."""
    if field.kind in ("date", "datetime"):
        return pa.types.is_null(kind) or any(test(kind) for test in _TEXT)
    if field.kind == "decimal" and pa.types.is_floating(kind):
        return (field.precision or 0) - (field.scale or 0) <= _EXACT_DIGITS
    return True


def _convert(field: Field, source: pa.Array) -> tuple[pa.Array, list[str | None] | None]:
    """The column's values as the table stores them, and per row the text to
    keep verbatim (date-times given as text with an offset), or None."""
    kind = field.kind
    t = source.type
    if pa.types.is_null(t):
        return pa.nulls(len(source), _ARROW_TYPES[kind](field)), None
    if kind == "str":
        if not any(test(t) for test in _TEXT):
            raise Refused
        _check_texts(source, required=field.required)
        return source.cast(pa.string()), None
    if kind == "date":
        if pa.types.is_date(t):
            return source.cast(pa.date32()), None
        if any(test(t) for test in _TEXT):
            return _parsed_texts(field, source, pa.date32())
        raise Refused
    if kind == "datetime":
        if pa.types.is_timestamp(t):
            # Arrow keeps instants as UTC: a zone is a label, and a naive
            # value is UTC (canonical-models §0), as parse_datetime reads them.
            return _cast(source.cast(pa.timestamp(t.unit, tz="UTC")), _UTC_US), None
        if any(test(t) for test in _TEXT):
            return _parsed_texts(field, source, _UTC_US)
        raise Refused
    if kind == "int":
        if not pa.types.is_integer(t):
            raise Refused
        return _cast(source, pa.int32()), None
    if kind == "decimal":
        target = pa.decimal128(field.precision, field.scale)
        if pa.types.is_decimal(t):
            return _cast(source, target), None
        if pa.types.is_floating(t) or pa.types.is_integer(t):
            values, _ = _parsed_texts(field, source, target)
            return values, None
        raise Refused
    if kind == "bool":
        if not pa.types.is_boolean(t):
            raise Refused
        return source, None
    if kind == "array":
        return _arrays(field, source), None
    raise Refused


def _cast(source: pa.Array, target: pa.DataType) -> pa.Array:
    """A safe cast: a value out of range or losing digits refuses the slice."""
    try:
        return source.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise Refused from None


def _parsed_texts(field: Field, source: pa.Array, target: pa.DataType) -> tuple[pa.Array, list[str | None] | None]:
    """``source`` parsed by the field's parser once per distinct value."""
    parse = PARSERS[field.kind]
    encoded = source.dictionary_encode()
    results: list[Any] = []
    texts: list[str | None] = []
    for value in encoded.dictionary.to_pylist():
        try:
            parsed, text = parse(field, value)
        except Invalid:
            raise Refused from None
        results.append(parsed)
        texts.append(text)
    try:
        values = pa.array(results, type=target).take(encoded.indices)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise Refused from None
    if not any(t is not None for t in texts):
        return values, None
    verbatim = pa.array(texts, type=pa.string()).take(encoded.indices).to_pylist()
    return values, verbatim


def _arrays(field: Field, source: pa.Array) -> pa.Array:
    """An array column as JSON text, each value parsed as encode() does."""
    if not (pa.types.is_list(source.type) or pa.types.is_large_list(source.type)):
        raise Refused
    plain = _plain_arrays(field, source)
    return plain if plain is not None else _arrays_by_row(field, source)


def _arrays_by_row(field: Field, source: pa.Array) -> pa.Array:
    """:func:`_arrays` a value at a time (items of any kind)."""
    parse = PARSERS["array"]
    allowed = field.item_enum
    texts: list[str | None] = []
    for value in source.to_pylist():
        if value is None:
            texts.append(None)
            continue
        try:
            parse(field, value)
            if allowed is not None and any(item not in allowed for item in value):
                raise Refused
            texts.append(json_text(value))
        except Invalid:
            raise Refused from None
    return pa.array(texts, type=pa.string())


def _plain_arrays(field: Field, source: pa.Array) -> pa.Array | None:
    """:func:`_arrays` for lists of texts or of integers, a column at a time
    (a Synthea import's claim lines carry 100,000 of them); None for other items."""
    items = source.flatten()  # this slice's items only
    kind = items.type
    if field.items == "str" and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        allowed = field.item_enum
    elif field.items == "int" and pa.types.is_integer(kind) and field.item_enum is None:
        allowed = None
    else:
        return None
    if items.null_count:
        raise Refused  # a null item is neither a text nor an integer
    longest = pc.max(pc.list_value_length(source)).as_py() if len(source) > source.null_count else 0
    if field.max_items is not None and longest > field.max_items:
        raise Refused
    if (
        allowed is not None
        and len(items)
        and not pc.all(pc.is_in(items.cast(pa.string()), value_set=pa.array(sorted(allowed)))).as_py()
    ):
        raise Refused
    texts = json_texts(source, _any_text)
    if texts is None:
        return None
    # json_texts writes a null list as the text null; the column keeps it NULL, as encode() does.
    return pc.if_else(source.is_valid(), texts, pa.scalar(None, pa.string())) if source.null_count else texts


def _check_rules(lay: Layout, columns: dict[str, pa.Array]) -> None:
    """The layout's value rules (checks.check_row) on whole columns."""
    for _, column, limit in lay.limited:
        values = columns[column]
        if len(values) - values.null_count and pc.max(pc.utf8_length(values)).as_py() > limit:
            raise Refused
    for _, column, allowed, _ in lay.enums:
        values = columns[column]
        if values.null_count < len(values):
            found = pc.is_in(values.drop_null(), value_set=pa.array(sorted(allowed), type=pa.string()))
            if not pc.all(found).as_py():
                raise Refused
    for _, column, pattern in lay.patterns:
        for value in pc.unique(columns[column].drop_null()).to_pylist():
            if not pattern.fullmatch(value):
                raise Refused
    for _, column, low, high in lay.ranges:
        values = columns[column]
        if values.null_count == len(values):
            continue
        extremes = pc.min_max(values)
        least, most = extremes["min"].as_py(), extremes["max"].as_py()
        if (low is not None and least < low) or (high is not None and most > high):
            raise Refused
    for _, column, _, start_column in lay.orderings:
        try:
            before = pc.less(columns[column], columns[start_column])
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            raise Refused from None
        if pc.any(before).as_py():
            raise Refused


def _provenance_and_extensions(
    lay: Layout,
    table: pa.Table,
    now: dt.datetime,
    n: int,
    columns: dict[str, pa.Array],
    group_nulls: list[tuple[str, list[bool]]],
    events: list[tuple[str, list[bool] | None, list[bool] | None, list[str | None] | None]],
    extras: list[tuple[str, list[bool] | None, pa.ChunkedArray]],
    group_extras: list[_GroupExtras],
    absent: dict[str, list[bool]],
) -> None:
    """The provenance columns and ``extensions``: from each distinct set of
    notes once, the members kept in extensions joined column by column
    (:func:`_noted_extensions`), where they allow; else row by row."""
    # The members' JSON, written column by column where they allow (most
    # importers' verbatim cells, a name inside a group), else their values read per row.
    members = _members(extras, group_extras)
    blocks = _provenance_blocks(lay, table, n, absent)
    gone = absent.get(PROVENANCE)  # rows without _provenance: as without the column
    notes = (blocks, gone, group_nulls, events)
    if members is not None and _noted_extensions(now, n, columns, notes, members):
        return
    member_rows = (
        None
        if members is None
        else [
            (gone_rows, pc.binary_join_element_wise(prefix, texts, "").to_pylist())
            for gone_rows, prefix, texts in members
        ]
    )
    extra_values = [] if members is not None else [column.to_pylist() for _, _, column in extras]
    group_values = (
        []
        if members is not None
        else [
            (name, missing, [(k, cells.to_pylist(), g) for k, cells, g in others])
            for name, missing, others in group_extras
        ]
    )
    values: dict[str, list[Any]] = {k: [] for k in PROVENANCE_COLUMNS}
    extensions: list[str | None] = []
    for i in range(n):
        meta, meta_text, parsed = _row_notes(i, notes)
        for key in PROVENANCE_COLUMNS:
            values[key].append(_provenance_value(parsed, key, now))
        if member_rows is not None:
            parts = [texts[i] for gone_rows, texts in member_rows if not gone_rows or not gone_rows[i]]
            extensions.append(
                "{" + ",".join(parts) + _store_member(meta) + "}" if parts else _extensions(meta, {}, meta_text)
            )
            continue
        unknown: dict[str, Any] = {}
        for (name, gone_rows, _), given in zip(extras, extra_values, strict=True):
            if gone_rows is not None and gone_rows[i]:
                continue
            if json_problem(given[i], path_key(name)) is not None:
                raise Refused
            unknown[name] = given[i]
        for name, missing, cells_of in group_values:
            if missing is None or not missing[i]:
                extra = {key: cells[i] for key, cells, gone_rows in cells_of if gone_rows is None or not gone_rows[i]}
                if not extra:  # its unknown keys all absent from this row
                    continue
                if json_problem(extra, name) is not None:
                    raise Refused
                unknown[name] = extra
        extensions.append(_extensions(meta, unknown, meta_text))
    for key in PROVENANCE_COLUMNS:
        columns[key] = pa.array(values[key], type=_PROVENANCE_TYPES[key])
    columns["extensions"] = pa.array(extensions, type=pa.string())


# A group's unknown keys (kept in extensions): the group's name, the rows
# where it is null, and per key its values and the rows lacking it.
_GroupExtras = tuple[str, list[bool] | None, list[tuple[str, pa.Array, list[bool] | None]]]
# A member of extensions written column by column: the rows lacking it, its
# ``"name":`` and each row's value as JSON text.
_Member = tuple[list[bool] | None, str, pa.Array]


def _members(
    extras: list[tuple[str, list[bool] | None, pa.ChunkedArray]], group_extras: list[_GroupExtras]
) -> list[_Member] | None:
    """The members encode() may keep in a row's extensions, in its order (the
    unknown columns, then each group's unknown keys as one object), their
    JSON written column by column; None when their values must be read row
    by row (values json_texts does not write, a group's unknown key some of
    its objects lack)."""
    written = _extra_texts(extras)
    if written is None:
        return None
    members = [(gone_rows, prefix, texts) for (_, gone_rows, _), (prefix, texts) in zip(extras, written, strict=True)]
    for name, missing, others in group_extras:
        if any(gone_rows is not None for _, _, gone_rows in others):
            return None
        unknown = pa.StructArray.from_arrays([cells for _, cells, _ in others], names=[key for key, _, _ in others])
        texts = json_texts(unknown, _any_text)
        if texts is None:
            return None
        members.append((missing, json_text(name) + ":", texts))  # rows where the group is null keep none
    return members


# What a row's notes are made of: its _provenance blocks (or None), the rows
# lacking _provenance, the null groups, and per field its nulls, defaults and
# verbatim texts (see _encode).
_Notes = tuple[
    list[Any] | None,
    list[bool] | None,
    list[tuple[str, list[bool]]],
    list[tuple[str, list[bool] | None, list[bool] | None, list[str | None] | None]],
]

# A verbatim text's place in a note's template: the field's position among the
# events, between two private-use characters (no field name or verbatim text
# holds them; a provenance text that does sends the slice row by row). The
# texts go in as they are: a date-time pattern matched them, so nothing in
# them needs escaping (as document._with_verbatim relies on).
_SLOT = re.compile("\ue000(\\d+)\ue001")
#: Distinct notes with verbatim texts past which a slice's extensions are written row by row.
_MANY_TEMPLATES = 64


def _noted_extensions(
    now: dt.datetime,
    n: int,
    columns: dict[str, pa.Array],
    notes: _Notes,
    members: list[_Member],
) -> bool:
    """The provenance columns and ``extensions`` from each distinct set of a
    row's notes (flags, which verbatim texts it has, its provenance block),
    written once as a template that the rows' verbatim texts fill in, and the
    members' JSON (:func:`_members`) joined in Arrow; False (nothing set) where the
    templates with verbatim texts are too many to fill column by column."""
    blocks, gone, group_nulls, events = notes
    flags: list[list[Any]] = [missing for _, missing in group_nulls]
    flags += [flag for _, nulls, defaulted, _ in events for flag in (nulls, defaulted) if flag is not None]
    texts = {k: verbatim for k, (_, _, _, verbatim) in enumerate(events) if verbatim is not None}
    flags += [[text is not None for text in verbatim] for verbatim in texts.values()]
    if blocks is not None:
        flags.append([id(block) for block in blocks])  # equal blocks are one object (_provenance_blocks)
        if gone is not None:
            flags.append(gone)
    distinct: dict[tuple[Any, ...], int] = {}
    found: list[tuple[dict[str, Any], str | None, dict[str, Any] | None]] = []
    index: list[int] = []
    for i, key in enumerate(zip(*flags, strict=True) if flags else [()] * n):
        at = distinct.get(key)
        if at is None:
            at = distinct[key] = len(found)
            found.append(_row_notes(i, notes, slots=True))
        index.append(at)
    slotted = [sum(1 for text in meta.get("verbatim", {}).values() if "\ue000" in text) for meta, _, _ in found]
    if sum(map(bool, slotted)) > _MANY_TEMPLATES:
        return False
    take = pa.array(index, type=pa.int32())
    arrays: dict[int, pa.Array] = {}

    def _texts_of(k: int) -> pa.Array:
        """Event ``k``'s verbatim texts as an Arrow array, made once."""
        array = arrays.get(k)
        if array is None:
            array = arrays[k] = pa.array(texts[k], type=pa.string())
        return array

    def filled(templates: list[str | None]) -> pa.Array | None:
        column = pa.array(templates, type=pa.string()).take(take)
        for at, template in enumerate(templates):
            if template is None or "\ue000" not in template:
                continue
            pieces = _SLOT.split(template)
            if len(pieces) // 2 != slotted[at]:
                return None  # a provenance text holds what reads as a slot
            rows = pc.equal(take, at)
            parts = [_texts_of(int(p)).filter(rows) if j % 2 else p for j, p in enumerate(pieces)]
            column = pc.replace_with_mask(column, rows, pc.binary_join_element_wise(*parts, ""))
        return column

    alone = filled([_extensions(meta, {}, meta_text) for meta, meta_text, _ in found])
    if alone is None:
        return False
    if members:
        store = filled([_store_member(meta) for meta, _, _ in found])
        if store is None:
            return False
        # One join per row: "{", each member given (a comma before all but the first
        # one's), the notes, "}". Where the first member may be absent, every
        # member has its comma and the row's first is cut.
        lead = members[0][0] is None
        parts: list[pa.Array | str] = []
        for j, (gone_rows, prefix, values) in enumerate(members):
            comma = "" if j == 0 and lead else ","
            if gone_rows is None:
                parts += [comma + prefix, values]
            else:
                member = pc.binary_join_element_wise(comma + prefix, values, "")
                parts.append(pc.if_else(_mask(gone_rows), "", member))
        if lead:
            extensions = pc.binary_join_element_wise("{", *parts, store, "}", "")
        else:
            joined = pc.utf8_slice_codeunits(pc.binary_join_element_wise(*parts, store, ""), 1)
            extensions = pc.binary_join_element_wise("{", joined, "}", "")
        if all(gone_rows is not None for gone_rows, _, _ in members):
            # Rows lacking every member hold only their notes, as encode() writes them.
            lacking = [all(row) for row in zip(*(gone_rows for gone_rows, _, _ in members), strict=True)]
            if any(lacking):
                extensions = pc.if_else(_mask(lacking), alone, extensions)
    else:
        extensions = alone
    for key in PROVENANCE_COLUMNS:
        values = [_provenance_value(parsed, key, now) for _, _, parsed in found]
        columns[key] = pa.array(values, type=_PROVENANCE_TYPES[key]).take(take)
    columns["extensions"] = extensions
    return True


def _row_notes(
    i: int, notes: _Notes, *, slots: bool = False
) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
    """What encode() notes under the store's key for row ``i`` (its null groups,
    then per field a null, a default or a verbatim text, then its provenance's),
    the text of its provenance block's notes, and the block's parsed values
    (None: no ``_provenance``). ``slots``: a verbatim text as its :data:`_SLOT`."""
    blocks, gone, group_nulls, events = notes
    meta: dict[str, Any] = {}
    for name, missing in group_nulls:
        if missing[i]:
            meta.setdefault("nulls", []).append(name)
    for k, (name, nulls, defaulted, verbatim) in enumerate(events):
        if nulls is not None and nulls[i]:
            meta.setdefault("nulls", []).append(name)
        elif defaulted is not None and defaulted[i]:
            meta.setdefault("defaulted", []).append(name)
        elif verbatim is not None and (text := verbatim[i]) is not None:
            meta.setdefault("verbatim", {})[name] = f"\ue000{k}\ue001" if slots else text
    block = None if blocks is None else blocks[i]
    if block is None:  # no _provenance given, or null
        if blocks is not None and (gone is None or not gone[i]):
            meta.setdefault("nulls", []).append(PROVENANCE)
        return meta, None, None
    parsed, prov_nulls, prov_verbatim, meta_text = block
    meta["provenance"] = parsed[_PROV_META]
    if prov_nulls:
        meta.setdefault("nulls", []).extend(prov_nulls)
    if prov_verbatim:
        meta.setdefault("verbatim", {}).update(prov_verbatim)
    return meta, meta_text, parsed


def _provenance_value(parsed: dict[str, Any] | None, key: str, now: dt.datetime) -> Any:
    """A provenance column's value from a parsed block (None: no block); no creation time is the save's."""
    value = _NO_PROVENANCE.get(key) if parsed is None else parsed[key]
    return now if key == "created_at" and value is None else value


def _store_member(meta: dict[str, Any]) -> str:
    """``,"$store":{...}`` closing an extensions object, or "" for no notes."""
    try:
        return f",{_STORE_NAME}:{json_text(meta)}" if meta else ""
    except Invalid:
        raise Refused from None


def _extensions(meta: dict[str, Any], unknown: dict[str, Any], meta_text: str | None) -> str | None:
    try:
        return extensions_text(meta, unknown, meta_text)
    except Invalid:
        raise Refused from None


_STORE_NAME = json_text(STORE_KEY)


def _extra_texts(extras: list[tuple[str, list[bool] | None, pa.ChunkedArray]]) -> list[tuple[str, pa.Array]] | None:
    """Per unknown column, the JSON text of its member's ``"name":`` and of each
    row's value (as ``json_text`` writes the member of an object); None when a
    column holds values :func:`~healthsim_state.codec.json_columns.json_texts` does not write."""
    written = []
    for name, _, column in extras:
        texts = json_texts(column.combine_chunks(), _any_text)
        if texts is None:
            return None
        written.append((json_text(name) + ":", texts))
    return written


def _any_text(column: pa.Array) -> None:
    _check_texts(column, required=False)


_NO_PROVENANCE = {"source_type": "loaded", "source_system": "import", "skill_used": None, "generation_seed": None}
_PROVENANCE_TYPES = {
    "created_at": _UTC_US,
    "source_type": pa.string(),
    "source_system": pa.string(),
    "skill_used": pa.string(),
    "generation_seed": pa.int64(),
}
_PROV_META = "$provenance"  # where a parsed block keeps meta["provenance"], beside the column values


def _provenance_blocks(lay: Layout, table: pa.Table, n: int, absent: dict[str, list[bool]]) -> list[Any] | None:
    """Per row: None (null) or (column values, nulls, verbatim, meta text) of its
    ``_provenance``, each distinct block parsed once (provenance_parsed); None
    when the table has no ``_provenance`` column."""
    if PROVENANCE not in table.column_names:
        return None
    struct = table.column(PROVENANCE).combine_chunks()
    if pa.types.is_null(struct.type):
        return [None] * n
    if not pa.types.is_struct(struct.type):
        raise Refused
    names = [f.name for f in struct.type]
    if len(set(names)) != len(names) or STORE_KEY in names:
        raise Refused
    flat = struct.flatten()
    gone_rows = [absent.get(f"{PROVENANCE}.{name}") for name in names]  # keys some blocks lack: left out of those
    distinct = _distinct_blocks(lay, names, struct, flat, gone_rows)
    if distinct is not None:
        return distinct
    children = [child.to_pylist() for child in flat]
    for j, name in enumerate(names):
        if (gone := absent.get(f"{PROVENANCE}.{name}")) is not None:
            children[j] = [_GONE if g else v for v, g in zip(children[j], gone, strict=True)]
    valid = struct.is_valid().to_pylist() if struct.null_count else None
    seen: dict[tuple[Any, ...], Any] = {}
    blocks: list[Any] = []
    for i, values in enumerate(zip(*children, strict=True) if children else [()] * n):
        if valid is not None and not valid[i]:
            blocks.append(None)
            continue
        try:
            block = seen.get(values)
        except TypeError:  # an object or a list inside (generation_params): parsed each time
            blocks.append(_block(lay, names, values))
            continue
        if block is None:
            block = seen[values] = _block(lay, names, values)
        blocks.append(block)
    return blocks


def _distinct_blocks(
    lay: Layout, names: list[str], struct: pa.StructArray, flat: list[pa.Array], gone_rows: list[list[bool] | None]
) -> list[Any] | None:
    """:func:`_provenance_blocks` for blocks of plain values: each row's
    distinct block told by Arrow (its children's dictionary indices made one
    number), each distinct one parsed once. None for blocks holding floats
    (0.0 and -0.0 are one block to a dict), objects or lists: row by row."""
    if not flat or any(pa.types.is_floating(c.type) or pa.types.is_nested(c.type) for c in flat):
        return None
    parts = [c.dictionary_encode(null_encoding="encode") for c in flat]
    flags = [_mask(gone) for gone in gone_rows if gone is not None]
    if struct.null_count:
        flags.append(struct.is_valid())
    radixes = [len(p.dictionary) for p in parts] + [2] * len(flags)
    if prod(radixes) >= 2**62:  # too many distinct blocks to number in an int64
        return None
    code = pa.repeat(pa.scalar(0, pa.int64()), len(struct))
    for radix, digits in zip(radixes, [p.indices for p in parts] + flags, strict=True):
        code = pc.add(pc.multiply(code, radix), digits.cast(pa.int64()))
    numbered = code.dictionary_encode()
    dictionaries = [p.dictionary.to_pylist() for p in parts]
    made = []
    for number in numbered.dictionary.to_pylist():
        digits = []
        for radix in reversed(radixes):
            number, digit = divmod(number, radix)
            digits.append(digit)
        digits.reverse()
        if struct.null_count and not digits[-1]:
            made.append(None)  # a null _provenance
            continue
        values = [dictionary[d] for dictionary, d in zip(dictionaries, digits, strict=False)]
        flag = iter(digits[len(parts) :])
        values = [_GONE if gone is not None and next(flag) else v for v, gone in zip(values, gone_rows, strict=True)]
        made.append(_block(lay, names, tuple(values)))
    return [made[i] for i in numbered.indices.to_pylist()]


def _block(lay: Layout, names: list[str], values: tuple[Any, ...]) -> tuple[Any, ...]:
    prov = {name: value for name, value in zip(names, values, strict=True) if value is not _GONE}
    try:
        parsed = provenance_parsed(prov, lay)
    except (TypeError, ValueError):
        raise Refused from None
    values, prov_meta, nulls, verbatim, found, meta_text = parsed
    if found:
        raise Refused
    return ({**values, _PROV_META: prov_meta}, nulls, verbatim, meta_text)


_ARROW_TYPES: dict[str, Callable[[Field], pa.DataType]] = {
    "str": lambda f: pa.string(),
    "date": lambda f: pa.date32(),
    "datetime": lambda f: _UTC_US,
    "int": lambda f: pa.int32(),
    "decimal": lambda f: pa.decimal128(f.precision, f.scale),
    "bool": lambda f: pa.bool_(),
    "array": lambda f: pa.string(),
}


def _scalar(value: Any, field: Field) -> pa.Scalar:
    if field.kind == "datetime" and isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return pa.scalar(value, type=_ARROW_TYPES[field.kind](field))


def _repeat(value: Any, field: Field, n: int) -> pa.Array:
    if value is None:
        return pa.nulls(n, _ARROW_TYPES[field.kind](field))
    return pa.repeat(_scalar(value, field), n)
