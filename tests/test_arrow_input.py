"""Arrow tables as save input, on both backends: a table and the dicts of its
rows (``table.to_pylist()``) store the same rows and are refused with the
same problems, for every entity type; the column-by-column path is the one
taken for valid input. And loads do not hand out shared objects."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import healthsim_state.store.save as save_module
from healthsim_models import ENTITY_TYPES, ValidationError, create_store_engine, session_scope
from healthsim_state import ScenarioRepository
from healthsim_state.codec.layout import layout
from healthsim_state.demo import scenario
from healthsim_state.store.batches import LINKS
from tests.strategies import scenario_entities

_names = itertools.count()


_NOT_ARROW = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)


def _tables(entities: dict[str, list[dict[str, Any]]]) -> dict[str, pa.Table]:
    """One Arrow table per type; a type whose documents Arrow cannot put in
    one table (a key holding a text in one and a number in another) keeps its
    first; an example whose first document Arrow cannot hold is not used."""
    tables = {}
    for name, docs in entities.items():
        if not docs:
            continue
        try:
            tables[name] = _table(docs)
        except _NOT_ARROW:
            try:
                tables[name] = _table(docs[:1])
            except _NOT_ARROW:
                reject()
    return tables


def _table(docs: list[dict[str, Any]]) -> pa.Table:
    """A column per key of any document (Table.from_pylist takes the first one's keys only)."""
    return pa.table({k: [doc.get(k) for doc in docs] for k in dict.fromkeys(k for doc in docs for k in doc)})


def _stored(engine: sa.Engine, name: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the scenario, per table in saved order, as comparable
    across scenarios: UUIDs (which derive from the scenario) as whether set,
    a created_at that is the save's time (its updated_at) as "now", JSON as text."""
    found = {}
    with session_scope(engine) as session:
        scenario_id = ScenarioRepository(session).scenario_summary(name).id
        for et in ENTITY_TYPES:
            table = et.model.__table__
            # JSON columns as the text stored (DuckDB keeps it as written), not parsed.
            selected = [sa.cast(c, sa.String).label(c.name) if isinstance(c.type, sa.JSON) else c for c in table.c]
            query = (
                sa.select(*selected)
                .join(LINKS, LINKS.c.entity_id == table.c.id)
                .where(LINKS.c.scenario_id == scenario_id, LINKS.c.entity_type == et.name)
                .order_by(LINKS.c.position)
            )
            rows = []
            for row in session.execute(query).mappings():
                rows.append(
                    tuple(
                        (value is not None)
                        if isinstance(table.c[column].type, sa.Uuid)
                        else ("now" if column == "created_at" and value == row["updated_at"] else value)
                        for column, value in row.items()
                        if column != "updated_at"
                    )
                )
            found[et.name] = rows
    return found


def _problems(engine: sa.Engine, entities: dict[str, Any]) -> list[tuple[Any, ...]] | None:
    """The problems a save of ``entities`` is refused with (None: saved)."""
    try:
        with session_scope(engine) as session:
            ScenarioRepository(session).save(f"refused-{next(_names)}", entities)
    except ValidationError as exc:
        return [(p.entity_type, p.position, p.entity_id, p.field, p.reason) for p in exc.problems]
    return None


@pytest.fixture
def store(store_url: str):  # type: ignore[no-untyped-def]
    engine = create_store_engine(store_url)
    yield engine
    engine.dispose()


def test_valid_tables_store_what_their_rows_store(store: sa.Engine) -> None:
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(entities=scenario_entities())
    def same_rows(entities) -> None:  # type: ignore[no-untyped-def]
        tables = _tables(entities)
        as_dicts = {name: table.to_pylist() for name, table in tables.items()}
        arrow_name, dict_name = f"arrow-{next(_names)}", f"dicts-{next(_names)}"
        with session_scope(store) as session:
            ScenarioRepository(session).save(arrow_name, tables)
        with session_scope(store) as session:
            ScenarioRepository(session).save(dict_name, as_dicts)
        assert _stored(store, arrow_name) == _stored(store, dict_name)

    same_rows()


def _invalid_values() -> st.SearchStrategy[Any]:
    """Values fields refuse (of the wrong type, blank, too long, out of range, not a day...), that Arrow can hold."""
    common = st.sampled_from(["", "   ", "a\x00b", "x" * 600, "not-a-code", "2024-13-45", "2024-02-30T10:00:00Z"])
    numbers = st.sampled_from([2**40, -(2**40), -1, 10**12, 1.23456789, 1e20, float("nan"), True])
    return common | numbers | st.sampled_from([["a", "b"], [1, 2], {"k": 1}, Decimal("123456789012345.678"), None])


@st.composite
def _broken(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """A valid scenario with one value of one document replaced by a bad one."""
    entities = draw(scenario_entities())
    name = draw(st.sampled_from(sorted(n for n, docs in entities.items() if docs)))
    docs = entities[name]
    doc = docs[draw(st.integers(0, len(docs) - 1))]
    field = draw(st.sampled_from(layout(name).fields))
    value = draw(_invalid_values())
    if len(field.path) == 1:
        doc[field.path[0]] = value
    elif isinstance(doc.get(field.path[0]), dict):
        doc[field.path[0]][field.path[1]] = value
    else:
        doc[field.path[0]] = {field.path[1]: value}
    return entities


def test_invalid_tables_are_refused_as_their_rows_are(store: sa.Engine) -> None:
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(entities=_broken())
    def same_problems(entities) -> None:  # type: ignore[no-untyped-def]
        tables = _tables(entities)
        as_dicts = {name: table.to_pylist() for name, table in tables.items()}
        assert _problems(store, tables) == _problems(store, as_dicts)

    same_problems()


def test_demo_tables_of_every_type_go_column_by_column(store: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    entities = {name: list(docs) for name, docs in scenario(12).items()}
    assert set(entities) == {et.name for et in ENTITY_TYPES}  # every type is exercised
    tables = {name: _table(docs) for name, docs in entities.items()}

    def row_by_row(*args: Any) -> None:
        raise AssertionError(f"{args[1].entity.name} went row by row")

    scenario_id = uuid.uuid4()
    with monkeypatch.context() as patch:
        patch.setattr(save_module, "_write_batch", row_by_row)
        with session_scope(store) as session:
            ScenarioRepository(session).save("arrow", tables, scenario_id=scenario_id)
    with session_scope(store) as session:
        ScenarioRepository(session).save("dicts", {n: t.to_pylist() for n, t in tables.items()})
    assert _stored(store, "arrow") == _stored(store, "dicts")

    # The generator's own dicts too, orders (a name object inside ordering_provider,
    # kept in extensions) and allergies (arrays of objects) among them.
    by_rows = []
    write_batch = save_module._write_batch

    def noted(*args: Any) -> None:
        by_rows.append(args[1].entity.name)
        write_batch(*args)

    with monkeypatch.context() as patch:
        patch.setattr(save_module, "_write_batch", noted)
        with session_scope(store) as session:
            ScenarioRepository(session).save("generated", entities)
    assert by_rows == []
    with monkeypatch.context() as patch:
        patch.setattr(save_module, "documents_table", lambda lay, docs: None)
        with session_scope(store) as session:
            ScenarioRepository(session).save("generated-rows", entities)
    assert _stored(store, "generated") == _stored(store, "generated-rows")


def test_a_refused_table_names_entity_position_and_field(store: sa.Engine) -> None:
    name = {"given_name": "Ada", "family_name": "A"}
    docs = [{"id": "PAT-1", "mrn": "M1", "birth_date": "1980-01-01", "gender": "F", "name": name}]
    docs.append({**docs[0], "id": "PAT-2", "mrn": "M2", "gender": "Q"})
    problems = _problems(store, {"patient": pa.Table.from_pylist(docs)})
    assert problems == _problems(store, {"patient": docs})
    assert problems is not None and [p[:4] for p in problems] == [("patient", 1, "PAT-2", "gender")]


def test_loaded_documents_share_no_objects(store: sa.Engine) -> None:
    plain = {"source_type": "generated", "source_system": "patientsim"}
    params = {"source_type": "generated", "generation_params": {"seed": 1}}
    name = {"given_name": "Ada", "family_name": "A"}
    docs = [
        {"id": f"PAT-{i}", "mrn": f"M{i}", "birth_date": "1980-01-01", "gender": "F", "name": name} for i in range(6)
    ]
    for doc in docs[:3]:  # extensions of the store's bookkeeping alone: parsed once
        doc["_provenance"] = dict(plain)
    for doc in docs[3:]:  # and with values of their own
        doc["_provenance"] = {**params, "generation_params": {"seed": 1}}
        doc["x_list"] = [1, 2]
    with session_scope(store) as session:
        ScenarioRepository(session).save("shared", {"patient": docs})
    for _ in range(2):  # the second load reads what the first parsed
        with session_scope(store) as session:
            loaded = ScenarioRepository(session).load("shared").entities["patient"]
        assert [d["_provenance"] for d in loaded] == [plain] * 3 + [params] * 3
        assert [d.get("x_list") for d in loaded] == [None] * 3 + [[1, 2]] * 3
        loaded[0]["_provenance"]["source_type"] = "changed"
        loaded[3]["_provenance"]["generation_params"]["seed"] = 99
        loaded[3]["x_list"].append(3)
        assert loaded[1]["_provenance"] == plain
        assert loaded[4]["_provenance"] == params and loaded[4]["x_list"] == [1, 2]


def _rows_either_way(store: sa.Engine, entities: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The stored rows (or problems) of ``entities`` saved as they come, then
    with every batch encoded row by row."""

    def outcome(name: str) -> Any:
        problems = None
        try:
            with session_scope(store) as session:
                ScenarioRepository(session).save(name, entities)
        except ValidationError as exc:
            problems = [(p.entity_type, p.position, p.entity_id, p.field, p.reason) for p in exc.problems]
        return problems if problems is not None else _stored(store, name)

    as_given = outcome(f"columns-{next(_names)}")
    with monkeypatch.context() as patch:
        patch.setattr(save_module, "documents_table", lambda lay, docs: None)
        row_by_row = outcome(f"rows-{next(_names)}")
    return as_given, row_by_row


def test_dicts_store_the_same_column_by_column_as_row_by_row(store: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(entities=scenario_entities() | _broken())
    def same(entities) -> None:  # type: ignore[no-untyped-def]
        as_given, row_by_row = _rows_either_way(store, entities, monkeypatch)
        assert as_given == row_by_row

    same()


def _patient(i: int, **changes: Any) -> dict[str, Any]:
    doc = {"id": f"P{i}", "mrn": f"M{i}", "birth_date": "1980-01-01", "gender": "F"}
    doc["name"] = {"given_name": "Ada", "family_name": "A"}
    return {**doc, **changes}


@pytest.mark.parametrize(
    "docs",
    [
        # A key absent from some documents and null in others (defaulted, or noted null).
        [_patient(1, race="x"), _patient(2, race=None), _patient(3), _patient(4, deceased=None)],
        # Provenance absent, null, and with keys absent.
        [
            _patient(1, _provenance={"source_type": "generated"}),
            _patient(2, _provenance={"source_type": "generated", "skill_used": None}),
            _patient(3, _provenance=None),
            _patient(4),
        ],
        # A nested object absent, null, empty, and with keys absent or null.
        [
            _patient(1, address={"city": "X"}),
            _patient(2, address=None),
            _patient(3, address={}),
            _patient(4, address={"country": None}),
        ],
        # Flat names of nested fields.
        [_patient(1, city="X", state="OH"), _patient(2, city=None)],
        # Values Arrow would convert: a datetime among dates, an int among floats, deep nesting.
        [_patient(1, birth_date=dt.date(1980, 1, 1)), _patient(2, birth_date=dt.datetime(1980, 1, 1, 5))],
        [_patient(1, deceased=True, death_date="2000-01-01"), _patient(2, x_deep=[[[[[[1]]]]]] * 2)],
        [_patient(1, mrn=["M", ["M"] * 3]), _patient(2, id=[[[]]] * 3)],
    ],
)
def test_dicts_arrow_cannot_hold_exactly_store_the_same(
    store: sa.Engine, monkeypatch: pytest.MonkeyPatch, docs: list[dict[str, Any]]
) -> None:
    as_given, row_by_row = _rows_either_way(store, {"patient": docs}, monkeypatch)
    assert as_given == row_by_row


def _given_only(name: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a CSV-like source means by ``docs``: a null is a key not given, and an
    object (a group, ``_provenance``) left with no key is not given either."""
    objects = layout(name).groups | {"_provenance"}
    kept = []
    for doc in docs:
        out = {}
        for key, value in doc.items():
            if key in objects and isinstance(value, dict):
                value = {k: v for k, v in value.items() if v is not None} or None
            if value is not None:
                out[key] = value
        kept.append(out)
    return kept


def test_nulls_read_as_absent_store_and_refuse_as_dicts_without_them(store: sa.Engine) -> None:
    """Arrow input whose nulls mean "not given" (an importer's empty cells)
    stores, and is refused, as the dicts without those keys are."""

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(entities=scenario_entities() | _broken())
    def same(entities) -> None:  # type: ignore[no-untyped-def]
        tables = _tables(entities)
        absent = {name: save_module.ArrowInput(table.to_batches(), nulls_absent=True) for name, table in tables.items()}
        dicts = {name: _given_only(name, table.to_pylist()) for name, table in tables.items()}
        arrow_name, dict_name = f"absent-{next(_names)}", f"given-{next(_names)}"
        problems = _problems_as(store, arrow_name, absent)
        assert problems == _problems_as(store, dict_name, dicts)
        if problems is None:
            assert _stored(store, arrow_name) == _stored(store, dict_name)

    same()


def _problems_as(engine: sa.Engine, name: str, entities: dict[str, Any]) -> list[tuple[Any, ...]] | None:
    try:
        with session_scope(engine) as session:
            ScenarioRepository(session).save(name, entities)
    except ValidationError as exc:
        return [(p.entity_type, p.position, p.entity_id, p.field, p.reason) for p in exc.problems]
    return None


def test_nulls_read_as_absent_go_column_by_column(store: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = [_patient(1, race=None, address={"city": "X", "state": None}), _patient(2, address={"city": None})]
    docs.append(_patient(3, x_source={"COLUMN": None, "OTHER": "v"}))
    table = _table(docs)

    def row_by_row(*args: Any) -> None:
        raise AssertionError("went row by row")

    with monkeypatch.context() as patch:
        patch.setattr(save_module, "_write_batch", row_by_row)
        with session_scope(store) as session:
            ScenarioRepository(session).save("absent", {"patient": save_module.ArrowInput(table, nulls_absent=True)})
    with session_scope(store) as session:
        ScenarioRepository(session).save("given", {"patient": _given_only("patient", docs)})
    assert _stored(store, "absent") == _stored(store, "given")
    with session_scope(store) as session:
        loaded = ScenarioRepository(session).load("absent").entities["patient"]
    assert "race" not in loaded[0] and loaded[0]["address"] == {"city": "X"} and "address" not in loaded[1]
    assert loaded[2]["x_source"] == {"COLUMN": None, "OTHER": "v"}  # an object that is no group keeps its nulls


_GONE = object()


def _inferred(name: str, docs: list[dict[str, Any]]) -> tuple[pa.Table | None, dict[str, list[bool]]]:
    """What documents_table must give for ``docs``, made the plain way: Arrow's
    inference over each key's values (a decimal field's Decimals cast to its
    type; None where that cannot be done), and per key (``key``,
    ``group.key``) some document or object lacks, the rows lacking it."""
    lay = layout(name)
    keys = dict.fromkeys(k for doc in docs for k in doc)
    try:
        table = pa.table({k: [doc.get(k) for doc in docs] for k in keys})
        for f in lay.fields:
            values = [doc.get(f.path[0]) for doc in docs]
            if f.kind == "decimal" and len(f.path) == 1 and {type(v) for v in values} - {type(None)} == {Decimal}:
                at = table.schema.get_field_index(f.path[0])
                table = table.set_column(at, f.path[0], table.column(at).cast(pa.decimal128(f.precision, f.scale)))
    except _NOT_ARROW:
        table = None
    absent = {k: [k not in doc for doc in docs] for k in keys if not all(k in doc for doc in docs)}
    for key in keys:
        objects = [doc[key] for doc in docs if isinstance(doc.get(key), dict)]
        for k in dict.fromkeys(k for obj in objects for k in obj):
            if not all(k in obj for obj in objects):
                absent[f"{key}.{k}"] = [(doc.get(key) or {}).get(k, _GONE) is _GONE for doc in docs]
    return table, absent


@st.composite
def _mixed(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """Valid or broken scenarios, some objects (groups, _provenance) made null
    and some keys dropped, so that documents differ in their keys."""
    entities = draw(scenario_entities() | _broken())
    for docs in entities.values():
        for doc in docs:
            for key in list(doc):
                change = draw(st.sampled_from(["keep"] * 6 + ["null", "drop"]))
                if change == "drop":
                    del doc[key]
                elif change == "null" and isinstance(doc[key], dict):
                    doc[key] = None
    return entities


def test_dicts_table_is_the_one_arrow_infers() -> None:
    """documents_table, made a column and a group's key at a time with the
    type each shows, gives the table Arrow infers from the documents (the
    absent keys beside it), or None; never another table."""
    made = 0

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(entities=_mixed())
    def same(entities) -> None:  # type: ignore[no-untyped-def]
        nonlocal made
        for name, docs in entities.items():
            if not docs:
                continue
            found = save_module.documents_table(layout(name), docs)
            if found is None:
                continue
            table, absent = _inferred(name, docs)
            assert table is not None and found.table.equals(table), name
            assert found.absent == absent, name
            made += 1

    same()
    assert made > 0


@pytest.mark.parametrize(
    "docs",
    [
        # Objects null, absent, and lacking keys others have; a key null in every object.
        [_patient(1, address={"city": "X", "state": None}), _patient(2, address=None), _patient(3)],
        [_patient(1, address={"state": None}), _patient(2, address={"city": "Y", "state": None})],
        [
            _patient(1, _provenance={"source_type": "generated", "generation_seed": 1}),
            _patient(2, _provenance=None),
            _patient(3, _provenance={"source_type": "loaded", "skill_used": None}),
        ],
        [_patient(1, _provenance=None), _patient(2, _provenance=None)],
        # Numbers of several types in one column: inferred, not typed.
        [_patient(1, _provenance={"source_type": "generated", "generation_seed": 1}), _patient(2, _provenance={})],
    ],
)
def test_dicts_table_of_objects_is_the_one_arrow_infers(docs: list[dict[str, Any]]) -> None:
    found = save_module.documents_table(layout("patient"), docs)
    table, absent = _inferred("patient", docs)
    if found is not None:
        assert table is not None and found.table.equals(table) and found.absent == absent


@pytest.mark.parametrize(
    "values",
    [
        [Decimal("10.5"), Decimal("1E+2"), None],
        [Decimal("1.234")],  # more places than the column keeps
        [Decimal("12345678901234")],  # more digits
        [Decimal("NaN")],
        [Decimal("1.5"), 2],  # an int among decimals: inferred
        [1.5, 2.25],
    ],
)
def test_dicts_decimal_columns_are_typed_as_their_field(values: list[Any]) -> None:
    """A decimal field's Decimals are converted to the field's type: what does
    not fit refuses the table (the rows go row by row), as its cast would."""
    docs = [{"member_id": "M1", "claim_id": f"C{i}", "total_charge": v} for i, v in enumerate(values)]
    found = save_module.documents_table(layout("claim"), docs)
    table, _ = _inferred("claim", docs)
    if table is None:
        assert found is None
    else:
        assert found is not None and found.table.equals(table)


_TEXTS = st.sampled_from(["Mei", "", 'a "quoted" \\ name', "tab\there", "é\u2028\U0001f600", "a\x00b", "\ud800"])
_LEAVES = _TEXTS | st.none() | st.integers(-3, 3) | st.booleans() | st.just(1.5)


def _object(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of these keys (in this order, or with one left out, or reordered)."""
    whole = st.fixed_dictionaries({k: _TEXTS for k in keys})
    varied = st.builds(dict, st.lists(st.tuples(st.sampled_from(keys), _LEAVES), max_size=len(keys) + 1))
    return st.one_of(whole, whole, varied, st.fixed_dictionaries({k: _LEAVES for k in keys}))


_NAMES = _object(["given_name", "family_name"]) | st.none() | _TEXTS | st.just({}) | st.just({"given_name": {"k": "v"}})
_REACTIONS = st.none() | st.lists(_object(["code", "description", "severity"]) | st.none() | _TEXTS, max_size=3)


@st.composite
def _nested_extras(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """Demo orders and allergies (and their parents), the orders' provider
    names (kept in extensions) and the allergies' reactions (arrays of
    objects) made to vary: objects of one signature or not, values of one
    type or not, texts JSON escapes, texts no backend stores."""
    generated = scenario(2)
    kept = ("organization", "practitioner", "payer", "patient", "encounter", "order", "allergy")
    entities = {name: list(generated[name]) for name in kept}
    uniform = draw(st.booleans())  # every order's name (every reaction) of the first one's shape
    name = draw(_NAMES)
    for order in entities["order"]:
        provider = draw(st.sampled_from(["npi and name", "name", "npi", "null", "absent"]))
        if not uniform:
            name = draw(_NAMES)
        if provider == "absent":
            del order["ordering_provider"]
        elif provider == "null":
            order["ordering_provider"] = None
        else:
            order["ordering_provider"] = {"npi": "1902847561"} if "npi" in provider else {}
            if "name" in provider:
                order["ordering_provider"]["name"] = name
    reactions = draw(_REACTIONS)
    for allergy in entities["allergy"]:
        allergy["reactions"] = reactions if uniform else draw(_REACTIONS)
    return entities


def test_dicts_with_objects_kept_whole_store_the_same_column_by_column(
    store: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders' provider names (in extensions) and allergies' reactions: the
    dicts column by column (where their table reads back as given) store, and
    are refused, as row by row."""
    columnar = 0
    encode_columns = save_module.encode_columns

    def noted(lay: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal columnar
        encoded = encode_columns(lay, *args, **kwargs)
        columnar += encoded is not None and lay.entity.name in ("order", "allergy")
        return encoded

    @settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(entities=_nested_extras())
    def same(entities) -> None:  # type: ignore[no-untyped-def]
        with monkeypatch.context() as patch:
            patch.setattr(save_module, "encode_columns", noted)
            as_given, row_by_row = _rows_either_way(store, entities, monkeypatch)
        assert as_given == row_by_row

    same()
    assert columnar > 0  # some went column by column
