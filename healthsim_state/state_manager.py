"""The original state-manager interface: module-level functions over a default session.

Each call opens a session on :func:`healthsim_models.get_engine` (the default
database unless ``database_url`` says otherwise), runs one repository
method, and commits, or rolls back and raises.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.engine import URL

from healthsim_models.engine import get_engine, session_scope
from healthsim_state.repository import LoadedScenario, SaveSummary, ScenarioInfo, ScenarioRepository


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
    with session_scope(get_engine(database_url)) as session:
        return ScenarioRepository(session).save(
            name, entities, description=description, tags=tags, overwrite=overwrite
        )


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
    with session_scope(get_engine(database_url)) as session:
        return ScenarioRepository(session).delete(name_or_id)
