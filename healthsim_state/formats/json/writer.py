"""Export: a scenario written as the versioned JSON document (:mod:`.document`).

:func:`export_scenario` writes it entity by entity, every type of the
registry in catalogue order (empty arrays included), entities in saved
order, one per line. It works in the caller's session and never commits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import stat
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from healthsim_models.errors import DocumentError
from healthsim_models.registry import BY_PLURAL, ENTITY_TYPES
from healthsim_state.codec.values import render_datetime
from healthsim_state.formats.common import ProgressFactory, no_progress
from healthsim_state.formats.json.document import DOCUMENT_KEYS, SCHEMA_VERSION
from healthsim_state.store.audit import record_read
from healthsim_state.store.repository import ScenarioInfo, ScenarioRepository

Target = str | os.PathLike[str] | BinaryIO


_FLUSH_CHARS = 1 << 20


@dataclass
class ExportSummary:
    """What :func:`export_scenario` wrote."""

    scenario_id: str
    name: str
    schema_version: str
    counts: dict[str, int]  # entities written per type (types with none omitted)
    entities: int
    bytes: int
    path: str | None  # None when written to a file object


def export_scenario(
    session: Session, name_or_id: str | uuid.UUID, out: Target, *, progress: ProgressFactory | None = None
) -> ExportSummary:
    """Write the scenario as a versioned JSON document to ``out`` (a path or a binary file object).

    A path is written through a temporary file beside it and replaced only
    when the document is complete, so a failed export never leaves half a file.
    A new file is readable by its owner only (0600, whatever the umask); a
    file it replaces keeps its mode.
    """
    repo = ScenarioRepository(session)
    info = repo.scenario_summary(name_or_id)
    total = sum(info.entity_counts.values())
    with _sink(out) as (sink, path), (progress or no_progress)(f"Exporting {info.name}", total) as advance:
        writer = _Writer(sink)
        writer.add("{\n")
        for key, value in _header(info):
            writer.add(f"  {_dumps(key)}: {value},\n")
        writer.add('  "entities": {\n')
        counts: dict[str, int] = {}
        for i, et in enumerate(ENTITY_TYPES):
            comma = "," if i < len(ENTITY_TYPES) - 1 else ""
            if not info.entity_counts.get(et.name):
                writer.add(f"    {_dumps(et.name)}: []{comma}\n")
                continue
            writer.add(f"    {_dumps(et.name)}: [")
            written = 0
            for doc in repo.iter_entities(info.id, et.name):
                writer.add(",\n      " if written else "\n      ")
                writer.add(entity_json(doc))
                written += 1
                advance(1)
            writer.add(f"\n    ]{comma}\n")
            counts[et.name] = written
        writer.add("  }\n}\n")
        writer.flush()
    record_read(session, "export", scenario=info.name, counts=counts)  # when reads are audited
    return ExportSummary(
        scenario_id=str(info.id),
        name=info.name,
        schema_version=SCHEMA_VERSION,
        counts=counts,
        entities=sum(counts.values()),
        bytes=writer.bytes,
        path=path,
    )


def _header(info: ScenarioInfo) -> list[tuple[str, str]]:
    """The document's top-level members before ``entities``, as JSON text, in a fixed order."""
    created = info.created_at if info.created_at.tzinfo else info.created_at.replace(tzinfo=dt.UTC)
    members = [
        ("schema_version", _dumps(SCHEMA_VERSION)),
        ("scenario_id", _dumps(str(info.id))),
        ("name", _dumps(info.name)),
        ("description", _dumps(info.description)),
        ("tags", _dumps(list(info.tags))),
        ("created_at", _dumps(render_datetime(created))),
    ]
    # Sorted: PostgreSQL's JSONB does not keep key order, and the output must not depend on the backend.
    for key in sorted(info.extra or {}):
        value = info.extra[key]
        if key in DOCUMENT_KEYS:
            raise DocumentError(
                f"the scenario {info.name!r} has metadata named {key!r}, which the document uses for "
                "its own field; rename that metadata key to export the scenario"
            )
        misread = _misread_metadata(key, value)
        if misread:
            raise DocumentError(
                f"the scenario {info.name!r} has metadata {key!r} that an import would read as {misread}; "
                "rename that metadata key to export the scenario"
            )
        members.append((key, json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)))
    return members


def _misread_metadata(key: str, value: Any) -> str | None:
    """What the importer would take a top-level member for, if not scenario metadata; else None."""
    if key.startswith("_"):
        return "an annotation (not stored)"
    if key == "metadata" and isinstance(value, dict):
        return "the header of a legacy v2 workspace"
    if key in BY_PLURAL and isinstance(value, list):
        return "an entity group of a legacy v1 scenario file"
    return None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _mark_decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"\x00{value:f}\x00"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=_mark_decimal)


# A DECIMAL column's value, marked by _mark_decimal and escaped by the encoder.
# Stored text never holds NUL (the repository refuses it), so the mark is unambiguous.
_MARKED = re.compile(r'"\\u0000(-?[0-9]+(?:\.[0-9]+)?)\\u0000"')


def entity_json(doc: dict[str, Any]) -> str:
    """One entity document as JSON on one line; DECIMAL values keep their digits (``148.80``)."""
    text = _ENCODER.encode(doc)
    if "\\u0000" in text:
        text = _MARKED.sub(r"\1", text)
    return text


class _Writer:
    """Collects text and writes it to the sink as UTF-8 in large pieces."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.parts: list[str] = []
        self.size = 0
        self.bytes = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= _FLUSH_CHARS:
            self.flush()

    def flush(self) -> None:
        data = "".join(self.parts).encode("utf-8")
        self.sink.write(data)
        self.bytes += len(data)
        self.parts.clear()
        self.size = 0


@contextlib.contextmanager
def _sink(out: Target) -> Iterator[tuple[BinaryIO, str | None]]:
    if isinstance(out, io.TextIOBase):
        raise TypeError("export_scenario needs a binary file object (open(path, 'wb')) or a path")
    if not isinstance(out, str | os.PathLike):
        yield out, None
        return
    path = Path(out)
    if path.is_dir():  # found now rather than when the finished document would replace it
        raise DocumentError(f"cannot write {path}: it is a folder; give a file name")
    try:
        kept_mode: int | None = stat.S_IMODE(path.stat().st_mode)  # the user's choice for that file
    except OSError:
        kept_mode = None  # no such file (or no way to it: mkstemp says why below)
    try:
        # mkstemp makes the file 0600 whatever the umask: like the store, an
        # export holds health records, and only its owner should read them.
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise DocumentError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(handle, "wb") as sink:
            yield sink, str(path)
        if kept_mode is not None:
            os.chmod(temp, kept_mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
