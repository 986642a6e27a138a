"""TrialSim tables: subjects and their visits, adverse events and exposures (§7)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models import vocab
from healthsim_models.base import CanonicalBase, CanonicalMixin, JSONType, PersonMixin
from healthsim_models.columns import field


class SubjectRefMixin:
    """Hard reference to the trial subject: ``usubjid`` -> subjects.usubjid."""

    usubjid: Mapped[str] = mapped_column(sa.String, nullable=False, sort_order=-50)
    subject_uuid: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True, sort_order=-49)


class Subject(PersonMixin, CanonicalMixin, CanonicalBase):
    """A clinical-trial participant. Key ``usubjid``.

    ``patient_ref`` is the MRN of the same person in PatientSim (soft).
    """

    __tablename__ = "subjects"

    subject_id: Mapped[str] = field(sa.String, nullable=False, pattern=vocab.SUBJECT_ID)
    usubjid: Mapped[str] = field(sa.String, nullable=False, index=True, pattern=vocab.USUBJID)
    study_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    site_id: Mapped[str] = field(sa.String, nullable=False, pattern=vocab.SITE_ID)
    patient_ref: Mapped[str | None] = mapped_column(sa.String)
    patient_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    screening_id: Mapped[str | None] = mapped_column(sa.String)
    screening_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    randomization_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    informed_consent_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False)
    treatment_arm: Mapped[str | None] = mapped_column(sa.String)
    status: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'Screening'"), enum=vocab.SUBJECT_STATUS
    )
    race: Mapped[str | None] = field(sa.String, enum=vocab.RACE)
    ethnicity: Mapped[str | None] = field(sa.String, enum=vocab.ETHNICITY)


class TrialVisit(SubjectRefMixin, CanonicalMixin, CanonicalBase):
    """A subject's actual or missed protocol visit. Key (``usubjid``, ``visit_num``)."""

    __tablename__ = "trial_visits"
    __table_args__ = (sa.Index(None, "usubjid", "visit_num"),)

    visit_num: Mapped[Decimal] = mapped_column(sa.Numeric(5, 1), nullable=False)
    visit_name: Mapped[str | None] = mapped_column(sa.String)
    visit_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    study_day: Mapped[int | None] = mapped_column(sa.Integer)
    visit_status: Mapped[str | None] = field(sa.String, enum=vocab.VISIT_STATUS)
    window_deviation_days: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default=sa.text("0"))


class AdverseEvent(SubjectRefMixin, CanonicalMixin, CanonicalBase):
    """A MedDRA-coded adverse event. Key (``usubjid``, ``aeseq``)."""

    __tablename__ = "adverse_events"
    __table_args__ = (sa.Index(None, "usubjid", "aeseq"),)

    # Optional upstream: without it the entity has content identity (§2.6).
    aeseq: Mapped[int | None] = field(sa.Integer, minimum=1)
    aeterm: Mapped[str] = mapped_column(sa.String, nullable=False)
    aedecod: Mapped[str | None] = mapped_column(sa.String, index=True)
    aebodsys: Mapped[str | None] = mapped_column(sa.String)
    aehlt: Mapped[str | None] = mapped_column(sa.String)
    aehlgt: Mapped[str | None] = mapped_column(sa.String)
    aellt: Mapped[str | None] = mapped_column(sa.String)
    aestdtc: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    aeendtc: Mapped[dt.date | None] = field(sa.Date, not_before="aestdtc")
    aesev: Mapped[str | None] = field(sa.String, enum=vocab.AE_SEVERITY)
    aetoxgr: Mapped[str | None] = field(sa.String, enum=vocab.AE_TOXICITY_GRADE)
    aeser: Mapped[str | None] = field(sa.String, enum=vocab.YES_NO)
    aerel: Mapped[str | None] = field(sa.String, enum=vocab.AE_RELATEDNESS)
    aeacn: Mapped[str | None] = field(sa.String, enum=vocab.AE_ACTION)
    aeout: Mapped[str | None] = field(sa.String, enum=vocab.AE_OUTCOME)
    aesae_criteria: Mapped[list[Any] | None] = field(JSONType, items="str", item_enum=vocab.AE_SAE_CRITERIA)


class Exposure(SubjectRefMixin, CanonicalMixin, CanonicalBase):
    """One study-drug dosing interval. Key (``usubjid``, ``exseq``)."""

    __tablename__ = "exposures"
    __table_args__ = (sa.Index(None, "usubjid", "exseq"),)

    exseq: Mapped[int | None] = field(sa.Integer, minimum=1)
    extrt: Mapped[str] = mapped_column(sa.String, nullable=False)
    exdose: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 4))
    exdosu: Mapped[str | None] = mapped_column(sa.String)
    exdosfrq: Mapped[str | None] = mapped_column(sa.String)
    exroute: Mapped[str | None] = mapped_column(sa.String)
    exstdtc: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    exendtc: Mapped[dt.date | None] = field(sa.Date, not_before="exstdtc")
    exadj: Mapped[str | None] = mapped_column(sa.String)
    planned_dose: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 4))
    dose_modification: Mapped[str | None] = field(sa.String, enum=vocab.DOSE_MODIFICATION)
