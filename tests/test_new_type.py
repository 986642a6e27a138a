"""A new entity type is its model and its registry entry, and nothing else (issue 16).

The model below is declared here, on CanonicalBase like the 18, with its value
rules on its columns (a pattern, an enum) and a reference to ``patient``;
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
from healthsim_models.registry import EntityType, Reference, RefStrength, register
from healthsim_state import ScenarioRepository, export_scenario, import_scenario
from healthsim_state.interfaces.mcp.catalog import TOOLS
from tests.helpers import fixture, normalise

SEVERITIES = frozenset({"mild", "moderate", "severe"})
PATIENT = fixture("scenario-canonical.json")["entities"]["patient"][0]
ALLERGIES = [
    {
        "allergy_id": "ALG-1",
        "patient_mrn": PATIENT["mrn"],
        "substance": "Penicillin",
        "severity": "severe",
        "onset_date": "2019-05-02",
        "x_note": "kept in extensions",
    },
    {"allergy_id": "ALG-2", "patient_mrn": PATIENT["mrn"], "substance": "Peanuts", "severity": "mild"},
]


@pytest.fixture(scope="module")
def allergy() -> Iterator[EntityType]:
    """The new type, registered; afterwards its table is gone from the models' metadata
    (SQLAlchemy cannot unmap one class, so its mapper stays, tableless)."""

    class Allergy(PatientRefMixin, CanonicalMixin, CanonicalBase):
        __tablename__ = "test_allergies"

        allergy_id: Mapped[str] = field(sa.String, nullable=False, index=True, pattern=re.compile(r"ALG-\d+"))
        substance: Mapped[str] = mapped_column(sa.String, nullable=False)
        severity: Mapped[str] = field(sa.String, nullable=False, enum=SEVERITIES)
        onset_date: Mapped[dt.date | None] = mapped_column(sa.Date)

    entry = EntityType(
        "allergy",
        "allergies",
        Allergy,
        "patientsim",
        ("allergy_id",),
        (Reference("patient_mrn", "patient_uuid", "patient", "mrn", RefStrength.HARD),),
    )
    try:
        with register(entry):
            yield entry
    finally:
        CanonicalBase.metadata.remove(Allergy.__table__)


@pytest.fixture
def store(allergy: EntityType, engine: Engine) -> Iterator[Engine]:
    """The store, with the new type's table (what its Alembic revision would create)."""
    table = allergy.model.__table__
    table.create(engine)
    try:
        yield engine
    finally:
        table.drop(engine)


def _save(engine: Engine, name: str, allergies: list[dict]) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save(name, {"patient": [PATIENT], "allergies": allergies})


def _load(engine: Engine, name: str) -> dict[str, list[dict]]:
    with session_scope(engine) as session:
        return ScenarioRepository(session).load(name).entities


def test_it_saves_loads_and_resolves_its_patient(store: Engine) -> None:
    _save(store, "allergic", ALLERGIES)
    loaded = _load(store, "allergic")
    assert normalise(loaded["allergy"]) == normalise(ALLERGIES)
    with store.connect() as connection:
        rows = connection.execute(sa.text("SELECT patient_uuid FROM test_allergies")).all()
        patient = connection.execute(sa.text("SELECT id FROM patients")).scalar_one()
    assert [row[0] for row in rows] == [patient, patient]


def test_its_rules_refuse_by_field_name(store: Engine) -> None:
    bad = [dict(ALLERGIES[0], allergy_id="A1", severity="deadly"), dict(ALLERGIES[1], patient_mrn="MRN-NONE")]
    with pytest.raises(ValidationError) as info:
        _save(store, "refused", bad)
    problems = {(p.entity_type, p.position, p.field): p.reason for p in info.value.problems}
    assert problems[("allergy", 0, "allergy_id")] == r"'A1' does not match the pattern ALG-\d+"
    assert problems[("allergy", 0, "severity")] == "'deadly' is not one of mild, moderate, severe"
    assert ("allergy", 1, "patient_mrn") in problems
    with session_scope(store) as session:
        assert not ScenarioRepository(session).exists("refused")


def test_it_goes_through_the_exchange_document(store: Engine) -> None:
    _save(store, "exported", ALLERGIES)
    document = io.BytesIO()
    with session_scope(store) as session:
        export_scenario(session, "exported", document)
    assert b'"allergy": [' in document.getvalue()
    with session_scope(store) as session:
        import_scenario(session, io.BytesIO(document.getvalue()), name="imported")
    assert normalise(_load(store, "imported")) == normalise(_load(store, "exported"))


def test_the_mcp_schemas_carry_it_with_its_rules(allergy: EntityType) -> None:
    for spec in (s for s in TOOLS if s.name in ("save_scenario", "add_entities")):
        schema = spec.input_schema()
        entities = schema["properties"]["entities"]["properties"]
        assert entities["allergy"] == entities["allergies"] == {"$ref": "#/$defs/allergy"}
        document = schema["$defs"]["allergy"]["items"]["properties"]
        assert re.fullmatch(document["allergy_id"]["pattern"], "ALG-12")
        assert not re.search(document["allergy_id"]["pattern"], "xALG-12")
        assert document["severity"]["enum"] == [*sorted(SEVERITIES), None]
