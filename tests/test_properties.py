"""Property: any valid scenario loads back as it was saved, on both backends."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings

from healthsim_models import ENTITY_TYPES, create_store_engine, session_scope
from healthsim_state import ScenarioRepository
from tests.helpers import normalise
from tests.strategies import scenario_entities

_names = itertools.count()


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_save_then_load_returns_what_was_saved(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    engine = create_store_engine(url)

    @settings(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(entities=scenario_entities())
    def round_trip(entities) -> None:  # type: ignore[no-untyped-def]
        name = f"property-{next(_names)}"
        with session_scope(engine) as session:
            ScenarioRepository(session).save(name, entities)
        with session_scope(engine) as session:
            loaded = ScenarioRepository(session).load(name)
        for et in ENTITY_TYPES:
            expected = _last_wins(entities.get(et.name, []))
            assert normalise(loaded.entities[et.name]) == normalise(expected), et.name

    try:
        round_trip()
    finally:
        engine.dispose()


def _last_wins(docs: list[dict]) -> list[dict]:
    """Entities drawn with equal content collapse to one, at the last position."""
    from healthsim_state.serialization import content_digest

    seen: dict[str, dict] = {}
    for doc in docs:
        key = doc.get("id") or content_digest(doc)
        seen.pop(key, None)
        seen[key] = doc
    return list(seen.values())
