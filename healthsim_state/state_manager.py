"""The original state-manager interface: module-level functions over a default session.

Each call opens a session on :func:`healthsim_models.get_engine` (the default
database unless ``database_url`` says otherwise), runs one repository
method, and commits, or rolls back and raises. A save or delete that collides
with a concurrent writer (PostgreSQL) runs again from the start, a bounded
number of times (:func:`healthsim_state.store.transaction.run_in_transaction`); a
save whose entities can be read only once (a generator) cannot, and raises
:class:`~healthsim_models.errors.WriteConflictError` at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy.engine import URL

from healthsim_models.engine import get_engine, session_scope
from healthsim_state.store.repository import LoadedScenario, SaveSummary, ScenarioInfo, ScenarioRepository
from healthsim_state.store.transaction import DEFAULT_ATTEMPTS, run_in_transaction


def save_scenario(
    name: str,
    entities: Mapping[str, Any],
    *,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    overwrite: bool = False,
    database_url: str | URL | None = None,
) -> SaveSummary:
    """Save a scenario; see :meth:`ScenarioRepository.save`."""
    if isinstance(tags, Iterator):
        tags = list(tags)  # read again by a second run
    return run_in_transaction(
        get_engine(database_url),
        lambda session: ScenarioRepository(session).save(
            name, entities, description=description, tags=tags, overwrite=overwrite
        ),
        attempts=DEFAULT_ATTEMPTS if _replayable(entities) else 1,
        what=f"the save of scenario {name!r}",
    )


def _replayable(entities: Any) -> bool:
    """Whether every entity source can be read a second time: lists, tuples
    and Arrow tables can, generators and other iterators cannot."""
    if not isinstance(entities, Mapping):
        return True  # refused before anything is read
    return not any(isinstance(source, Iterator) for source in entities.values())


def load_scenario(name_or_id: str | uuid.UUID, *, database_url: str | URL | None = None) -> LoadedScenario:
    """Load a scenario with its entities; see :meth:`ScenarioRepository.load`."""
    with session_scope(get_engine(database_url)) as session:
        return ScenarioRepository(session).load(name_or_id)


def list_scenarios(
    tag: str | Iterable[str] | None = None,
    search: str | None = None,
    limit: int = 100,
    offset: int = 0,
    *,
    database_url: str | URL | None = None,
) -> list[ScenarioInfo]:
    """List scenarios; see :meth:`ScenarioRepository.list`."""
    with session_scope(get_engine(database_url)) as session:
        return ScenarioRepository(session).list(tag=tag, search=search, limit=limit, offset=offset)


def delete_scenario(name_or_id: str | uuid.UUID, *, database_url: str | URL | None = None) -> bool:
    """Delete a scenario and the entities only it held; see :meth:`ScenarioRepository.delete`."""
    return run_in_transaction(
        get_engine(database_url),
        lambda session: ScenarioRepository(session).delete(name_or_id),
        what=f"the deletion of scenario {str(name_or_id)!r}",
    )
