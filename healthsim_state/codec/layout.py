"""Where each document field lives in its table, and what it accepts, derived from the models.

A :class:`Layout` per entity type lists the :class:`Field` s of the canonical
document that have a column: the document path (``("name", "given_name")``),
the column, its kind (from the column type), whether it is required (a NOT
NULL column without a default, or a rule's ``doc_required``), its default
and its value rules (the column's :class:`~healthsim_models.columns.FieldRule`).
Nothing here repeats a column list or a rule: adding a column or a rule to a
model adds it here. Layouts are built once per type and cached; what a row
check or the encoder walks per entity is precomputed on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal
from functools import cache, cached_property
from typing import Any

import sqlalchemy as sa

from healthsim_models import vocab
from healthsim_models.columns import Derive, FieldRule, rule_of
from healthsim_models.registry import ENTITY_TYPES, EntityType, entity_type
from healthsim_state.codec.values import PARSERS

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


#: Kinds whose column value is not the document's: decode renders it.
RENDERED_KINDS = frozenset({"date", "datetime", "array"})


@dataclass(frozen=True)
class Field:
    """One document field with a column: where it is, its kind and its rules.

    The rule attributes are those of :class:`~healthsim_models.columns.FieldRule`;
    ``not_before`` is the dotted document name of the partner field.
    """

    path: tuple[str, ...]
    column: str
    kind: str  # str | date | datetime | int | decimal | bool | array
    required: bool
    default: Any
    precision: int | None = None
    scale: int | None = None
    # Most characters a text value may have (vocab.INDEXED_TEXT_MAX_CHARS for
    # text columns in an index or key, which PostgreSQL limits); None: any.
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    enum: frozenset[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    not_before: str | None = None
    items: str = "str"  # the item kind of an array: str | int | object
    max_items: int | None = None
    item_enum: frozenset[str] | None = None
    bare_date_ok: bool = False
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
    # Columns computed from the document (never read from it): (column, function).
    derived: tuple[tuple[str, Derive], ...]
    # Document keys of top-level fields; known keys inside each group.
    top_fields: frozenset[str]
    group_keys: dict[str, frozenset[str]]

    @cached_property
    def plan(self) -> tuple[tuple[Field, Any, str, str | None], ...]:
        """Per field: (field, parser, top-level key, key inside the group or None).

        What ``document.encode`` walks for every document, precomputed.
        """
        return tuple((f, PARSERS[f.kind], f.path[0], f.path[1] if len(f.path) > 1 else None) for f in self.fields)

    @cached_property
    def plain_keys(self) -> frozenset[str]:
        """Document keys that ``encode`` reads without looking inside: the
        top-level fields, ``id`` and ``_provenance``."""
        return self.top_fields | {"id", "_provenance"}

    @cached_property
    def document_keys(self) -> frozenset[str]:
        """Document keys that are fields (top-level, groups, flat names of nested ones), ``id`` or ``_provenance``."""
        return self.plain_keys | self.groups | frozenset(self.flat_keys)

    @cached_property
    def object_arrays(self) -> frozenset[str]:
        """Array fields whose items are objects."""
        return frozenset(f.name for f in self.fields if f.kind == "array" and f.items == "object")

    @cached_property
    def arrays(self) -> frozenset[str]:
        """Document keys of the top-level array fields."""
        return frozenset(f.name for f in self.fields if f.kind == "array" and len(f.path) == 1)

    @cached_property
    def decode_plan(self) -> tuple[tuple[str, str, str, str, str | None], ...]:
        """Per field: (dotted name, column, kind, top-level key, key inside the
        group or None). What ``document.decode`` walks for every row."""
        return tuple((f.name, f.column, f.kind, f.path[0], f.path[1] if len(f.path) > 1 else None) for f in self.fields)

    @cached_property
    def decode_steps(self) -> tuple[tuple[str, str, str | None, str, str | None], ...]:
        """:attr:`decode_plan` with the kind only where decode renders the
        value (date, date-time, array), else None."""
        return tuple(
            (name, column, kind if kind in RENDERED_KINDS else None, outer, inner)
            for name, column, kind, outer, inner in self.decode_plan
        )

    @cached_property
    def limited(self) -> tuple[tuple[str, str, int], ...]:
        """(dotted name, column, most characters) of the fields with a length limit."""
        return tuple((f.name, f.column, f.max_length) for f in self.fields if f.max_length is not None)

    # What checks.check_row walks for every row: the fields with each kind of rule.

    @cached_property
    def enums(self) -> tuple[tuple[str, str, frozenset[str], str], ...]:
        """(dotted name, column, allowed values, the values listed for a message)."""
        return tuple((f.name, f.column, f.enum, ", ".join(sorted(f.enum))) for f in self.fields if f.enum)

    @cached_property
    def patterns(self) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
        """(dotted name, column, pattern the whole text must match)."""
        return tuple((f.name, f.column, f.pattern) for f in self.fields if f.pattern is not None)

    @cached_property
    def ranges(self) -> tuple[tuple[str, str, float | None, float | None], ...]:
        """(dotted name, column, minimum, maximum) of the fields with bounds."""
        return tuple(
            (f.name, f.column, f.minimum, f.maximum)
            for f in self.fields
            if f.minimum is not None or f.maximum is not None
        )

    @cached_property
    def orderings(self) -> tuple[tuple[str, str, str, str], ...]:
        """(end's dotted name, end column, start's dotted name, start column):
        the end may not come before the start."""
        column_of = self.column_of
        return tuple(
            (f.name, f.column, f.not_before, column_of[f.not_before]) for f in self.fields if f.not_before is not None
        )

    @cached_property
    def item_enums(self) -> tuple[tuple[str, str, frozenset[str], str], ...]:
        """(dotted name, column, allowed item values, the values listed) of arrays."""
        return tuple(
            (f.name, f.column, f.item_enum, ", ".join(sorted(f.item_enum))) for f in self.fields if f.item_enum
        )

    @cached_property
    def flat_keys(self) -> dict[str, tuple[str, ...]]:
        """Flat column names of nested fields (``given_name``) -> document path."""
        return {f.column: f.path for f in self.fields if len(f.path) > 1}

    @cached_property
    def column_of(self) -> dict[str, str]:
        """Dotted document name -> column."""
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


def layout(type_name: str) -> Layout:
    """The field layout of one entity type (singular or plural name)."""
    return _layout(entity_type(type_name))


@cache
def _layout(et: EntityType) -> Layout:
    # Cached per EntityType, not per name: a type registered under a name
    # that an earlier registration used gets its own layout.
    table = et.model.__table__
    uuid_columns = tuple(ref.uuid_column for ref in et.references)
    derived = []
    fields = []
    indexed = _indexed_columns(table)
    names = {c.name: ".".join(rule_of(c).path or (c.name,)) for c in table.columns}
    for column in table.columns:
        name = column.name
        rule = rule_of(column)
        if rule.derived is not None:
            derived.append((name, rule.derived))
        if name in FRAME_COLUMNS or name in uuid_columns or rule.derived is not None:
            continue
        kind, precision, scale = _kind(column)
        _check_rule(et, name, kind, rule)
        default = _default(column, kind)
        required = (not column.nullable and default is None) or rule.doc_required
        max_length = vocab.INDEXED_TEXT_MAX_CHARS if kind == "str" and name in indexed else None
        fields.append(
            Field(
                rule.path or (name,),
                name,
                kind,
                required,
                default,
                precision,
                scale,
                max_length,
                pattern=rule.pattern,
                enum=rule.enum,
                minimum=rule.minimum,
                maximum=rule.maximum,
                not_before=names.get(rule.not_before, rule.not_before) if rule.not_before else None,
                items=rule.items,
                max_items=rule.max_items,
                item_enum=rule.item_enum,
                bare_date_ok=rule.bare_date_ok,
            )
        )
    known = {f.name for f in fields}
    for f in fields:
        if f.not_before is not None and f.not_before not in known:
            raise TypeError(f"{et.name}.{f.column}: not_before names {f.not_before!r}, which is not a field")
    groups = frozenset(f.path[0] for f in fields if len(f.path) > 1)
    return Layout(
        entity=et,
        fields=tuple(fields),
        groups=groups,
        uuid_columns=tuple(dict.fromkeys(uuid_columns)),
        derived=tuple(derived),
        top_fields=frozenset(f.path[0] for f in fields if len(f.path) == 1),
        group_keys={g: frozenset(f.path[1] for f in fields if f.path[0] == g) for g in groups},
    )


# Field kinds each rule applies to.
_RULE_KINDS = {
    "pattern": {"str"},
    "enum": {"str"},
    "minimum": {"int", "decimal"},
    "maximum": {"int", "decimal"},
    "not_before": {"date", "datetime", "int", "decimal"},
    "max_items": {"array"},
    "item_enum": {"array"},
    "bare_date_ok": {"datetime"},
}


def _check_rule(et: EntityType, column: str, kind: str, rule: FieldRule) -> None:
    """Refuse a rule that cannot apply to the column's kind (a model mistake)."""
    for attribute, kinds in _RULE_KINDS.items():
        if getattr(rule, attribute) not in (None, False) and kind not in kinds:
            raise TypeError(
                f"{et.name}.{column}: the rule {attribute} does not apply to a {kind} column "
                f"(only to {', '.join(sorted(kinds))})"
            )
    if rule.items != "str" and kind != "array":
        raise TypeError(f"{et.name}.{column}: the rule items applies to array columns only, not to a {kind} column")
    if rule.item_enum and rule.items != "str":
        raise TypeError(f"{et.name}.{column}: the rule item_enum lists texts; it does not apply to {rule.items} items")


def all_layouts() -> list[Layout]:
    return [layout(et.name) for et in ENTITY_TYPES]
