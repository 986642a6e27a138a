"""PatientSim tables: the clinical record (canonical-models §4).

Children reference their patient by ``patient_mrn`` (hard) and their
encounter by ``encounter_id`` (optional). The business key is stored as sent
and the repository resolves it, within the scenario, to the parent's UUID in
``patient_uuid`` / ``encounter_uuid``. There are no database foreign keys:
DuckDB cannot delete a referenced row even in the same transaction as its
children, which would make a scenario delete impossible (docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models import vocab
from healthsim_models.base import (
    CanonicalBase,
    CanonicalMixin,
    JSONType,
    PersonMixin,
    Timestamp,
)
from healthsim_models.columns import field


class PatientRefMixin:
    """Hard reference to the patient: ``patient_mrn`` -> patients.mrn."""

    patient_mrn: Mapped[str] = mapped_column(sa.String, nullable=False, sort_order=-50)
    patient_uuid: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True, sort_order=-49)


class EncounterRefMixin:
    """Optional reference to the encounter: ``encounter_id`` -> encounters.encounter_id."""

    encounter_id: Mapped[str | None] = mapped_column(sa.String, sort_order=-48)
    encounter_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True, sort_order=-47)


class Patient(PersonMixin, CanonicalMixin, CanonicalBase):
    """A person in the clinical record. Key ``mrn``."""

    __tablename__ = "patients"

    mrn: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    race: Mapped[str | None] = mapped_column(sa.String)
    ethnicity: Mapped[str | None] = mapped_column(sa.String)
    language: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'en'"))


class Encounter(PatientRefMixin, CanonicalMixin, CanonicalBase):
    """One visit, admission or ED stay. Key ``encounter_id``."""

    __tablename__ = "encounters"

    encounter_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    class_code: Mapped[str] = field(sa.String, nullable=False, enum=vocab.ENCOUNTER_CLASS)
    status: Mapped[str] = field(sa.String, nullable=False, enum=vocab.ENCOUNTER_STATUS)
    admission_time: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    discharge_time: Mapped[dt.datetime | None] = field(Timestamp, not_before="admission_time")
    facility: Mapped[str | None] = mapped_column(sa.String)
    department: Mapped[str | None] = mapped_column(sa.String)
    room: Mapped[str | None] = mapped_column(sa.String)
    bed: Mapped[str | None] = mapped_column(sa.String)
    chief_complaint: Mapped[str | None] = mapped_column(sa.String)
    admitting_diagnosis: Mapped[str | None] = mapped_column(sa.String)
    discharge_disposition: Mapped[str | None] = mapped_column(sa.String)
    attending_physician: Mapped[str | None] = mapped_column(sa.String)
    admitting_physician: Mapped[str | None] = mapped_column(sa.String)
    # Optional references into the provider directory and to the payer.
    organization_id: Mapped[str | None] = mapped_column(sa.String)
    organization_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    practitioner_id: Mapped[str | None] = mapped_column(sa.String)
    practitioner_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    payer_id: Mapped[str | None] = mapped_column(sa.String)
    payer_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)


class Diagnosis(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A coded condition (ICD-10-CM, or SNOMED CT as Synthea codes them). No business key."""

    __tablename__ = "diagnoses"

    code: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    # NULL reads as ICD-10-CM, the system of every diagnosis before this column.
    code_system: Mapped[str | None] = field(
        sa.String, server_default=sa.text("'ICD-10-CM'"), enum=vocab.DIAGNOSIS_CODE_SYSTEM
    )
    # Required in documents, nullable upstream (canonical-models §12.6).
    description: Mapped[str | None] = field(sa.String, doc_required=True)
    type: Mapped[str] = field(sa.String, nullable=False, server_default=sa.text("'final'"), enum=vocab.DIAGNOSIS_TYPE)
    diagnosed_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    resolved_date: Mapped[dt.date | None] = field(sa.Date, not_before="diagnosed_date")


