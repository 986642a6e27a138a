"""The entity registry agrees with the models and with canonical-models.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from healthsim_models import ENTITY_TYPES, Base, CanonicalBase, RefStrength, UnknownEntityTypeError, entity_type
from healthsim_models.base import CanonicalMixin
from healthsim_models.canonical import checks
from healthsim_models.errors import InvalidArgumentError
from healthsim_models.registry import BY_NAME, BY_PLURAL, EntityType, Reference, register
from healthsim_state.codec.reference_doc import reference

REPO = Path(__file__).resolve().parent.parent

# canonical-models.md §1, in the catalogue order of the canonical export, with the 11 types
# of Synthea import (issue 17) after their product's: the directory and the payers first.
CATALOGUE = [
    "organization",
    "practitioner",
    "payer",
    "patient",
    "encounter",
    "diagnosis",
    "procedure",
    "medication",
    "lab_result",
    "vital_sign",
    "clinical_note",
    "order",
    "observation",
    "allergy",
    "immunization",
    "care_plan",
    "device",
    "supply",
    "imaging_study",
    "member",
    "coverage",
    "claim",
    "claim_line",
    "prescription",
    "pharmacy_claim",
    "subject",
    "trial_visit",
    "adverse_event",
    "exposure",
]


def test_the_29_types_in_catalogue_order() -> None:
    assert len(CATALOGUE) == 29
    assert [et.name for et in ENTITY_TYPES] == CATALOGUE


def test_every_canonical_table_is_registered_once() -> None:
    # Mappers of the schema's tables: a test's own type (test_new_type.py) leaves
    # a mapper behind, whose table it removed from the metadata.
    mappers = [
        m for m in CanonicalBase.registry.mappers if Base.metadata.tables.get(m.local_table.key) is m.local_table
    ]
    canonical_tables = {mapper.class_.__tablename__ for mapper in mappers}
    assert len(canonical_tables) >= 29
    assert all(issubclass(mapper.class_, CanonicalMixin) for mapper in mappers)
    assert not any(issubclass(mapper.class_, CanonicalMixin) for mapper in Base.registry.mappers)
    registered = [et.table_name for et in ENTITY_TYPES]
    assert sorted(registered) == sorted(canonical_tables)
    assert len(set(registered)) == len(registered)


@pytest.mark.parametrize("et", ENTITY_TYPES, ids=lambda et: et.name)
def test_keys_and_references_name_real_columns(et) -> None:
    columns = et.model.__table__.columns
    for key in et.business_key:
        assert key in columns, f"{et.name} business key {key}"
    for ref in et.references:
        assert ref.field in columns, f"{et.name}.{ref.field}"
        assert ref.uuid_column in columns, f"{et.name}.{ref.uuid_column}"
        parent = entity_type(ref.parent)
        assert parent.business_key == (ref.parent_key,), f"{et.name}.{ref.field} -> {ref.parent}"
        # Parents come first, so a save can resolve in catalogue order.
        assert CATALOGUE.index(parent.name) <= CATALOGUE.index(et.name)
        hard = ref.strength is RefStrength.HARD
        assert columns[ref.uuid_column].nullable is not hard, f"{et.name}.{ref.uuid_column}"


def test_reference_strengths_follow_the_reference_document() -> None:
    strengths = {(et.name, r.field): r.strength.value for et in ENTITY_TYPES for r in et.references}
    assert strengths[("encounter", "patient_mrn")] == "hard"
    assert strengths[("lab_result", "encounter_id")] == "opt"
    assert strengths[("claim", "subscriber_id")] == "soft"
    assert strengths[("pharmacy_claim", "prescription_number")] == "soft"
    assert strengths[("prescription", "member_id")] == "opt"
    assert strengths[("subject", "patient_ref")] == "soft"
    assert strengths[("claim_line", "claim_id")] == "hard"
    # The types of Synthea import: the directory and the payers are optional from encounters and
    # claims; a coverage needs its member and its payer.
    for type_name, field in [
        ("practitioner", "organization_id"),
        ("encounter", "organization_id"),
        ("encounter", "practitioner_id"),
        ("encounter", "payer_id"),
        ("claim", "practitioner_id"),
        ("claim", "payer_id"),
        ("coverage", "secondary_payer_id"),
        ("imaging_study", "encounter_id"),
    ]:
        assert strengths[(type_name, field)] == "opt", (type_name, field)
    assert strengths[("coverage", "member_id")] == strengths[("coverage", "payer_id")] == "hard"
    assert strengths[("allergy", "patient_mrn")] == "hard"


def test_lookup_by_singular_or_plural() -> None:
    assert entity_type("lab_result") is entity_type("lab_results")
    assert entity_type("diagnoses").name == "diagnosis"


def test_unknown_type_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownEntityTypeError) as info:
        entity_type("patientz")
    message = str(info.value)
    assert "'patientz'" in message
    for name in CATALOGUE:
        assert name in message
    assert isinstance(info.value, KeyError)


def test_person_types_and_their_checks() -> None:
    assert [et.name for et in ENTITY_TYPES if et.person] == ["patient", "member", "subject"]
    for et in ENTITY_TYPES:
        assert (checks.person_dates in et.checks) is et.person, et.name
        for check in et.checks:
            assert check.__module__ == checks.__name__, (et.name, check)  # beside the models, not lambdas
    assert entity_type("prescription").checks == (checks.patient_or_member, checks.refills_within_authorized)
    assert entity_type("claim").checks == (checks.provider_named,)


def _extra(name: str = "test_extra", refs: tuple[Reference, ...] = ()) -> EntityType:
    # The registry's own bookkeeping needs no table: a stand-in for the model will do.
    model = type("Extra", (), {"__tablename__": f"{name}_table"})
    return EntityType(name, f"{name}s", model, "patientsim", (), refs)  # type: ignore[arg-type]


def test_register_adds_a_type_everywhere_until_undone() -> None:
    before = list(ENTITY_TYPES)
    registration = register(_extra())
    try:
        extra = registration.entity
        assert list(ENTITY_TYPES) == [*before, extra]
        assert ENTITY_TYPES[-1] is entity_type("test_extra") is entity_type("test_extras") is extra
        assert BY_NAME["test_extra"] is BY_PLURAL["test_extras"] is extra
    finally:
        registration.undo()
    assert list(ENTITY_TYPES) == before
    assert "test_extra" not in BY_NAME and "test_extras" not in BY_PLURAL
    with pytest.raises(UnknownEntityTypeError):
        entity_type("test_extra")
    with register(_extra()) as extra:
        assert entity_type("test_extra") is extra
    assert [et.name for et in ENTITY_TYPES] == CATALOGUE


def test_register_refuses_taken_names_and_unknown_parents() -> None:
    with pytest.raises(InvalidArgumentError, match="the name 'patients' is registered already"):
        register(EntityType("patients", "patientses", Base, "patientsim", ()))  # type: ignore[arg-type]
    notes = EntityType("notes2", "notes2s", entity_type("clinical_note").model, "patientsim", ())
    with pytest.raises(InvalidArgumentError, match="table 'clinical_notes' belongs to another type"):
        register(notes)
    orphan = _extra("orphan", (Reference("x_id", "x_uuid", "nowhere", "x_id", RefStrength.HARD),))
    with pytest.raises(InvalidArgumentError, match="references 'nowhere', which is not registered"):
        register(orphan)
    assert [et.name for et in ENTITY_TYPES] == CATALOGUE


def test_the_repository_guide_lists_every_type_with_its_key() -> None:
    text = (REPO / "docs" / "repository.md").read_text()
    section = text[text.index("## Entity types") : text.index("## Identity")]
    assert f"\n{len(ENTITY_TYPES)} entity types" in section
    for et in ENTITY_TYPES:
        assert re.search(rf"\b{et.name}\b", section), et.name
        for key in et.business_key:
            assert f"`{key}`" in section, (et.name, key)
        for ref in et.references:
            assert f"`{ref.field}`" in section, (et.name, ref.field)


def test_the_entity_type_reference_in_the_docs_is_generated_from_the_models() -> None:
    """docs/entity-types.md is the output of python -m healthsim_state.codec.reference_doc."""
    text = reference()
    assert (REPO / "docs" / "entity-types.md").read_text() == text
    for et in ENTITY_TYPES:
        assert f"\n## {et.name}\n" in text
    assert r"| `ssn` | `ssn` | str |  |  | matches `[0-9]{9}`" in text
    assert "| `aeendtc` | `aeendtc` | date |  |  | not before `aestdtc` |" in text
    # Each type under its model's docstring; arrays of objects by their item kind.
    assert "\n## allergy\n\nAn allergy or intolerance of a patient (FHIR AllergyIntolerance)." in text
    assert "`reactions` holds FHIR `reaction` entries as objects" in text
    assert "| `reactions` | `reactions` | array of object |" in text
    assert "| `other_diagnoses` | `other_diagnoses` | array of str |" in text
    assert "- Check: A claim names its rendering provider by NPI, by practitioner, or both." in text
