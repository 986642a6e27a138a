"""Canonical documents to table rows and back, losslessly.

:func:`encode` turns one document into the row of its table: each known
field into its typed column (parsing and checking its type on the way),
everything else into ``extensions``. :func:`decode` rebuilds the document
from the row. What a column cannot say about the document (a field that was
absent and got the column default, an explicit ``null``, the exact text of a
date-time with an offset, which provenance keys were given) is kept in
``extensions["$store"]``, so that ``decode(encode(doc)) == doc`` up to the
normalisations listed in docs/repository.md. Field values are parsed by
:mod:`healthsim_state.codec.values`; entity identity is :mod:`healthsim_state.codec.identity`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from healthsim_models import vocab
from healthsim_state.codec.layout import RENDERED_KINDS, Field, Layout
from healthsim_state.codec.values import (
    DATETIME_CACHE,
    DECIMAL_CACHE,
    SURROGATE,
    UTC,
    Invalid,
    json_problem,
    json_text,
    parse_datetime,
    parse_decimal,
    parse_int,
    parse_str,
    path_key,
    render_datetime,
    shown,
    text_problem,
)

STORE_KEY = "$store"  # reserved key of extensions for the bookkeeping above
PROVENANCE = "_provenance"
PROVENANCE_COLUMNS = ("source_type", "source_system", "skill_used", "generation_seed", "created_at")

_MISSING = object()


def _provenance(
    doc: Mapping[str, Any],
    lay: Layout,
    now: dt.datetime,
    row: dict[str, Any],
    meta: dict[str, Any],
    problems: list[tuple[str, str]],
) -> str | None:
    """Fill the provenance columns of ``row`` and ``meta["provenance"]``.

    Returns the JSON text of ``{"$store": {"provenance": ...}}`` when that
    is all this block adds to ``meta``, so the common extensions need no
    encoding per entity; otherwise None."""
    prov = doc.get(PROVENANCE, _MISSING)
    if prov is _MISSING:
        row["source_type"], row["source_system"] = "loaded", "import"
        row["skill_used"] = row["generation_seed"] = None
        row["created_at"] = now
        return None
    if prov is None:
        row["source_type"], row["source_system"] = "loaded", "import"
        row["skill_used"] = row["generation_seed"] = None
        row["created_at"] = now
        meta.setdefault("nulls", []).append(PROVENANCE)
        return None
    if prov.__class__ is not dict and not isinstance(prov, Mapping):
        row["source_type"], row["source_system"] = "loaded", "import"
        row["skill_used"] = row["generation_seed"] = None
        row["created_at"] = now
        problems.append((PROVENANCE, f"expected an object, got {shown(prov)}"))
        return None
    # Generators stamp the same few provenance blocks on every entity: parse
    # each distinct one once. Blocks with other than plain scalar values
    # (generation_params) are parsed every time: a tuple (True,) equals (1,).
    values, prov_meta, nulls, verbatim, found, meta_text = provenance_parsed(prov, lay)
    row.update(values)
    if row.get("created_at") is None:
        row["created_at"] = now
    meta["provenance"] = prov_meta
    if nulls:
        meta.setdefault("nulls", []).extend(nulls)
    if verbatim:
        meta.setdefault("verbatim", {}).update(verbatim)
    problems.extend(found)
    return meta_text


def provenance_parsed(prov: Mapping[str, Any], lay: Layout) -> tuple[Any, ...]:
    """:func:`_parse_provenance` of ``prov``, each distinct block of plain
    scalars parsed once per process; nothing returned may be mutated."""
    key: tuple[Any, ...] | None = None
    parsed = None
    if all(v.__class__ in _SCALARS for v in prov.values()):
        # The value types belong in the key: True == 1 == 1.0 as dict keys,
        # but only 1 is a valid seed.
        key = (lay.entity.name, *prov.items(), *[v.__class__ for v in prov.values()])
        parsed = _PROV_CACHE.get(key)
    if parsed is None:
        parsed = _parse_provenance(prov, lay)
        if key is not None and len(_PROV_CACHE) < _PROV_CACHE_SIZE:
            _PROV_CACHE[key] = parsed
    return parsed


_PROV_CACHE: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_SCALARS = frozenset({str, int, float, bool, type(None)})
_PROV_CACHE_SIZE = 1024


def _parse_provenance(prov: Mapping[str, Any], lay: Layout) -> tuple[Any, ...]:
    """(column values, meta["provenance"], nulls, verbatim, problems, meta
    text; see :func:`_provenance`) of one ``_provenance`` object; shared by
    every entity that carries an equal one, so nothing returned may be mutated."""
    values: dict[str, Any] = {
        "source_type": "loaded",
        "source_system": "import",
        "skill_used": None,
        "generation_seed": None,
        "created_at": None,
    }
    problems: list[tuple[str, str]] = []
    nulls: list[str] = []
    verbatim: dict[str, str] = {}
    given = [k for k in PROVENANCE_COLUMNS if k in prov]
    extra = {k: v for k, v in prov.items() if k not in PROVENANCE_COLUMNS}
    found = json_problem(extra, PROVENANCE) if extra else None
    if found is not None:
        problems.append(found)
        extra = {}  # not stored: the entity is refused
    prov_meta = {"keys": given, **({"extra": extra} if extra else {})}

    def field_name(key: str) -> str:
        return f"{PROVENANCE}.{key}"

    for key in given:
        if prov[key] is None:
            nulls.append(field_name(key))
    source_type = prov.get("source_type")
    if source_type is None:
        problems.append((field_name("source_type"), "required in _provenance"))
    elif not isinstance(source_type, str) or source_type not in vocab.SOURCE_TYPES:
        problems.append((field_name("source_type"), f"{shown(source_type)} is not one of {sorted(vocab.SOURCE_TYPES)}"))
    else:
        values["source_type"] = source_type
    system = prov.get("source_system")
    if system is None:
        values["source_system"] = lay.entity.product  # canonical-models §10
    elif not isinstance(system, str) or system not in vocab.SOURCE_SYSTEMS:
        problems.append((field_name("source_system"), f"{shown(system)} is not one of {sorted(vocab.SOURCE_SYSTEMS)}"))
    else:
        values["source_system"] = system
    skill = prov.get("skill_used")
    if skill is not None and not isinstance(skill, str):
        problems.append((field_name("skill_used"), f"expected a string, got {shown(skill)}"))
    elif skill is not None and (reason := text_problem(skill)) is not None:
        problems.append((field_name("skill_used"), reason))
    else:
        values["skill_used"] = skill
    values["generation_seed"] = _seed(prov, problems)
    created = prov.get("created_at")
    if created is not None:
        try:
            values["created_at"], text = parse_datetime(_PROV_CREATED, created)
        except Invalid as exc:
            problems.append((field_name("created_at"), str(exc)))
        else:
            if text is not None:
                verbatim[field_name("created_at")] = text
    meta_text = None
    if not nulls and not verbatim and not extra:  # only key names: always valid JSON
        meta_text = json_text({STORE_KEY: {"provenance": prov_meta}})
    return values, prov_meta, tuple(nulls), verbatim, tuple(problems), meta_text


_PROV_CREATED = Field(("created_at",), "created_at", "datetime", False, None)


def _seed(prov: Mapping[str, Any], problems: list[tuple[str, str]]) -> int | None:
    """The first integer of generation_seed, seed, generation_params.seed (§10)."""
    given = prov.get("generation_seed")
    if given is not None and (isinstance(given, bool) or not isinstance(given, int)):
        # Not passed over for a later candidate: the column would load in its place.
        problems.append((f"{PROVENANCE}.generation_seed", f"expected an integer, got {shown(given)}"))
        return None
    params = prov.get("generation_params")
    candidates = [
        ("generation_seed", prov.get("generation_seed")),
        ("seed", prov.get("seed")),
        ("generation_params.seed", params.get("seed") if isinstance(params, Mapping) else None),
    ]
    for name, value in candidates:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**63:
                problems.append((f"{PROVENANCE}.{name}", f"{shown(value)} does not fit a 64-bit seed"))
                return None
            return value
    return None


def encode(lay: Layout, doc: Mapping[str, Any], now: dt.datetime) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The table row for ``doc`` (without ``id`` and the ``*_uuid`` columns;
    ``extensions`` as JSON text), and the problems found as (field, reason) pairs."""
    problems: list[tuple[str, str]] = []
    row: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}  # nested objects given: their unknown keys
    top = lay.plain_keys
    # Most documents hold only top-level fields, id and _provenance: one C-level
    # subset test instead of a look at every key.
    for key, value in () if top.issuperset(doc.keys()) else doc.items():
        if key in top:
            continue
        if key == STORE_KEY:
            problems.append((key, "is reserved by the store; rename the field"))
        elif key in lay.groups and value is not None:
            if value.__class__ is not dict and not isinstance(value, Mapping):
                problems.append((key, f"expected an object, got {shown(value)}"))
                continue
            known = lay.group_keys[key]
            extra = {k: v for k, v in value.items() if k not in known}
            found = json_problem(extra, key) if extra else None
            if found is not None:
                problems.append(found)
                continue
            groups[key] = extra
        elif key in lay.groups:
            meta.setdefault("nulls", []).append(key)
        elif not isinstance(key, str):
            problems.append((shown(key), f"a field name must be a string, not a {type(key).__name__}"))
        elif (reason := text_problem(key)) is not None:
            problems.append((shown(key), f"the field name {reason}"))
        elif (found := json_problem(value, path_key(key))) is not None:
            problems.append(found)
        else:
            unknown[key] = value

    external_id = doc.get("id")
    if external_id is None:
        if "id" in doc:
            meta.setdefault("nulls", []).append("id")
        if lay.entity.person:
            problems.append(("id", "required on person types"))
    elif not isinstance(external_id, str) or not external_id:
        problems.append(("id", f"expected a non-empty string, got {shown(external_id)}"))
        external_id = None
    elif (reason := text_problem(external_id)) is not None:
        problems.append(("id", reason))
        external_id = None
    row["external_id"] = external_id

    emitted_groups = set()
    for field, parse, outer, inner in lay.plan:
        if inner is None:
            value = doc.get(outer, _MISSING)
        else:
            group = doc.get(outer)
            value = group.get(inner, _MISSING) if group.__class__ is dict or isinstance(group, Mapping) else _MISSING
            if value is not _MISSING:
                emitted_groups.add(outer)
        if value is _MISSING or value is None:
            if value is None:
                meta.setdefault("nulls", []).append(field.name)
            if field.required:
                problems.append((field.name, "required" if value is _MISSING else "required, but null"))
            elif field.default is not None and value is _MISSING:
                meta.setdefault("defaulted", []).append(field.name)
            row[field.column] = field.default
            continue
        if (
            parse is parse_str
            and value.__class__ is str
            and "\x00" not in value
            and (value.isascii() or not SURROGATE.search(value))
            and (not field.required or value.strip())
        ):
            row[field.column] = value  # the common case, without the call
            continue
        if parse is parse_int and value.__class__ is int and -2147483648 <= value <= 2147483647:
            row[field.column] = value
            continue
        if parse is parse_decimal and value.__class__ is float:
            number = DECIMAL_CACHE.get((value, field.precision, field.scale))
            if number is not None:
                row[field.column] = number
                continue
        if parse is parse_datetime and value.__class__ is str:
            cached = DATETIME_CACHE.get(value)  # what parse_datetime would look up first
            if cached is not None:
                row[field.column], text = cached
                if text is not None:
                    meta.setdefault("verbatim", {})[field.name] = text
                continue
        try:
            parsed, text = parse(field, value)
        except Invalid as exc:
            problems.append((field.name, str(exc)))
            row[field.column] = None
            continue
        row[field.column] = parsed
        if text is not None:
            meta.setdefault("verbatim", {})[field.name] = text

    for group, extra in groups.items():
        # Keep a group's unknown keys; keep an empty group only when no
        # known field of it will bring it back on decode.
        if extra or group not in emitted_groups:
            unknown[group] = extra

    for column, derive in lay.derived:
        row[column] = derive(doc)
    meta_text = _provenance(doc, lay, now, row, meta, problems)
    try:
        row["extensions"] = extensions_text(meta, unknown, meta_text)
    except Invalid as exc:
        problems.append(("extensions", str(exc)))
        row["extensions"] = None
    return row, problems