class Procedure(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A procedure performed on a patient. No business key."""

    __tablename__ = "procedures"

    code: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    code_system: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'CPT'"), enum=vocab.PROCEDURE_CODE_SYSTEM
    )
    description: Mapped[str | None] = mapped_column(sa.String)
    performed_datetime: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    performer: Mapped[str | None] = mapped_column(sa.String)
    provider_npi: Mapped[str | None] = field(sa.String, pattern=vocab.NPI)
    status: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'completed'"), enum=vocab.PROCEDURE_STATUS
    )
    body_site: Mapped[str | None] = mapped_column(sa.String)
    modifiers: Mapped[list[Any] | None] = field(JSONType, items="str", max_items=4)
    diagnosis_codes: Mapped[list[Any] | None] = field(JSONType, items="str")


class Medication(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A drug ordered or given on the clinical side. No business key."""

    __tablename__ = "medications"

    name: Mapped[str] = mapped_column(sa.String, nullable=False)
    code: Mapped[str | None] = mapped_column(sa.String, index=True)
    dose: Mapped[str] = mapped_column(sa.String, nullable=False)
    route: Mapped[str] = mapped_column(sa.String, nullable=False)
    frequency: Mapped[str] = mapped_column(sa.String, nullable=False)
    # Date-times that also accept a bare date (canonical-models §12.10).
    start_date: Mapped[dt.datetime] = field(Timestamp, nullable=False, index=True, bare_date_ok=True)
    end_date: Mapped[dt.datetime | None] = field(Timestamp, bare_date_ok=True, not_before="start_date")
    status: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'active'"), enum=vocab.MEDICATION_STATUS
    )
    prescriber: Mapped[str | None] = mapped_column(sa.String)
    indication: Mapped[str | None] = mapped_column(sa.String)


