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
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models.base import (
    CanonicalBase,
    CanonicalMixin,
    JSONType,
    PersonMixin,
    Timestamp,
)


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
    class_code: Mapped[str] = mapped_column(sa.String, nullable=False)
    status: Mapped[str] = mapped_column(sa.String, nullable=False)
    admission_time: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    discharge_time: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    facility: Mapped[str | None] = mapped_column(sa.String)
    department: Mapped[str | None] = mapped_column(sa.String)
    room: Mapped[str | None] = mapped_column(sa.String)
    bed: Mapped[str | None] = mapped_column(sa.String)
    chief_complaint: Mapped[str | None] = mapped_column(sa.String)
    admitting_diagnosis: Mapped[str | None] = mapped_column(sa.String)
    discharge_disposition: Mapped[str | None] = mapped_column(sa.String)
    attending_physician: Mapped[str | None] = mapped_column(sa.String)
    admitting_physician: Mapped[str | None] = mapped_column(sa.String)


class Diagnosis(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A coded condition (ICD-10-CM). No business key."""

    __tablename__ = "diagnoses"

    code: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    # Required in documents, nullable upstream (canonical-models §12.6).
    description: Mapped[str | None] = mapped_column(sa.String)
    type: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'final'"))
    diagnosed_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    resolved_date: Mapped[dt.date | None] = mapped_column(sa.Date)


class Procedure(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A procedure performed on a patient. No business key."""

    __tablename__ = "procedures"

    code: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    code_system: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'CPT'"))
    description: Mapped[str | None] = mapped_column(sa.String)
    performed_datetime: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    performer: Mapped[str | None] = mapped_column(sa.String)
    provider_npi: Mapped[str | None] = mapped_column(sa.String)
    status: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'completed'"))
    body_site: Mapped[str | None] = mapped_column(sa.String)
    modifiers: Mapped[list[Any] | None] = mapped_column(JSONType)
    diagnosis_codes: Mapped[list[Any] | None] = mapped_column(JSONType)


class Medication(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A drug ordered or given on the clinical side. No business key."""

    __tablename__ = "medications"

    name: Mapped[str] = mapped_column(sa.String, nullable=False)
    code: Mapped[str | None] = mapped_column(sa.String, index=True)
    dose: Mapped[str] = mapped_column(sa.String, nullable=False)
    route: Mapped[str] = mapped_column(sa.String, nullable=False)
    frequency: Mapped[str] = mapped_column(sa.String, nullable=False)
    start_date: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    end_date: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'active'"))
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
    abnormal_flag: Mapped[str | None] = mapped_column(sa.String)
    collected_time: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    resulted_time: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    performing_lab: Mapped[str | None] = mapped_column(sa.String)
    ordering_provider: Mapped[str | None] = mapped_column(sa.String)


class VitalSign(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """One set of vitals taken at one moment. No business key."""

    __tablename__ = "vital_signs"

    observation_time: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    temperature: Mapped[Decimal | None] = mapped_column(sa.Numeric(5, 2))
    heart_rate: Mapped[int | None] = mapped_column(sa.Integer)
    respiratory_rate: Mapped[int | None] = mapped_column(sa.Integer)
    systolic_bp: Mapped[int | None] = mapped_column(sa.Integer)
    diastolic_bp: Mapped[int | None] = mapped_column(sa.Integer)
    spo2: Mapped[int | None] = mapped_column(sa.Integer)
    height_cm: Mapped[Decimal | None] = mapped_column(sa.Numeric(5, 2))
    weight_kg: Mapped[Decimal | None] = mapped_column(sa.Numeric(6, 2))


class ClinicalNote(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A free-text clinical document. No business key."""

    __tablename__ = "clinical_notes"

    note_type: Mapped[str] = mapped_column(sa.String, nullable=False)
    note_datetime: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    author: Mapped[str | None] = mapped_column(sa.String)
    content: Mapped[str | None] = mapped_column(sa.Text)


class Order(EncounterRefMixin, PatientRefMixin, CanonicalMixin, CanonicalBase):
    """A clinician order for a lab, imaging, drug or procedure. Key ``order_id``.

    The nested ``ordering_provider`` and ``performing_lab`` objects are
    flattened; ``ordering_provider_name`` is "given family" (§4).
    """

    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    order_type: Mapped[str] = mapped_column(sa.String, nullable=False)
    code: Mapped[str] = mapped_column(sa.String, nullable=False)
    code_system: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'CPT'"))
    description: Mapped[str | None] = mapped_column(sa.String)
    clinical_indication: Mapped[str | None] = mapped_column(sa.String)
    priority: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'routine'"))
    status: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'new'"))
    ordered_datetime: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False, index=True)
    scheduled_datetime: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    collected_datetime: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    resulted_datetime: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    ordering_provider_npi: Mapped[str | None] = mapped_column(sa.String)
    ordering_provider_name: Mapped[str | None] = mapped_column(sa.String)
    performing_lab_id: Mapped[str | None] = mapped_column(sa.String)
    performing_lab_name: Mapped[str | None] = mapped_column(sa.String)
    diagnosis_codes: Mapped[list[Any] | None] = mapped_column(JSONType)
    specimen_type: Mapped[str | None] = mapped_column(sa.String)
