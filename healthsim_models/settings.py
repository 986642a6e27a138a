"""Store settings: one row per setting, shared by everyone using the store.

Each setting a user may change is declared once here (:data:`DECLARED`): its
key, its default, what it accepts and how a value is normalised. A row is
stored only for a value other than the default. Changing a setting goes
through :mod:`healthsim_state.store.settings`, which records the change in
the audit trail; the value itself lives only in this table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthsim_models.base import Base, Timestamp
from healthsim_models.errors import InvalidArgumentError


class Setting(Base):
    """A setting (``history.keep_days``, ...) and its value as text; absent: the default."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(sa.String, primary_key=True)
    value: Mapped[str] = mapped_column(sa.String, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)


def _switch(text: str) -> str | None:
    return {"true": "true", "on": "true", "false": "false", "off": "false"}.get(text)


def _days_or_all(text: str) -> str | None:
    if text == "all":
        return "all"
    if text.isdigit() and 0 < int(text) < 10**6:
        return str(int(text))
    return None


@dataclass(frozen=True)
class SettingSpec:
    """A setting a user may change: its default (as shown), what it accepts, and the
    normalising of a value (None: not accepted)."""

    key: str
    default: str
    accepts: str
    normalise: Callable[[str], str | None]

    def value_of(self, value: str) -> str:
        """``value`` as this setting shows it; refuses what it does not accept."""
        shown = self.normalise(value.strip().lower()) if isinstance(value, str) else None
        if shown is None:
            raise InvalidArgumentError(f"setting {self.key} takes {self.accepts}; got {value!r}")
        return shown


HISTORY_ENABLED = "history.enabled"
HISTORY_KEEP_DAYS = "history.keep_days"
AUDIT_READS = "audit.reads"
#: Set by pruning, not by users: the time before which history is incomplete.
HISTORY_PRUNED_BEFORE = "history.pruned_before"

#: Every setting a user may change.
DECLARED: dict[str, SettingSpec] = {
    spec.key: spec
    for spec in (
        SettingSpec(
            HISTORY_ENABLED,
            "true",
            "true or false (default true): whether writes keep the versions they replace",
            _switch,
        ),
        SettingSpec(
            HISTORY_KEEP_DAYS,
            "all",
            "whole days of history 'healthsim history prune' keeps, or 'all' (default all)",
            _days_or_all,
        ),
        SettingSpec(
            AUDIT_READS,
            "false",
            "on or off (default off): whether reads are recorded in the audit trail",
            _switch,
        ),
    )
}


def unknown_setting(key: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"unknown setting {key!r}; the settings are {', '.join(DECLARED)}")


def spec_of(key: str) -> SettingSpec:
    """The declaration of ``key``; :class:`InvalidArgumentError` for a key nobody declared."""
    if key not in DECLARED:
        raise unknown_setting(key)
    return DECLARED[key]


def stored_value(connection: sa.Connection, key: str) -> str | None:
    """The stored value of ``key`` (None: it has its default)."""
    table = Setting.__table__
    return connection.execute(sa.select(table.c.value).where(table.c.key == key)).scalar_one_or_none()


def current_value(connection: sa.Connection, key: str) -> str:
    """The value of the declared setting ``key``: the stored one, else its default."""
    return stored_value(connection, key) or spec_of(key).default
