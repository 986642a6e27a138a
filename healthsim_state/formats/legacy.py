"""Migrating the original JSON-file scenarios into the store.

Two legacy formats (canonical-models §10-11, examples in tests/fixtures):

- **v1**, ``~/.healthsim/scenarios/*.json``: the scenario envelope with
  plural entity keys (inside ``entities`` or at the top level), flat persons
  allowed (``patient_id``, ``given_name``, ``city``, ...), ``created_by`` and
  ``healthsim_version`` kept as scenario metadata;
- **v2**, ``~/.healthsim/workspaces/*.json``: ``metadata`` plus entities
  wrapped as ``{entity_id, entity_type, data, provenance}``; the entity is
  ``data``, its ``_provenance`` the wrapper's ``provenance`` plus
  ``generation_seed`` from ``generation_params.seed``, and ``entity_id``
  becomes ``id`` when ``data`` has none.

Each file becomes one scenario, saved through the repository, carrying
``legacy_source`` (format, file name, SHA-256 of the file) in its metadata:
that is how a re-run recognises a file it already migrated and skips it.
Files are only read: never moved, changed or deleted; copied to a backup
folder only when asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from healthsim_models.errors import DocumentError, HealthSimError
from healthsim_models.location import home_dir
from healthsim_models.registry import BY_NAME, BY_PLURAL, ENTITY_TYPES, entity_type
from healthsim_state.formats.common import Advance, ProgressFactory, check_header_fields, no_progress
from healthsim_state.formats.json.document import DOCUMENT_KEYS
from healthsim_state.store.audit import audited_call, from_legacy
from healthsim_state.store.repository import SaveSummary, ScenarioRepository

#: Scenario metadata key recording which legacy file a scenario came from.
LEGACY_KEY = "legacy_source"
#: Folders under the HealthSim home that hold legacy files.
LEGACY_FOLDERS = ("scenarios", "workspaces")

# Report statuses.
MIGRATED = "migrated"  # saved by this run (status(): in the store, from this very file)
SKIPPED = "skipped"  # already migrated; nothing done
WOULD_MIGRATE = "would-migrate"  # dry run: the file would be saved
FAILED = "failed"  # cannot be read or saved; see reason
PENDING = "pending"  # status(): not migrated yet
OUTDATED = "outdated"  # status(): migrated from an earlier version of the file

_V1_ENVELOPE = DOCUMENT_KEYS
# Metadata keys with a place of their own; the rest are kept as scenario metadata
# (never under a name the exported document uses for its own fields).
_V2_METADATA = DOCUMENT_KEYS | {"workspace_id"}
# Namespace of the scenario ids given to legacy files that carry none.
_LEGACY_NAMESPACE = uuid.UUID("5d0c2a4e-8f0b-4b1e-9a52-3f4c1d2b7e60")


@dataclass
class FileReport:
    """What happened (or would happen) to one legacy file."""

    path: str
    format: str | None  # "v1", "v2", or None when the file could not be read
    status: str  # migrated | skipped | would-migrate | failed | pending | outdated
    scenario: str | None = None
    scenario_id: str | None = None
    entities: int = 0
    reason: str | None = None
    backup: str | None = None


@dataclass
class LegacyScenario:
    """A legacy file converted to what ``ScenarioRepository.save`` takes."""

    path: Path
    format: str
    digest: str
    name: str
    description: str | None
    tags: list[str]
    created_at: dt.datetime | None
    scenario_id: uuid.UUID
    extra: dict[str, Any]
    entities: dict[str, list[Any]]

    @property
    def count(self) -> int:
        """The entities a save stores: nested children (claim lines inside a claim) become entities of their own."""
        lifted = sum(
            len(doc[nested.field])
            for et in ENTITY_TYPES
            for nested in et.nested
            for doc in self.entities.get(et.name, [])
            if isinstance(doc, dict) and isinstance(doc.get(nested.field), list)
        )
        return sum(len(docs) for docs in self.entities.values()) + lifted


def default_sources() -> list[Path]:
    """``scenarios`` and ``workspaces`` under the HealthSim home (``HEALTHSIM_HOME``)."""
    return [home_dir() / folder for folder in LEGACY_FOLDERS]


def legacy_files(sources: Iterable[str | Path] | None = None) -> list[Path]:
    """The ``*.json`` files of each source folder (by name), or the source file itself.

    Missing default folders hold nothing; a missing source given explicitly is an error.
    """
    explicit = sources is not None
    found: list[Path] = []
    for source in default_sources() if sources is None else [Path(s).expanduser() for s in sources]:
        if source.is_dir():
            found.extend(sorted(p for p in source.glob("*.json") if p.is_file()))
        elif source.is_file():
            found.append(source)
        elif explicit:
            raise DocumentError(f"no legacy files at {source}: no such file or folder")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def read_legacy(path: str | Path) -> LegacyScenario:
    """Read and convert one legacy file; :class:`DocumentError` says why one cannot be."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{path}: byte {exc.start} is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        truncated = " (the file is truncated)" if not exc.doc[exc.pos :].strip() else ""
        raise DocumentError(
            f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON{truncated}: {exc.msg}"
        ) from None
    if not isinstance(doc, dict):
        raise DocumentError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    if isinstance(doc.get("metadata"), dict):
        return _from_v2(path, digest, doc)
    return _from_v1(path, digest, doc)