def extensions_text(meta: dict[str, Any], unknown: dict[str, Any], meta_text: str | None) -> str | None:
    """The ``extensions`` column of a row: its unknown fields and ``meta`` under
    :data:`STORE_KEY`, as JSON text (None when both are empty). ``meta_text``:
    the text of ``meta["provenance"]`` alone, when :func:`provenance_parsed`
    has it. Raises :class:`Invalid` (adding ``meta`` to ``unknown``)."""
    if meta_text is not None and not unknown:
        if len(meta) == 1:
            return meta_text
        if len(meta) == 2 and "verbatim" in meta:
            return _with_verbatim(meta_text, meta["verbatim"])
        if _PLAIN_META.issuperset(meta):
            return _store_text(meta, meta_text)
    if meta or unknown:
        if meta:
            unknown[STORE_KEY] = meta
        return json_text(unknown)
    return None


_PLAIN_META = frozenset({"nulls", "defaulted", "verbatim", "provenance"})
_STORE_OPEN = '{"' + STORE_KEY + '":{'


def _store_text(meta: dict[str, Any], meta_text: str) -> str:
    """``{"$store": meta}`` as JSON text, without the JSON encoder, for a
    ``meta`` of field names (``nulls``, ``defaulted``), verbatim texts (see
    :func:`_with_verbatim`) and the provenance whose text is ``meta_text``:
    nothing in them needs escaping (names of the layout's fields, groups and
    provenance keys)."""
    parts = []
    for key, value in meta.items():
        if key == "provenance":
            parts.append(meta_text[len(_STORE_OPEN) : -2])
        elif key == "verbatim":
            parts.append('"verbatim":{' + ",".join(f'"{name}":"{text}"' for name, text in value.items()) + "}")
        else:
            parts.append(f'"{key}":[' + ",".join(f'"{name}"' for name in value) + "]")
    return _STORE_OPEN + ",".join(parts) + "}}"


