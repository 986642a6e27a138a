"""Entity identity (canonical-models §2): the UUID of each entity and its business key.

An ``id`` that is a UUID is the entity's UUID everywhere; any other identity
(the ``id`` text, else the business key, else the content) gives a UUID
derived within the scenario and type.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from healthsim_state.codec.document import PROVENANCE

if TYPE_CHECKING:
    from healthsim_state.codec.layout import Layout

_UUID_TEXT = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID = re.compile(_UUID_TEXT)
_UUID_COLUMN = f"^{_UUID_TEXT}$"  # RE2's $ is the end of the text: fullmatch

# Entities whose document id is not a UUID get a UUID derived in this namespace.
IDENTITY_NAMESPACE = uuid.UUID("5f0c8a0e-2f4b-5d7e-9c61-3b8e6a1d4c27")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.date | dt.datetime | uuid.UUID):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    raise TypeError(f"cannot hash a {type(value).__name__}")


# json.dumps with these options, made once: dumps builds an encoder per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def content_digest(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``doc`` minus ``id`` and ``_provenance`` (§2.3)."""
    body = {k: v for k, v in doc.items() if k not in ("id", PROVENANCE)}
    try:
        text = _CANONICAL.encode(body)
    except (TypeError, ValueError, RecursionError):
        # Only a document that encode() refuses has no canonical JSON: any
        # identity does, since it is never stored.
        return hashlib.sha256(b"unencodable").hexdigest()
    # surrogatepass: likewise only for refused documents; valid text is plain UTF-8.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def content_digests(table: pa.Table, rows: list[int]) -> list[str] | None:
    """:func:`content_digest` of the documents ``table.take(rows).to_pylist()``
    (a column per top-level key, none of them absent), column by column:
    each distinct value's JSON written once by the same encoder, the rows'
    texts joined in Arrow. None when a column holds what is not written so
    (lists, objects in objects, values the encoder refuses): the caller
    digests those documents one by one."""
    names = sorted(name for name in table.column_names if name not in ("id", PROVENANCE))
    part = table.take(pa.array(rows, type=pa.int64()))
    pieces: list[pa.Array | str] = []
    for i, name in enumerate(names):
        texts = _column_json(part.column(name).combine_chunks(), nested=True)
        if texts is None:
            return None
        pieces += [("{" if i == 0 else ",") + _CANONICAL.encode(name) + ":", texts]
    if not pieces:
        return [hashlib.sha256(b"{}").hexdigest()] * len(rows)
    joined = pc.binary_join_element_wise(*pieces, "}", "")
    sha256 = hashlib.sha256
    return [sha256(text.encode("utf-8")).hexdigest() for text in joined.to_pylist()]


def _column_json(column: pa.Array, *, nested: bool) -> pa.Array | None:
    """Each value's canonical JSON text (``null`` for a null), or None (see :func:`content_digests`)."""
    kind = column.type
    if pa.types.is_null(kind):
        return pa.repeat(pa.scalar("null"), len(column))
    if pa.types.is_struct(kind):
        names = [f.name for f in kind]
        if not nested or len(set(names)) != len(names):
            return None  # an object in an object; repeated keys (the last wins in a dict)
        if not names:
            texts = pa.repeat(pa.scalar("{}"), len(column))
        else:
            pieces: list[pa.Array | str] = []
            children = dict(zip(names, column.flatten(), strict=True))
            for i, name in enumerate(sorted(names)):
                child = _column_json(children[name], nested=False)
                if child is None:
                    return None
                pieces += [("{" if i == 0 else ",") + _CANONICAL.encode(name) + ":", child]
            texts = pc.binary_join_element_wise(*pieces, "}", "")
        return pc.if_else(column.is_valid(), texts, "null") if column.null_count else texts
    if pa.types.is_nested(kind) or pa.types.is_dictionary(kind):
        return None
    try:
        # Distinct values as Arrow tells them apart (0.0 from -0.0 too): each
        # is the Python value the row's document holds, written by the same encoder.
        encoded = column.dictionary_encode()
        texts = [_CANONICAL.encode(value) for value in encoded.dictionary.to_pylist()]
    except (pa.ArrowException, TypeError, ValueError, RecursionError):
        return None
    return pa.array(texts, type=pa.string()).take(encoded.indices).fill_null("null")


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
    return derived_uuid(prefix + identity)


