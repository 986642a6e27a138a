"""Read and change the store's settings (declared in :mod:`healthsim_models.settings`).

A change is an audited operation (``setting``, details: the key, the new
value and the one it replaced); the value lives only in the ``settings``
table, one row per setting that is not at its default.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.settings import DECLARED, Setting, current_value, spec_of
from healthsim_state.store.audit import audited

_SETTINGS = Setting.__table__


def get_setting(session: Session, key: str) -> str:
    """The value of the declared setting ``key`` (its default when unset)."""
    return current_value(session.connection(), key)


def settings(session: Session, prefix: str = "") -> dict[str, str]:
    """Every declared setting whose key starts with ``prefix``, with its value."""
    return {key: get_setting(session, key) for key in DECLARED if key.startswith(prefix)}


def change_setting(session: Session, key: str, value: str) -> str:
    """Set the declared setting ``key`` to ``value`` in the caller's transaction, recorded as a
    ``setting`` event; returns the value as :func:`get_setting` shows it."""
    with audited(session, "setting", details={"setting": key}) as event:
        spec = spec_of(key)  # a refusal, like a change, is recorded
        shown = spec.value_of(value)
        previous = get_setting(session, key)
        session.execute(sa.delete(_SETTINGS).where(_SETTINGS.c.key == key))
        if shown != spec.default:
            session.execute(sa.insert(_SETTINGS).values(key=key, value=shown, updated_at=dt.datetime.now(dt.UTC)))
        event.details.update(value=shown, previous=previous)
    return shown


def is_on(session: Session, key: str) -> bool:
    """Whether the on/off setting ``key`` is on."""
    return get_setting(session, key) == "true"