def _with_verbatim(meta_text: str, verbatim: dict[str, str]) -> str:
    """``meta_text`` (``{"$store": {"provenance": ...}}``) with ``verbatim`` added
    to ``$store``, without the JSON encoder: generated date-times usually carry
    an offset, so this runs for most entities. Nothing needs escaping: the keys
    are field names of the layout and the values texts that the date or
    date-time pattern matched (digits, ``-:.TZ+``)."""
    pairs = ",".join(f'"{name}":"{text}"' for name, text in verbatim.items())
    return f'{meta_text[:-2]},"verbatim":{{{pairs}}}}}}}'


def _render(kind: str, value: Any) -> Any:
    if kind == "date":
        return value.isoformat()
    if kind == "datetime":
        return render_datetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    if kind == "array" and isinstance(value, str):
        return json.loads(value)
    return value


_RENDERED = RENDERED_KINDS
_EMPTY: frozenset[str] = frozenset()
_NO_META: dict[str, Any] = {}


# Stored extensions texts that hold only the store's bookkeeping (most rows:
# the same provenance block, often the same nulls), parsed once per process:
# text -> (meta, nulls, defaulted, verbatim). Only texts whose parsed parts
# decode reads without handing them out are kept (no unknown fields, no
# provenance "extra"), so no document shares a mutable object with another.
_STORE_ONLY: dict[str, tuple[dict[str, Any], frozenset[str], frozenset[str], dict[str, str]]] = {}
_STORE_ONLY_SIZE = 65_536


