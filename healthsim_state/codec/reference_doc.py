"""The field reference of every entity type (docs/entity-types.md), written from the layouts.

One section per type: the model's docstring, a list of the type's business
key, references, nested children and own checks, then a table of each
document field with its column, kind, whether it is required, its default
and its value rules. The docs hold
the output of ``python -m healthsim_state.codec.reference_doc``, and a test
compares the two, so the reference cannot drift from the models.
"""

from __future__ import annotations

import inspect
import re
import sys

from healthsim_models.registry import ENTITY_TYPES, EntityType
from healthsim_state.codec.layout import Field, Layout, layout

HEADER = """\
# Entity types: fields and rules

Every canonical entity type, in catalogue order, with the fields of its
documents: the column that holds each, its kind, whether a document must give
it, the column default an absent field gets, and the value rules the store
checks on saving (the same rules the MCP tools' schemas carry). Generated from
the models (`python -m healthsim_state.codec.reference_doc > docs/entity-types.md`);
do not edit by hand.

Kinds: `str` text, `date` YYYY-MM-DD, `datetime` an ISO 8601 date-time (no
offset: UTC), `int`, `decimal(p,s)` an exact number, `bool`; `array of str`,
`array of int` and `array of object` a JSON array of texts, of integers or
of JSON objects (with any keys). A field named `a.b` is the key `b` of the
nested object `a`. Every document may also carry `id`, `_provenance` and
fields of its own, which the store keeps as given.
"""


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`"


def _kind(f: Field) -> str:
    if f.kind == "decimal":
        return f"decimal({f.precision},{f.scale})"
    if f.kind == "array":
        return f"array of {f.items}"
    return f.kind


def _rules(f: Field) -> str:
    rules = []
    if f.pattern is not None:
        rules.append(f"matches {_code(f.pattern.pattern)}")
    if f.enum:
        rules.append("one of " + ", ".join(_code(v) for v in sorted(f.enum)))
    if f.minimum is not None and f.maximum is not None:
        rules.append(f"{f.minimum} to {f.maximum}")
    elif f.minimum is not None:
        rules.append(f"at least {f.minimum}")
    elif f.maximum is not None:
        rules.append(f"at most {f.maximum}")
    if f.not_before is not None:
        rules.append(f"not before {_code(f.not_before)}")
    if f.max_items is not None:
        rules.append(f"at most {f.max_items} items")
    if f.item_enum:
        rules.append("items one of " + ", ".join(_code(v) for v in sorted(f.item_enum)))
    if f.bare_date_ok:
        rules.append("a bare date is accepted")
    if f.max_length is not None:
        rules.append(f"at most {f.max_length:,} characters (indexed)")
    return "; ".join(rules)


def _description(et: EntityType) -> list[str]:
    """The model's docstring as Markdown paragraphs, one line each."""
    text = inspect.cleandoc(et.model.__doc__ or "")
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", text).replace("``", "`")
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    return [line for p in paragraphs for line in (p, "")]


def _summary(et: EntityType, lay: Layout) -> list[str]:
    lines = [f"Plural `{et.plural}`, table `{et.table_name}`, product {et.product}."]
    if et.business_key:
        lines.append(f"Business key: {', '.join(_code(k) for k in et.business_key)} (unique in a scenario).")
    else:
        lines.append("No business key: an entity without `id` is identified by its content.")
    for ref in et.references:
        lines.append(
            f"References: {_code(ref.field)} -> {ref.parent}.{ref.parent_key} "
            f"({ref.strength.name.lower()}), resolved into {_code(ref.uuid_column)}."
        )
    for nested in et.nested:
        carried = f", each given the parent's {', '.join(_code(c) for c in nested.carry)}" if nested.carry else ""
        lines.append(f"Nested: {_code(nested.field)} holds {nested.child} documents, saved as such{carried}.")
    if et.person:
        lines.append("A person: every document needs an `id`.")
    for column, _ in lay.derived:
        lines.append(f"Derived: {_code(column)} is computed from the document, never read from it.")
    for check in et.checks:
        doc = (check.__doc__ or check.__name__).strip().splitlines()[0].replace("``", "`")
        lines.append(f"Check: {doc}")
    return [f"- {line}" for line in lines]


def _table(lay: Layout) -> list[str]:
    rows = ["| Field | Column | Kind | Required | Default | Rules |", "| --- | --- | --- | --- | --- | --- |"]
    for f in lay.fields:
        default = "" if f.default is None else _code(str(f.default).lower() if f.kind == "bool" else str(f.default))
        cells = [_code(f.name), _code(f.column), _kind(f), "yes" if f.required else "", default, _rules(f)]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def reference() -> str:
    """The Markdown text of docs/entity-types.md."""
    parts = [HEADER]
    for et in ENTITY_TYPES:
        lay = layout(et.name)
        parts.append("\n".join([f"## {et.name}", "", *_description(et), *_summary(et, lay), "", *_table(lay)]) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(reference())
