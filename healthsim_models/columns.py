"""Value rules declared on the columns that hold the values.

A canonical column states what its document field accepts beyond its SQL
type, where it is defined::

    status: Mapped[str] = field(sa.String, nullable=False, enum=vocab.ENCOUNTER_STATUS)
    discharge_time: Mapped[dt.datetime | None] = field(Timestamp, not_before="admission_time")

:func:`field` is :func:`~sqlalchemy.orm.mapped_column` plus a :class:`FieldRule`
kept in the column's ``info``, which is not DDL: rules never need an Alembic
revision. The codec reads them once per entity type into its cached field
layout (``healthsim_state.codec.layout``); validation, the MCP tool schemas
and the field reference (docs/entity-types.md) all follow from there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import mapped_column

#: The key of a column's ``info`` that holds its :class:`FieldRule`.
RULE_KEY = "healthsim_rule"

#: Computes a derived column from the whole document.
Derive = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class FieldRule:
    """What a column's document field accepts beyond its SQL type.

    ``pattern`` must match the whole text; ``enum`` lists the allowed values;
    ``minimum`` / ``maximum`` bound a number (inclusive); ``not_before``
    names the column this one may not come before (an end date and its
    start). For an array column, ``items`` is the item kind (``"str"``,
    ``"int"`` or ``"object"``), ``max_items`` its most items and ``item_enum`` the values an
    item may take. ``bare_date_ok`` lets a date-time column take a bare date
    (canonical-models §12.10). ``derived`` computes the column from the
    document: it is never read from or written to documents.
    ``doc_required`` makes a nullable column required in documents
    (canonical-models §12.6). ``path`` is the field's place in the document
    when it is nested (``("name", "given_name")``); by default the column
    name at the top level.
    """

    pattern: re.Pattern[str] | None = None
    enum: frozenset[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    not_before: str | None = None
    items: str = "str"
    max_items: int | None = None
    item_enum: frozenset[str] | None = None
    bare_date_ok: bool = False
    derived: Derive | None = None
    doc_required: bool = False
    path: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.items not in ("str", "int", "object"):
            raise ValueError(f"items: 'str', 'int' or 'object', got {self.items!r}")
        if self.path is not None and not 1 <= len(self.path) <= 2:
            raise ValueError(f"path: one or two keys (a top-level field or one nested object), got {self.path!r}")


NO_RULE = FieldRule()


def field(
    type_: Any,
    *args: Any,
    pattern: re.Pattern[str] | None = None,
    enum: frozenset[str] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    not_before: str | None = None,
    items: str = "str",
    max_items: int | None = None,
    item_enum: frozenset[str] | None = None,
    bare_date_ok: bool = False,
    derived: Derive | None = None,
    doc_required: bool = False,
    path: tuple[str, ...] | None = None,
    **kwargs: Any,
) -> Any:
    """:func:`~sqlalchemy.orm.mapped_column` of ``type_`` with a :class:`FieldRule`
    (the keyword arguments of the same names) in its ``info``; every other
    argument goes to ``mapped_column``."""
    rule = FieldRule(
        pattern=pattern,
        enum=enum,
        minimum=minimum,
        maximum=maximum,
        not_before=not_before,
        items=items,
        max_items=max_items,
        item_enum=item_enum,
        bare_date_ok=bare_date_ok,
        derived=derived,
        doc_required=doc_required,
        path=path,
    )
    info = {**kwargs.pop("info", {}), RULE_KEY: rule}
    return mapped_column(type_, *args, info=info, **kwargs)


def rule_of(column: sa.Column[Any]) -> FieldRule:
    """The rule declared on ``column`` (:data:`NO_RULE` without one)."""
    return column.info.get(RULE_KEY, NO_RULE)