def _store_only(text: str, parsed: Any) -> tuple[Any, ...] | None:
    """The cache entry for ``text`` (added to the cache), or None when it holds
    more than the store's bookkeeping."""
    if parsed.__class__ is not dict or len(parsed) != 1 or STORE_KEY not in parsed:
        return None
    meta = parsed[STORE_KEY]
    if meta.__class__ is not dict or "extra" in (meta.get("provenance") or _NO_META):
        return None
    entry = (
        meta,
        frozenset(meta.get("nulls", ())),
        frozenset(meta.get("defaulted", ())),
        meta.get("verbatim") or _NO_META,
    )
    if len(_STORE_ONLY) >= _STORE_ONLY_SIZE:
        _STORE_ONLY.clear()
    _STORE_ONLY[text] = entry
    return entry


def decode(lay: Layout, row: Mapping[str, Any]) -> dict[str, Any]:
    """The document that :func:`encode` was given for ``row``."""
    extensions = row["extensions"]
    parsed = _STORE_ONLY.get(extensions) if extensions.__class__ is str else None
    if parsed is not None:
        extensions = {}
        meta, nulls, defaulted, verbatim = parsed
    else:
        if isinstance(extensions, str):
            text = extensions
            extensions = json.loads(text)
            parsed = _store_only(text, extensions)
        extensions = dict(extensions) if extensions else {}
        meta = extensions.pop(STORE_KEY, None) or _NO_META
        if parsed is not None:
            meta, nulls, defaulted, verbatim = parsed
        else:
            nulls = set(meta["nulls"]) if "nulls" in meta else _EMPTY
            defaulted = set(meta["defaulted"]) if "defaulted" in meta else _EMPTY
            verbatim = meta.get("verbatim") or _NO_META

    doc: dict[str, Any] = {}
    if row["external_id"] is not None:
        doc["id"] = row["external_id"]
    elif "id" in nulls:
        doc["id"] = None
    if nulls or defaulted:
        for name, column, kind, outer, inner in lay.decode_plan:
            if name in nulls:
                value: Any = None
            else:
                value = row[column]
                if value is None or name in defaulted:
                    continue
                if kind in _RENDERED:
                    # Only date-times keep verbatim text (encode's parsers say so).
                    value = verbatim.get(name) or _render(kind, value)
            if inner is None:
                doc[outer] = value
            else:
                group = doc.get(outer)
                if group is None:
                    group = doc[outer] = {}
                group[inner] = value
    else:  # most rows: the same walk without the look-ups that cannot hit
        for name, column, rendered, outer, inner in lay.decode_steps:
            value = row[column]
            if value is None:
                continue
            if rendered is not None:
                value = verbatim.get(name) or _render(rendered, value)
            if inner is None:
                doc[outer] = value
            else:
                group = doc.get(outer)
                if group is None:
                    group = doc[outer] = {}
                group[inner] = value
    for key, value in extensions.items():
        if key in lay.groups and isinstance(value, dict):
            doc.setdefault(key, {}).update(value)
        else:
            doc[key] = value
    for group in lay.groups:
        if group in nulls:
            doc[group] = None

    prov_meta = meta.get("provenance")
    if prov_meta is not None:
        prov: dict[str, Any] = {}
        for key in prov_meta["keys"]:
            name = f"{PROVENANCE}.{key}"
            if name in nulls:
                prov[key] = None
            elif key == "created_at":
                prov[key] = verbatim.get(name) or _render("datetime", row["created_at"])
            else:
                prov[key] = row[key]
        prov.update(prov_meta.get("extra", {}))
        doc[PROVENANCE] = prov
    elif PROVENANCE in nulls:
        doc[PROVENANCE] = None
    return doc