def _from_v1(path: Path, digest: str, doc: dict[str, Any]) -> LegacyScenario:
    nested = doc.get("entities")
    if nested is not None and not isinstance(nested, dict):
        raise DocumentError(f"{path}: 'entities' must be an object of entity groups")
    groups = dict(nested or {})
    # Only an array is an entity group: an exported demo scenario carries "patients": 50 as metadata.
    top = {k: v for k, v in doc.items() if k in BY_PLURAL and isinstance(v, list)}
    if nested is None and not top:
        raise DocumentError(
            f"{path}: not a legacy scenario file (no 'entities' and no entity groups such as 'patients')"
        )
    if nested is not None and top:
        raise DocumentError(f"{path}: entity groups both inside 'entities' and at the top level ({', '.join(top)})")
    groups.update(top)
    singular = sorted(k for k in groups if k in BY_NAME and k not in BY_PLURAL)
    plural = sorted(k for k in groups if k in BY_PLURAL)
    if singular and not plural:
        raise DocumentError(
            f"{path} is a scenario document (singular entity keys), not a legacy file; "
            f"import it with 'healthsim scenario import {path}'"
        )
    if singular:
        raise DocumentError(
            f"{path}: mixes singular ({', '.join(singular)}) and plural ({', '.join(plural)}) entity keys"
        )
    entities: dict[str, list[Any]] = {}
    for key, docs in groups.items():
        et = _group_type(path, key)
        if not isinstance(docs, list):
            raise DocumentError(f"{path}: entities.{key} must be an array, got {type(docs).__name__}")
        entities.setdefault(et, []).extend(_v1_entity(et, d) for d in docs)
    extra = {
        k: v
        for k, v in doc.items()
        if k not in _V1_ENVELOPE and k not in top and k != "provenance_summary" and not k.startswith("_")
    }
    return _scenario(path, "v1", digest, doc, doc.get("scenario_id"), extra, entities)


def _v1_entity(type_name: str, doc: Any) -> Any:
    # Flat spec-style patients name themselves patient_id (canonical-models §11);
    # the repository nests the other flat person fields itself.
    if type_name == "patient" and isinstance(doc, dict) and "patient_id" in doc and "id" not in doc:
        doc = {("id" if k == "patient_id" else k): v for k, v in doc.items()}
    return doc


def _from_v2(path: Path, digest: str, doc: dict[str, Any]) -> LegacyScenario:
    meta = doc["metadata"]
    groups = doc.get("entities") or {}
    if not isinstance(groups, dict):
        raise DocumentError(f"{path}: 'entities' must be an object of entity groups")
    entities: dict[str, list[Any]] = {}
    for key, wrappers in groups.items():
        et = _group_type(path, key)
        if not isinstance(wrappers, list):
            raise DocumentError(f"{path}: entities.{key} must be an array, got {type(wrappers).__name__}")
        docs = entities.setdefault(et, [])
        for i, wrapper in enumerate(wrappers):
            docs.append(_unwrap(path, key, i, et, wrapper))
    extra = {k: v for k, v in meta.items() if k not in _V2_METADATA and not k.startswith("_")}
    return _scenario(path, "v2", digest, meta, meta.get("workspace_id"), extra, entities)


