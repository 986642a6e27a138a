"""Canonical documents to table rows and back, losslessly.

:func:`encode` turns one document into the row of its table: each known
field into its typed column (parsing and checking its type on the way),
everything else into ``extensions``. :func:`decode` rebuilds the document
from the row. What a column cannot say about the document (a field that was
absent and got the column default, an explicit ``null``, the exact text of a
date-time with an offset, which provenance keys were given) is kept in
``extensions["$store"]``, so that ``decode(encode(doc)) == doc`` up to the
normalisations listed in docs/repository.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import reprlib
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from healthsim_state.codec import rules
from healthsim_state.codec.layout import Field, Layout

STORE_KEY = "$store"  # reserved key of extensions for the bookkeeping above
PROVENANCE = "_provenance"
PROVENANCE_COLUMNS = ("source_type", "source_system", "skill_used", "generation_seed", "created_at")

UTC = dt.UTC
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: An ISO 8601 date-time as documents carry it (offset optional: none means UTC).
DATETIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Entities whose document id is not a UUID get a UUID derived in this namespace.
IDENTITY_NAMESPACE = uuid.UUID("5f0c8a0e-2f4b-5d7e-9c61-3b8e6a1d4c27")


class Invalid(ValueError):
    """A field value that cannot be stored; the message is the reason."""


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 3


def shown(value: Any) -> str:
    """``repr(value)`` cut short, for messages: an input may be megabytes long or
    nested too deeply for ``repr``."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits"  # repr() may refuse one this long
    return _REPR.repr(value)


_SURROGATE = re.compile("[\ud800-\udfff]")

#: Containers (objects, arrays) inside one JSON value, at most. Python's JSON
#: decoder gives up near 1,000 levels, and a value that can be saved must load.
MAX_JSON_DEPTH = 100
#: Digits of an integer in a JSON value, at most (Python reads no more than 4,300).
MAX_JSON_DIGITS = 4000


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored unchanged on both backends, or None.

    PostgreSQL text cannot hold NUL at all, and a lone surrogate (what
    Python's ``surrogateescape`` makes of bytes that are not UTF-8, or a
    ``\\udcff`` escape in JSON) is not Unicode text: neither backend can
    store it, so both are refused up front, the same way everywhere.
    """
    if "\x00" in text:
        return f"contains a NUL character (at character {text.index(chr(0))}), which PostgreSQL cannot store"
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found is not None:
            return (
                f"contains the lone surrogate {ascii(found.group())[1:-1]} at character {found.start()}, "
                "which is not Unicode text (was it decoded with the wrong encoding?)"
            )
    return None


def json_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first part of ``value`` that both backends cannot store and give back
    as it is, as (path, reason); None when all of it can.

    JSON values are None, booleans, integers (up to :data:`MAX_JSON_DIGITS`
    digits), finite floats, text (:func:`text_problem`), lists (tuples come
    back as lists) and dicts with text keys, nested up to
    :data:`MAX_JSON_DEPTH` levels. Iterative, so any depth is judged safely.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            reason = text_problem(item)
            if reason is not None:
                return where, reason
        elif isinstance(item, int):
            if item.bit_length() > 3 * MAX_JSON_DIGITS and len(_digits(item)) > MAX_JSON_DIGITS:
                return where, f"an integer of more than {MAX_JSON_DIGITS} digits is not stored"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, f"{item!r} is not a JSON number (only finite numbers are)"
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                return where, f"is nested more than {MAX_JSON_DEPTH} levels deep"
            if isinstance(item, dict):
                for key, member in item.items():
                    if not isinstance(key, str):
                        return where, f"has the key {shown(key)} ({type(key).__name__}): object keys must be strings"
                    reason = text_problem(key)
                    if reason is not None:
                        return where, f"the key {shown(key)} {reason}"
                    stack.append((member, f"{where}.{_path_key(key)}", depth + 1))
            else:
                stack.extend((member, f"{where}[{i}]", depth + 1) for i, member in enumerate(item))
        else:
            return where, (
                f"{shown(item)} ({type(item).__name__}) is not a JSON value "
                "(null, true/false, number, string, array, object)"
            )
    return None


def _digits(number: int) -> str:
    try:
        return str(abs(number))
    except ValueError:  # beyond the interpreter's limit on int -> str conversion
        return "0" * (MAX_JSON_DIGITS + 1)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]{1,64}")


def _path_key(key: str) -> str:
    """A key as part of a dotted field path: as it is when plain, else quoted and cut short."""
    return key if _PLAIN_KEY.fullmatch(key) else shown(key)


def _str(field: Field, value: Any, type_name: str) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {type(value).__name__} {shown(value)}")
    if field.required and not value.strip():
        raise Invalid("required, but empty")
    reason = text_problem(value)
    if reason is not None:
        raise Invalid(reason)
    return value, None


def _date(field: Field, value: Any, type_name: str) -> tuple[Any, str | None]:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value, None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise Invalid(f"expected a date YYYY-MM-DD, got {shown(value)}")
    try:
        return dt.date.fromisoformat(value), None
    except ValueError:
        raise Invalid(f"{shown(value)} is not a real calendar day") from None


def render_datetime(value: dt.datetime) -> str:
    """The canonical text of an instant: UTC, seconds always, ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _datetime(field: Field, value: Any, type_name: str) -> tuple[Any, str | None]:
    if value.__class__ is str:
        # Generated data repeats its date-times (visit times, claim dates):
        # parse each distinct text once. Bare dates depend on the field, so
        # they are not cached.
        cached = _DATETIME_CACHE.get(value)
        if cached is not None:
            return cached
        if DATETIME_PATTERN.fullmatch(value):  # never a bare date: the pattern needs a T
            parsed = _parse_datetime(value)
            if len(_DATETIME_CACHE) >= _DATETIME_CACHE_SIZE:
                _DATETIME_CACHE.clear()
            _DATETIME_CACHE[value] = parsed
            return parsed
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC), None
    if isinstance(value, str):
        bare = _DATE.fullmatch(value) and field.column in rules.BARE_DATE_OK.get(type_name, ())
        if bare or DATETIME_PATTERN.fullmatch(value):
            return _parse_datetime(value)
    raise Invalid(f"expected a date-time YYYY-MM-DDThh:mm[:ss[.ffffff]][Z|±hh:mm], got {shown(value)}")