def decode_table(lay: Layout, data: pa.Table) -> list[dict[str, Any]]:
    """The documents of the rows of ``data`` (the table's Arrow schema, JSON as
    text), each as :func:`decode` gives it, built column by column.

    A load's rows mostly carry an ``extensions`` text holding only the store's
    bookkeeping, without nulls or defaults; their documents are filled a
    column at a time (no row dict, no look-up per value by column name), in
    decode's key order. Every other row goes through :func:`decode`.
    """
    rows = data.num_rows
    if not rows:
        return []
    lists: dict[str, list[Any]] = {}

    def values(column: str) -> list[Any]:
        found = lists.get(column)
        if found is None:
            array = data.column(column)
            if pa.types.is_timestamp(array.type) and array.type.tz is not None:
                # Naive UTC, as the dialects' rows give them: pyarrow builds those
                # several times faster, and decode reads a naive one as UTC.
                array = array.cast(pa.timestamp(array.type.unit))
            found = lists[column] = array.to_pylist()
        return found

    # Each distinct extensions text looked up (or parsed) once; None: decode's whole walk.
    encoded = data.column("extensions").combine_chunks().cast(pa.string()).dictionary_encode()
    distinct = [_plain_entry(text) for text in encoded.dictionary.to_pylist()]
    entries = [_NULL_ENTRY if i is None else distinct[i] for i in encoded.indices.to_pylist()]
    plain = [i for i, entry in enumerate(entries) if entry is not None]
    # Optional fields often have no value in a whole type: neither made Python values nor walked.
    empty = frozenset(
        name for name, array in zip(data.column_names, data.columns, strict=True) if array.null_count == rows
    )
    if len(plain) == rows:
        docs = _plain_documents(lay, entries, values, empty)
    else:
        docs = [None] * rows  # type: ignore[list-item]
        if plain:
            taken = {}

            def subset(column: str) -> list[Any]:
                found = taken.get(column)
                if found is None:
                    every = values(column)
                    found = taken[column] = [every[i] for i in plain]
                return found

            for i, doc in zip(plain, _plain_documents(lay, [entries[i] for i in plain], subset, empty), strict=True):
                docs[i] = doc
        names = data.column_names
        columns = [values(name) for name in names]
        for i, entry in enumerate(entries):
            if entry is None:
                docs[i] = decode(lay, dict(zip(names, [column[i] for column in columns], strict=True)))
    return docs


