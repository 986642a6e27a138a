"""Values neither backend can store as given are refused, the field named, the
same way on DuckDB and PostgreSQL, and nothing stored changes (issue 15, item 5).

Text: a NUL (PostgreSQL text cannot hold one) or a lone surrogate (not
Unicode; ``"Bad\\udcffName"`` from Python, a ``\\udcff`` escape in JSON) is
refused in every text value: typed columns, unknown fields, provenance,
scenario name, description, tags and ``extra``. A non-string where text
belongs is refused, never stored as its ``str()``. Text in an indexed
column (business keys, names, codes; scenario names and tags) holds at most
``vocab.INDEXED_TEXT_MAX_CHARS`` characters on both backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from healthsim_models import ENTITY_TYPES, ValidationError, session_scope, vocab
from healthsim_models.errors import DocumentError
from healthsim_models.registry import entity_type
from healthsim_state import ScenarioRepository, import_scenario
from healthsim_state.codec.layout import all_layouts
from healthsim_state.codec.values import MAX_JSON_DEPTH
from tests.helpers import fixture, normalise

LIMIT = vocab.INDEXED_TEXT_MAX_CHARS
CANONICAL = fixture("scenario-canonical.json")


def patient(**changes: Any) -> dict[str, Any]:
    doc = {
        "id": "PAT-1",
        "mrn": "MRN-1",
        "name": {"given_name": "Ada", "family_name": "Lovelace"},
        "birth_date": "1980-02-03",
        "gender": "F",
    }
    for dotted, value in changes.items():
        *outer, last = dotted.split("__")
        target = doc
        for key in outer:
            target = target.setdefault(key, {})
        target[last] = value
    return doc


def save(engine, name: Any, entities: dict[str, Any], **kwargs: Any):
    with session_scope(engine) as session:
        return ScenarioRepository(session).save(name, entities, **kwargs)


def snapshot(engine) -> Any:
    """Everything a refused write must leave as it was."""
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        scenarios = [(i.id, i.name, i.description, i.tags, i.entity_counts, i.extra) for i in repo.list()]
        entities = {i.name: repo.load(i.name).entities for i in repo.list()}
        return scenarios, entities, repo.count_entities_by_type()


@pytest.fixture
def stored(engine):
    """A store holding one scenario, which refused writes must leave alone."""
    save(engine, "kept", {"patient": [patient()]}, description="before", tags=["t"], extra={"k": [1]})
    return engine


def refused(engine, field: str, reason: str, call) -> ValidationError:  # type: ignore[no-untyped-def]
    before = snapshot(engine)
    with pytest.raises(ValidationError) as caught:
        call()
    fields = [p.field for p in caught.value.problems]
    assert field in fields, caught.value
    assert reason in str(caught.value), caught.value
    assert snapshot(engine) == before
    return caught.value


# -- the scenario's own fields ------------------------------------------------------

SCENARIO_CASES = [
    ("name", "Bad\udcffName", {}, "name", "lone surrogate \\udcff at character 3"),
    ("name", "a\x00b", {}, "name", "NUL character"),
    ("name", "n" * (LIMIT + 1), {}, "name", f"at most {LIMIT}"),
    ("name", 5, {}, "name", "non-empty string, got 5"),
    ("description", None, {"description": {"a": 1}}, "description", "expected a string or null, got dict {'a': 1}"),
    ("description", None, {"description": 5}, "description", "got int 5"),
    ("description", None, {"description": "a\x00b"}, "description", "NUL character"),
    ("description", None, {"description": "Bad\udcff"}, "description", "lone surrogate"),
    ("tags", None, {"tags": ["a\x00b"]}, "tags", "NUL character"),
    ("tags", None, {"tags": ["Bad\udcff"]}, "tags", "lone surrogate"),
    ("tags", None, {"tags": ["t" * (LIMIT + 1)]}, "tags", f"at most {LIMIT}"),
    ("tags", None, {"tags": [{"a": 1}]}, "tags", "non-empty string, got {'a': 1}"),
    ("tags", None, {"tags": 5}, "tags", "expected a list of strings, got int"),
    ("extra", None, {"extra": {"k": "a\x00b"}}, "extra.k", "NUL character"),
    ("extra", None, {"extra": {"k\x00": 1}}, "extra", "the key 'k\\x00' contains a NUL"),
    ("extra", None, {"extra": {"k": ["Bad\udcff"]}}, "extra.k[0]", "lone surrogate"),
    ("extra", None, {"extra": {"k": float("nan")}}, "extra.k", "nan is not a JSON number"),
    ("extra", None, {"extra": {"k": object()}}, "extra.k", "is not a JSON value"),
    ("extra", None, {"extra": {1: "a"}}, "extra", "object keys must be strings"),
    ("extra", None, {"extra": {"k": 10**5000}}, "extra.k", "more than 4000 digits"),
    ("extra", None, {"extra": "text"}, "extra", "expected an object"),
]


@pytest.mark.parametrize(("what", "name", "kwargs", "field", "reason"), SCENARIO_CASES)
def test_a_bad_scenario_field_is_refused_by_name(stored, what, name, kwargs, field, reason) -> None:
    refused(stored, field, reason, lambda: save(stored, name if what == "name" else "new", {}, **kwargs))
    # The same value replacing an existing scenario's field changes nothing either.
    refused(
        stored, field, reason, lambda: save(stored, name if what == "name" else "kept", {}, overwrite=True, **kwargs)
    )


def test_deep_nesting_in_extra_is_refused_and_the_limit_round_trips(engine) -> None:
    deep: Any = "bottom"
    for _ in range(MAX_JSON_DEPTH - 1):  # with extra's own object: the limit
        deep = [deep]
    save(engine, "deep", {}, extra={"k": deep})
    with session_scope(engine) as session:
        assert ScenarioRepository(session).scenario_summary("deep").extra == {"k": deep}
    refused(
        engine,
        "extra.k" + "[0]" * (MAX_JSON_DEPTH - 1),
        f"nested more than {MAX_JSON_DEPTH} levels deep",
        lambda: save(engine, "deeper", {}, extra={"k": [deep]}),
    )
    far: Any = 1
    for _ in range(50_000):  # deeper than repr() or the JSON encoder can go
        far = {"a": far}
    refused(
        engine,
        "extra.k" + ".a" * (MAX_JSON_DEPTH - 1),
        "nested more than",
        lambda: save(engine, "far", {}, extra={"k": far}),
    )


def test_tags_added_later_are_checked_too(stored) -> None:
    def add() -> None:
        with session_scope(stored) as session:
            ScenarioRepository(session).add_tags("kept", ["ok", "a\x00b"])

    refused(stored, "tags", "NUL character", add)


# -- entity fields -------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


ENTITY_CASES = [
    ({"name__family_name": "Bad\udcffName"}, "name.family_name", "lone surrogate \\udcff at character 3"),
    (
        {"name__family_name": "x" * (1 << 20)},
        "name.family_name",
        f"1,048,576 characters long; an indexed text field holds at most {LIMIT}",
    ),
    ({"mrn": "M" * (LIMIT + 1)}, "mrn", f"at most {LIMIT}"),
    ({"name__given_name": "a\x00b"}, "name.given_name", "NUL character"),
    ({"name__given_name": {"a": 1}}, "name.given_name", "expected a string, got dict {'a': 1}"),
    ({"gender": ["F"]}, "gender", "expected a string, got list"),
    ({"ssn": 123456789}, "ssn", "expected a string, got int 123456789"),
    ({"id": "P\udcff"}, "id", "lone surrogate"),
    ({"id": "P\x00"}, "id", "NUL character"),
    ({"x_note": "a\x00b"}, "x_note", "NUL character"),
    ({"x_note": {"deep": ["ok", "Bad\udcff"]}}, "x_note.deep[1]", "lone surrogate"),
    ({"x_note": float("inf")}, "x_note", "inf is not a JSON number"),
    ({"name__x_nick": "a\x00"}, "name.x_nick", "NUL character"),
    (
        {"_provenance": {"source_type": "generated", "skill_used": "s\udcff"}},
        "_provenance.skill_used",
        "lone surrogate",
    ),
    ({"_provenance": {"source_type": "generated", "derived_from": ["a\x00"]}}, "_provenance.derived_from[0]", "NUL"),
    ({"_provenance": {"source_type": {"a": 1}}}, "_provenance.source_type", "is not one of"),
    # Found by the property test: the message's str() of this id raised RecursionError.
    ({"id": nested(50_000)}, "id", "(id [[[[...]]]]) id: expected a non-empty string, got [[[[...]]]]"),
    # Found by the property test: a later candidate's seed was stored and loaded in its place.
    (
        {"_provenance": {"source_type": "generated", "generation_seed": ["F"], "generation_params": {"seed": 0}}},
        "_provenance.generation_seed",
        "expected an integer, got ['F']",
    ),
]


@pytest.mark.parametrize(("changes", "field", "reason"), ENTITY_CASES)
def test_a_bad_entity_value_is_refused_by_name(stored, changes, field, reason) -> None:
    error = refused(stored, field, reason, lambda: save(stored, "new", {"patient": [patient(**changes)]}))
    assert all(p.entity_type == "patient" and p.position == 0 for p in error.problems)
    refused(stored, field, reason, lambda: save(stored, "kept", {"patient": [patient(**changes)]}, overwrite=True))


def test_an_array_item_is_checked_like_any_text(engine) -> None:
    procedure = dict(CANONICAL["entities"]["procedure"][0], modifiers=["25", "a\x00"])
    entities = {**CANONICAL["entities"], "procedure": [procedure]}
    refused(engine, "modifiers", "item 1 contains a NUL", lambda: save(engine, "s", entities))


def test_an_array_of_objects_keeps_its_objects_and_names_a_bad_item(engine) -> None:
    """allergy.reactions holds JSON objects of any keys, nested as deep as JSON may; an item that
    is no object, or holds what no backend stores, is refused by its position."""
    allergy = CANONICAL["entities"]["allergy"][0]
    reactions = [
        {"code": "271807003", "description": "Zoë's rash, 東京", "severity": "moderate"},
        {"notes": [{"seen": "2024-03-12", "scores": [1, 2.5, None, True]}], "severity": None},
        {},
    ]
    save(engine, "objects", {**CANONICAL["entities"], "allergy": [dict(allergy, reactions=reactions)]})
    with session_scope(engine) as session:
        (loaded,) = ScenarioRepository(session).load("objects").entities["allergy"]
    assert loaded["reactions"] == reactions
    for bad, reason in [
        ([{}, "rash"], "item 1 should be an object, got 'rash'"),
        ([["271807003"]], "item 0 should be an object, got ['271807003']"),
        ([{"code": "1"}, {"description": "a\x00"}], "item 1.description contains a NUL"),
    ]:
        entities = {**CANONICAL["entities"], "allergy": [dict(allergy, reactions=bad)]}
        refused(engine, "reactions", reason, lambda entities=entities: save(engine, "bad", entities))


def test_every_indexed_text_field_takes_the_limit_in_four_byte_characters(engine) -> None:
    """The longest text the limit allows, all of it 4-byte UTF-8 (2,000 bytes), fits
    every index on both backends and loads back; one character more is refused."""
    longest = "\U0001f600" * LIMIT
    entities = {k: [dict(v[0])] for k, v in CANONICAL["entities"].items() if v}
    limited = [(lay.entity.name, f) for lay in all_layouts() for f in lay.fields if f.max_length]
    assert {t for t, _ in limited} >= {"patient", "member", "claim", "subject", "adverse_event"}
    changed = 0
    for type_name, f in limited:
        path = f.path
        et = entity_type(type_name)
        if type_name not in entities or any(ref.field == path[-1] for ref in et.references):
            continue  # references must match their parent's key: covered through the parent
        if f.pattern is not None or f.enum:
            continue  # a pattern or enum allows no such text
        doc = entities[type_name][0]
        target = doc if len(path) == 1 else doc.setdefault(path[0], {})
        if path[-1] in et.business_key:
            for child, ref_field in _children(type_name):
                for item in entities.get(child, []):
                    if item.get(ref_field) == target.get(path[-1]):
                        item[ref_field] = longest
        target[path[-1]] = longest
        changed += 1
    assert changed >= 12
    save(engine, longest[: LIMIT - 1] + "n", entities, tags=[longest])
    with session_scope(engine) as session:
        loaded = ScenarioRepository(session).load(longest[: LIMIT - 1] + "n")
    assert loaded.tags == [longest]
    for type_name, docs in entities.items():
        assert normalise(loaded.entities[type_name]) == normalise(docs), type_name
    refused(engine, "tags", f"at most {LIMIT}", lambda: save(engine, "other", {}, tags=[longest + "x"]))
    refused(engine, "name", f"at most {LIMIT}", lambda: save(engine, longest + "x", {}))


def _children(type_name: str) -> list[tuple[str, str]]:
    """(child type, reference field) of every reference to ``type_name``."""
    return [(et.name, ref.field) for et in ENTITY_TYPES for ref in et.references if ref.parent == type_name]


# -- through import ------------------------------------------------------------------


def document(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def do_import(engine, source: Any, **kwargs: Any):
    with session_scope(engine) as session:
        return import_scenario(session, source, **kwargs)


PATIENT_JSON = (
    '{"id": "PAT-1", "mrn": "MRN-1", "name": {"given_name": "Ada", "family_name": %s}, '
    '"birth_date": "1980-02-03", "gender": "F"}'
)


def doc_text(name: str = '"imported"', family: str = '"Lovelace"', more: str = "") -> str:
    return '{"schema_version": "1.0", "name": %s, %s"entities": {"patient": [%s]}}' % (
        name,
        more,
        PATIENT_JSON % family,
    )


@pytest.mark.parametrize(
    ("family", "field", "reason"),
    [
        ('"Bad\\udcffName"', "name.family_name", "lone surrogate \\udcff at character 3"),
        ('"a\\u0000b"', "name.family_name", "NUL character"),
        ('{"a": 1}', "name.family_name", "expected a string, got dict {'a': 1}"),
        ('"%s"' % ("x" * (1 << 20)), "name.family_name", f"at most {LIMIT}"),
    ],
)
def test_an_imported_entity_value_is_refused_by_name(stored, tmp_path: Path, family, field, reason) -> None:
    path = document(tmp_path / "doc.json", doc_text(family=family))
    refused(stored, field, reason, lambda: do_import(stored, path))
    refused(stored, field, reason, lambda: do_import(stored, path, name="kept", overwrite=True))


@pytest.mark.parametrize(
    ("header", "key", "reason"),
    [
        ('"name": "Bad\\udcffName", ', "name", "lone surrogate"),
        ('"name": "a\\u0000b", ', "name", "NUL character"),
        ('"name": "%s", ' % ("n" * (LIMIT + 1)), "name", f"at most {LIMIT}"),
        ('"name": "ok", "description": "a\\u0000b", ', "description", "NUL character"),
        ('"name": "ok", "description": {"a": 1}, ', "description", "expected a string or null, got {'a': 1}"),
        ('"name": "ok", "tags": ["\\udcff"], ', "tags", "lone surrogate"),
    ],
)
def test_an_imported_header_value_is_refused_by_name(stored, tmp_path: Path, header, key, reason) -> None:
    text = '{"schema_version": "1.0", %s"entities": {"patient": [%s]}}' % (header, PATIENT_JSON % '"L"')
    path = document(tmp_path / "doc.json", text)
    before = snapshot(stored)
    with pytest.raises(DocumentError, match=rf"doc\.json: '{key}' at line 1, column \d+ \(byte \d+\): .*{reason}"):
        do_import(stored, path)
    assert snapshot(stored) == before


def test_imported_metadata_is_checked_like_extra(stored, tmp_path: Path) -> None:
    path = document(tmp_path / "doc.json", doc_text(more='"source": {"by": "a\\u0000b"}, '))
    refused(stored, "extra.source.by", "NUL character", lambda: do_import(stored, path))


def test_an_import_under_a_bad_new_name_is_refused_before_any_lookup(stored, tmp_path: Path) -> None:
    path = document(tmp_path / "doc.json", doc_text())
    refused(stored, "name", "NUL character", lambda: do_import(stored, path, name="a\x00b"))
    refused(stored, "name", "lone surrogate", lambda: do_import(stored, path, name="\udcff"))


def test_an_integer_too_long_to_read_is_a_document_error(stored, tmp_path: Path) -> None:
    path = document(tmp_path / "doc.json", doc_text(more='"big": %s, ' % ("9" * 5000)))
    before = snapshot(stored)
    with pytest.raises(DocumentError, match="invalid JSON in the value of 'big'.*4300 digits"):
        do_import(stored, path)
    assert snapshot(stored) == before


def test_a_surrogate_pair_escape_is_one_character_and_is_kept(engine, tmp_path: Path) -> None:
    path = document(tmp_path / "doc.json", doc_text(family='"Smile \\ud83d\\ude00"'))
    do_import(engine, path)
    with session_scope(engine) as session:
        loaded = ScenarioRepository(session).load("imported")
    assert loaded.entities["patient"][0]["name"]["family_name"] == "Smile \U0001f600"


@pytest.mark.parametrize("text", ["kept\x00", "kept\udcff"], ids=["nul", "lone-surrogate"])
def test_looking_up_text_no_backend_stores_finds_nothing(stored, text: str) -> None:  # type: ignore[no-untyped-def]
    """Such a name, tag or MRN cannot be stored, so it matches nothing, on both backends
    (PostgreSQL would refuse it as a query parameter)."""
    from healthsim_models.errors import ScenarioNotFoundError

    before = snapshot(stored)
    with session_scope(stored) as session:
        repo = ScenarioRepository(session)
        assert repo.exists(text) is False
        assert repo.delete(text) is False
        with pytest.raises(ScenarioNotFoundError):
            repo.load(text)
        with pytest.raises(ScenarioNotFoundError):
            repo.add_tags(text, ["x"])
        assert repo.list(tag=text) == []
        assert repo.list(search=text) == []
        assert repo.get_patient(text.replace("kept", "MRN-1")) is None
        assert [i.name for i in repo.list(tag="t", search="kep")] == ["kept"]
    assert snapshot(stored) == before


def test_bad_nested_claim_lines_are_named_however_deep_or_long(stored) -> None:  # type: ignore[no-untyped-def]
    deep: Any = "x"
    for _ in range(5000):
        deep = {"a": deep}
    member = {
        "id": "MEM-1",
        "member_id": "M-1",
        "subscriber_id": "M-1",
        "relationship_code": "18",
        "name": {"given_name": "A", "family_name": "B"},
        "birth_date": "1980-01-01",
        "gender": "F",
        "group_id": "G",
        "coverage_start": "2024-01-01",
        "plan_code": "P",
    }
    claim = {
        "claim_id": "C-1",
        "member_id": "M-1",
        "service_date": "2024-02-01",
        "claim_type": "PROFESSIONAL",
        "principal_diagnosis": "E11.9",
        "total_charge": 10,
    }
    error = refused(
        stored,
        "claim_lines",
        "expected an array, got {'a': {'a':",
        lambda: save(stored, "claims", {"member": [member], "claim": [{**claim, "claim_lines": deep}]}),
    )
    assert len(str(error)) < 2000
    line = {
        "line_number": 1,
        "claim_id": "C-" + "9" * 1_000_000,
        "procedure_code": "99213",
        "charge_amount": 10,
        "service_date": "2024-02-01",
    }
    error = refused(
        stored,
        "claim_lines[0].claim_id",
        "differs from the claim's claim_id 'C-1'",
        lambda: save(stored, "claims", {"member": [member], "claim": [{**claim, "claim_lines": [line]}]}),
    )
    assert len(str(error)) < 2000
