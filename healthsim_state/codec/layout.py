"""Where each document field lives in its table, derived from the models.

A :class:`Layout` per entity type lists the :class:`Field` s of the canonical
document that have a column: the document path (``("name", "given_name")``),
the column, its kind (from the column type), whether it is required (a NOT
NULL column without a default) and its default. Nothing here repeats a
column list: adding a column to a model adds the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal
from functools import cache, cached_property
from typing import Any

import sqlalchemy as sa

from healthsim_models.registry import ENTITY_TYPES, EntityType, entity_type
from healthsim_state.codec import rules

# Columns every canonical table has that are not document fields.
FRAME_COLUMNS = frozenset(
    {
        "id",
        "external_id",
        "extensions",
        "created_at",
        "updated_at",
        "source_type",
        "source_system",
        "skill_used",
        "generation_seed",
    }
)

# Nested objects of the canonical JSON, flattened into columns.
NESTED_PATHS: dict[str, tuple[str, ...]] = {
    **{c: ("name", c) for c in ("given_name", "middle_name", "family_name", "prefix", "suffix")},
    **{c: ("address", c) for c in ("street_address", "street_address_2", "city", "state", "postal_code", "country")},
    **{c: ("contact", c) for c in ("phone", "phone_mobile", "email")},
    "ordering_provider_npi": ("ordering_provider", "npi"),
    "performing_lab_id": ("performing_lab", "id"),
    "performing_lab_name": ("performing_lab", "name"),
}

# Columns computed from other fields, never read from or written to documents.
DERIVED_COLUMNS: dict[str, frozenset[str]] = {"order": frozenset({"ordering_provider_name"})}

# Required in documents although the column is nullable (canonical-models §12.6).
EXTRA_REQUIRED: dict[str, frozenset[str]] = {"diagnosis": frozenset({"description"})}

PERSON_TYPES = frozenset({"patient", "member", "subject"})


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]
    column: str
    kind: str  # str | date | datetime | int | decimal | bool | array
    required: bool
    default: Any
    precision: int | None = None
    scale: int | None = None
    # Most characters a text value may have (rules.INDEXED_TEXT_MAX_CHARS for
    # text columns in an index or key, which PostgreSQL limits); None: any.
    max_length: int | None = None
    # The dotted document name ("name.given_name"); computed once, read per row.
    name: str = dataclass_field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", ".".join(self.path))


@dataclass(frozen=True)
class Layout:
    entity: EntityType
    fields: tuple[Field, ...]
    # Top-level document keys that hold nested objects of known fields.
    groups: frozenset[str]
    uuid_columns: tuple[str, ...]
    derived_columns: frozenset[str]
    # Document keys of top-level fields; known keys inside each group.
    top_fields: frozenset[str]
    group_keys: dict[str, frozenset[str]]

    @cached_property
    def plan(self) -> tuple[tuple[Field, Any, str, str | None], ...]:
        """Per field: (field, parser, top-level key, key inside the group or None).

        What ``serialization.encode`` walks for every document, precomputed.
        """
        from healthsim_state.codec.document import PARSERS

        return tuple((f, PARSERS[f.kind], f.path[0], f.path[1] if len(f.path) > 1 else None) for f in self.fields)

    @cached_property
    def plain_keys(self) -> frozenset[str]:
        """Document keys that ``encode`` reads without looking inside: the
        top-level fields, ``id`` and ``_provenance``."""
        return self.top_fields | {"id", "_provenance"}

    @cached_property
    def decode_plan(self) -> tuple[tuple[str, str, str, str, str | None], ...]:
        """Per field: (dotted name, column, kind, top-level key, key inside the
        group or None). What ``serialization.decode`` walks for every row."""
        return tuple((f.name, f.column, f.kind, f.path[0], f.path[1] if len(f.path) > 1 else None) for f in self.fields)

    @cached_property
    def limited(self) -> tuple[tuple[str, str, int], ...]:
        """(dotted name, column, most characters) of the fields with a length limit."""
        return tuple((f.name, f.column, f.max_length) for f in self.fields if f.max_length is not None)

    @cached_property
    def flat_keys(self) -> dict[str, tuple[str, ...]]:
        """Flat column names of nested fields (``given_name``) -> document path."""
        return {f.column: f.path for f in self.fields if len(f.path) > 1}

    @cached_property
    def column_of(self) -> dict[str, str]:
        """Dotted document name -> column (the rule tables use document names)."""
        return {f.name: f.column for f in self.fields}

    @cached_property
    def columns(self) -> list[str]:
        """Every column of the table, in table order."""
        return [c.name for c in self.entity.model.__table__.columns]


def _kind(column: sa.Column) -> tuple[str, int | None, int | None]:
    t = column.type
    if isinstance(t, sa.Numeric) and not isinstance(t, sa.Integer | sa.Float):
        return "decimal", t.precision, t.scale
    for sa_type, kind in (
        (sa.Boolean, "bool"),
        (sa.Integer, "int"),
        (sa.DateTime, "datetime"),
        (sa.Date, "date"),
        (sa.JSON, "array"),
        (sa.String, "str"),
    ):
        if isinstance(t, sa_type):
            return kind, None, None
    raise TypeError(f"no document kind for column {column} of type {t!r}")


def _default(column: sa.Column, kind: str) -> Any:
    """The Python value of a column's server default (None without one)."""
    if column.server_default is None:
        return None
    arg = column.server_default.arg  # type: ignore[attr-defined]
    text = arg if isinstance(arg, str) else str(arg.compile(dialect=sa.dialects.postgresql.dialect()))
    text = text.strip()
    if kind == "bool":
        return text.lower() == "true"
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    if kind == "int":
        return int(text)
    if kind == "decimal":
        return Decimal(text)
    raise ValueError(f"cannot read the default {text!r} of {column}")


def _indexed_columns(table: sa.Table) -> frozenset[str]:
    """Columns of ``table`` in any index, unique constraint or primary key (on
    either backend: a value must fit wherever the index exists)."""
    names = {c.name for index in table.indexes for c in index.columns}
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint | sa.PrimaryKeyConstraint):
            names.update(c.name for c in constraint.columns)
    return frozenset(names)


@cache
def layout(type_name: str) -> Layout:
    """The field layout of one entity type (singular or plural name)."""
    et = entity_type(type_name)
    uuid_columns = tuple(ref.uuid_column for ref in et.references)
    derived = DERIVED_COLUMNS.get(et.name, frozenset())
    fields = []
    indexed = _indexed_columns(et.model.__table__)
    for column in et.model.__table__.columns:
        name = column.name
        if name in FRAME_COLUMNS or name in uuid_columns or name in derived:
            continue
        kind, precision, scale = _kind(column)
        default = _default(column, kind)
        required = (not column.nullable and default is None) or name in EXTRA_REQUIRED.get(et.name, frozenset())
        path = NESTED_PATHS.get(name, (name,))
        max_length = rules.INDEXED_TEXT_MAX_CHARS if kind == "str" and name in indexed else None
        fields.append(Field(path, name, kind, required, default, precision, scale, max_length))
    groups = frozenset(f.path[0] for f in fields if len(f.path) > 1)
    return Layout(
        entity=et,
        fields=tuple(fields),
        groups=groups,
        uuid_columns=tuple(dict.fromkeys(uuid_columns)),
        derived_columns=derived,
        top_fields=frozenset(f.path[0] for f in fields if len(f.path) == 1),
        group_keys={g: frozenset(f.path[1] for f in fields if f.path[0] == g) for g in groups},
    )


def all_layouts() -> list[Layout]:
    return [layout(et.name) for et in ENTITY_TYPES]
