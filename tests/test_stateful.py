"""A model-based test of the scenario repository and the JSON exchange, on both backends.

Hypothesis runs random sequences of save (new and existing names, with and
without overwrite), add_entities, delete, add_tags, remove_tags, invalid
writes, export (to a file or a stream) and import (of an earlier export,
under the same or another name, from a path, a seekable stream or a pipe).
Entities with UUID ids are shared: the same patients, encounters, members
and claims go into several scenarios with different field values, so the
latest save wins everywhere. Diagnoses (no id, no business key) and claim
lines (nested in claims, keyed by claim and line number) belong to one
scenario each. After every step the store is compared with a plain
in-memory model: the scenarios, their ids, metadata, tags and members per
type in order, each entity's latest version, and how many rows each table
holds (an entity no scenario links must be gone).

The rules of the model are those of docs/repository.md (identity, latest
wins, order, overwrite, delete, the lossless round trip) and of
healthsim_state/formats/json/reader.py (import keeps or replaces the id and creation
time). HYPOTHESIS_PROFILE=thorough runs it at length.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import itertools
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import Engine

from healthsim_models import (
    ENTITY_TYPES,
    ScenarioExistsError,
    ScenarioNotFoundError,
    ValidationError,
    create_store_engine,
    session_scope,
)
from healthsim_models.registry import entity_type
from healthsim_models.state import Scenario, ScenarioEntity, ScenarioTag
from healthsim_state import ScenarioRepository
from healthsim_state.formats.common import parse_datetime
from healthsim_state.formats.json import export_scenario, import_scenario
from tests.conftest import BACKENDS
from tests.helpers import normalise

#: Steps per example; the profile (tests/conftest.py) sets the number of examples.
STEPS = 8
#: An example costs seconds (each step opens the DuckDB file twice) and shrinking a
#: failure takes minutes, so the default profile reports the failing steps as found;
#: HYPOTHESIS_PROFILE=thorough replays the saved failure and shrinks it.
SHRINK = settings.get_current_profile_name() == "thorough"

_NS = uuid.UUID("0b7f6a52-3c1e-4c55-9a57-3f1d2e0c9a11")


def _ids(kind: str, count: int) -> list[str]:
    return [str(uuid.uuid5(_NS, f"{kind}-{k}")) for k in range(count)]


PATIENT_IDS = _ids("patient", 4)
ENCOUNTER_IDS = _ids("encounter", 3)
MEMBER_IDS = _ids("member", 2)
CLAIM_IDS = _ids("claim", 3)
#: A patient that takes another's MRN: the business-key clash of the invalid writes.
INTRUDER_ID = str(uuid.uuid5(_NS, "intruder"))

NAMES = ["alpha", "beta", "gamma", "Ünïcode name"]
TAGS = ["demo", "qa", "diabetes"]
DESCRIPTIONS = [None, "first", "zweite Fassung"]
EXTRAS = [None, {"cohort": "A"}, {"cohort": "B", "version": 2}]

# The field values a version of an entity draws from: few, so that versions collide and differ.
GIVEN = ["Ada", "Grace", "Alan"]
FAMILY = ["Lovelace", "Hopper"]
BIRTH = ["1980-02-03", "1955-11-30"]
TIMES = ["2024-01-02T10:00:00Z", "2024-03-05T08:30:00-05:00", "2024-03-05T08:30"]
CODES = [("E11.9", "Type 2 diabetes"), ("I10", "Hypertension")]
MONEY = [249.0, Decimal("148.83"), 12]
NOTES = [None, "β", 3, [1, 2], {"deep": {"er": True}}]


def mrn(k: int) -> str:
    return f"MRN-{k}"


@st.composite
def patient(draw: st.DrawFn, k: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": PATIENT_IDS[k],
        "mrn": mrn(k),
        "name": {"given_name": draw(st.sampled_from(GIVEN)), "family_name": draw(st.sampled_from(FAMILY))},
        "birth_date": draw(st.sampled_from(BIRTH)),
        "gender": draw(st.sampled_from("FMOU")),
    }
    if draw(st.booleans()):
        doc["x_note"] = draw(st.sampled_from(NOTES))  # an unknown field: kept in extensions
    return doc


@st.composite
def encounter(draw: st.DrawFn, k: int, mrns: list[str]) -> dict[str, Any]:
    return {
        "id": ENCOUNTER_IDS[k],
        "encounter_id": f"ENC-{k}",
        "patient_mrn": draw(st.sampled_from(mrns)),
        "class_code": draw(st.sampled_from(["O", "I", "E"])),
        "status": draw(st.sampled_from(["finished", "in-progress"])),
        "admission_time": draw(st.sampled_from(TIMES)),
    }


@st.composite
def diagnosis(draw: st.DrawFn, mrns: list[str], encounter_ids: list[str]) -> dict[str, Any]:
    code, text = draw(st.sampled_from(CODES))
    doc = {
        "patient_mrn": draw(st.sampled_from(mrns)),
        "code": code,
        "description": text,
        "diagnosed_date": draw(st.sampled_from(["2024-01-02", "2024-02-29"])),
    }
    if encounter_ids and draw(st.booleans()):
        doc["encounter_id"] = draw(st.sampled_from(encounter_ids))
    return doc


@st.composite
def member(draw: st.DrawFn, k: int) -> dict[str, Any]:
    return {
        "id": MEMBER_IDS[k],
        "member_id": f"MEM-{k}",
        "group_id": "GRP-1",
        "plan_code": draw(st.sampled_from(["GOLD-PPO", "SILVER-HMO"])),
        "coverage_start": "2024-01-01",
        "name": {"given_name": draw(st.sampled_from(GIVEN)), "family_name": draw(st.sampled_from(FAMILY))},
        "birth_date": draw(st.sampled_from(BIRTH)),
        "gender": draw(st.sampled_from("FM")),
    }


@st.composite
def claim(draw: st.DrawFn, k: int, member_ids: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": CLAIM_IDS[k],
        "claim_id": f"CLM-{k}",
        "claim_type": "PROFESSIONAL",
        "member_id": draw(st.sampled_from(member_ids)),
        "provider_npi": "1648273914",
        "service_date": "2024-03-12",
        "principal_diagnosis": draw(st.sampled_from(["E11.9", "I10"])),
        "total_charge": draw(st.sampled_from(MONEY)),
    }
    lines = draw(st.lists(st.integers(1, 3), unique=True, max_size=2))
    if lines:
        doc["claim_lines"] = [
            {
                "line_number": n,
                "procedure_code": draw(st.sampled_from(["99214", "80053"])),
                "service_date": "2024-03-12",
                "charge_amount": draw(st.sampled_from(MONEY)),
            }
            for n in lines
        ]
    return doc


def _type_of(entities: dict[str, list[dict[str, Any]]], et: str) -> list[dict[str, Any]]:
    return entities.setdefault(et, [])


@st.composite
def entity_sets(draw: st.DrawFn, have: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """Valid entities for one write. ``have``: business keys of the parents the
    scenario holds already (add_entities resolves against them)."""
    entities: dict[str, list[dict[str, Any]]] = {}
    for k in draw(st.lists(st.integers(0, len(PATIENT_IDS) - 1), max_size=3)):  # repeats: last wins
        _type_of(entities, "patient").append(draw(patient(k)))
    mrns = sorted(set(have.get("patient", [])) | {p["mrn"] for p in entities.get("patient", [])})
    if mrns:
        for k in draw(st.lists(st.integers(0, len(ENCOUNTER_IDS) - 1), max_size=2)):
            _type_of(entities, "encounter").append(draw(encounter(k, mrns)))
        encounter_ids = sorted(
            set(have.get("encounter", [])) | {e["encounter_id"] for e in entities.get("encounter", [])}
        )
        for _ in range(draw(st.integers(0, 2))):
            _type_of(entities, "diagnosis").append(draw(diagnosis(mrns, encounter_ids)))
    for k in draw(st.lists(st.integers(0, len(MEMBER_IDS) - 1), max_size=2)):
        _type_of(entities, "member").append(draw(member(k)))
    member_ids = sorted(set(have.get("member", [])) | {m["member_id"] for m in entities.get("member", [])})
    if member_ids:
        for k in draw(st.lists(st.integers(0, len(CLAIM_IDS) - 1), max_size=2)):
            _type_of(entities, "claim").append(draw(claim(k, member_ids)))
    # Plural keys are accepted too.
    if "patient" in entities and draw(st.booleans()):
        entities["patients"] = entities.pop("patient")
    return entities


INVALID_KINDS = ["dangling reference", "bad enum", "business key clash"]


def spoil(entities: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, list[dict[str, Any]]]:
    """``entities`` plus one entity the repository must refuse."""
    spoiled = copy.deepcopy(entities)
    patients = _type_of(spoiled, "patients" if "patients" in spoiled else "patient")
    if kind == "dangling reference":
        _type_of(spoiled, "diagnosis").append(
            {"patient_mrn": "MRN-404", "code": "I10", "description": "x", "diagnosed_date": "2024-01-02"}
        )
    elif kind == "bad enum":
        patients.append(
            {
                "id": PATIENT_IDS[0],
                "mrn": mrn(0),
                "name": {"given_name": "A", "family_name": "B"},
                "birth_date": "1980-02-03",
                "gender": "X",
            }
        )
    else:
        patients.append(
            {
                "id": PATIENT_IDS[1],
                "mrn": mrn(1),
                "name": {"given_name": "A", "family_name": "B"},
                "birth_date": "1980-02-03",
                "gender": "F",
            }
        )
        patients.append(
            {
                "id": INTRUDER_ID,
                "mrn": mrn(1),
                "name": {"given_name": "C", "family_name": "D"},
                "birth_date": "1980-02-03",
                "gender": "M",
            }
        )
    return spoiled


# -- the model -----------------------------------------------------------------

Key = tuple[Any, ...]


def stored_documents(entities: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Per singular type, the documents as the store keeps them: claim lines lifted out of claims."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key, docs in entities.items():
        type_name = entity_type(key).name
        for doc in docs:
            if type_name == "claim" and "claim_lines" in doc:
                out.setdefault("claim_line", []).extend(
                    {"claim_id": doc["claim_id"], **line} for line in doc["claim_lines"]
                )
                doc = {k: v for k, v in doc.items() if k != "claim_lines"}
            out.setdefault(type_name, []).append(doc)
    # The repository takes claims before lifted claim lines, types in catalogue order.
    return {et.name: out[et.name] for et in ENTITY_TYPES if et.name in out}


def dangling(entities: dict[str, list[dict[str, Any]]]) -> list[str]:
    """References in ``entities`` that resolve to nothing among them. A scenario
    can hold such entities: a shared encounter that another scenario's save
    moved to a patient of its own still belongs to the first scenario."""
    keys = {
        "patient_mrn": {d["mrn"] for d in entities.get("patient", [])},
        "encounter_id": {d["encounter_id"] for d in entities.get("encounter", [])},
        "member_id": {d["member_id"] for d in entities.get("member", [])},
        "claim_id": {d["claim_id"] for d in entities.get("claim", [])},
    }
    found = []
    for type_name in ("encounter", "diagnosis", "claim", "claim_line"):
        for doc in entities.get(type_name, []):
            for fld, valid in keys.items():
                own_key = (type_name, fld) in (("claim", "claim_id"), ("encounter", "encounter_id"))
                if fld in doc and not own_key and doc[fld] not in valid:
                    found.append(f"{type_name} {fld} {doc[fld]}")
    return found


def identity(type_name: str, doc: dict[str, Any], scenario_id: uuid.UUID) -> Key:
    """docs/repository.md, Identity: a UUID id is global, anything else is the scenario's own."""
    if type_name in ("patient", "encounter", "member", "claim"):
        return (type_name, doc["id"])
    if type_name == "claim_line":
        return (type_name, scenario_id, doc["claim_id"], doc["line_number"])
    body = {k: v for k, v in doc.items() if k not in ("id", "_provenance")}
    return (type_name, scenario_id, json.dumps(body, sort_keys=True, default=str))