def _unwrap(path: Path, key: str, index: int, type_name: str, wrapper: Any) -> dict[str, Any]:
    where = f"{path}: entities.{key}[{index}]"
    if not isinstance(wrapper, dict) or not isinstance(wrapper.get("data"), dict):
        raise DocumentError(f"{where}: expected a wrapped entity {{entity_id, entity_type, data, provenance}}")
    declared = wrapper.get("entity_type")
    if declared is not None and _group_type(path, str(declared)) != type_name:
        raise DocumentError(f"{where}: entity_type {declared!r} does not belong in {key!r}")
    doc = dict(wrapper["data"])
    if doc.get("id") is None and wrapper.get("entity_id") is not None:
        doc["id"] = wrapper["entity_id"]
    provenance = wrapper.get("provenance")
    if isinstance(provenance, dict) and "_provenance" not in doc:
        provenance = dict(provenance)
        params = provenance.get("generation_params")
        seed = params.get("seed") if isinstance(params, dict) else None
        if isinstance(seed, int) and not isinstance(seed, bool) and provenance.get("generation_seed") is None:
            provenance["generation_seed"] = seed
        doc["_provenance"] = provenance
    elif provenance is not None and not isinstance(provenance, dict):
        raise DocumentError(f"{where}: provenance must be an object, got {provenance!r}")
    return doc


def _group_type(path: Path, key: str) -> str:
    try:
        return entity_type(key).name
    except HealthSimError as exc:
        raise DocumentError(f"{path}: {exc}") from None


def _scenario(
    path: Path,
    fmt: str,
    digest: str,
    meta: dict[str, Any],
    file_id: Any,
    extra: dict[str, Any],
    entities: dict[str, list[Any]],
) -> LegacyScenario:
    # A file without a name is named after itself; one with a name keeps it
    # (never the UUID stem of a workspace file).
    name = meta.get("name")
    if name is None:
        name = path.stem
    id_key = "workspace_id" if fmt == "v2" else "scenario_id"
    fields = check_header_fields(
        {**meta, "name": name, id_key: file_id},
        lambda key, problem: DocumentError(f"{path}: {key!r}: {problem}"),
        id_key=id_key,
    )
    scenario_id = fields.scenario_id or uuid.uuid5(_LEGACY_NAMESPACE, digest)
    extra = {**extra, LEGACY_KEY: {"format": fmt, "file": path.name, "sha256": digest}}
    return LegacyScenario(
        path, fmt, digest, fields.name, fields.description, fields.tags, fields.created_at, scenario_id, extra, entities
    )


# -- status and migration --------------------------------------------------------


def _previous(repo: ScenarioRepository, legacy: LegacyScenario) -> tuple[str | None, str | None]:
    """(state, reason) of the scenario the file would become: None (free), 'current',
    'outdated' (an earlier version of the file) or 'taken' (something else)."""
    if not repo.exists(legacy.name):
        return None, None
    info = repo.scenario_summary(legacy.name)
    if info.name != legacy.name:
        return None, None
    source = (info.extra or {}).get(LEGACY_KEY)
    if isinstance(source, dict) and source.get("sha256") == legacy.digest:
        return "current", f"already migrated as {legacy.name!r}"
    if isinstance(source, dict) and source.get("file") == legacy.path.name:
        return "outdated", (
            f"{legacy.name!r} was migrated from an earlier version of this file; --overwrite migrates it again"
        )
    return (
        "taken",
        f"a scenario named {legacy.name!r} exists that was not migrated from this file; --overwrite replaces it",
    )


def legacy_status(session: Session, sources: Iterable[str | Path] | None = None) -> list[FileReport]:
    """Per legacy file: migrated, outdated, pending or failed (unreadable). Reads only."""
    repo = ScenarioRepository(session)
    reports = []
    for path in legacy_files(sources):
        try:
            legacy = read_legacy(path)
        except DocumentError as exc:
            reports.append(FileReport(str(path), None, FAILED, reason=str(exc)))
            continue
        state, reason = _previous(repo, legacy)
        status = {"current": MIGRATED, "outdated": OUTDATED}.get(state or "", PENDING)
        scenario_id, count = None, legacy.count
        if status == MIGRATED:
            # What the store holds, as migrate_legacy reports it (nested claim lines count too).
            info = repo.scenario_summary(legacy.name)
            scenario_id, count = str(info.id), sum(info.entity_counts.values())
        reports.append(
            FileReport(
                str(path),
                legacy.format,
                status,
                legacy.name,
                scenario_id,
                count,
                None if status == MIGRATED else reason,
            )
        )
    return reports


@dataclass
class _Plan:
    legacy: LegacyScenario
    report: FileReport
    overwrite: bool


