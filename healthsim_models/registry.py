"""The entity registry: the one list of entity types.

Each :class:`EntityType` says which table holds the type, how its entities
are keyed, which parents they reference, which children its documents may
carry, whether it is a person and which checks tie its fields together. The
repository, codec, CLI, MCP tools and docs derive their per-type behaviour
from :data:`ENTITY_TYPES` instead of keeping lists of their own; the value
rules of single fields are on the model's columns (:mod:`healthsim_models.columns`).

Adding a type is its model, its entry here and an Alembic revision.
:func:`register` adds one at run time (a plugin's, or a test's).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import overload

from healthsim_models.base import CanonicalBase
from healthsim_models.canonical import (
    AdverseEvent,
    Allergy,
    CarePlan,
    Claim,
    ClaimLine,
    ClinicalNote,
    Coverage,
    Device,
    Diagnosis,
    Encounter,
    Exposure,
    ImagingStudy,
    Immunization,
    LabResult,
    Medication,
    Member,
    Observation,
    Order,
    Organization,
    Patient,
    Payer,
    PharmacyClaim,
    Practitioner,
    Prescription,
    Procedure,
    Subject,
    Supply,
    TrialVisit,
    VitalSign,
)
from healthsim_models.canonical.checks import (
    RowCheck,
    patient_or_member,
    person_dates,
    provider_named,
    refills_within_authorized,
)
from healthsim_models.errors import InvalidArgumentError, UnknownEntityTypeError


class RefStrength(str, Enum):
    """How strictly a reference must resolve (canonical-models §0)."""

    HARD = "hard"  # required, and must resolve
    OPTIONAL = "opt"  # may be absent; must resolve when present
    SOFT = "soft"  # may be absent; an unresolved value only warns


@dataclass(frozen=True)
class Reference:
    """A child-to-parent link by business key, resolved to a UUID column.

    ``field`` holds the parent's business key as sent (``patient_mrn``);
    ``uuid_column`` holds the parent's resolved UUID (``patient_uuid``).
    """

    field: str
    uuid_column: str
    parent: str
    parent_key: str
    strength: RefStrength


@dataclass(frozen=True)
class Nested:
    """Children a document may carry inline, saved as entities of their own type.

    ``field`` holds the array of child documents (``claim_lines``); ``child``
    is their type; each ``carry`` field of the parent is copied into every
    child that lacks it, and a child that gives a different value is refused.
    The child type comes later in :data:`ENTITY_TYPES` than the parent.
    """

    field: str
    child: str
    carry: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntityType:
    """One canonical entity type.

    ``person`` types (canonical-models §3) require a document ``id``.
    ``checks`` are the type's own row checks (:mod:`healthsim_models.canonical.checks`),
    run after the column rules on every row the codec encodes.
    """

    name: str
    plural: str
    model: type[CanonicalBase]
    product: str
    business_key: tuple[str, ...]
    references: tuple[Reference, ...] = ()
    nested: tuple[Nested, ...] = ()
    person: bool = False
    checks: tuple[RowCheck, ...] = ()

    @property
    def table_name(self) -> str:
        return self.model.__tablename__


def _patient(strength: RefStrength = RefStrength.HARD) -> Reference:
    return Reference("patient_mrn", "patient_uuid", "patient", "mrn", strength)


def _encounter() -> Reference:
    return Reference("encounter_id", "encounter_uuid", "encounter", "encounter_id", RefStrength.OPTIONAL)


def _subject() -> Reference:
    return Reference("usubjid", "subject_uuid", "subject", "usubjid", RefStrength.HARD)


def _member(field: str, uuid_column: str, strength: RefStrength) -> Reference:
    return Reference(field, uuid_column, "member", "member_id", strength)


def _organization() -> Reference:
    return Reference("organization_id", "organization_uuid", "organization", "organization_id", RefStrength.OPTIONAL)


def _practitioner() -> Reference:
    return Reference("practitioner_id", "practitioner_uuid", "practitioner", "practitioner_id", RefStrength.OPTIONAL)


def _payer(
    field: str = "payer_id", uuid_column: str = "payer_uuid", strength: RefStrength = RefStrength.OPTIONAL
) -> Reference:
    return Reference(field, uuid_column, "payer", "payer_id", strength)


_CLINICAL_REFS = (_patient(), _encounter())


class EntityTypes(Sequence[EntityType]):
    """The registered entity types in catalogue order: a read-only sequence.

    It is one object for the life of the process, so every module that
    imported :data:`ENTITY_TYPES` sees a type :func:`register` adds.
    """

    def __init__(self, types: tuple[EntityType, ...]) -> None:
        self._types = types

    @overload
    def __getitem__(self, index: int) -> EntityType: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[EntityType, ...]: ...
    def __getitem__(self, index: int | slice) -> EntityType | tuple[EntityType, ...]:
        return self._types[index]

    def __len__(self) -> int:
        return len(self._types)

    def __iter__(self) -> Iterator[EntityType]:
        return iter(self._types)

    def __repr__(self) -> str:
        return f"EntityTypes({', '.join(et.name for et in self._types)})"


# Catalogue order (the section order of canonical-models §4-§7, as in the
# canonical example export, with the types added for Synthea import after
# their product's): exports list types in this order, and every parent comes
# before its children, so the directory and the payers come first.
_CATALOGUE: tuple[EntityType, ...] = (
    EntityType("organization", "organizations", Organization, "networksim", ("organization_id",)),
    EntityType("practitioner", "practitioners", Practitioner, "networksim", ("practitioner_id",), (_organization(),)),
    EntityType("payer", "payers", Payer, "membersim", ("payer_id",)),
    EntityType("patient", "patients", Patient, "patientsim", ("mrn",), person=True, checks=(person_dates,)),
    EntityType(
        "encounter",
        "encounters",
        Encounter,
        "patientsim",
        ("encounter_id",),
        (_patient(), _organization(), _practitioner(), _payer()),
    ),
    EntityType("diagnosis", "diagnoses", Diagnosis, "patientsim", (), _CLINICAL_REFS),
    EntityType("procedure", "procedures", Procedure, "patientsim", (), _CLINICAL_REFS),
    EntityType("medication", "medications", Medication, "patientsim", (), _CLINICAL_REFS),
    EntityType("lab_result", "lab_results", LabResult, "patientsim", (), _CLINICAL_REFS),
    EntityType("vital_sign", "vital_signs", VitalSign, "patientsim", (), _CLINICAL_REFS),
    EntityType("clinical_note", "clinical_notes", ClinicalNote, "patientsim", (), _CLINICAL_REFS),
    EntityType("order", "orders", Order, "patientsim", ("order_id",), _CLINICAL_REFS),
    EntityType("observation", "observations", Observation, "patientsim", (), _CLINICAL_REFS),
    EntityType("allergy", "allergies", Allergy, "patientsim", (), _CLINICAL_REFS),
    EntityType("immunization", "immunizations", Immunization, "patientsim", (), _CLINICAL_REFS),
    EntityType("care_plan", "care_plans", CarePlan, "patientsim", (), _CLINICAL_REFS),
    EntityType("device", "devices", Device, "patientsim", (), _CLINICAL_REFS),
    EntityType("supply", "supplies", Supply, "patientsim", (), _CLINICAL_REFS),
    EntityType("imaging_study", "imaging_studies", ImagingStudy, "patientsim", ("instance_uid",), _CLINICAL_REFS),
    EntityType(
        "member",
        "members",
        Member,
        "membersim",
        ("member_id",),
        (_member("subscriber_id", "subscriber_uuid", RefStrength.SOFT),),
        person=True,
        checks=(person_dates,),
    ),
    EntityType(
        "coverage",
        "coverages",
        Coverage,
        "membersim",
        (),
        (
            _member("member_id", "member_uuid", RefStrength.HARD),
            _payer(strength=RefStrength.HARD),
            _payer("secondary_payer_id", "secondary_payer_uuid"),
        ),
    ),
    EntityType(
        "claim",
        "claims",
        Claim,
        "membersim",
        ("claim_id",),
        (
            _member("member_id", "member_uuid", RefStrength.HARD),
            _member("subscriber_id", "subscriber_uuid", RefStrength.SOFT),
            _practitioner(),
            _payer(),
        ),
        nested=(Nested("claim_lines", "claim_line", carry=("claim_id",)),),  # canonical-models §12.4
        checks=(provider_named,),
    ),
    EntityType(
        "claim_line",
        "claim_lines",
        ClaimLine,
        "membersim",
        ("claim_id", "line_number"),
        (Reference("claim_id", "claim_uuid", "claim", "claim_id", RefStrength.HARD),),
    ),
    EntityType(
        "prescription",
        "prescriptions",
        Prescription,
        "rxmembersim",
        ("prescription_number",),
        (
            _patient(RefStrength.OPTIONAL),
            _member("member_id", "member_uuid", RefStrength.OPTIONAL),
            _encounter(),
        ),
        checks=(patient_or_member, refills_within_authorized),
    ),
    EntityType(
        "pharmacy_claim",
        "pharmacy_claims",
        PharmacyClaim,
        "rxmembersim",
        ("claim_id",),
        (
            _member("member_id", "member_uuid", RefStrength.HARD),
            Reference(
                "prescription_number",
                "prescription_uuid",
                "prescription",
                "prescription_number",
                RefStrength.SOFT,
            ),
        ),
    ),
    EntityType(
        "subject",
        "subjects",
        Subject,
        "trialsim",
        ("usubjid",),
        (Reference("patient_ref", "patient_uuid", "patient", "mrn", RefStrength.SOFT),),
        person=True,
        checks=(person_dates,),
    ),
    EntityType("trial_visit", "trial_visits", TrialVisit, "trialsim", ("usubjid", "visit_num"), (_subject(),)),
    EntityType("adverse_event", "adverse_events", AdverseEvent, "trialsim", ("usubjid", "aeseq"), (_subject(),)),
    EntityType("exposure", "exposures", Exposure, "trialsim", ("usubjid", "exseq"), (_subject(),)),
)

#: Every entity type, in catalogue order (those of :data:`_CATALOGUE`, then any registered).
ENTITY_TYPES = EntityTypes(_CATALOGUE)
#: Entity types by their singular names; by their plural names (the keys of legacy documents).
BY_NAME: dict[str, EntityType] = {}
BY_PLURAL: dict[str, EntityType] = {}
_BY_NAME: dict[str, EntityType] = {}  # singular and plural


def _index(types: tuple[EntityType, ...]) -> None:
    """Make ``types`` the registry; the lookups change in place, so that no importer holds a stale one."""
    ENTITY_TYPES._types = types
    for lookup, pairs in (
        (BY_NAME, [(et.name, et) for et in types]),
        (BY_PLURAL, [(et.plural, et) for et in types]),
        (_BY_NAME, [*((et.name, et) for et in types), *((et.plural, et) for et in types)]),
    ):
        lookup.clear()
        lookup.update(pairs)


_index(_CATALOGUE)


def entity_type(name: str) -> EntityType:
    """The entity type called ``name``, singular or plural.

    Raises :class:`UnknownEntityTypeError`, listing the valid names.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        valid = ", ".join(et.name for et in ENTITY_TYPES)
        raise UnknownEntityTypeError(
            f"unknown entity type {name!r}; valid types: {valid} (plural forms accepted too)"
        ) from None