_DATETIME_CACHE: dict[str, tuple[dt.datetime, str | None]] = {}
_DATETIME_CACHE_SIZE = 65_536


def _parse_datetime(value: str) -> tuple[dt.datetime, str | None]:
    """(the UTC instant, the text to keep verbatim or None) of a pattern-checked date-time."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{shown(value)} is not a real date-time") from None
    if parsed.tzinfo is None:  # no offset means UTC (canonical-models §0)
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed, (None if _is_canonical_datetime(value, parsed) else value)


def _is_canonical_datetime(text: str, parsed: dt.datetime) -> bool:
    """Whether ``text`` is exactly :func:`render_datetime` of ``parsed`` (cheaply)."""
    if not text.endswith("Z"):
        return False
    if len(text) == 20:  # YYYY-MM-DDThh:mm:ssZ
        return True
    return len(text) == 27 and parsed.microsecond != 0  # six fraction digits, not all zero


def _int(field: Field, value: Any, type_name: str) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected an integer, got {shown(value)}")
    if not -(2**31) <= value < 2**31:
        raise Invalid(f"{shown(value)} is out of the integer range")
    return value, None


def to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise Invalid(f"expected a number, got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(f"expected a finite number, got {shown(value)}")
    try:
        # str() of a float is its shortest repr: 148.83, not 148.8299999...
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, int):
            number = Decimal(value)  # exact at any size (str() refuses more than 4,300 digits)
        else:
            number = Decimal(str(value))
    except InvalidOperation:
        raise Invalid(f"expected a number, got {shown(value)}") from None
    if not number.is_finite():
        raise Invalid(f"expected a finite number, got {shown(value)}")
    return number


def _decimal(field: Field, value: Any, type_name: str) -> tuple[Any, str | None]:
    number = to_decimal(value)
    assert field.precision is not None and field.scale is not None
    quantum, limit = _decimal_bounds(field.precision, field.scale)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    # Size first: quantize() fails on numbers with more digits than the context holds.
    if abs(number) >= limit:
        raise Invalid(f"{shown(value)} is too large (at most {field.precision - field.scale} integer digits)")
    if -exponent > field.scale and number != number.quantize(quantum):
        raise Invalid(f"{shown(value)} has more than {field.scale} decimal places")
    # Generated measurements repeat (a temperature of 98.4, a copay of 25.0):
    # encode looks each distinct float up here, per column type, before
    # calling this again. Not zero: 0.0 == -0.0.
    if value.__class__ is float and value:
        if len(_DECIMAL_CACHE) >= _DECIMAL_CACHE_SIZE:
            _DECIMAL_CACHE.clear()
        _DECIMAL_CACHE[value, field.precision, field.scale] = number
    return number, None


_DECIMAL_CACHE: dict[tuple[float, int | None, int | None], Decimal] = {}
_DECIMAL_CACHE_SIZE = 65_536


@cache
def _decimal_bounds(precision: int, scale: int) -> tuple[Decimal, Decimal]:
    """(smallest step, first value too large) of a DECIMAL(precision, scale) column."""
    return Decimal(1).scaleb(-scale), Decimal(10) ** (precision - scale)


def _bool(field: Field, value: Any, type_name: str) -> tuple[Any, str | None]:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {shown(value)}")
    return value, None


def _array(field: Field, value: Any, type_name: str) -> tuple[Any, str | None]:
    if not isinstance(value, list):
        raise Invalid(f"expected an array, got {shown(value)}")
    item_kind, max_len = rules.ARRAYS.get(type_name, {}).get(field.column, ("str", None))
    if max_len is not None and len(value) > max_len:
        raise Invalid(f"at most {max_len} items, got {len(value)}")
    for i, item in enumerate(value):
        ok = isinstance(item, str) if item_kind == "str" else (isinstance(item, int) and not isinstance(item, bool))
        if not ok:
            raise Invalid(f"item {i} should be {'a string' if item_kind == 'str' else 'an integer'}, got {shown(item)}")
        found = json_problem(item, f"item {i}")
        if found is not None:
            raise Invalid(" ".join(found))
    return value, None


PARSERS: dict[str, Callable[[Field, Any, str], tuple[Any, str | None]]] = {
    "str": _str,
    "date": _date,
    "datetime": _datetime,
    "int": _int,
    "decimal": _decimal,
    "bool": _bool,
    "array": _array,
}

_MISSING = object()


def _provenance(
    doc: Mapping[str, Any],
    lay: Layout,
    now: dt.datetime,
    row: dict[str, Any],
    meta: dict[str, Any],
    problems: list[tuple[str, str]],
) -> str | None:
    """Fill the provenance columns of ``row`` and ``meta["provenance"]``.

    Returns the JSON text of ``{"$store": {"provenance": ...}}`` when that
    is all this block adds to ``meta``, so the common extensions need no
    encoding per entity; otherwise None."""
    prov = doc.get(PROVENANCE, _MISSING)
    if prov is _MISSING:
        row["source_type"], row["source_system"] = "loaded", "import"
        row["skill_used"] = row["generation_seed"] = None
        row["created_at"] = now
        return None
    if prov is None:
        row["source_type"], row["source_system"] = "loaded", "import"
        row["skill_used"] = row["generation_seed"] = None
        row["created_at"] = now
        meta.setdefault("nulls", []).append(PROVENANCE)
        return None
    if prov.__class__ is not dict and not isinstance(prov, Mapping):
        row["source_type"], row["source_system"] = "loaded", "import"
        row["skill_used"] = row["generation_seed"] = None
        row["created_at"] = now
        problems.append((PROVENANCE, f"expected an object, got {shown(prov)}"))
        return None
    # Generators stamp the same few provenance blocks on every entity: parse
    # each distinct one once. Blocks with other than plain scalar values
    # (generation_params) are parsed every time: a tuple (True,) equals (1,).
    key: tuple[Any, ...] | None = None
    parsed = None
    if all(v.__class__ in _SCALARS for v in prov.values()):
        # The value types belong in the key: True == 1 == 1.0 as dict keys,
        # but only 1 is a valid seed.
        key = (lay.entity.name, *prov.items(), *[v.__class__ for v in prov.values()])
        parsed = _PROV_CACHE.get(key)
    if parsed is None:
        parsed = _parse_provenance(prov, lay)
        if key is not None and len(_PROV_CACHE) < _PROV_CACHE_SIZE:
            _PROV_CACHE[key] = parsed
    values, prov_meta, nulls, verbatim, found, meta_text = parsed
    row.update(values)
    if row.get("created_at") is None:
        row["created_at"] = now
    meta["provenance"] = prov_meta
    if nulls:
        meta.setdefault("nulls", []).extend(nulls)
    if verbatim:
        meta.setdefault("verbatim", {}).update(verbatim)
    problems.extend(found)
    return meta_text


_PROV_CACHE: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_SCALARS = frozenset({str, int, float, bool, type(None)})
_PROV_CACHE_SIZE = 1024


def _parse_provenance(prov: Mapping[str, Any], lay: Layout) -> tuple[Any, ...]:
    """(column values, meta["provenance"], nulls, verbatim, problems, meta
    text; see :func:`_provenance`) of one ``_provenance`` object; shared by
    every entity that carries an equal one, so nothing returned may be mutated."""
    values: dict[str, Any] = {
        "source_type": "loaded",
        "source_system": "import",
        "skill_used": None,
        "generation_seed": None,
        "created_at": None,
    }
    problems: list[tuple[str, str]] = []
    nulls: list[str] = []
    verbatim: dict[str, str] = {}
    given = [k for k in PROVENANCE_COLUMNS if k in prov]
    extra = {k: v for k, v in prov.items() if k not in PROVENANCE_COLUMNS}
    found = json_problem(extra, PROVENANCE) if extra else None
    if found is not None:
        problems.append(found)
        extra = {}  # not stored: the entity is refused
    prov_meta = {"keys": given, **({"extra": extra} if extra else {})}

    def field_name(key: str) -> str:
        return f"{PROVENANCE}.{key}"

    for key in given:
        if prov[key] is None:
            nulls.append(field_name(key))
    source_type = prov.get("source_type")
    if source_type is None:
        problems.append((field_name("source_type"), "required in _provenance"))
    elif not isinstance(source_type, str) or source_type not in rules.SOURCE_TYPES:
        problems.append((field_name("source_type"), f"{shown(source_type)} is not one of {sorted(rules.SOURCE_TYPES)}"))
    else:
        values["source_type"] = source_type
    system = prov.get("source_system")
    if system is None:
        values["source_system"] = lay.entity.product  # canonical-models §10
    elif not isinstance(system, str) or system not in rules.SOURCE_SYSTEMS:
        problems.append((field_name("source_system"), f"{shown(system)} is not one of {sorted(rules.SOURCE_SYSTEMS)}"))
    else:
        values["source_system"] = system
    skill = prov.get("skill_used")
    if skill is not None and not isinstance(skill, str):
        problems.append((field_name("skill_used"), f"expected a string, got {shown(skill)}"))
    elif skill is not None and (reason := text_problem(skill)) is not None:
        problems.append((field_name("skill_used"), reason))
    else:
        values["skill_used"] = skill
    values["generation_seed"] = _seed(prov, problems)
    created = prov.get("created_at")
    if created is not None:
        try:
            values["created_at"], text = _datetime(_PROV_CREATED, created, lay.entity.name)
        except Invalid as exc:
            problems.append((field_name("created_at"), str(exc)))
        else:
            if text is not None:
                verbatim[field_name("created_at")] = text
    meta_text = None
    if not nulls and not verbatim and not extra:  # only key names: always valid JSON
        meta_text = json_text({STORE_KEY: {"provenance": prov_meta}})
    return values, prov_meta, tuple(nulls), verbatim, tuple(problems), meta_text


_PROV_CREATED = Field(("created_at",), "created_at", "datetime", False, None)


def _seed(prov: Mapping[str, Any], problems: list[tuple[str, str]]) -> int | None:
    """The first integer of generation_seed, seed, generation_params.seed (§10)."""
    given = prov.get("generation_seed")
    if given is not None and (isinstance(given, bool) or not isinstance(given, int)):
        # Not passed over for a later candidate: the column would load in its place.
        problems.append((f"{PROVENANCE}.generation_seed", f"expected an integer, got {shown(given)}"))
        return None
    params = prov.get("generation_params")
    candidates = [
        ("generation_seed", prov.get("generation_seed")),
        ("seed", prov.get("seed")),
        ("generation_params.seed", params.get("seed") if isinstance(params, Mapping) else None),
    ]
    for name, value in candidates:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**63:
                problems.append((f"{PROVENANCE}.{name}", f"{shown(value)} does not fit a 64-bit seed"))
                return None
            return value
    return None


def encode(lay: Layout, doc: Mapping[str, Any], now: dt.datetime) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The table row for ``doc`` (without ``id`` and the ``*_uuid`` columns;
    ``extensions`` as JSON text), and the problems found as (field, reason) pairs."""
    type_name = lay.entity.name
    problems: list[tuple[str, str]] = []
    row: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}  # nested objects given: their unknown keys
    top = lay.plain_keys
    # Most documents hold only top-level fields, id and _provenance: one C-level
    # subset test instead of a look at every key.
    for key, value in () if top.issuperset(doc.keys()) else doc.items():
        if key in top:
            continue
        if key == STORE_KEY:
            problems.append((key, "is reserved by the store; rename the field"))
        elif key in lay.groups and value is not None:
            if value.__class__ is not dict and not isinstance(value, Mapping):
                problems.append((key, f"expected an object, got {shown(value)}"))
                continue
            known = lay.group_keys[key]
            extra = {k: v for k, v in value.items() if k not in known}
            found = json_problem(extra, key) if extra else None
            if found is not None:
                problems.append(found)
                continue
            groups[key] = extra
        elif key in lay.groups:
            meta.setdefault("nulls", []).append(key)
        elif not isinstance(key, str):
            problems.append((shown(key), f"a field name must be a string, not a {type(key).__name__}"))
        elif (reason := text_problem(key)) is not None:
            problems.append((shown(key), f"the field name {reason}"))
        elif (found := json_problem(value, _path_key(key))) is not None:
            problems.append(found)
        else:
            unknown[key] = value

    external_id = doc.get("id")
    if external_id is None:
        if "id" in doc:
            meta.setdefault("nulls", []).append("id")
        if lay.entity.name in _PERSON_ID_REQUIRED:
            problems.append(("id", "required on person types"))
    elif not isinstance(external_id, str) or not external_id:
        problems.append(("id", f"expected a non-empty string, got {shown(external_id)}"))
        external_id = None
    elif (reason := text_problem(external_id)) is not None:
        problems.append(("id", reason))
        external_id = None
    row["external_id"] = external_id

    emitted_groups = set()
    for field, parse, outer, inner in lay.plan:
        if inner is None:
            value = doc.get(outer, _MISSING)
        else:
            group = doc.get(outer)
            value = group.get(inner, _MISSING) if group.__class__ is dict or isinstance(group, Mapping) else _MISSING
            if value is not _MISSING:
                emitted_groups.add(outer)
        if value is _MISSING or value is None:
            if value is None:
                meta.setdefault("nulls", []).append(field.name)
            if field.required:
                problems.append((field.name, "required" if value is _MISSING else "required, but null"))
            elif field.default is not None and value is _MISSING:
                meta.setdefault("defaulted", []).append(field.name)
            row[field.column] = field.default
            continue
        if (
            parse is _str
            and value.__class__ is str
            and "\x00" not in value
            and (value.isascii() or not _SURROGATE.search(value))
            and (not field.required or value.strip())
        ):
            row[field.column] = value  # the common case, without the call
            continue
        if parse is _int and value.__class__ is int and -2147483648 <= value <= 2147483647:
            row[field.column] = value
            continue
        if parse is _decimal and value.__class__ is float:
            number = _DECIMAL_CACHE.get((value, field.precision, field.scale))
            if number is not None:
                row[field.column] = number
                continue
        if parse is _datetime and value.__class__ is str:
            cached = _DATETIME_CACHE.get(value)  # what _datetime would look up first
            if cached is not None:
                row[field.column], text = cached
                if text is not None:
                    meta.setdefault("verbatim", {})[field.name] = text
                continue
        try:
            parsed, text = parse(field, value, type_name)
        except Invalid as exc:
            problems.append((field.name, str(exc)))
            row[field.column] = None
            continue
        row[field.column] = parsed
        if text is not None:
            meta.setdefault("verbatim", {})[field.name] = text

    for group, extra in groups.items():
        # Keep a group's unknown keys; keep an empty group only when no
        # known field of it will bring it back on decode.
        if extra or group not in emitted_groups:
            unknown[group] = extra

    for column, derive in _DERIVED.get(type_name, {}).items():
        row[column] = derive(doc)
    meta_text = _provenance(doc, lay, now, row, meta, problems)
    if meta_text is not None and not unknown and len(meta) == 1:
        row["extensions"] = meta_text
    elif meta_text is not None and not unknown and len(meta) == 2 and "verbatim" in meta:
        row["extensions"] = _with_verbatim(meta_text, meta["verbatim"])
    elif meta or unknown:
        if meta:
            unknown[STORE_KEY] = meta
        try:
            row["extensions"] = json_text(unknown)
        except Invalid as exc:
            problems.append(("extensions", str(exc)))
            row["extensions"] = None
    else:
        row["extensions"] = None
    return row, problems