@audited_call("migrate_legacy", skip=lambda arguments: arguments["dry_run"], describe=from_legacy)
def migrate_legacy(
    session: Session,
    sources: Iterable[str | Path] | None = None,
    *,
    dry_run: bool = False,
    overwrite: bool = False,
    backup_dir: str | Path | None = None,
    progress: ProgressFactory | None = None,
) -> list[FileReport]:
    """Migrate legacy files (default: ``scenarios`` and ``workspaces`` under the HealthSim home).

    Each readable file is saved as a scenario in the session's transaction;
    files already migrated are skipped; a scenario of the same name from
    elsewhere is replaced only with ``overwrite``. A file that fails (invalid
    entities, say) is reported and the others are saved: the repository rolls
    the session back on a failure, so the files before it are saved again.
    ``dry_run`` saves each file to check it, then rolls the session back:
    nothing is written. ``backup_dir`` receives a copy of each migrated file.
    Nothing is committed here (the caller's ``session_scope`` does).
    """
    repo = ScenarioRepository(session)
    files = legacy_files(sources)
    reports: list[FileReport] = []
    plans: list[_Plan] = []
    claimed: dict[str, Path] = {}
    with (progress or no_progress)("Migrating legacy files", len(files)) as advance:
        for path in files:
            report = FileReport(str(path), None, FAILED)
            reports.append(report)
            try:
                legacy = read_legacy(path)
            except DocumentError as exc:
                report.reason = str(exc)
                advance(1)
                continue
            report.format, report.scenario, report.entities = legacy.format, legacy.name, legacy.count
            legacy.entities = {}  # read again when saved: plans hold no entities
            state, reason = _previous(repo, legacy)
            if legacy.name in claimed:
                report.reason = f"{claimed[legacy.name]} also becomes the scenario {legacy.name!r} in this run"
            elif state in ("current", "outdated") and not overwrite:
                info = repo.scenario_summary(legacy.name)
                report.status, report.reason = SKIPPED, reason
                report.scenario_id, report.entities = str(info.id), sum(info.entity_counts.values())
            elif state == "taken" and not overwrite:
                report.reason = reason
            else:
                claimed[legacy.name] = path
                plans.append(_Plan(legacy, report, overwrite=state is not None))
                continue
            advance(1)
        _save_all(repo, plans, advance)
    if dry_run:
        session.rollback()
        for plan in plans:
            if plan.report.status == MIGRATED:
                plan.report.status = WOULD_MIGRATE
        return reports
    if backup_dir is not None:
        for plan in plans:
            if plan.report.status == MIGRATED:
                plan.report.backup = str(_backup(plan.legacy, Path(backup_dir)))
    return reports


def _save_all(repo: ScenarioRepository, plans: list[_Plan], advance: Advance) -> None:
    """Save every plan. A failing one is reported, and since its failure
    rolled the whole session back, the others are saved again."""
    remaining = list(plans)
    counted: set[int] = set()
    while True:
        failed = None
        for plan in remaining:
            try:
                summary = _save(repo, plan)
            except HealthSimError as exc:
                plan.report.status, plan.report.reason = FAILED, str(exc)
                failed = plan
            else:
                plan.report.status, plan.report.reason = MIGRATED, None
                plan.report.scenario_id = str(summary.id)
                plan.report.entities = sum(summary.counts.values())
            if id(plan) not in counted:
                counted.add(id(plan))
                advance(1)
            if failed is not None:
                break
        if failed is None:
            return
        remaining.remove(failed)


def _save(repo: ScenarioRepository, plan: _Plan) -> SaveSummary:
    # Read again rather than keep every file's entities in memory between passes.
    legacy = read_legacy(plan.legacy.path)
    if legacy.digest != plan.legacy.digest:
        raise DocumentError(f"{legacy.path} changed during the migration; run it again")
    scenario_id: uuid.UUID | None = legacy.scenario_id
    if not plan.overwrite and repo.exists(scenario_id):
        scenario_id = None  # another scenario has this id (a copied file): give this one its own
    return repo.save(
        legacy.name,
        legacy.entities,
        description=legacy.description,
        tags=legacy.tags,
        overwrite=plan.overwrite,
        extra=legacy.extra,
        scenario_id=scenario_id,
        created_at=legacy.created_at,
    )


def _backup(legacy: LegacyScenario, backup_dir: Path) -> Path:
    """Copy the file to ``backup_dir/<its folder name>/``; an older copy of another version is kept."""
    folder = backup_dir / legacy.path.parent.name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / legacy.path.name
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() != legacy.digest:
        target = folder / f"{legacy.path.stem}.{legacy.digest[:12]}{legacy.path.suffix}"
    shutil.copy2(legacy.path, target)
    return target
