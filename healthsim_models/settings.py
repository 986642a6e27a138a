"""Store settings: one row per setting, shared by everyone using the store."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models.base import Base, Timestamp


class Setting(Base):
    """A setting (``history.keep_days``, ...) and its value as text; absent: the default."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(sa.String, primary_key=True)
    value: Mapped[str] = mapped_column(sa.String, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