def _with_verbatim(meta_text: str, verbatim: dict[str, str]) -> str:
    """``meta_text`` (``{"$store": {"provenance": ...}}``) with ``verbatim`` added
    to ``$store``, without the JSON encoder: generated date-times usually carry
    an offset, so this runs for most entities. Nothing needs escaping: the keys
    are field names of the layout and the values texts that the date or
    date-time pattern matched (digits, ``-:.TZ+``)."""
    pairs = ",".join(f'"{name}":"{text}"' for name, text in verbatim.items())
    return f'{meta_text[:-2]},"verbatim":{{{pairs}}}}}}}'


def _provider_name(doc: Mapping[str, Any]) -> str | None:
    provider = doc.get("ordering_provider")
    name = provider.get("name") if isinstance(provider, Mapping) else None
    if not isinstance(name, Mapping):
        return None
    parts = [name.get("given_name"), name.get("family_name")]
    text = " ".join(p for p in parts if isinstance(p, str) and p)
    return text or None


# Derived columns (fields.DERIVED_COLUMNS): how each is computed from the document.
_DERIVED: dict[str, dict[str, Callable[[Mapping[str, Any]], Any]]] = {
    "order": {"ordering_provider_name": _provider_name},
}

_PERSON_ID_REQUIRED = frozenset({"patient", "member", "subject"})


