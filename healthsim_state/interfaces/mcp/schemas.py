"""JSON Schemas of the MCP tools' ``entities`` argument, derived from the registry.

One property per entity type name, singular and plural (from
:data:`healthsim_models.registry.ENTITY_TYPES`), each an array of documents.
The document schemas are hints for the client: field types, formats and the
value rules (pattern, enum, minimum/maximum, array items) come from the field
layouts (:mod:`healthsim_state.codec.layout`), which read them from the
models' columns; unknown fields are allowed (the store keeps them in
``extensions``), and nothing is marked required, because the library checks
the documents and reports every problem with its position.
"""

from __future__ import annotations

from typing import Any

from healthsim_models.registry import ENTITY_TYPES, EntityType
from healthsim_state.codec.document import PROVENANCE
from healthsim_state.codec.layout import Field, layout

_JSON_TYPES = {
    "str": "string",
    "date": "string",
    "datetime": "string",
    "int": "integer",
    "decimal": "number",
    "bool": "boolean",
    "array": "array",
}
_ITEM_TYPES = {"str": "string", "int": "integer", "object": "object"}


def _field_schema(f: Field) -> dict[str, Any]:
    """One field: its JSON type (null always allowed: null reads as absent) and rules."""
    schema: dict[str, Any] = {"type": [_JSON_TYPES[f.kind], "null"]}
    notes = []
    if f.kind == "date":
        schema["format"] = "date"
    elif f.kind == "datetime":
        # Not "format": "date-time": RFC 3339 needs seconds and an offset, the store does not.
        notes.append("date-time (or a bare date)" if f.bare_date_ok else "date-time")
    elif f.kind == "array":
        schema["items"] = {"type": _ITEM_TYPES[f.items]}
        if f.item_enum:
            schema["items"]["enum"] = sorted(f.item_enum)
        if f.max_items is not None:
            schema["maxItems"] = f.max_items
    if f.enum:
        schema["enum"] = [*sorted(f.enum), None]
    if f.pattern is not None:
        # JSON Schema patterns search; the store matches the whole text.
        schema["pattern"] = f"^(?:{f.pattern.pattern})$"
    if f.minimum is not None:
        schema["minimum"] = f.minimum
    if f.maximum is not None:
        schema["maximum"] = f.maximum
    if f.max_length is not None:
        schema["maxLength"] = f.max_length
    if f.not_before is not None:
        notes.append(f"not before {f.not_before}")
    if notes:
        schema["description"] = "; ".join(notes)
    return schema


def _describe(et: EntityType) -> str:
    lay = layout(et.name)
    parts = [f"{et.name} ({et.product}), plural {et.plural}"]
    if et.business_key:
        parts.append(f"key: {', '.join(et.business_key)} (unique in a scenario)")
    if et.references:
        refs = ", ".join(f"{r.field} -> {r.parent}.{r.parent_key} ({r.strength.name.lower()})" for r in et.references)
        parts.append(f"references: {refs}")
    required = [f.name for f in lay.fields if f.required]
    if required:
        parts.append(f"required: {', '.join(required)}")
    return "; ".join(parts)


def document_schema(type_name: str) -> dict[str, Any]:
    """The schema hint of one document of ``type_name``."""
    lay = layout(type_name)
    et = lay.entity
    properties: dict[str, Any] = {
        "id": {"type": "string", "description": "a UUID (the same entity in every scenario) or any text"},
        PROVENANCE: {
            "type": ["object", "null"],
            "description": "source_type, source_system, skill_used, generation_seed, ...",
        },
    }
    for f in lay.fields:
        if len(f.path) == 1:
            properties[f.name] = _field_schema(f)
        else:
            group = properties.setdefault(f.path[0], {"type": ["object", "null"], "properties": {}})
            group["properties"][f.path[1]] = _field_schema(f)
    return {"type": "object", "description": _describe(et), "properties": properties}


def entities_schema(*, hints: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(schema, defs)``: the ``entities`` argument and the ``$defs`` it refers to.

    ``defs`` must be placed at the root of the tool's input schema. Without
    ``hints`` each type is just an array of objects: what the server itself
    checks before handing the documents to the repository.
    """
    defs = {
        et.name: {
            "type": "array",
            "items": document_schema(et.name) if hints else {"type": "object"},
        }
        for et in ENTITY_TYPES
    }
    properties: dict[str, Any] = {}
    for et in ENTITY_TYPES:
        ref = {"$ref": f"#/$defs/{et.name}"}
        properties[et.name] = ref
        properties[et.plural] = ref
    schema = {
        "type": "object",
        "description": (
            "Entities by type (singular or plural name), each a list of canonical JSON documents; "
            "children name their parents by business key (patient_mrn, member_id, claim_id, usubjid, ...). "
            "Dates are YYYY-MM-DD; date-times YYYY-MM-DDThh:mm[:ss[.ffffff]][Z|+hh:mm] (no offset: UTC); "
            "money and other decimals are JSON numbers"
        ),
        "properties": properties,
    }
    return schema, defs
