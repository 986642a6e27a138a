"""The store as a command reaches it: one session, or one write run again after a collision.

Each command opens an engine for its own run and lets it go afterwards, so
a DuckDB file is held only while a command works on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.orm import Session

from healthsim_models.engine import create_store_engine, session_scope
from healthsim_state.store.transaction import DEFAULT_ATTEMPTS, run_in_transaction

T = TypeVar("T")


@contextmanager
def store_session(url: str | None) -> Iterator[Session]:
    """A session on the store at ``url`` that commits on success; the engine is let go afterwards."""
    engine = create_store_engine(url)
    try:
        with session_scope(engine) as session:
            yield session
    finally:
        engine.dispose()


def store_write(url: str | None, work: Callable[[Session], T], what: str, attempts: int = DEFAULT_ATTEMPTS) -> T:
    """``work(session)`` committed in a transaction of its own on the store at ``url``,
    run again from the start when it collides with another writer
    (:func:`~healthsim_state.store.transaction.run_in_transaction`); the engine is let go afterwards."""
    engine = create_store_engine(url)
    try:
        return run_in_transaction(engine, work, attempts=attempts, what=what)
    finally:
        engine.dispose()