def _render(kind: str, value: Any) -> Any:
    if kind == "date":
        return value.isoformat()
    if kind == "datetime":
        return render_datetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    if kind == "array" and isinstance(value, str):
        return json.loads(value)
    return value


_RENDERED = frozenset({"date", "datetime", "array"})  # kinds whose column value is not the document's
_EMPTY: frozenset[str] = frozenset()
_NO_META: dict[str, Any] = {}


def decode(lay: Layout, row: Mapping[str, Any]) -> dict[str, Any]:
    """The document that :func:`encode` was given for ``row``."""
    extensions = row["extensions"]
    if isinstance(extensions, str):
        extensions = json.loads(extensions)
    extensions = dict(extensions) if extensions else {}
    meta = extensions.pop(STORE_KEY, None) or _NO_META
    nulls = set(meta["nulls"]) if "nulls" in meta else _EMPTY
    defaulted = set(meta["defaulted"]) if "defaulted" in meta else _EMPTY
    verbatim = meta.get("verbatim") or _NO_META

    doc: dict[str, Any] = {}
    if row["external_id"] is not None:
        doc["id"] = row["external_id"]
    elif "id" in nulls:
        doc["id"] = None
    for name, column, kind, outer, inner in lay.decode_plan:
        if name in nulls:
            value: Any = None
        else:
            value = row[column]
            if value is None or name in defaulted:
                continue
            if kind in _RENDERED:
                # Only date-times keep verbatim text (encode's parsers say so).
                value = verbatim.get(name) or _render(kind, value)
        if inner is None:
            doc[outer] = value
        else:
            group = doc.get(outer)
            if group is None:
                group = doc[outer] = {}
            group[inner] = value
    for key, value in extensions.items():
        if key in lay.groups and isinstance(value, dict):
            doc.setdefault(key, {}).update(value)
        else:
            doc[key] = value
    for group in lay.groups:
        if group in nulls:
            doc[group] = None

    prov_meta = meta.get("provenance")
    if prov_meta is not None:
        prov: dict[str, Any] = {}
        for key in prov_meta["keys"]:
            name = f"{PROVENANCE}.{key}"
            if name in nulls:
                prov[key] = None
            elif key == "created_at":
                prov[key] = verbatim.get(name) or _render("datetime", row["created_at"])
            else:
                prov[key] = row[key]
        prov.update(prov_meta.get("extra", {}))
        doc[PROVENANCE] = prov
    elif PROVENANCE in nulls:
        doc[PROVENANCE] = None
    return doc


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.date | dt.datetime | uuid.UUID):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    raise TypeError(f"cannot hash a {type(value).__name__}")


