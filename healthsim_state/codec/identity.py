"""Entity identity (canonical-models §2): the UUID of each entity and its business key.

An ``id`` that is a UUID is the entity's UUID everywhere; any other identity
(the ``id`` text, else the business key, else the content) gives a UUID
derived within the scenario and type.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from healthsim_state.codec.document import PROVENANCE

if TYPE_CHECKING:
    from healthsim_state.codec.layout import Layout

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Entities whose document id is not a UUID get a UUID derived in this namespace.
IDENTITY_NAMESPACE = uuid.UUID("5f0c8a0e-2f4b-5d7e-9c61-3b8e6a1d4c27")


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
