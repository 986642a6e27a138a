"""NetworkSim tables: the provider directory (organizations and practitioners).

Added for Synthea import (its ``organizations.csv`` and ``providers.csv``);
field names follow FHIR R4 Organization and Practitioner, flattened. Clinical
and claim entities reference them by ``organization_id`` and
``practitioner_id``.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models import vocab
from healthsim_models.base import CanonicalBase, CanonicalMixin
from healthsim_models.columns import field


class AddressMixin:
    """A postal address and its position (FHIR Address, Location.position), flattened."""

    street_address: Mapped[str | None] = mapped_column(sa.String)
    city: Mapped[str | None] = mapped_column(sa.String)
    state: Mapped[str | None] = field(sa.String, pattern=vocab.STATE)
    postal_code: Mapped[str | None] = mapped_column(sa.String)
    latitude: Mapped[Decimal | None] = field(sa.Numeric(9, 6), minimum=-90, maximum=90)
    longitude: Mapped[Decimal | None] = field(sa.Numeric(9, 6), minimum=-180, maximum=180)


class Organization(AddressMixin, CanonicalMixin, CanonicalBase):
    """A care-delivery organization: hospital, clinic, practice. Key ``organization_id``."""

    __tablename__ = "organizations"

    organization_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    name: Mapped[str] = mapped_column(sa.String, nullable=False)
    npi: Mapped[str | None] = field(sa.String, index=True, pattern=vocab.NPI)
    phone: Mapped[str | None] = mapped_column(sa.String)


class Practitioner(AddressMixin, CanonicalMixin, CanonicalBase):
    """A clinician who provides care (Synthea's providers). Key ``practitioner_id``.

    ``organization_id`` is an optional reference to the organization the
    practitioner works for, ``organization_uuid`` its resolution.
    """

    __tablename__ = "practitioners"

    practitioner_id: Mapped[str] = mapped_column(sa.String, nullable=False, index=True)
    name: Mapped[str] = mapped_column(sa.String, nullable=False)
    npi: Mapped[str | None] = field(sa.String, index=True, pattern=vocab.NPI)
    gender: Mapped[str | None] = field(sa.String, enum=vocab.GENDER)
    specialty: Mapped[str | None] = mapped_column(sa.String)
    organization_id: Mapped[str | None] = mapped_column(sa.String)
    organization_uuid: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
