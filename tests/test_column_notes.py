"""The provenance columns and ``extensions`` that the column-wise encode
writes from each distinct set of a row's notes (templates filled with the
rows' verbatim texts) equal what encode() writes row by row, on the path
taken and on the ones it falls back to."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from healthsim_state.codec import columns
from healthsim_state.codec.document import encode
from healthsim_state.codec.layout import layout

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
LAY = layout("encounter")
NOTED = ["source_type", "source_system", "skill_used", "generation_seed", "created_at", "extensions"]


def _encounter(i: int, **more: Any) -> dict[str, Any]:
    doc = {
        "encounter_id": f"E{i}",
        "patient_mrn": f"M{i}",
        "class_code": "O",
        "status": "finished",
        "admission_time": f"2024-01-{1 + i % 28:02d}T10:00:00+01:00",  # kept verbatim
        "discharge_time": None if i % 3 else f"2024-02-01T10:00:00-0{i % 9}:00",
        "note": f"unknown {i}",
    }
    return {**doc, **more}


def _table(docs: list[dict[str, Any]]) -> pa.Table:
    """A column per key of any document (Table.from_pylist takes the first one's keys only)."""
    return pa.table({k: [doc.get(k) for doc in docs] for k in dict.fromkeys(k for doc in docs for k in doc)})


def _taken(monkeypatch: pytest.MonkeyPatch, name: str = "_noted_extensions") -> list[Any]:
    """What each call of ``columns.<name>`` returns, as the test goes."""
    taken: list[Any] = []
    real = getattr(columns, name)

    def spy(*args: Any) -> Any:
        taken.append(real(*args))
        return taken[-1]

    monkeypatch.setattr(columns, name, spy)
    return taken


def _assert_as_encode(docs: list[dict[str, Any]]) -> None:
    encoded = columns.encode_columns(LAY, _table(docs), NOW)
    assert encoded is not None
    for i, doc in enumerate(docs):
        row, problems = encode(LAY, doc, NOW)
        assert not problems
        for name in NOTED:
            assert encoded.columns[name][i].as_py() == row[name], (i, name)


def test_rows_with_verbatim_texts_fill_their_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _taken(monkeypatch)
    provenance = {"source_type": "generated", "skill_used": "demo", "generation_seed": 7}
    _assert_as_encode([_encounter(i, _provenance=provenance) for i in range(40)])
    assert taken == [True]


def test_many_templates_with_texts_go_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _taken(monkeypatch)
    # A provenance block per row: each row's notes are a template of their own.
    count = columns._MANY_TEMPLATES + 1
    _assert_as_encode(
        [_encounter(i, _provenance={"source_type": "generated", "generation_seed": i}) for i in range(count)]
    )
    assert taken == [False]


def test_a_provenance_text_that_reads_as_a_slot_goes_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _taken(monkeypatch)
    slot = "\ue0004\ue001"  # reads as a verbatim text's slot
    docs = [_encounter(i, _provenance={"source_type": "generated", "tool": f"tool {slot}"}) for i in range(5)]
    _assert_as_encode(docs)
    assert taken == [False]
    assert slot in columns.encode_columns(LAY, _table(docs), NOW).columns["extensions"][0].as_py()


def test_rows_without_provenance_and_unknown_columns_some_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _taken(monkeypatch)
    docs = [_encounter(i) for i in range(10)]
    for doc in docs[::2]:
        del doc["note"]
    table, absent = columns.absent_nulls(LAY, _table(docs))
    encoded = columns.encode_columns(LAY, table, NOW, absent=absent)
    assert encoded is not None and taken == [True]
    for i, doc in enumerate(docs):
        row, _ = encode(LAY, {k: v for k, v in doc.items() if v is not None}, NOW)  # a null is "not given"
        assert [encoded.columns[name][i].as_py() for name in NOTED] == [row[name] for name in NOTED]


def test_rows_with_a_null_provenance_and_rows_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _taken(monkeypatch)
    provenance = {"source_type": "generated", "generation_seed": 3}
    _assert_as_encode([_encounter(i, _provenance=None if i % 2 else provenance) for i in range(12)])
    assert taken == [True]


def _blocks_both_ways(monkeypatch: pytest.MonkeyPatch, table: pa.Table, absent: dict[str, list[bool]]) -> list[Any]:
    """_provenance_blocks as Arrow numbers the distinct blocks, asserted equal to the row-by-row loop's."""
    n = table.num_rows
    fast = columns._provenance_blocks(LAY, table, n, absent)
    with monkeypatch.context() as patch:
        patch.setattr(columns, "_distinct_blocks", lambda *args: None)
        slow = columns._provenance_blocks(LAY, table, n, absent)
    assert fast == slow
    # Equal blocks are one object (the notes tell rows apart by it), as in the loop.
    assert [[id(b) == id(c) for c in fast] for b in fast] == [[id(b) == id(c) for c in slow] for b in slow]
    return fast


def test_distinct_provenance_blocks_as_the_row_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [
        {"source_type": "generated", "skill_used": "demo", "generation_seed": i % 3, "created_at": None}
        for i in range(12)
    ]
    docs: list[dict[str, Any]] = [_encounter(i, _provenance=None if i % 5 == 4 else blocks[i]) for i in range(12)]
    for doc in docs[1::2]:
        if doc["_provenance"] is not None:
            del doc["_provenance"]["skill_used"]  # a key some blocks lack
    table, absent = columns.absent_nulls(LAY, _table(docs))
    assert "_provenance.skill_used" in absent
    found = _blocks_both_ways(monkeypatch, table, absent)
    assert found.count(None) == 2 and len({id(b) for b in found if b is not None}) == 6
    plain = _table(
        [_encounter(i, _provenance={"source_type": "generated", "generation_seed": i % 2}) for i in range(6)]
    )
    _blocks_both_ways(monkeypatch, plain, {})


def test_provenance_blocks_with_floats_go_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.0 and -0.0 are one block to the loop's dict: such blocks are not numbered by Arrow."""
    called = _taken(monkeypatch, "_distinct_blocks")
    docs = [_encounter(i, _provenance={"source_type": "generated", "weight": (0.0, -0.0)[i % 2]}) for i in range(4)]
    columns._provenance_blocks(LAY, _table(docs), 4, {})
    assert called == [None]
