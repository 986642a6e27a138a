"""The versioned JSON scenario document: export and import, as streams.

A document is one JSON object::

    {"schema_version": "1.0", "scenario_id": uuid, "name": ..., "description": ...,
     "tags": [...], "created_at": date-time, <other metadata>, "entities": {"patient": [...], ...}}

:func:`export_scenario` writes it entity by entity, every type of the
registry in catalogue order (empty arrays included), entities in saved
order, one per line. :func:`import_scenario` reads it in two passes over the
file, holding one entity at a time: the first checks the whole document
(syntax, truncation, header, entity type keys) and notes where each type's
array starts; the second feeds each array, parents first, to one
``ScenarioRepository.save``, which consumes them in batches. A document that
is refused leaves the database untouched.

Both work in the caller's session and never commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from healthsim_models.errors import DocumentError, ScenarioExistsError, ValidationError
from healthsim_models.registry import BY_NAME as _SINGULAR
from healthsim_models.registry import BY_PLURAL, ENTITY_TYPES
from healthsim_state.codec.checks import scenario_problems, tag_problem
from healthsim_state.codec.values import DATETIME_PATTERN, render_datetime, shown
from healthsim_state.formats.json_stream import JsonReader, Position
from healthsim_state.store.repository import SaveSummary, ScenarioInfo, ScenarioRepository

#: The version of the document format this code writes, and the newest it reads.
SCHEMA_VERSION = "1.0"

#: ``progress(description, total)`` -> context manager yielding ``advance(n)``;
#: ``healthsim_state.interfaces.cli.progress.progress`` is one.
Advance = Callable[[int], None]
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Advance]]

Source = str | os.PathLike[str] | BinaryIO
Target = str | os.PathLike[str] | BinaryIO

#: The document's own top-level members before ``entities``, in the order they are written.
HEADER_KEYS = ("schema_version", "scenario_id", "name", "description", "tags", "created_at")
#: Every top-level key the document uses for its own fields; any other key is scenario metadata.
DOCUMENT_KEYS = frozenset({*HEADER_KEYS, "entities"})
_VERSION = re.compile(r"(\d+)\.(\d+)")
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


@contextlib.contextmanager
def no_progress(description: str, total: int | None = None) -> Iterator[Advance]:
    """The default progress factory: reports nothing."""
    yield lambda n=1: None


# -- export --------------------------------------------------------------------


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


# -- import --------------------------------------------------------------------


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
                type_name: _counted(arrays.entities(section), advance)
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


def _counted(items: Iterable[Any], advance: Advance) -> Iterator[Any]:
    for item in items:
        yield item
        advance(1)


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
                _check_version(reader.label, header[key], at)
    reader.end()
    return _check_header(reader.label, header, where, sections)


def _scan_entities(reader: JsonReader, header: dict[str, Any], advance: Advance) -> dict[str, _Section]:
    if reader.peek() != "{":
        reader.unexpected("an object of entity type -> array", "'entities'")
    sections: dict[str, _Section] = {}
    for key, at in reader.members("'entities'"):
        if key not in _SINGULAR:
            if key in BY_PLURAL:
                kind = "a legacy v2 workspace" if "metadata" in header else "a legacy v1 scenario file"
                reader.fail(
                    f"entities key {key!r} is plural, so this is {kind}, not a scenario document "
                    f"(which uses {BY_PLURAL[key].name!r}); bring it in with "
                    f"'healthsim migrate-legacy --from {reader.label}'",
                    at,
                )
            valid = ", ".join(_SINGULAR)
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
    _check_version(label, version, where.get("schema_version"))
    if sections is None:
        raise DocumentError(f"{label}: the document has no 'entities' object (required)")
    if "name" not in header:
        raise DocumentError(f"{label}: the document has no 'name' (required, a non-empty string)")
    fields = check_header_fields(header, fail)
    # Keys starting with "_" are annotations (canonical-models §11): not stored.
    extra = {k: v for k, v in header.items() if k not in HEADER_KEYS and not k.startswith("_")}
    return _Document(**vars(fields), extra=extra, sections=sections)


@dataclass
class HeaderFields:
    """A scenario's checked name, description, tags, id and creation time."""

    name: str
    description: str | None
    tags: list[str]
    scenario_id: uuid.UUID | None
    created_at: dt.datetime | None


def check_header_fields(
    header: dict[str, Any], fail: Callable[[str, str], DocumentError], *, id_key: str = "scenario_id"
) -> HeaderFields:
    """The scenario fields of a document header (or a legacy file's metadata), checked.

    ``fail(key, problem)`` makes the error for a bad value, so each caller says
    where the key is; the scenario id is read from ``id_key``.
    """
    name = header.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "required, a non-empty string")
    description = header.get("description")
    if description is not None and not isinstance(description, str):
        raise fail("description", f"expected a string or null, got {shown(description)}")
    tags = header.get("tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise fail("tags", f"expected an array of non-empty strings, got {shown(tags)}")
    # Then the text checks save() makes, reported where the key is: NUL, lone surrogates, length.
    problems = scenario_problems(name, description, None)
    if problems:
        raise fail(problems[0].field, problems[0].reason)
    for tag in tags:
        reason = tag_problem(tag)
        if reason is not None:
            raise fail("tags", reason)
    scenario_id = header.get(id_key)
    if scenario_id is not None:
        try:
            scenario_id = uuid.UUID(scenario_id) if isinstance(scenario_id, str) else None
        except ValueError:
            scenario_id = None
        if scenario_id is None:
            raise fail(id_key, f"expected a UUID, got {shown(header[id_key])}")
    created_at = header.get("created_at")
    if created_at is not None:
        created_at = parse_datetime(created_at)
        if created_at is None:
            raise fail(
                "created_at", f"expected a date-time like 2025-01-14T16:05:00Z, got {shown(header['created_at'])}"
            )
    return HeaderFields(name, description, list(tags), scenario_id, created_at)


def _check_version(label: str, version: Any, at: Position | None) -> None:
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


def parse_datetime(value: Any) -> dt.datetime | None:
    """An ISO date-time as an aware datetime (no offset means UTC), or None if it is not one."""
    if not isinstance(value, str) or not DATETIME_PATTERN.fullmatch(value):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
