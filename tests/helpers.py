"""Shared test helpers: fixture documents, number-insensitive comparison, waiting for a lock wait."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def normalise(value: Any) -> Any:
    """Numbers compared by value (money and DECIMAL columns load as Decimal, see
    docs/repository.md); everything else exactly."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return Decimal(str(value)).normalize()
    return value


def wait_for_a_lock_wait(engine: sa.Engine) -> None:
    """Until a transaction of this (PostgreSQL) database waits for a lock another one holds."""
    with engine.connect() as connection:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            waiting = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            if waiting:
                return
            connection.rollback()
            time.sleep(0.02)
    raise AssertionError("no transaction came to wait for a lock")
