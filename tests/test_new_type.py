"""A new entity type is its model and its registry entry, and nothing else (issue 16).

The model below (a family member's history, after FHIR FamilyMemberHistory,
which the catalogue does not have) is declared here, on CanonicalBase like the
catalogue's, with its value rules on its columns (a pattern, an enum) and a
reference to ``patient``;
its ``EntityType`` is registered for the duration of this module. No other
code learns about it: on both backends it saves, loads, is refused by field
name, goes through the JSON exchange document and back, and the MCP tools'
schemas carry it with its rules. (A real type adds an Alembic revision
instead of creating its table here.)
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models import CanonicalBase, CanonicalMixin, ValidationError, session_scope
from healthsim_models.canonical.patientsim import PatientRefMixin
from healthsim_models.columns import field
from healthsim_models.history import history_of
from healthsim_models.registry import BY_NAME, EntityType, Reference, RefStrength, register
from healthsim_state import ScenarioRepository, export_scenario, import_scenario
from healthsim_state.interfaces.mcp.catalog import TOOLS
from tests.helpers import fixture, normalise

RELATIONSHIPS = frozenset({"mother", "father", "sibling", "child"})
PATIENT = fixture("scenario-canonical.json")["entities"]["patient"][0]
HISTORIES = [
    {
        "history_id": "FMH-1",
        "patient_mrn": PATIENT["mrn"],
        "condition": "Type 2 diabetes mellitus",
        "relationship": "mother",
        "recorded_date": "2019-05-02",
        "x_note": "kept in extensions",
    },
    {"history_id": "FMH-2", "patient_mrn": PATIENT["mrn"], "condition": "Hypertension", "relationship": "father"},
]


@pytest.fixture(scope="module")
def family_history() -> Iterator[EntityType]:
    """The new type, registered; afterwards its table is gone from the models' metadata
    (SQLAlchemy cannot unmap one class, so its mapper stays, tableless)."""
    assert "family_history" not in BY_NAME and "test_family_histories" not in CanonicalBase.metadata.tables

    class FamilyHistory(PatientRefMixin, CanonicalMixin, CanonicalBase):
        __tablename__ = "test_family_histories"

        history_id: Mapped[str] = field(sa.String, nullable=False, index=True, pattern=re.compile(r"FMH-[0-9]+"))
        condition: Mapped[str] = mapped_column(sa.String, nullable=False)
        relationship: Mapped[str] = field(sa.String, nullable=False, enum=RELATIONSHIPS)
        recorded_date: Mapped[dt.date | None] = mapped_column(sa.Date)

    entry = EntityType(
        "family_history",
        "family_histories",
        FamilyHistory,
        "patientsim",
        ("history_id",),
        (Reference("patient_mrn", "patient_uuid", "patient", "mrn", RefStrength.HARD),),
    )
    try:
        with register(entry):
            yield entry
    finally:
        CanonicalBase.metadata.remove(FamilyHistory.__table__)


@pytest.fixture
def store(family_history: EntityType, engine: Engine) -> Iterator[Engine]:
    """The store, with the new type's table and its history table (what its Alembic revision would create)."""
    table = family_history.model.__table__
    table.create(engine)
    history_of(table).create(engine)
    try:
        yield engine
    finally:
        history_of(table).drop(engine)
        table.drop(engine)


def _save(engine: Engine, name: str, histories: list[dict]) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save(name, {"patient": [PATIENT], "family_histories": histories})


def _load(engine: Engine, name: str) -> dict[str, list[dict]]:
    with session_scope(engine) as session:
        return ScenarioRepository(session).load(name).entities


def test_it_saves_loads_and_resolves_its_patient(store: Engine) -> None:
    _save(store, "histories", HISTORIES)
    loaded = _load(store, "histories")
    assert normalise(loaded["family_history"]) == normalise(HISTORIES)
    with store.connect() as connection:
        rows = connection.execute(sa.text("SELECT patient_uuid FROM test_family_histories")).all()
        patient = connection.execute(sa.text("SELECT id FROM patients")).scalar_one()
    assert [row[0] for row in rows] == [patient, patient]


def test_its_rules_refuse_by_field_name(store: Engine) -> None:
    bad = [dict(HISTORIES[0], history_id="H1", relationship="cousin"), dict(HISTORIES[1], patient_mrn="MRN-NONE")]
    with pytest.raises(ValidationError) as info:
        _save(store, "refused", bad)
    problems = {(p.entity_type, p.position, p.field): p.reason for p in info.value.problems}
    assert problems[("family_history", 0, "history_id")] == "'H1' does not match the pattern FMH-[0-9]+"
    assert problems[("family_history", 0, "relationship")] == "'cousin' is not one of child, father, mother, sibling"
    assert ("family_history", 1, "patient_mrn") in problems
    with session_scope(store) as session:
        assert not ScenarioRepository(session).exists("refused")


def test_it_goes_through_the_exchange_document(store: Engine) -> None:
    _save(store, "exported", HISTORIES)
    document = io.BytesIO()
    with session_scope(store) as session:
        export_scenario(session, "exported", document)
    assert b'"family_history": [' in document.getvalue()
    with session_scope(store) as session:
        import_scenario(session, io.BytesIO(document.getvalue()), name="imported")
    assert normalise(_load(store, "imported")) == normalise(_load(store, "exported"))


def test_the_mcp_schemas_carry_it_with_its_rules(family_history: EntityType) -> None:
    for spec in (s for s in TOOLS if s.name in ("save_scenario", "add_entities")):
        schema = spec.input_schema()
        entities = schema["properties"]["entities"]["properties"]
        assert entities["family_history"] == entities["family_histories"] == {"$ref": "#/$defs/family_history"}
        document = schema["$defs"]["family_history"]["items"]["properties"]
        assert re.fullmatch(document["history_id"]["pattern"], "FMH-12")
        assert not re.search(document["history_id"]["pattern"], "xFMH-12")
        assert document["relationship"]["enum"] == [*sorted(RELATIONSHIPS), None]