class Registration:
    """An entity type added by :func:`register`; :meth:`undo` (or leaving the
    ``with`` block) removes it again."""

    def __init__(self, entity: EntityType) -> None:
        self.entity = entity

    def undo(self) -> None:
        _index(tuple(et for et in ENTITY_TYPES if et is not self.entity))

    def __enter__(self) -> EntityType:
        return self.entity

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.undo()


def register(entity: EntityType) -> Registration:
    """Add ``entity`` after every registered type, at once; returns the
    :class:`Registration` that removes it.

    Its names and table must be new and its parents registered. The table
    itself is not created: the store's schema comes from the Alembic
    revisions, so a type of the store needs one; a test creates its table
    itself. Raises :class:`InvalidArgumentError`.
    """
    taken = {n for et in ENTITY_TYPES for n in (et.name, et.plural)}
    clash = [n for n in (entity.name, entity.plural) if n in taken]
    if clash:
        raise InvalidArgumentError(f"entity type {entity.name!r}: the name {clash[0]!r} is registered already")
    if any(et.table_name == entity.table_name for et in ENTITY_TYPES):
        raise InvalidArgumentError(f"entity type {entity.name!r}: table {entity.table_name!r} belongs to another type")
    missing = [ref.parent for ref in entity.references if ref.parent not in taken]
    if missing:
        raise InvalidArgumentError(
            f"entity type {entity.name!r} references {missing[0]!r}, which is not registered (parents come first)"
        )
    _index((*ENTITY_TYPES, entity))
    return Registration(entity)
