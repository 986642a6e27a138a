"""The entity registry: the one list of entity types.

Each :class:`EntityType` says which table holds the type, how its entities
are keyed and which parents they reference. The repository, serializers,
CLI, MCP tools and docs derive their per-type behaviour from
:data:`ENTITY_TYPES` instead of keeping lists of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from healthsim_models.base import CanonicalBase
from healthsim_models.canonical import (
    AdverseEvent,
    Claim,
    ClaimLine,
    ClinicalNote,
    Diagnosis,
    Encounter,
    Exposure,
    LabResult,
    Medication,
    Member,
    Order,
    Patient,
    PharmacyClaim,
    Prescription,
    Procedure,
    Subject,
    TrialVisit,
    VitalSign,
)
from healthsim_models.errors import UnknownEntityTypeError


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
    """One canonical entity type."""

    name: str
    plural: str
    model: type[CanonicalBase]
    product: str
    business_key: tuple[str, ...]
    references: tuple[Reference, ...] = ()
    nested: tuple[Nested, ...] = ()

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


_CLINICAL_REFS = (_patient(), _encounter())

# Catalogue order (the section order of canonical-models §4-§7, as in the
# canonical example export): exports list types in this order, and every
# parent comes before its children.
ENTITY_TYPES: tuple[EntityType, ...] = (
    EntityType("patient", "patients", Patient, "patientsim", ("mrn",)),
    EntityType("encounter", "encounters", Encounter, "patientsim", ("encounter_id",), (_patient(),)),
    EntityType("diagnosis", "diagnoses", Diagnosis, "patientsim", (), _CLINICAL_REFS),
    EntityType("procedure", "procedures", Procedure, "patientsim", (), _CLINICAL_REFS),
    EntityType("medication", "medications", Medication, "patientsim", (), _CLINICAL_REFS),
    EntityType("lab_result", "lab_results", LabResult, "patientsim", (), _CLINICAL_REFS),
    EntityType("vital_sign", "vital_signs", VitalSign, "patientsim", (), _CLINICAL_REFS),
    EntityType("clinical_note", "clinical_notes", ClinicalNote, "patientsim", (), _CLINICAL_REFS),
    EntityType("order", "orders", Order, "patientsim", ("order_id",), _CLINICAL_REFS),
    EntityType(
        "member",
        "members",
        Member,
        "membersim",
        ("member_id",),
        (_member("subscriber_id", "subscriber_uuid", RefStrength.SOFT),),
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
        ),
        nested=(Nested("claim_lines", "claim_line", carry=("claim_id",)),),  # canonical-models §12.4
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
    ),
    EntityType("trial_visit", "trial_visits", TrialVisit, "trialsim", ("usubjid", "visit_num"), (_subject(),)),
    EntityType("adverse_event", "adverse_events", AdverseEvent, "trialsim", ("usubjid", "aeseq"), (_subject(),)),
    EntityType("exposure", "exposures", Exposure, "trialsim", ("usubjid", "exseq"), (_subject(),)),
)

#: Entity types by their plural names (the keys of legacy documents).
BY_PLURAL: dict[str, EntityType] = {et.plural: et for et in ENTITY_TYPES}
_BY_NAME: dict[str, EntityType] = {**{et.name: et for et in ENTITY_TYPES}, **BY_PLURAL}


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
