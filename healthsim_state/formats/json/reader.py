"""Import: a versioned JSON document (:mod:`.document`) saved as a scenario.

:func:`import_scenario` reads the file in two passes, holding one entity at
a time: the first checks the whole document (syntax, truncation, header,
entity type keys) and notes where each type's array starts; the second
feeds each array, parents first, to one ``ScenarioRepository.save``, which
consumes them in batches. A document that is refused leaves the database
untouched. It works in the caller's session and never commits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from healthsim_models.errors import DocumentError, ScenarioExistsError, ValidationError
from healthsim_models.registry import BY_NAME, BY_PLURAL
from healthsim_state.codec.checks import scenario_problems
from healthsim_state.codec.values import shown
from healthsim_state.formats.common import Advance, ProgressFactory, check_header_fields, counted, no_progress
from healthsim_state.formats.json.document import HEADER_KEYS, SCHEMA_VERSION, check_version
from healthsim_state.formats.json.stream import JsonReader, Position
from healthsim_state.store.audit import audited_call, from_save, source_details
from healthsim_state.store.repository import SaveSummary, ScenarioInfo, ScenarioRepository

Source = str | os.PathLike[str] | BinaryIO


@dataclass
class _Section:
    """Where one entity type's array is in the file."""

    type_name: str
    start: Position
    count: int


@dataclass
class _Document:
    """A checked document: its header and where its entities are."""

    name: str
    description: str | None
    tags: list[str]
    scenario_id: uuid.UUID | None
    created_at: dt.datetime | None
    extra: dict[str, Any]
    sections: dict[str, _Section] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(s.count for s in self.sections.values())


@audited_call("import_json", scenario="name", details=source_details, describe=from_save)
def import_scenario(
    session: Session,
    source: Source,
    *,
    overwrite: bool = False,
    name: str | None = None,
    progress: ProgressFactory | None = None,
) -> SaveSummary:
    """Import a versioned JSON document (a path or a binary file object) as a scenario.

    ``name`` imports under that name instead of the document's. A scenario
    of the target name must not exist unless ``overwrite`` (which replaces
    it, keeping its id and creation time). A new scenario keeps the
    document's ``scenario_id`` and ``created_at`` unless another scenario
    already has that id; then it gets a new one. Invalid, truncated or
    future-version documents raise :class:`DocumentError`, invalid entities
    :class:`~healthsim_models.errors.ValidationError`; either way nothing is
    written.
    """
    with _source(source) as (raw, label):
        reader = JsonReader(raw, label)
        with (progress or no_progress)(f"Checking {label}", None) as advance:
            document = _scan(reader, advance)
        target = document.name if name is None else name
        if name is not None and (problems := scenario_problems(name, None, None)):
            raise ValidationError(problems)  # before the name is looked up
        repo = ScenarioRepository(session)
        existing = _named(repo, target)
        if existing is not None and not overwrite:
            raise ScenarioExistsError(
                f"a scenario named {target!r} exists; import with overwrite (--overwrite) to replace it, "
                "or under another name (--as NEW_NAME)"
            )
        scenario_id = document.scenario_id
        if existing is None and scenario_id is not None and repo.exists(scenario_id):
            scenario_id = None  # a copy of a scenario the store holds: it needs an id of its own
        with (progress or no_progress)(f"Importing {target}", document.total) as advance:
            arrays = _Arrays(reader)
            streams = {
                type_name: counted(arrays.entities(section), advance)
                for type_name, section in document.sections.items()
                if section.count
            }
            return repo.save(
                target,
                streams,
                description=document.description,
                tags=document.tags,
                overwrite=overwrite,
                extra=document.extra or None,
                scenario_id=scenario_id,
                created_at=document.created_at,
            )


def _named(repo: ScenarioRepository, name: str) -> ScenarioInfo | None:
    """The scenario called exactly ``name`` (not one whose id merely reads like it)."""
    if not repo.exists(name):
        return None
    info = repo.scenario_summary(name)
    return info if info.name == name else None


class _Arrays:
    """The entity arrays of one document, read through one shared reader.

    The repository reads one type's stream after another (parents first);
    since the streams share the reader, resuming one after another moved it
    would read the wrong array, so that is refused rather than done.
    """

    def __init__(self, reader: JsonReader) -> None:
        self.reader = reader
        self.reading: str | None = None

    def entities(self, section: _Section) -> Iterator[Any]:
        """The documents of one type's array, read from the file one at a time."""
        self.reading = section.type_name
        self.reader.seek(section.start)
        for index in self.reader.items(f"entities.{section.type_name}"):
            yield self.reader.value(f"{section.type_name}[{index}]")
            if self.reading != section.type_name:
                raise RuntimeError(
                    f"the {section.type_name} array was resumed after the {self.reading} array moved the "
                    "shared reader; the entity streams must be read one after another"
                )


