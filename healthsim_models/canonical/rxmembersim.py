"""RxMemberSim tables: prescriptions and pharmacy claims (canonical-models §6)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models import vocab
from healthsim_models.base import CanonicalBase, CanonicalMixin, JSONType, Money
from healthsim_models.columns import field


class Prescription(CanonicalMixin, CanonicalBase):
    """A written prescription and its refills. Key ``prescription_number``.

    Links to patient, member and encounter are all optional (§12.1); at
    least one of ``patient_mrn`` / ``member_id`` is required
    (:func:`healthsim_models.canonical.checks.patient_or_member`).
    """

    __tablename__ = "prescriptions"

    prescription_number: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    patient_mrn: Mapped[str | None] = mapped_column(sa.String)
    patient_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    member_id: Mapped[str | None] = mapped_column(sa.String)
    member_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    encounter_id: Mapped[str | None] = mapped_column(sa.String)
    encounter_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    ndc: Mapped[str] = field(sa.String, nullable=False, index=True, pattern=vocab.NDC)
    drug_name: Mapped[str] = mapped_column(sa.String, nullable=False)
    quantity_prescribed: Mapped[Decimal] = field(sa.Numeric(10, 2), nullable=False, minimum=0)
    days_supply: Mapped[int] = field(sa.Integer, nullable=False, minimum=0)
    refills_authorized: Mapped[int] = field(sa.Integer, nullable=False, server_default=sa.text("0"), minimum=0)
    # Checked against refills_authorized by canonical.checks.refills_within_authorized.
    refills_remaining: Mapped[int] = field(sa.Integer, nullable=False, server_default=sa.text("0"), minimum=0)
    prescriber_npi: Mapped[str] = field(sa.String, nullable=False, pattern=vocab.NPI)
    prescriber_name: Mapped[str | None] = mapped_column(sa.String)
    prescriber_dea: Mapped[str | None] = mapped_column(sa.String)
    written_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    expiration_date: Mapped[dt.date] = field(sa.Date, nullable=False, not_before="written_date")
    daw_code: Mapped[str] = field(sa.String, nullable=False, server_default=sa.text("'0'"), pattern=vocab.DIGIT)
    diagnosis_codes: Mapped[list[Any] | None] = field(JSONType, items="str")
    directions: Mapped[str | None] = mapped_column(sa.Text)


class PharmacyClaim(CanonicalMixin, CanonicalBase):
    """An NCPDP-style claim for one dispensing. Key ``claim_id``."""

    __tablename__ = "pharmacy_claims"

    claim_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    transaction_code: Mapped[str] = field(sa.String, nullable=False, enum=vocab.TRANSACTION_CODE)
    service_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    pharmacy_npi: Mapped[str] = field(sa.String, nullable=False, pattern=vocab.NPI)
    pharmacy_ncpdp: Mapped[str | None] = mapped_column(sa.String)
    person_code: Mapped[str | None] = mapped_column(sa.String)
    member_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    member_uuid: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    cardholder_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    pcn: Mapped[str] = mapped_column(sa.String, nullable=False)
    group_number: Mapped[str] = mapped_column(sa.String, nullable=False)
    prescription_number: Mapped[str] = mapped_column(sa.String, nullable=False)
    prescription_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    bin: Mapped[str] = field(sa.String, nullable=False, pattern=vocab.BIN)
    fill_number: Mapped[int] = field(sa.Integer, nullable=False, server_default=sa.text("0"), minimum=0)
    ndc: Mapped[str] = field(sa.String, nullable=False, index=True, pattern=vocab.NDC)
    quantity_dispensed: Mapped[Decimal] = field(sa.Numeric(10, 2), nullable=False, minimum=0)
    days_supply: Mapped[int] = field(sa.Integer, nullable=False, minimum=0)
    daw_code: Mapped[str | None] = field(sa.String, pattern=vocab.DIGIT)
    compound_code: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'0'"))
    prescriber_npi: Mapped[str] = field(sa.String, nullable=False, pattern=vocab.NPI)
    ingredient_cost_submitted: Mapped[Decimal | None] = mapped_column(Money())
    dispensing_fee_submitted: Mapped[Decimal | None] = mapped_column(Money())
    usual_customary_charge: Mapped[Decimal | None] = mapped_column(Money())
    gross_amount_due: Mapped[Decimal | None] = mapped_column(Money())
    patient_pay_amount: Mapped[Decimal | None] = mapped_column(Money())
    prior_auth_number: Mapped[str | None] = mapped_column(sa.String)
    prior_auth_type: Mapped[str | None] = mapped_column(sa.String)
    dur_pps_code_counter: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default=sa.text("0"))
    dur_reason_for_service: Mapped[str | None] = mapped_column(sa.String)
    dur_professional_service: Mapped[str | None] = mapped_column(sa.String)
    dur_result_of_service: Mapped[str | None] = mapped_column(sa.String)
