"""MemberSim tables: health-plan enrollment and medical claims (canonical-models §5)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models import vocab
from healthsim_models.base import CanonicalBase, CanonicalMixin, JSONType, Money, PersonMixin, Timestamp
from healthsim_models.columns import field


class Member(PersonMixin, CanonicalMixin, CanonicalBase):
    """A health-plan enrollee, subscriber or dependant. Key ``member_id``.

    Also the cardholder of RxMemberSim (§9). ``subscriber_id`` is a soft
    reference to the subscribing member, ``subscriber_uuid`` its resolution.
    """

    __tablename__ = "members"

    member_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    subscriber_id: Mapped[str | None] = mapped_column(sa.String)
    subscriber_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    relationship_code: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'18'"), enum=vocab.RELATIONSHIP_CODE
    )
    group_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    plan_code: Mapped[str] = mapped_column(sa.String, nullable=False)
    coverage_start: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    coverage_end: Mapped[dt.date | None] = field(sa.Date, not_before="coverage_start")
    pcp_npi: Mapped[str | None] = field(sa.String, pattern=vocab.NPI)


class Claim(CanonicalMixin, CanonicalBase):
    """A medical or dental claim header. Key ``claim_id``.

    Lines are separate ``claim_lines`` rows; nested ``claim_lines`` in a
    document are lifted out on input (§12.4).
    """

    __tablename__ = "claims"

    claim_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    claim_type: Mapped[str] = field(sa.String, nullable=False, enum=vocab.CLAIM_TYPE)
    member_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    member_uuid: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    subscriber_id: Mapped[str | None] = mapped_column(sa.String)
    subscriber_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    # The rendering provider: its NPI, its practitioner entity, or both
    # (Synthea's v3.0 providers have no NPI); checks.provider_named.
    provider_npi: Mapped[str | None] = field(sa.String, index=True, pattern=vocab.NPI)
    practitioner_id: Mapped[str | None] = mapped_column(sa.String)
    practitioner_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    payer_id: Mapped[str | None] = mapped_column(sa.String)
    payer_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    facility_npi: Mapped[str | None] = field(sa.String, pattern=vocab.NPI)
    service_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    admission_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    discharge_date: Mapped[dt.date | None] = field(sa.Date, not_before="admission_date")
    place_of_service: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'11'"))
    principal_diagnosis: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    other_diagnoses: Mapped[list[Any] | None] = field(JSONType, items="str")
    # The system of principal_diagnosis and other_diagnoses; NULL reads as ICD-10-CM.
    diagnosis_code_system: Mapped[str | None] = field(
        sa.String, server_default=sa.text("'ICD-10-CM'"), enum=vocab.DIAGNOSIS_CODE_SYSTEM
    )
    authorization_number: Mapped[str | None] = mapped_column(sa.String)
    total_charge: Mapped[Decimal | None] = mapped_column(Money())
    total_allowed: Mapped[Decimal | None] = mapped_column(Money())
    total_paid: Mapped[Decimal | None] = mapped_column(Money())
    member_responsibility: Mapped[Decimal | None] = mapped_column(Money())


class ClaimLine(CanonicalMixin, CanonicalBase):
    """One service line of a claim. Key (``claim_id``, ``line_number``)."""

    __tablename__ = "claim_lines"
    __table_args__ = (sa.Index(None, "claim_id", "line_number"),)

    claim_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    claim_uuid: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    line_number: Mapped[int] = field(sa.Integer, nullable=False, minimum=1)
    procedure_code: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    # NULL reads as CPT/HCPCS; Synthea's lines carry SNOMED, RxNorm and CVX codes.
    procedure_code_system: Mapped[str | None] = field(sa.String, enum=vocab.CLINICAL_CODE_SYSTEM)
    procedure_modifiers: Mapped[list[Any] | None] = field(JSONType, items="str", max_items=4)
    service_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    units: Mapped[Decimal] = field(sa.Numeric(6, 2), nullable=False, server_default=sa.text("1"), minimum=0)
    charge_amount: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    allowed_amount: Mapped[Decimal | None] = mapped_column(Money())
    paid_amount: Mapped[Decimal | None] = mapped_column(Money())
    diagnosis_pointers: Mapped[list[Any] | None] = field(JSONType, items="int")
    revenue_code: Mapped[str | None] = mapped_column(sa.String)
    ndc_code: Mapped[str | None] = field(sa.String, pattern=vocab.NDC)
    place_of_service: Mapped[str] = mapped_column(sa.String, nullable=False, server_default=sa.text("'11'"))


class Payer(CanonicalMixin, CanonicalBase):
    """A health plan or other payer of care (FHIR Organization of type payer). Key ``payer_id``."""

    __tablename__ = "payers"

    payer_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    name: Mapped[str] = mapped_column(sa.String, nullable=False)
    ownership: Mapped[str | None] = mapped_column(sa.String)
    street_address: Mapped[str | None] = mapped_column(sa.String)
    city: Mapped[str | None] = mapped_column(sa.String)
    state: Mapped[str | None] = field(sa.String, pattern=vocab.STATE)
    postal_code: Mapped[str | None] = mapped_column(sa.String)
    phone: Mapped[str | None] = mapped_column(sa.String)


class Coverage(CanonicalMixin, CanonicalBase):
    """One period of a member's insurance with one payer (FHIR Coverage). No business key.

    ``member_id`` (hard) and ``payer_id`` (hard) reference the beneficiary and
    the payer; ``secondary_payer_id`` (optional) a second payer of the period.
    ``subscriber_id`` is the plan's identifier of the subscriber, as the payer
    issued it; ``relationship`` is the beneficiary's to the subscriber.
    """

    __tablename__ = "coverages"

    member_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    member_uuid: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    payer_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    payer_uuid: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    secondary_payer_id: Mapped[str | None] = mapped_column(sa.String)
    secondary_payer_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    subscriber_id: Mapped[str | None] = mapped_column(sa.String)
    relationship: Mapped[str | None] = field(sa.String, enum=vocab.COVERAGE_RELATIONSHIP)
    policy_holder: Mapped[str | None] = mapped_column(sa.String)
    status: Mapped[str] = field(
        sa.String, nullable=False, server_default=sa.text("'active'"), enum=vocab.COVERAGE_STATUS
    )
    period_start: Mapped[dt.datetime] = field(Timestamp, nullable=False, index=True, bare_date_ok=True)
    period_end: Mapped[dt.datetime | None] = field(Timestamp, bare_date_ok=True, not_before="period_start")
