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


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(entities=scenario_entities())
def test_decode_inverts_encode_and_extensions_are_the_json_of_what_they_hold(entities) -> None:  # type: ignore[no-untyped-def]
    """Without a database: decode(encode(doc)) == doc, and the extensions text
    encode writes (by hand for the common provenance and verbatim blocks) is
    exactly the JSON encoder's text of its own content."""
    _check_encode_decode(entities)


def test_generated_documents_encode_and_decode_the_same_way() -> None:
    """The demo generator's documents (provenance and offset date-times on
    almost every entity: the hand-written extensions text) through the same checks."""
    from healthsim_state import demo

    _check_encode_decode({name: list(docs) for name, docs in demo.scenario(20, seed=3).items()})


def _check_encode_decode(entities: dict[str, list[dict]]) -> None:
    import datetime as dt
    import json

    from healthsim_state.fields import layout
    from healthsim_state.serialization import decode, encode, json_text, nest_flat

    now = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    for type_name, docs in entities.items():
        lay = layout(type_name)
        for doc in docs:
            row, problems = encode(lay, nest_flat(lay, doc), now)
            assert problems == [], (type_name, problems)
            if row["extensions"] is not None:
                assert row["extensions"] == json_text(json.loads(row["extensions"]))
            assert normalise(decode(lay, row)) == normalise(doc)
