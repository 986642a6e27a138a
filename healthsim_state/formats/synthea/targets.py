"""How a Synthea CSV file becomes canonical entities: the declarations.

A :class:`Target` says which entity type a file's rows become and, per
canonical field, the SQL expression over the file's columns that fills it
(:class:`Field`). The importer runs each target's query over the source
tables the reader loaded (one table per CSV file, named like the file,
every column VARCHAR in the latest layout's spelling, plus ``_line``, the
row's line number in the file); ``docs/synthea.md`` is generated from the
same declarations, and the column-coverage test reads them too.

Every source column a target does not name in ``Field.columns`` goes to the
entity's ``extensions`` under ``synthea``, verbatim (the text of the cell),
so no column is dropped; ``also_kept`` names mapped columns that are kept
there verbatim as well, because the mapping changes their value.

:func:`select_sql` builds a target's query over a loaded folder
(:class:`~healthsim_state.formats.synthea.reader.Loaded`): one row per
entity, columns named like document keys (``id``, the fields, nested
objects as STRUCTs, ``synthea`` for the kept columns) plus ``_line``, the
line of the row it came from (the importer keeps the last row of each
``id``, in file order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from healthsim_state.formats.synthea.sql import derived_uuid, ident

if TYPE_CHECKING:
    from healthsim_state.formats.synthea.reader import Loaded

#: The key under which a Synthea entity's unmapped columns are kept in ``extensions``.
EXTENSION_KEY = "synthea"


@dataclass(frozen=True)
class Field:
    """One canonical field of a target: its document path, the SQL that fills it, and the columns it reads.

    ``path`` is the document path (``"name.given_name"`` for nested objects);
    ``sql`` is a DuckDB expression over the source table (aliased ``s``) and
    the joined tables a target names; ``columns`` are the source columns it
    reads (what the coverage test and the docs see); ``note`` is the rule in
    words for ``docs/synthea.md``. ``needs`` are files that must be in the
    folder for the field to be filled (a reference to an organization needs
    organizations.csv, since a reference must resolve); without them the
    field is left out and its columns are kept in ``extensions``.
    ``source`` is the file whose columns ``columns`` names when it is not
    the target's own (a file folded into another file's entities).
    ``refuse`` is a :class:`Refusal` for values the mapping has no answer
    for: the importer refuses the file at the first such row, naming its
    line and the field's first column, before anything is saved.
    """

    path: str
    sql: str
    columns: tuple[str, ...] = ()
    note: str = ""
    needs: tuple[str, ...] = ()
    source: str | None = None
    refuse: Refusal | None = None


@dataclass(frozen=True)
class Refusal:
    """Rows a field cannot map: the SQL (over ``s``) true for them and why, as the error says it."""

    when: str
    reason: str


@dataclass(frozen=True)
class Exclusion:
    """Rows a target leaves out on purpose: why, and the SQL (over ``s`` and the
    target's joins) that is true for them; the importer counts them per file."""

    reason: str
    where: str


@dataclass(frozen=True)
class Stage:
    """A table a folding target's query reads, created before the query runs: ``select`` is its query."""

    name: str
    select: str


@dataclass(frozen=True)
class Target:
    """The rows of one Synthea file as entities of one canonical type.

    ``file`` is the CSV file's stem (``"encounters"``); ``entity_type`` the
    registry name. ``identity`` are the columns that identify a row: the
    file's ``Id`` where it has one (used as the entity ``id``), else its
    natural key, from which a stable UUID is derived. ``where`` filters the
    rows (SQL over ``s``); ``joins`` are extra ``FROM`` clauses
    (``"LEFT JOIN providers p ON p.Id = s.PROVIDER"``) and ``needs`` the
    files they read, which must be present for the target to run; ``query``
    replaces the generated SELECT for targets that fold several rows into
    one entity (vital signs, claim lines, members), and then ``fields`` only
    document it: it is called as ``query(target, loaded)`` and returns SQL
    with the columns :func:`select_sql` would (``id``, document keys,
    ``_line``); :func:`extensions_sql` and :func:`identity_sql` help build
    it. ``staged`` (called the same way) gives tables the target's SQL reads
    (:class:`Stage`), which the importer creates in the folder's database
    first: what a fold computes once over a whole file, rather than once per
    chunk of lines read. A query is stored in a table unless ``row_wise`` (one entity per
    row of the file, whose ``_line`` it keeps, as a plain target has): such a
    query is read by chunks of the file's lines, as a plain target's is.
    ``attach`` names document keys filled in Arrow, batch by batch,
    with a list per entity of rows folded into it: the query selects the key
    as NULL where the list goes, and ``attach[key](target, loaded, first,
    last)`` returns SQL for the rows owned by the entities of lines ``first``
    to ``last``: ``_owner`` (the owning entity's ``_line``) and ``value``,
    ordered by ``_owner`` and then as the list has them. Folding wide rows
    into lists in DuckDB (a ``list()`` aggregate) costs several times what
    their sorted read and an Arrow list over it do. ``exclusions`` describe, for the docs, the rows a target leaves out
    on purpose and why; ``excluded`` are those the importer counts for the
    summary (with SQL that finds them).
    """

    file: str
    entity_type: str
    identity: tuple[str, ...]
    fields: tuple[Field, ...]
    where: str | None = None
    joins: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    also_kept: tuple[str, ...] = ()
    query: Callable[..., str] | None = None
    staged: Callable[..., tuple[Stage, ...]] | None = None
    row_wise: bool = False
    attach: dict[str, Callable[..., str]] = field(default_factory=dict)
    exclusions: tuple[str, ...] = ()
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    excluded: tuple[Exclusion, ...] = ()

    def runs_on(self, loaded: Loaded) -> bool:
        """Whether the folder has the target's file and the files it needs."""
        return loaded.has(self.file, *self.needs)

    def fields_on(self, loaded: Loaded) -> tuple[Field, ...]:
        """The fields filled on this folder (those whose ``needs`` are present)."""
        return tuple(f for f in self.fields if loaded.has(*f.needs))


def mapped_columns(target: Target, loaded: Loaded) -> frozenset[str]:
    """The source columns the target's filled fields read (and do not also keep)."""
    used = {c for f in target.fields_on(loaded) if f.source in (None, target.file) for c in f.columns}
    if is_id(target):
        used.add(target.identity[0])  # it is the entity's id
    return frozenset(used - set(target.also_kept))


def kept_columns(target: Target, loaded: Loaded) -> tuple[str, ...]:
    """The columns of the target's file kept verbatim under ``synthea``, in file order.

    Every column the file has (known or not) that no filled field maps, plus
    ``also_kept``; known columns the file lacks are not added.
    """
    lf = loaded.files[target.file]
    mapped = mapped_columns(target, loaded)
    return tuple(c for c in (*lf.present, *lf.unknown) if c not in mapped)


def extensions_sql(target: Target, loaded: Loaded, alias: str = "s") -> str | None:
    """SQL for the ``synthea`` object of the kept columns (text as in the file), or None when none is kept."""
    kept = kept_columns(target, loaded)
    if not kept:
        return None
    return "struct_pack(" + ", ".join(f"{ident(c)} := {alias}.{ident(c)}" for c in kept) + ")"


def is_id(target: Target) -> bool:
    """Whether the target's identity is the file's own Id (the entity ``id`` as is)."""
    return len(target.identity) == 1 and target.identity[0].upper() == "ID"


def identity_sql(target: Target, alias: str = "s") -> str:
    """SQL for the entity ``id``: the file's Id, or a UUID derived from the natural key."""
    if is_id(target):
        return f"{alias}.{ident(target.identity[0])}"
    return derived_uuid(target.file, *(f"{alias}.{ident(c)}" for c in target.identity))


def select_sql(target: Target, loaded: Loaded) -> str:
    """The target's query over the loaded folder: one row per entity, document keys as columns, and ``_line``."""
    if target.query is not None:
        return target.query(target, loaded)
    nested: dict[str, list[str]] = {}
    columns = [f"{identity_sql(target)} AS id"]
    for fld in target.fields_on(loaded):
        head, _, rest = fld.path.partition(".")
        if rest:
            nested.setdefault(head, []).append(f"{ident(rest)} := ({fld.sql})")
        else:
            columns.append(f"({fld.sql}) AS {ident(head)}")
    columns += [f"struct_pack({', '.join(parts)}) AS {ident(head)}" for head, parts in nested.items()]
    kept = extensions_sql(target, loaded)
    if kept is not None:
        columns.append(f"{kept} AS {EXTENSION_KEY}")
    columns.append("s._line AS _line")
    sql = f"SELECT {', '.join(columns)} FROM {ident(target.file)} s"
    if target.joins:
        sql += " " + " ".join(target.joins)
    if target.where:
        sql += f" WHERE {target.where}"
    return sql