@dataclass
class ModelScenario:
    id: uuid.UUID
    description: str | None
    tags: set[str]
    extra: dict[str, Any] | None
    members: dict[str, list[Key]] = field(default_factory=dict)
    created_at: dt.datetime | None = None  # learned at the first check, then must not change

    def counts(self) -> dict[str, int]:
        return {t: len(keys) for t, keys in self.members.items() if keys}


@dataclass
class ModelExport:
    name: str
    data: bytes
    scenario_id: uuid.UUID
    description: str | None
    tags: set[str]
    extra: dict[str, Any] | None
    created_at: dt.datetime
    entities: dict[str, list[dict[str, Any]]]  # the documents at the time of the export


def _reset(engine: Engine) -> None:
    """Empty every table a scenario touches, so each example starts from an empty store."""
    tables = [ScenarioTag.__table__, ScenarioEntity.__table__, Scenario.__table__]
    tables += [et.model.__table__ for et in ENTITY_TYPES]
    with engine.begin() as connection:
        for table in tables:
            connection.execute(sa.delete(table))


class _Pipe(io.RawIOBase):
    """A readable stream that cannot seek, like stdin from a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 7))  # small reads, as a pipe gives
        buffer[: len(chunk)] = chunk
        return len(chunk)


_files = itertools.count()


class RepositoryMachine(RuleBasedStateMachine):
    """The repository and exchange against the model; subclassed per backend with an engine."""

    engine: Engine
    folder: Path

    def __init__(self) -> None:
        super().__init__()
        _reset(self.engine)
        self.scenarios: dict[str, ModelScenario] = {}
        self.latest: dict[Key, dict[str, Any]] = {}
        self.exports: list[ModelExport] = []

    # -- helpers --

    def _have(self, name: str) -> dict[str, list[str]]:
        """Business keys of the parents the scenario holds (what add_entities may reference)."""
        sc = self.scenarios[name]
        keys = {"patient": "mrn", "encounter": "encounter_id", "member": "member_id"}
        return {t: [self.latest[k][field] for k in sc.members.get(t, [])] for t, field in keys.items()}

    def _apply(self, sc: ModelScenario, entities: dict[str, list[dict[str, Any]]], *, replace: bool) -> dict[str, int]:
        """Write ``entities`` into the model scenario: a save (``replace``) or add_entities.
        Returns the entities written per type (SaveSummary.saved)."""
        if replace:
            sc.members = {}
        saved = {}
        for type_name, docs in stored_documents(entities).items():
            last: dict[Key, tuple[int, dict[str, Any]]] = {}
            for i, doc in enumerate(docs):
                key = identity(type_name, doc, sc.id)
                last.pop(key, None)
                last[key] = (i, doc)
            current = sc.members.setdefault(type_name, [])
            current.extend(key for key in last if key not in current)
            for key, (_, doc) in last.items():
                self.latest[key] = copy.deepcopy(doc)
            saved[type_name] = len(last)
        return saved

    def _check_tag_filter(self, tags: list[str]) -> None:
        """list(tag=...) finds exactly the scenarios having all of those tags."""
        with self._session() as session:
            found = [i.name for i in ScenarioRepository(session).list(tag=tags, limit=1000)]
        assert found == sorted(n for n, s in self.scenarios.items() if set(tags) <= s.tags), tags

    def _session(self):  # type: ignore[no-untyped-def]
        return session_scope(self.engine)

    # -- rules --

    @rule(
        name=st.sampled_from(NAMES),
        overwrite=st.booleans(),
        description=st.sampled_from(DESCRIPTIONS),
        tags=st.lists(st.sampled_from(TAGS), max_size=3),
        extra=st.sampled_from(EXTRAS),
        data=st.data(),
    )
    def save(
        self,
        name: str,
        overwrite: bool,
        description: str | None,
        tags: list[str],
        extra: dict[str, Any] | None,
        data: st.DataObject,
    ) -> None:
        entities = data.draw(entity_sets({}), label="entities")
        existing = self.scenarios.get(name)
        if existing is not None and not overwrite:
            with pytest.raises(ScenarioExistsError), self._session() as session:
                ScenarioRepository(session).save(name, entities, description=description, tags=tags)
            return
        with self._session() as session:
            summary = ScenarioRepository(session).save(
                name, entities, description=description, tags=tags, overwrite=overwrite, extra=extra
            )
        if existing is not None:
            assert summary.id == existing.id, "overwrite keeps the scenario's id"
            sc = existing
            sc.description, sc.tags, sc.extra = description, set(tags), extra
        else:
            assert summary.id not in {s.id for s in self.scenarios.values()}
            sc = self.scenarios[name] = ModelScenario(summary.id, description, set(tags), extra)
        assert summary.saved == self._apply(sc, entities, replace=True)
        assert summary.counts == sc.counts()

    @rule(name=st.sampled_from(NAMES), data=st.data())
    def add_entities(self, name: str, data: st.DataObject) -> None:
        if name not in self.scenarios:
            entities = data.draw(entity_sets({}), label="entities")
            with pytest.raises(ScenarioNotFoundError), self._session() as session:
                ScenarioRepository(session).add_entities(name, entities)
            return
        sc = self.scenarios[name]
        entities = data.draw(entity_sets(self._have(name)), label="entities")
        by_id = data.draw(st.booleans(), label="by id")
        with self._session() as session:
            summary = ScenarioRepository(session).add_entities(sc.id if by_id else name, entities)
        assert summary.saved == self._apply(sc, entities, replace=False)
        assert summary.counts == sc.counts()

    @rule(
        name=st.sampled_from(NAMES),
        kind=st.sampled_from(INVALID_KINDS),
        how=st.sampled_from(["save", "overwrite", "add_entities"]),
        data=st.data(),
    )
    def invalid_write(self, name: str, kind: str, how: str, data: st.DataObject) -> None:
        """A write with one bad entity among good ones: refused, and nothing changes."""
        exists = name in self.scenarios
        if (how == "add_entities" and not exists) or (how == "save" and exists):
            how = "overwrite"
        have = self._have(name) if how == "add_entities" else {}
        entities = spoil(data.draw(entity_sets(have), label="entities"), kind)
        with pytest.raises(ValidationError) as caught, self._session() as session:
            repo = ScenarioRepository(session)
            if how == "add_entities":
                repo.add_entities(name, entities)
            else:
                repo.save(name, entities, tags=["spoiled"], description="spoiled", overwrite=how == "overwrite")
        assert "nothing was saved" in str(caught.value)

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        with self._session() as session:
            existed = ScenarioRepository(session).delete(name)
        assert existed == (name in self.scenarios)
        self.scenarios.pop(name, None)

    @rule(name=st.sampled_from(NAMES), tags=st.lists(st.sampled_from(TAGS), max_size=3))
    def add_tags(self, name: str, tags: list[str]) -> None:
        if name not in self.scenarios:
            with pytest.raises(ScenarioNotFoundError), self._session() as session:
                ScenarioRepository(session).add_tags(name, tags)
            return
        with self._session() as session:
            result = ScenarioRepository(session).add_tags(name, tags)
        self.scenarios[name].tags |= set(tags)
        assert result == sorted(self.scenarios[name].tags)
        self._check_tag_filter(tags)

    @rule(name=st.sampled_from(NAMES), tags=st.lists(st.sampled_from(TAGS), max_size=3))
    def remove_tags(self, name: str, tags: list[str]) -> None:
        if name not in self.scenarios:
            with pytest.raises(ScenarioNotFoundError), self._session() as session:
                ScenarioRepository(session).remove_tags(name, tags)
            return
        with self._session() as session:
            result = ScenarioRepository(session).remove_tags(name, tags)
        self.scenarios[name].tags -= set(tags)
        assert result == sorted(self.scenarios[name].tags)
        self._check_tag_filter(tags)

    @rule(
        name=st.sampled_from(NAMES),
        type_name=st.sampled_from(["patient", "encounter", "claim_line"]),
        offset=st.integers(0, 4),
        limit=st.none() | st.integers(0, 3),
        batch_size=st.integers(1, 3),
    )
    def page(self, name: str, type_name: str, offset: int, limit: int | None, batch_size: int) -> None:
        """iter_entities: a page of one type, in saved order, read in small batches."""
        if name not in self.scenarios:
            with pytest.raises(ScenarioNotFoundError), self._session() as session:
                list(ScenarioRepository(session).iter_entities(name, type_name))
            return
        with self._session() as session:
            got = list(
                ScenarioRepository(session).iter_entities(
                    name, type_name, batch_size=batch_size, offset=offset, limit=limit
                )
            )
        keys = self.scenarios[name].members.get(type_name, [])
        expected = [self.latest[k] for k in keys][offset : None if limit is None else offset + limit]
        assert normalise(got) == normalise(expected)

    @rule(k=st.integers(0, len(PATIENT_IDS) - 1), by=st.sampled_from(["id", "mrn"]))
    def get_patient(self, k: int, by: str) -> None:
        """A shared patient by UUID or MRN: one row however many scenarios hold it, at its latest version."""
        key = ("patient", PATIENT_IDS[k])
        live = any(key in sc.members.get("patient", []) for sc in self.scenarios.values())
        with self._session() as session:
            found = ScenarioRepository(session).get_patient(PATIENT_IDS[k] if by == "id" else mrn(k))
        assert normalise(found) == (normalise(self.latest[key]) if live else None)

    @rule(name=st.sampled_from(NAMES), to_file=st.booleans())
    def export(self, name: str, to_file: bool) -> None:
        path = self.folder / f"export-{next(_files)}.json"
        target: Any = path if to_file else io.BytesIO()
        if name not in self.scenarios:
            with pytest.raises(ScenarioNotFoundError), self._session() as session:
                export_scenario(session, name, target)
            assert not path.exists()
            return
        with self._session() as session:
            summary = export_scenario(session, name, target)
        data = path.read_bytes() if to_file else target.getvalue()
        assert summary.bytes == len(data)
        sc = self.scenarios[name]
        document = json.loads(data, parse_float=Decimal)
        assert document["name"] == name
        assert document["scenario_id"] == str(sc.id)
        assert document["description"] == sc.description
        assert document["tags"] == sorted(sc.tags)
        assert {
            k: v
            for k, v in document.items()
            if k not in ("schema_version", "scenario_id", "name", "description", "tags", "created_at", "entities")
        } == (sc.extra or {})
        entities = {t: [copy.deepcopy(self.latest[k]) for k in keys] for t, keys in sc.members.items() if keys}
        assert list(document["entities"]) == [et.name for et in ENTITY_TYPES]
        for et in ENTITY_TYPES:
            assert normalise(document["entities"][et.name]) == normalise(entities.get(et.name, [])), et.name
        created = parse_datetime(document["created_at"])
        assert created is not None
        self.exports.append(ModelExport(name, data, sc.id, sc.description, set(sc.tags), sc.extra, created, entities))

    @precondition(lambda self: self.exports)
    @rule(
        data=st.data(),
        as_name=st.sampled_from([None, *NAMES]),
        overwrite=st.booleans(),
        source=st.sampled_from(["path", "stream", "pipe"]),
    )
    def import_(self, data: st.DataObject, as_name: str | None, overwrite: bool, source: str) -> None:
        """Import an earlier export, as it was then, under its own name (None) or another."""
        exported = data.draw(st.sampled_from(self.exports), label="export")
        name = exported.name if as_name is None else as_name
        if source == "path":
            path = self.folder / f"import-{next(_files)}.json"
            path.write_bytes(exported.data)
            origin: Any = path
        else:
            origin = io.BytesIO(exported.data) if source == "stream" else io.BufferedReader(_Pipe(exported.data))
        existing = self.scenarios.get(name)
        if existing is not None and not overwrite:
            with pytest.raises(ScenarioExistsError), self._session() as session:
                import_scenario(session, origin, name=as_name, overwrite=overwrite)
            return
        if dangling(exported.entities):
            # The document holds what a save refuses: the import is refused whole.
            with pytest.raises(ValidationError), self._session() as session:
                import_scenario(session, origin, name=as_name, overwrite=overwrite)
            return
        with self._session() as session:
            summary = import_scenario(session, origin, name=as_name, overwrite=overwrite)
        if existing is not None:
            # Replaces the scenario's content and metadata, keeping its id and creation time.
            assert summary.id == existing.id
            sc = existing
        else:
            taken = {s.id for s in self.scenarios.values()}
            if exported.scenario_id in taken:
                assert summary.id not in taken  # a copy gets an id of its own
            else:
                assert summary.id == exported.scenario_id  # the document's id comes back
            sc = self.scenarios[name] = ModelScenario(summary.id, None, set(), None, created_at=exported.created_at)
        sc.description, sc.tags, sc.extra = exported.description, set(exported.tags), exported.extra
        assert summary.saved == self._apply(sc, exported.entities, replace=True)
        assert summary.counts == sc.counts()
        if name == exported.name and sc.id == exported.scenario_id:
            # export, import, export gives identical bytes
            again = io.BytesIO()
            with self._session() as session:
                export_scenario(session, name, again)
            assert again.getvalue() == exported.data

    # -- the check after every step --

    @invariant()
    def store_matches_model(self) -> None:
        with self._session() as session:
            repo = ScenarioRepository(session)
            listed = repo.list(limit=1000)
            assert [i.name for i in listed] == sorted(self.scenarios)
            for info in listed:
                sc = self.scenarios[info.name]
                assert (info.id, info.tags, info.entity_counts) == (sc.id, sorted(sc.tags), sc.counts()), info.name
            for name, sc in self.scenarios.items():
                loaded = repo.load(name)
                assert loaded.id == sc.id
                assert loaded.description == sc.description, name
                assert loaded.tags == sorted(sc.tags), name
                assert loaded.extra == sc.extra, name
                if sc.created_at is None:
                    sc.created_at = loaded.created_at
                assert loaded.created_at == sc.created_at, name
                for et in ENTITY_TYPES:
                    expected = [self.latest[k] for k in sc.members.get(et.name, [])]
                    assert normalise(loaded.entities[et.name]) == normalise(expected), (name, et.name)
            # Every entity some scenario links, and nothing else: the rest was deleted.
            live: dict[str, set[Key]] = {}
            for sc in self.scenarios.values():
                for type_name, keys in sc.members.items():
                    live.setdefault(type_name, set()).update(keys)
            assert repo.count_entities_by_type() == {t: len(k) for t, k in live.items() if k}


def _run(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine = create_store_engine(request.getfixturevalue(f"{backend}_url"))
    folder = tmp_path / "documents"
    folder.mkdir()
    machine = type(f"RepositoryMachine_{backend}", (RepositoryMachine,), {"engine": engine, "folder": folder})
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                deadline=None,
                stateful_step_count=STEPS,
                phases=[phase for phase in Phase if SHRINK or phase is not Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
            ),
        )
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_repository_and_exchange_match_the_model(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    _run(backend, request, tmp_path)
