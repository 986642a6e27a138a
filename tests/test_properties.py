"""Properties, on both backends: any valid scenario loads back as it was
saved; any value at any place of a document or scenario is either stored as
given or refused by name, leaving the store as it was."""

from __future__ import annotations

import copy
import itertools
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthsim_models import ENTITY_TYPES, ValidationError, create_store_engine, session_scope
from healthsim_models.registry import entity_type
from healthsim_state import ScenarioRepository
from healthsim_state.codec.document import PROVENANCE, PROVENANCE_COLUMNS
from healthsim_state.codec.layout import layout
from tests.conftest import throwaway_postgresql_database
from tests.helpers import normalise
from tests.strategies import JSON_VALUES, scenario_entities

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
    from healthsim_state.codec.identity import content_digest

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

    from healthsim_state.codec.document import decode, encode, nest_flat
    from healthsim_state.codec.layout import layout
    from healthsim_state.codec.values import json_text

    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    for type_name, docs in entities.items():
        lay = layout(type_name)
        for doc in docs:
            row, problems = encode(lay, nest_flat(lay, doc), now)
            assert problems == [], (type_name, problems)
            if row["extensions"] is not None:
                assert row["extensions"] == json_text(json.loads(row["extensions"]))
            assert normalise(decode(lay, row)) == normalise(doc)


