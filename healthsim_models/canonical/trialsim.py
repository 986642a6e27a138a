"""TrialSim tables: subjects and their visits, adverse events and exposures (§7)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models.base import CanonicalBase, CanonicalMixin, JSONType, PersonMixin


class SubjectRefMixin:
    """Hard reference to the trial subject: ``usubjid`` -> subjects.usubjid."""

    usubjid: Mapped[str] = mapped_column(sa.String, nullable=False, sort_order=-50)
    subject_uuid: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True, sort_order=-49)


class Subject(PersonMixin, CanonicalMixin, CanonicalBase):
    """A clinical-trial participant. Key ``usubjid``.

    ``patient_ref`` is the MRN of the same person in PatientSim (soft).
    """

    __tablename__ = "subjects"

    subject_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    usubjid: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    study_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    site_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    patient_ref: Mapped[str | None] = mapped_column(sa.String)
    patient_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    screening_id: Mapped[str | None] = mapped_column(sa.String)
    screening_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    randomization_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    informed_consent_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False)
    treatment_arm: Mapped[str | None] = mapped_column(sa.String)
    status: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'Screening'"))
    race: Mapped[str | None] = mapped_column(sa.String)
    ethnicity: Mapped[str | None] = mapped_column(sa.String)


class TrialVisit(SubjectRefMixin, CanonicalMixin, CanonicalBase):
    """A subject's actual or missed protocol visit. Key (``usubjid``, ``visit_num``)."""

    __tablename__ = "trial_visits"
    __table_args__ = (sa.Index(None, "usubjid", "visit_num"),)

    visit_num: Mapped[Decimal] = mapped_column(sa.Numeric(5, 1), nullable=False)
    visit_name: Mapped[str | None] = mapped_column(sa.String)
    visit_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    study_day: Mapped[int | None] = mapped_column(sa.Integer)
    visit_status: Mapped[str | None] = mapped_column(sa.String)
    window_deviation_days: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default=sa.text("0"))


class AdverseEvent(SubjectRefMixin, CanonicalMixin, CanonicalBase):
    """A MedDRA-coded adverse event. Key (``usubjid``, ``aeseq``)."""

    __tablename__ = "adverse_events"
    __table_args__ = (sa.Index(None, "usubjid", "aeseq"),)

    # Optional upstream: without it the entity has content identity (§2.6).
    aeseq: Mapped[int | None] = mapped_column(sa.Integer)
    aeterm: Mapped[str] = mapped_column(sa.String, nullable=False)
    aedecod: Mapped[str | None] = mapped_column(sa.String, index=True)
    aebodsys: Mapped[str | None] = mapped_column(sa.String)
    aehlt: Mapped[str | None] = mapped_column(sa.String)
    aehlgt: Mapped[str | None] = mapped_column(sa.String)
    aellt: Mapped[str | None] = mapped_column(sa.String)
    aestdtc: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    aeendtc: Mapped[dt.date | None] = mapped_column(sa.Date)
    aesev: Mapped[str | None] = mapped_column(sa.String)
    aetoxgr: Mapped[str | None] = mapped_column(sa.String)
    aeser: Mapped[str | None] = mapped_column(sa.String)
    aerel: Mapped[str | None] = mapped_column(sa.String)
    aeacn: Mapped[str | None] = mapped_column(sa.String)
    aeout: Mapped[str | None] = mapped_column(sa.String)
    aesae_criteria: Mapped[list[Any] | None] = mapped_column(JSONType)


class Exposure(SubjectRefMixin, CanonicalMixin, CanonicalBase):
    """One study-drug dosing interval. Key (``usubjid``, ``exseq``)."""

    __tablename__ = "exposures"
    __table_args__ = (sa.Index(None, "usubjid", "exseq"),)

    exseq: Mapped[int | None] = mapped_column(sa.Integer)
    extrt: Mapped[str] = mapped_column(sa.String, nullable=False)
    exdose: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 4))
    exdosu: Mapped[str | None] = mapped_column(sa.String)
    exdosfrq: Mapped[str | None] = mapped_column(sa.String)
    exroute: Mapped[str | None] = mapped_column(sa.String)
    exstdtc: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    exendtc: Mapped[dt.date | None] = mapped_column(sa.Date)
    exadj: Mapped[str | None] = mapped_column(sa.String)
    planned_dose: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 4))
    dose_modification: Mapped[str | None] = mapped_column(sa.String)
