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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: The key under which a Synthea entity's unmapped columns are kept in ``extensions``.
EXTENSION_KEY = "synthea"


@dataclass(frozen=True)
class Field:
    """One canonical field of a target: its document path, the SQL that fills it, and the columns it reads.

    ``path`` is the document path (``"name.given_name"`` for nested objects);
    ``sql`` is a DuckDB expression over the source table (aliased ``s``) and
    the joined tables a target names; ``columns`` are the source columns it
    reads (what the coverage test and the docs see); ``note`` is the rule in
    words for ``docs/synthea.md``.
    """

    path: str
    sql: str
    columns: tuple[str, ...] = ()
    note: str = ""


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
    document it. ``exclusions`` describe, for the docs and the summary, the
    rows a target leaves out on purpose and why.
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
    exclusions: tuple[str, ...] = ()
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)
