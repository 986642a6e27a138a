"""A scenario's metadata as JSON: one shape for ``healthsim scenario list/show --json`` and the MCP tools."""

from __future__ import annotations

from typing import Any

from healthsim_state.store.query import json_value
from healthsim_state.store.repository import ScenarioInfo


def scenario_json(info: ScenarioInfo) -> dict[str, Any]:
    """``info`` as JSON-ready values: the id as text, times in UTC ISO 8601, ``total_entities`` the sum
    of ``entity_counts`` (named so, because ``entities`` means the entity documents elsewhere)."""
    return json_value(
        {
            "id": info.id,
            "name": info.name,
            "description": info.description,
            "tags": info.tags,
            "entity_counts": info.entity_counts,
            "total_entities": sum(info.entity_counts.values()),
            "created_at": info.created_at,
            "updated_at": info.updated_at,
            "extra": info.extra,
        }
    )