class LabResult(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """One resulted lab observation. No business key."""

    __tablename__ = "lab_results"

    test_name: Mapped[str] = mapped_column(sa.String, nullable=False)
    loinc_code: Mapped[str | None] = mapped_column(sa.String, index=True)
    # Text even when numeric ("<100", "positive").
    value: Mapped[str] = mapped_column(sa.String, nullable=False)
    unit: Mapped[str | None] = mapped_column(sa.String)
    reference_range: Mapped[str | None] = mapped_column(sa.String)
    abnormal_flag: Mapped[str | None] = field(sa.String, enum=vocab.ABNORMAL_FLAG)
    collected_time: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    resulted_time: Mapped[dt.datetime | None] = field(Timestamp, not_before="collected_time")
    performing_lab: Mapped[str | None] = mapped_column(sa.String)
    ordering_provider: Mapped[str | None] = mapped_column(sa.String)


class VitalSign(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """One set of vitals taken at one moment. No business key."""

    __tablename__ = "vital_signs"

    observation_time: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    temperature: Mapped[Decimal | None] = field(sa.Numeric(5, 2), minimum=90, maximum=110)
    heart_rate: Mapped[int | None] = field(sa.Integer, minimum=0, maximum=300)
    respiratory_rate: Mapped[int | None] = field(sa.Integer, minimum=0, maximum=100)
    systolic_bp: Mapped[int | None] = field(sa.Integer, minimum=0, maximum=300)
    diastolic_bp: Mapped[int | None] = field(sa.Integer, minimum=0, maximum=200)
    spo2: Mapped[int | None] = field(sa.Integer, minimum=0, maximum=100)
    height_cm: Mapped[Decimal | None] = field(sa.Numeric(5, 2), minimum=0, maximum=300)
    weight_kg: Mapped[Decimal | None] = field(sa.Numeric(6, 2), minimum=0, maximum=500)


class ClinicalNote(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A free-text clinical document. No business key."""

    __tablename__ = "clinical_notes"

    note_type: Mapped[str] = mapped_column(sa.String, nullable=False)
    note_datetime: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    author: Mapped[str | None] = mapped_column(sa.String)
    content: Mapped[str | None] = mapped_column(sa.Text)


def _ordering_provider_name(doc: Mapping[str, Any]) -> str | None:
    """``ordering_provider.name`` of an order document as "given family" (§4), or None."""
    provider = doc.get("ordering_provider")
    name = provider.get("name") if isinstance(provider, Mapping) else None
    if not isinstance(name, Mapping):
        return None
    parts = [name.get("given_name"), name.get("family_name")]
    text = " ".join(p for p in parts if isinstance(p, str) and p)
    return text or None


class Order(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A clinician order for a lab, imaging, drug or procedure. Key ``order_id``.

    The nested ``ordering_provider`` and ``performing_lab`` objects are
    flattened; ``ordering_provider_name`` is "given family" (§4).
    """

    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    order_type: Mapped[str] = field(sa.String, nullable=False, enum=vocab.ORDER_TYPE)
    code: Mapped[str] = mapped_column(sa.String, nullable=False)
    code_system: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'CPT'"), enum=vocab.ORDER_CODE_SYSTEM
    )
    description: Mapped[str | None] = mapped_column(sa.String)
    clinical_indication: Mapped[str | None] = mapped_column(sa.String)
    priority: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'routine'"), enum=vocab.ORDER_PRIORITY
    )
    status: Mapped[str] = field(sa.String, nullable=False, server_default=sa.text("'new'"), enum=vocab.ORDER_STATUS)
    ordered_datetime: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    scheduled_datetime: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    collected_datetime: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    resulted_datetime: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    ordering_provider_npi: Mapped[str | None] = field(sa.String, pattern=vocab.NPI, path=("ordering_provider", "npi"))
    ordering_provider_name: Mapped[str | None] = field(sa.String, derived=_ordering_provider_name)
    performing_lab_id: Mapped[str | None] = field(sa.String, path=("performing_lab", "id"))
    performing_lab_name: Mapped[str | None] = field(sa.String, path=("performing_lab", "name"))
    diagnosis_codes: Mapped[list[Any] | None] = field(JSONType, items="str")
    specimen_type: Mapped[str | None] = mapped_column(sa.String)


class CodedMixin:
    """A coded concept (FHIR CodeableConcept, first coding): code, its system and its display text."""

    code: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    code_system: Mapped[str | None] = field(sa.String, enum=vocab.CLINICAL_CODE_SYSTEM)
    description: Mapped[str | None] = mapped_column(sa.String)


class Allergy(CodedMixin, EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """An allergy or intolerance of a patient (FHIR AllergyIntolerance). No business key.

    ``reactions`` holds FHIR ``reaction`` entries as objects with
    ``code``, ``description`` and ``severity`` (mild, moderate, severe).
    """

    __tablename__ = "allergies"

    type: Mapped[str | None] = field(sa.String, enum=vocab.ALLERGY_TYPE)
    category: Mapped[str | None] = field(sa.String, enum=vocab.ALLERGY_CATEGORY)
    clinical_status: Mapped[str | None] = field(sa.String, enum=vocab.ALLERGY_CLINICAL_STATUS)
    onset_datetime: Mapped[dt.datetime] = field(Timestamp, nullable=False, index=True, bare_date_ok=True)
    abatement_datetime: Mapped[dt.datetime | None] = field(Timestamp, bare_date_ok=True, not_before="onset_datetime")
    reactions: Mapped[list[Any] | None] = field(JSONType, items="object")


class Immunization(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A vaccine given to a patient (FHIR Immunization). No business key."""

    __tablename__ = "immunizations"

    vaccine_code: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    vaccine_code_system: Mapped[str | None] = field(
        sa.String, server_default=sa.text("'CVX'"), enum=vocab.CLINICAL_CODE_SYSTEM
    )
    vaccine_description: Mapped[str | None] = mapped_column(sa.String)
    status: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'completed'"), enum=vocab.IMMUNIZATION_STATUS
    )
    occurrence_datetime: Mapped[dt.datetime] = field(Timestamp, nullable=False, index=True, bare_date_ok=True)
    lot_number: Mapped[str | None] = mapped_column(sa.String)
    site: Mapped[str | None] = mapped_column(sa.String)
    route: Mapped[str | None] = mapped_column(sa.String)
    performer: Mapped[str | None] = mapped_column(sa.String)


class CarePlan(CodedMixin, EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A plan of care for a patient (FHIR CarePlan; ``code`` is its category). No business key."""

    __tablename__ = "care_plans"

    status: Mapped[str | None] = field(sa.String, enum=vocab.CARE_PLAN_STATUS)
    period_start: Mapped[dt.datetime] = field(Timestamp, nullable=False, index=True, bare_date_ok=True)
    period_end: Mapped[dt.datetime | None] = field(Timestamp, bare_date_ok=True, not_before="period_start")
    reason_code: Mapped[str | None] = mapped_column(sa.String)
    reason_code_system: Mapped[str | None] = field(sa.String, enum=vocab.CLINICAL_CODE_SYSTEM)
    reason_description: Mapped[str | None] = mapped_column(sa.String)


class Device(CodedMixin, EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A device used by or implanted in a patient (FHIR Device with its use period). No business key."""

    __tablename__ = "devices"

    udi_carrier: Mapped[str | None] = mapped_column(sa.String)
    status: Mapped[str | None] = field(sa.String, enum=vocab.DEVICE_STATUS)
    period_start: Mapped[dt.datetime] = field(Timestamp, nullable=False, index=True, bare_date_ok=True)
    period_end: Mapped[dt.datetime | None] = field(Timestamp, bare_date_ok=True, not_before="period_start")


class Supply(CodedMixin, EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """Supplies delivered for a patient's care (FHIR SupplyDelivery). No business key."""

    __tablename__ = "supplies"

    quantity: Mapped[Decimal | None] = field(sa.Numeric(10, 2), minimum=0)
    occurrence_datetime: Mapped[dt.datetime] = field(Timestamp, nullable=False, index=True, bare_date_ok=True)


class ImagingStudy(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """One instance of an imaging study, with its series and study (FHIR ImagingStudy,
    flattened to the instance). Key ``instance_uid``.

    ``study_id`` groups the instances of one study; codes of ``body_site_*``
    and ``procedure_code`` are SNOMED CT, ``modality_code`` DICOM (DCM) and
    ``sop_class_code`` a DICOM SOP class UID.
    """

    __tablename__ = "imaging_studies"

    instance_uid: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    study_id: Mapped[str | None] = mapped_column(sa.String, index=True)
    started: Mapped[dt.datetime] = field(Timestamp, nullable=False, index=True, bare_date_ok=True)
    series_uid: Mapped[str | None] = mapped_column(sa.String)
    body_site_code: Mapped[str | None] = mapped_column(sa.String)
    body_site_description: Mapped[str | None] = mapped_column(sa.String)
    modality_code: Mapped[str | None] = mapped_column(sa.String)
    modality_description: Mapped[str | None] = mapped_column(sa.String)
    sop_class_code: Mapped[str | None] = mapped_column(sa.String)
    sop_class_description: Mapped[str | None] = mapped_column(sa.String)
    procedure_code: Mapped[str | None] = mapped_column(sa.String)


class Observation(CodedMixin, EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """An observation that is neither a lab result nor a vital sign: survey,
    social history, exam and the like (FHIR Observation). No business key.

    ``value`` is text even when numeric, as on lab results; ``value_type``
    says which it is.
    """

    __tablename__ = "observations"

    category: Mapped[str | None] = field(sa.String, enum=vocab.OBSERVATION_CATEGORY)
    status: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'final'"), enum=vocab.OBSERVATION_STATUS
    )
    effective_datetime: Mapped[dt.datetime] = field(Timestamp, nullable=False, index=True, bare_date_ok=True)
    value: Mapped[str | None] = mapped_column(sa.String)
    value_type: Mapped[str | None] = field(sa.String, enum=vocab.OBSERVATION_VALUE_TYPE)
    unit: Mapped[str | None] = mapped_column(sa.String)