def derived_uuid(name: str) -> str:
    """The UUID (32 hex digits) derived from ``name`` (scenario, type and identity) in the namespace."""
    # uuid.uuid5, without building a UUID object: SHA-1, version 5, RFC 4122 variant.
    # surrogatepass: a refused document's key may hold a lone surrogate; valid text is plain UTF-8.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8", "surrogatepass")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


_NAMESPACE_BYTES = IDENTITY_NAMESPACE.bytes
# The hex digit of byte 8's high nibble with the RFC 4122 variant (0b10) set.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def derived_uuids(prefix: str, identities: Iterable[str]) -> list[str]:
    """:func:`derived_uuid` of ``prefix + identity`` for each identity, in one
    loop that hashes the prefix once and sets the version and variant digits
    in the hex text."""
    # Encoding the two parts apart gives the same bytes: UTF-8 (and
    # surrogatepass, one code point at a time) encodes each code point alone.
    start = hashlib.sha1(_NAMESPACE_BYTES + prefix.encode("utf-8", "surrogatepass"))
    copy, variant = start.copy, _VARIANT
    uuids = []
    for identity in identities:
        digest = copy()
        digest.update(identity.encode("utf-8", "surrogatepass"))
        text = digest.hexdigest()
        uuids.append(f"{text[:12]}5{text[13:16]}{variant[text[16]]}{text[17:32]}")
    return uuids


def entity_uuids(
    prefix: str,
    external_ids: pa.Array,
    keys: Sequence[tuple[str, ...] | None] | None,
    contents: Callable[[list[int]], list[str]],
) -> list[str]:
    """:func:`entity_uuid` of each row of a slice, from its ``external_id``
    column (text), its business keys (None: the type has none) and
    ``contents(rows)``, the :func:`content_digest` of those rows' documents
    (asked only for rows with neither id nor key). Each kind of identity is
    hashed in one loop; UUID ids are found and written by Arrow."""
    n = len(external_ids)
    given = external_ids.to_pylist()
    if external_ids.null_count == n:
        is_uuid = None
    else:
        matches = pc.match_substring_regex(external_ids, _UUID_COLUMN)
        is_uuid = matches.to_pylist() if pc.any(matches).as_py() else None
    if external_ids.null_count == 0 and is_uuid is None:  # every row has a (non-UUID) id
        return derived_uuids(prefix + "id:", given)
    uuids: list[str] = [""] * n
    if is_uuid is not None:
        hexed = pc.utf8_lower(pc.replace_substring(external_ids, "-", "")).to_pylist()
        for i, flag in enumerate(is_uuid):
            if flag:
                uuids[i] = hexed[i]
    by_id: tuple[list[int], list[str]] = ([], [])
    by_key: tuple[list[int], list[str]] = ([], [])
    by_content: list[int] = []
    for i, (external_id, key) in enumerate(zip(given, keys or itertools.repeat(None, n), strict=True)):
        if external_id is not None:
            if is_uuid is None or not is_uuid[i]:
                by_id[0].append(i)
                by_id[1].append(external_id)
        elif key is not None:
            by_key[0].append(i)
            by_key[1].append("\x1f".join(key))
        else:
            by_content.append(i)
    parts = [
        (by_id[0], derived_uuids(prefix + "id:", by_id[1])),
        (by_key[0], derived_uuids(prefix + "key:", by_key[1])),
    ]
    if by_content:
        parts.append((by_content, derived_uuids(prefix + "content:", contents(by_content))))
    for rows, derived in parts:
        if len(rows) == n:
            return derived
        for i, value in zip(rows, derived, strict=True):
            uuids[i] = value
    return uuids


def business_key(lay: Layout, row: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The row's business key as text, or None when the type has none or it is incomplete."""
    columns = lay.entity.business_key
    if not columns:
        return None
    return key_of([row.get(c) for c in columns])


def key_of(values: Sequence[Any]) -> tuple[str, ...] | None:
    """A business key's column values (in the key's order) as the key's text, or None when one is missing."""
    if len(values) == 1:  # most keys: one text column (mrn, claim_id, ...)
        value = values[0]
        if value is None:
            return None
        return (value if value.__class__ is str else _key_text(value),)
    if None in values:
        return None
    return tuple(_key_text(v) for v in values)
