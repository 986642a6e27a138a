"""Document values: the parsers of each field kind and the checks every value passes.

A parser turns one document value into its column value, or raises
:class:`Invalid` with the reason. :func:`text_problem` and
:func:`json_problem` say why a text or JSON value cannot be stored on both
backends; :func:`shown` cuts a value short for a message. Nothing here knows
entity types: what a field accepts comes from its :class:`~healthsim_state.codec.layout.Field`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from healthsim_state.codec.layout import Field

UTC = dt.UTC
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: An ISO 8601 date-time as documents carry it (offset optional: none means UTC).
DATETIME_PATTERN = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)


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


SURROGATE = re.compile("[\ud800-\udfff]")

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
        found = SURROGATE.search(text)
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
    # Extensions hold many short texts (a Synthea claim line keeps ~35 cells per
    # transaction): texts are judged where they are met, and the path of a member is
    # only spelt out for containers and for the member that fails.
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if (reason := text_problem(item)) is not None:
                return where, reason
            continue
        is_dict = isinstance(item, dict)
        if is_dict:
            members: Iterable[tuple[Any, Any]] = item.items()
        elif isinstance(item, list | tuple):
            members = enumerate(item)
        else:
            if (reason := _scalar_problem(item)) is not None:
                return where, reason
            continue
        if depth >= MAX_JSON_DEPTH:
            return where, f"is nested more than {MAX_JSON_DEPTH} levels deep"
        for key, member in members:
            if is_dict:
                if not isinstance(key, str):
                    return where, f"has the key {shown(key)} ({type(key).__name__}): object keys must be strings"
                if ("\x00" in key or not key.isascii()) and (reason := text_problem(key)) is not None:
                    return where, f"the key {shown(key)} {reason}"
            if member is None or member is True or member is False:
                continue
            kind = member.__class__
            if (
                (kind is str and "\x00" not in member and member.isascii())
                or (kind is int and member.bit_length() < 64)
                or (kind is float and math.isfinite(member))
            ):
                continue  # plain text and numbers: nothing to say
            stack.append((member, f"{where}.{path_key(key)}" if is_dict else f"{where}[{key}]", depth + 1))
    return None


def _scalar_problem(item: Any) -> str | None:
    """Why a JSON scalar other than text cannot be stored, or None."""
    if item is None or isinstance(item, bool):
        return None
    if isinstance(item, int):
        if item.bit_length() > 3 * MAX_JSON_DIGITS and len(_digits(item)) > MAX_JSON_DIGITS:
            return f"an integer of more than {MAX_JSON_DIGITS} digits is not stored"
        return None
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{item!r} is not a JSON number (only finite numbers are)"
    return (
        f"{shown(item)} ({type(item).__name__}) is not a JSON value (null, true/false, number, string, array, object)"
    )


def _digits(number: int) -> str:
    try:
        return str(abs(number))
    except ValueError:  # beyond the interpreter's limit on int -> str conversion
        return "0" * (MAX_JSON_DIGITS + 1)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]{1,64}")


def path_key(key: str) -> str:
    """A key as part of a dotted field path: as it is when plain, else quoted and cut short."""
    return key if _PLAIN_KEY.fullmatch(key) else shown(key)


def parse_str(field: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {type(value).__name__} {shown(value)}")
    if field.required and not value.strip():
        raise Invalid("required, but empty")
    reason = text_problem(value)
    if reason is not None:
        raise Invalid(reason)
    return value, None


def parse_date(field: Field, value: Any) -> tuple[Any, str | None]:
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


def parse_datetime(field: Field, value: Any) -> tuple[Any, str | None]:
    if value.__class__ is str:
        # Generated data repeats its date-times (visit times, claim dates):
        # parse each distinct text once. Bare dates depend on the field, so
        # they are not cached.
        cached = DATETIME_CACHE.get(value)
        if cached is not None:
            return cached
        if DATETIME_PATTERN.fullmatch(value):  # never a bare date: the pattern needs a T
            parsed = _parse_datetime(value)
            if len(DATETIME_CACHE) >= _DATETIME_CACHE_SIZE:
                DATETIME_CACHE.clear()
            DATETIME_CACHE[value] = parsed
            return parsed
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC), None
    if isinstance(value, str):
        bare = field.bare_date_ok and _DATE.fullmatch(value)
        if bare or DATETIME_PATTERN.fullmatch(value):
            return _parse_datetime(value)
    raise Invalid(f"expected a date-time YYYY-MM-DDThh:mm[:ss[.ffffff]][Z|±hh:mm], got {shown(value)}")


# Also read by document.encode, which looks a text up here before calling the parser.
DATETIME_CACHE: dict[str, tuple[dt.datetime, str | None]] = {}
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


def parse_int(field: Field, value: Any) -> tuple[Any, str | None]:
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


def parse_decimal(field: Field, value: Any) -> tuple[Any, str | None]:
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
        if len(DECIMAL_CACHE) >= _DECIMAL_CACHE_SIZE:
            DECIMAL_CACHE.clear()
        DECIMAL_CACHE[value, field.precision, field.scale] = number
    return number, None


# Also read by document.encode (see parse_decimal).
DECIMAL_CACHE: dict[tuple[float, int | None, int | None], Decimal] = {}
_DECIMAL_CACHE_SIZE = 65_536


@cache
def _decimal_bounds(precision: int, scale: int) -> tuple[Decimal, Decimal]:
    """(smallest step, first value too large) of a DECIMAL(precision, scale) column."""
    return Decimal(1).scaleb(-scale), Decimal(10) ** (precision - scale)


def parse_bool(field: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {shown(value)}")
    return value, None


def _is_int(item: Any) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


#: Per array item kind: (test of one item, what an item should be, for a message).
ITEM_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda item: isinstance(item, str), "a string"),
    "int": (_is_int, "an integer"),
    "object": (lambda item: isinstance(item, dict), "an object"),
}


def parse_array(field: Field, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, list):
        raise Invalid(f"expected an array, got {shown(value)}")
    max_len = field.max_items
    if max_len is not None and len(value) > max_len:
        raise Invalid(f"at most {max_len} items, got {len(value)}")
    is_item, expected = ITEM_KINDS[field.items]
    for i, item in enumerate(value):
        if not is_item(item):
            raise Invalid(f"item {i} should be {expected}, got {shown(item)}")
        # An object item's keys and values, at any depth, as every JSON value's.
        found = json_problem(item, f"item {i}")
        if found is not None:
            raise Invalid(" ".join(found))
    return value, None


#: Per field kind: (field, document value) -> (column value, text to keep verbatim or None);
#: raises :class:`Invalid`.
PARSERS: dict[str, Callable[[Field, Any], tuple[Any, str | None]]] = {
    "str": parse_str,
    "date": parse_date,
    "datetime": parse_datetime,
    "int": parse_int,
    "decimal": parse_decimal,
    "bool": parse_bool,
    "array": parse_array,
}


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
    if not text.isascii() and (found := SURROGATE.search(text)) is not None:
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
