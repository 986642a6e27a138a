"""The entity registry agrees with the models and with canonical-models.md."""

from __future__ import annotations

import pytest

from healthsim_models import ENTITY_TYPES, Base, CanonicalBase, RefStrength, UnknownEntityTypeError, entity_type
from healthsim_models.base import CanonicalMixin

# canonical-models.md §1, in the catalogue order of the canonical export.
CATALOGUE = [
    "patient",
    "encounter",
    "diagnosis",
    "procedure",
    "medication",
    "lab_result",
    "vital_sign",
    "clinical_note",
    "order",
    "member",
    "claim",
    "claim_line",
    "prescription",
    "pharmacy_claim",
    "subject",
    "trial_visit",
    "adverse_event",
    "exposure",
]


def test_the_18_types_in_catalogue_order() -> None:
    assert [et.name for et in ENTITY_TYPES] == CATALOGUE


def test_every_canonical_table_is_registered_once() -> None:
    canonical_tables = {mapper.class_.__tablename__ for mapper in CanonicalBase.registry.mappers}
    assert all(issubclass(mapper.class_, CanonicalMixin) for mapper in CanonicalBase.registry.mappers)
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
