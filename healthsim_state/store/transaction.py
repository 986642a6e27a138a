"""Run a unit of work in a transaction of its own, again when concurrent writers collided.

PostgreSQL ends one of two transactions that wait on each other's locks
(deadlock, SQLSTATE 40P01) or that it cannot serialize (40001); DuckDB ends
a transaction that writes a row another open transaction of the same
database changed. Either way the transaction is rolled back whole and
running the same work again normally succeeds. :func:`run_in_transaction`
does that a bounded number of times, with growing randomized pauses (so the
writers that collided do not collide again in step); what still collides,
or cannot be re-run, becomes :class:`WriteConflictError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthsim_models.engine import session_scope
from healthsim_models.errors import InvalidArgumentError, WriteConflictError
from healthsim_state.store.dialects import DIALECTS

T = TypeVar("T")

#: Runs of the work in all, the first included.
DEFAULT_ATTEMPTS = 6
#: Pause before the second run, in seconds; it doubles for each further one, up to MAX_BACKOFF.
BACKOFF = 0.05
MAX_BACKOFF = 2.0


def conflict_reason(exc: BaseException) -> str | None:
    """Why ``exc`` is a collision with another writer that a re-run may get
    past ("deadlock detected", ...), or None for any other error."""
    if isinstance(exc, WriteConflictError):
        return (exc.__cause__ is not None and conflict_reason(exc.__cause__)) or "write conflict"
    # Through SQLAlchemy, or straight from the driver (bulk writes use its cursor).
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    # Only the error is known, not its engine: each backend's dialect recognises its own.
    return next(filter(None, (dialect.conflict_reason(orig) for dialect in DIALECTS.values())), None)


def write_conflict(exc: BaseException, what: str) -> WriteConflictError | None:
    """The project error for ``exc`` when it is a collision with another
    writer (to raise ``from exc``), else None. ``what`` names the work
    ("the save of scenario 'x'")."""
    reason = conflict_reason(exc)
    return None if reason is None else _conflict(what, reason)


def _conflict(what: str, reason: str, runs: int = 1) -> WriteConflictError:
    times = "" if runs == 1 else f" {runs} times"
    last = "" if runs == 1 else ", the last time"
    return WriteConflictError(
        f"{what} collided with another writer{times} ({reason}{last}) and was rolled back, "
        "nothing of it was written; run it again"
    )


def backoff(attempt: int) -> float:
    """Seconds to wait after the ``attempt``-th run failed: doubling, capped, jittered by ±50%."""
    return min(MAX_BACKOFF, BACKOFF * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


def run_in_transaction(
    engine: Engine,
    work: Callable[[Session], T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    what: str = "the write",
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """``work(session)`` in a session of its own, committed when it returns,
    and run again (up to ``attempts`` runs in all) while it collides with
    another writer; any other error propagates at once.

    Every run starts from nothing: ``work`` must be able to run again, and
    read its input again (a list, a file it reopens). Input that can be read
    only once (a generator) calls for ``attempts=1``. What still collides
    after the last run raises :class:`WriteConflictError`; nothing of it was
    written.
    """
    if attempts < 1:
        raise InvalidArgumentError(f"attempts must be at least 1, got {attempts!r}")
    attempt = 1
    while True:
        try:
            with session_scope(engine) as session:
                return work(session)
        except Exception as exc:
            reason = conflict_reason(exc)
            if reason is None:
                raise
            if attempt == attempts:
                if attempts == 1 and isinstance(exc, WriteConflictError):
                    raise  # the repository's own message names the operation
                raise _conflict(what, reason, attempts) from exc
        sleep(backoff(attempt))
        attempt += 1
