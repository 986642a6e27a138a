"""The versioned JSON scenario document: its version and top-level keys.

A document is one JSON object::

    {"schema_version": "1.0", "scenario_id": uuid, "name": ..., "description": ...,
     "tags": [...], "created_at": date-time, <other metadata>, "entities": {"patient": [...], ...}}

Every type of the registry has an array under ``entities`` (singular names),
in catalogue order; any other top-level key is scenario metadata.
"""

from __future__ import annotations

import re
from typing import Any

from healthsim_models.errors import DocumentError
from healthsim_state.codec.values import shown
from healthsim_state.formats.json.stream import Position

#: The version of the document format this code writes, and the newest it reads.
SCHEMA_VERSION = "1.0"


#: The document's own top-level members before ``entities``, in the order they are written.
HEADER_KEYS = ("schema_version", "scenario_id", "name", "description", "tags", "created_at")


#: Every top-level key the document uses for its own fields; any other key is scenario metadata.
DOCUMENT_KEYS = frozenset({*HEADER_KEYS, "entities"})


_VERSION = re.compile(r"([0-9]+)\.([0-9]+)")


def check_version(label: str, version: Any, at: Position | None) -> None:
    where = f" (at {at})" if at else ""
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise DocumentError(f"{label}: schema_version {shown(version)}{where} is not a version like {SCHEMA_VERSION!r}")
    found = (int(match[1]), int(match[2]))
    supported = tuple(int(part) for part in SCHEMA_VERSION.split("."))
    if found > supported:
        raise DocumentError(
            f"{label}: schema_version {version} is newer than this HealthSim Store reads ({SCHEMA_VERSION}); "
            "upgrade healthsim-store to import it"
        )
    if found != supported:
        raise DocumentError(
            f"{label}: schema_version {version} is not a version of the scenario document "
            f"(this HealthSim Store reads {SCHEMA_VERSION})"
        )
