"""Entity identities made a slice at a time (``derived_uuids``, ``entity_uuids``,
``content_digests``) equal those made one entity at a time (``derived_uuid``,
``entity_uuid``, ``content_digest``), which pin the UUIDs a store holds."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from healthsim_state.codec.columns import documents_table
from healthsim_state.codec.document import nest_flat
from healthsim_state.codec.identity import (
    IDENTITY_NAMESPACE,
    content_digest,
    content_digests,
    derived_uuid,
    derived_uuids,
    entity_uuid,
    entity_uuids,
    identity_prefix,
)
from healthsim_state.codec.layout import layout
from healthsim_state.demo import scenario

SCENARIO = uuid.UUID("0b9d6c9e-8d1f-4a53-9f0e-5d2a7c1b3e44")
# Any text, lone surrogates too (a refused document's key may hold one).
_texts = st.text(max_size=12)


@given(prefix=_texts, identities=st.lists(_texts, max_size=8))
def test_derived_uuids_are_derived_uuid_of_each(prefix: str, identities: list[str]) -> None:
    assert derived_uuids(prefix, identities) == [derived_uuid(prefix + i) for i in identities]


def test_derived_uuid_is_uuid5() -> None:
    name = f"{SCENARIO}\x1fpatient\x1fid:PAT-1"
    assert derived_uuids("", [name]) == [uuid.uuid5(IDENTITY_NAMESPACE, name).hex]


_ids = st.one_of(
    st.none(),
    st.sampled_from(["PAT-1", "PAT-2", "x", "Ünï"]),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    _texts.filter(bool),
)
_keys = st.one_of(st.none(), st.sampled_from(["K1", "K2"]), _texts)


@given(rows=st.lists(st.tuples(_ids, _keys, st.integers(0, 3)), min_size=1, max_size=12), keyed=st.booleans())
def test_entity_uuids_are_entity_uuid_of_each_row(rows: list[tuple[Any, Any, int]], keyed: bool) -> None:
    """Ids (UUIDs or not), business keys and contents mixed in one slice."""
    lay = layout("patient") if keyed else layout("vital_sign")
    key_column = lay.entity.business_key[0] if keyed else None
    prefix = identity_prefix(SCENARIO, lay)
    docs = [{"heart_rate": content} for _, _, content in rows]
    keys = [None if k is None else (k,) for _, k, _ in rows] if keyed else None
    asked: list[int] = []

    def contents(at: list[int]) -> list[str]:
        asked.extend(at)
        return [content_digest(docs[i]) for i in at]

    external_ids = pa.array([i for i, _, _ in rows], type=pa.string())
    expected = [
        entity_uuid(
            prefix,
            lay,
            docs[i],
            {"external_id": external_id, key_column: key} if keyed else {"external_id": external_id},
        )
        for i, (external_id, key, _) in enumerate(rows)
    ]
    assert entity_uuids(prefix, external_ids, keys, contents) == expected
    # Contents are asked only for rows with neither id nor key.
    assert asked == [i for i, (e, k, _) in enumerate(rows) if e is None and (not keyed or k is None)]


_floats = st.floats(allow_nan=True, allow_infinity=True)
_scalar_columns = st.sampled_from(
    [
        (pa.string(), _texts.filter(lambda t: all(not 0xD800 <= ord(c) <= 0xDFFF for c in t))),
        (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
        (pa.float64(), _floats),
        (pa.bool_(), st.booleans()),
        (pa.decimal128(12, 4), st.decimals(min_value=-(10**7), max_value=10**7, places=4)),
        (pa.date32(), st.dates()),
        (pa.timestamp("us"), st.datetimes()),
        (pa.timestamp("us", tz="UTC"), st.datetimes(timezones=st.just(dt.UTC))),
        (pa.null(), st.none()),
    ]
)


@st.composite
def _tables(draw: st.DrawFn) -> pa.Table:
    """Tables of scalar columns and structs of them (nulls included), with ``id`` and ``_provenance``."""
    n = draw(st.integers(1, 6))
    names = draw(st.lists(st.sampled_from(["a", "b", "Zed", "é", 'q"uote', "id", "_provenance", "s"]), unique=True))
    columns: dict[str, pa.Array] = {}
    for name in names:
        if name == "s":
            fields = draw(st.lists(st.sampled_from(["y", "x", "ü"]), unique=True))
            children = []
            for _ in fields:
                kind, values = draw(_scalar_columns)
                children.append(pa.array(draw(st.lists(st.none() | values, min_size=n, max_size=n)), type=kind))
            valid = draw(st.lists(st.booleans(), min_size=n, max_size=n))
            mask = pa.array([not v for v in valid])
            columns[name] = (
                pa.StructArray.from_arrays(children, names=fields, mask=mask)
                if fields
                else pa.array([{} if v else None for v in valid], type=pa.struct([]))
            )
        else:
            kind, values = draw(_scalar_columns)
            columns[name] = pa.array(draw(st.lists(st.none() | values, min_size=n, max_size=n)), type=kind)
    return pa.table(columns) if columns else pa.table({"a": pa.nulls(n)}).drop_columns(["a"])


@given(table=_tables(), data=st.data())
def test_content_digests_are_content_digest_of_each_row(table: pa.Table, data: st.DataObject) -> None:
    rows = data.draw(st.lists(st.integers(0, max(table.num_rows - 1, 0)), max_size=6)) if table.num_rows else []
    docs = table.to_pylist()
    assert content_digests(table, rows) == [content_digest(docs[i]) for i in rows]


def test_content_digests_leave_nested_values_to_each_row() -> None:
    assert content_digests(pa.table({"a": [[1, 2]]}), [0]) is None
    assert content_digests(pa.table({"a": [{"b": {"c": 1}}]}), [0]) is None
    assert content_digests(pa.table({"a": pa.array([b"x"])}), [0]) is None  # bytes: no JSON


def test_plain_dicts_digest_as_their_table() -> None:
    """Dicts whose table reads back as given (documents_table's ``plain``) digest the same from it."""
    checked = digested = 0
    for name, docs in scenario(20).items():
        lay = layout(name)
        docs = list(docs)
        found = documents_table(lay, docs)
        if found is None or not found.plain or found.absent:
            continue
        rows = list(range(len(docs)))
        digests = content_digests(found.table, rows)
        assert digests in (None, [content_digest(nest_flat(lay, d)) for d in docs])
        checked += 1
        digested += digests is not None
    assert checked > 10 and digested > 0  # the column-wise digests did run, not only the fallback


@given(ints=st.lists(st.integers(-5, 5), min_size=1, max_size=4), floats=st.lists(_floats, min_size=1, max_size=4))
def test_dicts_arrow_converts_are_not_plain(ints: list[int], floats: list[float]) -> None:
    """An int among floats (made a float) or a datetime among dates is not read back as given."""
    lay = layout("vital_sign")
    docs: list[dict[str, Any]] = [{"heart_rate": 1, "temperature": v} for v in ints + floats]
    found = documents_table(lay, docs)
    assert found is None or not found.plain
    docs = [{"heart_rate": 1, "temperature": Decimal("1.5")}]
    found = documents_table(lay, docs)
    assert found is None or not found.plain