def content_digest(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``doc`` minus ``id`` and ``_provenance`` (§2.3)."""
    body = {k: v for k, v in doc.items() if k not in ("id", PROVENANCE)}
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError, RecursionError):
        # Only a document that encode() refuses has no canonical JSON: any
        # identity does, since it is never stored.
        return hashlib.sha256(b"unencodable").hexdigest()
    # surrogatepass: likewise only for refused documents; valid text is plain UTF-8.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def is_uuid_text(value: Any) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def _key_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def identity_prefix(scenario_id: uuid.UUID, lay: Layout) -> str:
    """The part of every derived identity that names the scenario and type."""
    return f"{scenario_id}\x1f{lay.entity.name}\x1f"


def entity_uuid(prefix: str, lay: Layout, doc: Mapping[str, Any], row: Mapping[str, Any]) -> str:
    """The entity's UUID (canonical-models §2), as 32 hex digits.

    A UUID ``id`` is used as is (global identity). Otherwise the UUID is
    derived from ``prefix`` (:func:`identity_prefix`: scenario and type) and
    the entity's identity in the scenario: its ``id``, else its business
    key, else its content. Hex text
    rather than ``uuid.UUID`` because both backends read it directly and the
    write path makes one per entity.
    """
    external_id = row["external_id"]
    if is_uuid_text(external_id):
        return external_id.replace("-", "").lower()
    if external_id:
        identity = f"id:{external_id}"
    else:
        key = business_key(lay, row)
        identity = "key:" + "\x1f".join(key) if key else f"content:{content_digest(doc)}"
    name = prefix + identity
    # uuid.uuid5, without building a UUID object: SHA-1, version 5, RFC 4122 variant.
    # surrogatepass: a refused document's key may hold a lone surrogate; valid text is plain UTF-8.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8", "surrogatepass")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


_NAMESPACE_BYTES = IDENTITY_NAMESPACE.bytes


_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_text(value: Any) -> str:
    """``value`` as compact JSON text for a JSON column; :class:`Invalid` if it is not JSON."""
    try:
        text = _JSON_ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise Invalid(f"is not representable as JSON ({exc})") from None
    except RecursionError:
        raise Invalid(f"is nested more than {MAX_JSON_DEPTH} levels deep") from None
    # json.dumps escapes a NUL as \u0000; a literal backslash-u text is \\u0000.
    if "\\u0000" in text and _has_nul(value):
        raise Invalid("contains a NUL character, which PostgreSQL cannot store")
    if not text.isascii() and (found := _SURROGATE.search(text)) is not None:
        raise Invalid(f"contains the lone surrogate {ascii(found.group())[1:-1]}, which is not Unicode text")
    return text


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def nest_flat(lay: Layout, doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """Move flat column names (``given_name``) into their nested objects (``name``)."""
    flat = lay.flat_keys
    if flat.keys().isdisjoint(doc):
        return doc
    if any(g in doc and not isinstance(doc[g], Mapping) for g in lay.groups):
        return doc  # ambiguous (flat fields beside a non-object group): keep as sent
    nested: dict[str, Any] = {}
    for key, value in doc.items():
        path = flat.get(key)
        if path is None:
            if key in lay.groups and isinstance(value, Mapping):
                nested.setdefault(key, {}).update(value)
            else:
                nested[key] = value
        else:
            nested.setdefault(path[0], {})[path[1]] = value
    return nested


def business_key(lay: Layout, row: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The row's business key as text, or None when the type has none or it is incomplete."""
    columns = lay.entity.business_key
    if not columns:
        return None
    if len(columns) == 1:  # most keys: one text column (mrn, claim_id, ...)
        value = row.get(columns[0])
        if value is None:
            return None
        return (value if value.__class__ is str else _key_text(value),)
    values = [row.get(c) for c in columns]
    if None in values:
        return None
    return tuple(_key_text(v) for v in values)