# -- arbitrary values in every field -----------------------------------------------------


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def shared_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One store per backend for the whole module; each example saves under a fresh name."""
    if request.param == "duckdb":
        engine = create_store_engine(f"duckdb:///{tmp_path_factory.mktemp('values') / 'store.duckdb'}")
        yield engine
        engine.dispose()
        return
    with throwaway_postgresql_database() as url:
        engine = create_store_engine(url)
        yield engine
        engine.dispose()


def _store_state(engine) -> tuple[list[str], dict[str, int]]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        return [i.name for i in repo.list(limit=10_000)], repo.count_entities_by_type()


def _targets(type_name: str) -> list[str]:
    """Every place of a document a value can go: each field of the layout, each
    nested object, id, provenance keys, and unknown keys at the top and nested."""
    lay = layout(type_name)
    targets = [f.name for f in lay.fields] + sorted(lay.groups) + ["id", "_provenance", "x_prop"]
    targets += [f"{group}.x_prop" for group in sorted(lay.groups)]
    targets += [f"_provenance.{key}" for key in (*PROVENANCE_COLUMNS, "x_prop")]
    return targets


def _related(type_name: str, target: str) -> set[tuple[str, str]]:
    """(type, field) pairs a problem caused by a new value at ``target`` may name:
    the target, the other side of the rules that tie it to another field, and the
    references of other types to it when it is a business key."""
    fields = {target, target.split(".")[0]}
    for f in layout(type_name).fields:
        pair = (f.not_before, f.name)
        if f.not_before is not None and target in pair:
            fields.update(pair)
    person = {"deceased", "death_date", "birth_date"}
    if target in person:
        fields |= person
    if type_name == "prescription":
        fields |= {"refills_authorized", "refills_remaining", "patient_mrn", "member_id"}
    related = {(type_name, f) for f in fields}
    if target in entity_type(type_name).business_key:
        related |= {(et.name, ref.field) for et in ENTITY_TYPES for ref in et.references if ref.parent == type_name}
    return related


def _names_related(problem, related: set[tuple[str, str]]) -> bool:  # type: ignore[no-untyped-def]
    for type_name, field in related:
        if problem.entity_type == type_name and (
            problem.field == field or problem.field.startswith((f"{field}.", f"{field}["))
        ):
            return True
    return False


def _put(doc: dict, target: str, value: Any) -> None:
    outer, _, inner = target.partition(".")
    if not inner:
        doc[outer] = value
        return
    if outer == PROVENANCE and not isinstance(doc.get(outer), dict):
        doc[outer] = {"source_type": "generated"}
    elif not isinstance(doc.get(outer), dict):
        doc[outer] = {}
    doc[outer][inner] = value


def _with_ancestors(type_name: str) -> set[str]:
    """``type_name`` and every type it references, transitively."""
    keep, todo = set(), [type_name]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(ref.parent for ref in entity_type(name).references)
    return keep


_fresh = itertools.count()


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_value_in_any_field_is_stored_as_given_or_refused_by_name(shared_engine, data) -> None:  # type: ignore[no-untyped-def]
    """Arbitrary JSON (surrogates, NULs, huge and deeply nested values, long
    text, wrong types) at any place of a valid entity of any type: the save
    either loads back equal (docs/repository.md, lossless round trips) or
    raises ValidationError naming that field (or a field a rule ties to it),
    and the store is exactly as before."""
    entities = data.draw(scenario_entities(max_per_type=1), label="scenario")
    type_name = data.draw(st.sampled_from([t for t, docs in entities.items() if docs]), label="type")
    keep = _with_ancestors(type_name)
    entities = {t: docs for t, docs in entities.items() if t in keep and docs}
    target = data.draw(st.sampled_from(_targets(type_name)), label="target")
    value = data.draw(JSON_VALUES, label="value")
    doc = copy.deepcopy(entities[type_name][0])
    _put(doc, target, value)
    entities[type_name] = [doc]
    name = f"values-{next(_fresh)}-{uuid.uuid4().hex[:8]}"

    before = _store_state(shared_engine)
    try:
        with session_scope(shared_engine) as session:
            ScenarioRepository(session).save(name, entities)
    except ValidationError as exc:
        related = _related(type_name, target)
        assert all(_names_related(p, related) for p in exc.problems), (target, exc.problems)
        assert _store_state(shared_engine) == before
        return
    with session_scope(shared_engine) as session:
        loaded = ScenarioRepository(session).load(name)
    for saved_type, docs in entities.items():
        assert normalise(loaded.entities[saved_type]) == normalise(docs), (saved_type, target)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    field=st.sampled_from(["name", "description", "tags", "tag", "extra", "extra value"]),
    value=JSON_VALUES,
)
def test_any_value_in_a_scenario_field_is_stored_as_given_or_refused_by_name(shared_engine, field, value) -> None:  # type: ignore[no-untyped-def]
    """The scenario's own fields, likewise: name, description, tags (the list or
    one tag), extra (the mapping or one value in it)."""
    name = f"values-{next(_fresh)}-{uuid.uuid4().hex[:8]}"
    kwargs: dict[str, Any] = {}
    if field == "name":
        name = value
    elif field == "tag":
        kwargs["tags"] = ["ok", value]
    elif field == "extra value":
        kwargs["extra"] = {"k": value}
    else:
        kwargs[field] = value
    before = _store_state(shared_engine)
    try:
        with session_scope(shared_engine) as session:
            ScenarioRepository(session).save(name, {}, **kwargs)
    except ValidationError as exc:
        expected = {"tag": "tags", "extra value": "extra"}.get(field, field)
        assert all(
            p.entity_type == "scenario" and (p.field == expected or p.field.startswith(f"{expected}."))
            for p in exc.problems
        ), (field, exc.problems)
        assert _store_state(shared_engine) == before
        return
    if isinstance(name, str) and name in before[0]:
        pytest.fail(f"a fresh name was taken: {name!r}")
    with session_scope(shared_engine) as session:
        info = ScenarioRepository(session).scenario_summary(name)
    assert info.name == name
    if field == "description":
        assert info.description == value
    elif field in ("tags", "tag"):
        given = kwargs["tags"] if field == "tag" else [value] if isinstance(value, str) else value or []
        assert info.tags == sorted(set(given))
    elif field == "extra":
        assert normalise(info.extra) == normalise(value or None)
    elif field == "extra value":
        assert normalise(info.extra) == normalise(kwargs["extra"])