#: What a NULL extensions is to decode: no bookkeeping at all.
_NULL_ENTRY: tuple[dict[str, Any], frozenset[str], frozenset[str], dict[str, str]] = (
    _NO_META,
    _EMPTY,
    _EMPTY,
    _NO_META,
)


def _plain_entry(text: str | None) -> tuple[Any, ...] | None:
    """The :data:`_STORE_ONLY` entry of an extensions text without nulls or
    defaults (parsed and cached if new), else None."""
    if text is None:
        return _NULL_ENTRY
    entry = _STORE_ONLY.get(text)
    if entry is None:
        entry = _store_only(text, json.loads(text))
    if entry is None or entry[1] or entry[2]:
        return None
    return entry


def _plain_documents(
    lay: Layout, entries: list[tuple[Any, ...]], values: Any, empty: frozenset[str]
) -> list[dict[str, Any]]:
    """:func:`decode`'s documents of rows whose extensions entries are plain
    (:func:`_plain_entry`), ``values(column)`` giving a column's values;
    ``empty``: the columns with no value in any row, which add nothing."""
    docs: list[dict[str, Any]] = [{} for _ in entries]
    for doc, value in zip(docs, values("external_id"), strict=True):
        if value is not None:
            doc["id"] = value
    verbatims = [entry[3] for entry in entries]
    for name, column, rendered, outer, inner in lay.decode_steps:
        if column in empty:
            continue
        column_values = values(column)
        if rendered is not None:  # the column rendered whole first, then placed
            column_values = [
                None if value is None else verbatim.get(name) or _render(rendered, value)
                for value, verbatim in zip(column_values, verbatims, strict=True)
            ]
        if inner is None:
            for doc, value in zip(docs, column_values, strict=True):
                if value is not None:
                    doc[outer] = value
            continue
        for doc, value in zip(docs, column_values, strict=True):
            if value is not None:
                if outer in doc:
                    doc[outer][inner] = value
                else:
                    doc[outer] = {inner: value}
    created_name = f"{PROVENANCE}.created_at"
    # The provenance keys' columns, fetched once (entries repeat: one per distinct extensions text).
    keyed = {id(entry[0]): entry[0].get("provenance") for entry in entries}
    needed = {key for prov_meta in keyed.values() if prov_meta for key in prov_meta["keys"]}
    columns = {key: values(key) for key in needed}
    for i, (doc, entry) in enumerate(zip(docs, entries, strict=True)):
        prov_meta = keyed[id(entry[0])]
        if prov_meta is None:
            continue
        prov: dict[str, Any] = {}
        for key in prov_meta["keys"]:
            if key == "created_at":
                prov[key] = entry[3].get(created_name) or _render("datetime", columns[key][i])
            else:
                prov[key] = columns[key][i]
        doc[PROVENANCE] = prov
    return docs


def nest_flat(lay: Layout, doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """Move flat column names (``given_name``) into their nested objects (``name``)."""
    flat = lay.flat_keys
    if flat.keys().isdisjoint(doc):
        return doc
    if any(g in doc and not isinstance(doc[g], Mapping) for g in lay.groups):
        return doc  # ambiguous (flat fields beside a non-object group): keep as sent
    nested: dict[str, Any] = {}
    for key, value in doc.items():
        path = flat.get(key)
        if path is None:
            if key in lay.groups and isinstance(value, Mapping):
                nested.setdefault(key, {}).update(value)
            else:
                nested[key] = value
        else:
            nested.setdefault(path[0], {})[path[1]] = value
    return nested