@contextlib.contextmanager
def _source(source: Source) -> Iterator[tuple[BinaryIO, str]]:
    """A seekable binary file and a label for messages; a pipe is copied to a temporary file first."""
    if isinstance(source, io.TextIOBase):
        raise TypeError("import_scenario needs a binary file object (open(path, 'rb')) or a path")
    if isinstance(source, str | os.PathLike):
        try:
            handle = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise DocumentError(f"cannot read {os.fspath(source)}: {exc.strerror}") from exc
        with handle:
            yield handle, os.fspath(source)
        return
    label = str(getattr(source, "name", "the input"))
    if source.seekable():
        yield source, label
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(source, spool, 1 << 20)
        spool.seek(0)
        yield spool, label


def _scan(reader: JsonReader, advance: Advance | None = None) -> _Document:
    """First pass: check the whole document and note where each type's array starts."""
    if reader.peek() == "":
        raise DocumentError(f"{reader.label} is empty: expected a scenario document (a JSON object)")
    header: dict[str, Any] = {}
    where: dict[str, Position] = {}
    sections: dict[str, _Section] | None = None
    for key, at in reader.members("the document"):
        if key in where:
            reader.fail(f"the key {shown(key)} appears twice in the document", at)
        where[key] = at
        if key == "entities":
            sections = _scan_entities(reader, header, advance or (lambda n=1: None))
        else:
            header[key] = reader.value(f"the value of {shown(key)}")
            if key == "schema_version":
                # Before reading on: a newer document may hold what this version cannot name.
                check_version(reader.label, header[key], at)
    reader.end()
    return _check_header(reader.label, header, where, sections)


def _scan_entities(reader: JsonReader, header: dict[str, Any], advance: Advance) -> dict[str, _Section]:
    if reader.peek() != "{":
        reader.unexpected("an object of entity type -> array", "'entities'")
    sections: dict[str, _Section] = {}
    for key, at in reader.members("'entities'"):
        if key not in BY_NAME:
            if key in BY_PLURAL:
                kind = "a legacy v2 workspace" if "metadata" in header else "a legacy v1 scenario file"
                reader.fail(
                    f"entities key {key!r} is plural, so this is {kind}, not a scenario document "
                    f"(which uses {BY_PLURAL[key].name!r}); bring it in with "
                    f"'healthsim migrate-legacy --from {reader.label}'",
                    at,
                )
            valid = ", ".join(BY_NAME)
            reader.fail(f"entities key {shown(key)} is not an entity type; valid types: {valid}", at)
        if key in sections:
            reader.fail(f"entities key {shown(key)} appears twice", at)
        if reader.peek() != "[":
            reader.unexpected("an array", f"entities.{key}")
        start = reader.position()
        count = 0
        for index in reader.items(f"entities.{key}"):
            reader.value(f"{key}[{index}]")
            advance(1)
            count += 1
        sections[key] = _Section(key, start, count)
    return sections


def _check_header(
    label: str, header: dict[str, Any], where: dict[str, Position], sections: dict[str, _Section] | None
) -> _Document:
    def fail(key: str, problem: str) -> DocumentError:
        at = f" at {where[key]}" if key in where else ""
        return DocumentError(f"{label}: {key!r}{at}: {problem}")

    if "metadata" in header and isinstance(header["metadata"], dict):
        raise DocumentError(
            f"{label} is a legacy v2 workspace file, not a scenario document; bring it in with "
            f"'healthsim migrate-legacy --from {label}'"
        )
    # Only an array is an entity group: "patients": 50 is metadata (the demo writes it).
    plural = sorted(k for k, v in header.items() if k in BY_PLURAL and isinstance(v, list))
    if plural:
        raise DocumentError(
            f"{label} has plural entity keys at the top level ({', '.join(plural)}): a legacy v1 scenario "
            f"file; bring it in with 'healthsim migrate-legacy --from {label}'"
        )
    version = header.get("schema_version", SCHEMA_VERSION)
    check_version(label, version, where.get("schema_version"))
    if sections is None:
        raise DocumentError(f"{label}: the document has no 'entities' object (required)")
    if "name" not in header:
        raise DocumentError(f"{label}: the document has no 'name' (required, a non-empty string)")
    fields = check_header_fields(header, fail)
    # Keys starting with "_" are annotations (canonical-models §11): not stored.
    extra = {k: v for k, v in header.items() if k not in HEADER_KEYS and not k.startswith("_")}
    return _Document(**vars(fields), extra=extra, sections=sections)
