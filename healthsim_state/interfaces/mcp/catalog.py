"""The tools the MCP server offers: name, description, argument schema and
function of each (:mod:`healthsim_state.interfaces.mcp.tools`), in the order clients list them.

Argument schemas are JSON Schema objects that refuse unknown arguments; the
``entities`` argument comes from the registry (:mod:`healthsim_state.interfaces.mcp.schemas`),
and so do the table names the query tool describes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from healthsim_models.registry import ENTITY_TYPES
from healthsim_models.state import Scenario, ScenarioEntity, ScenarioTag
from healthsim_state.analytics.omop.summary import MAX_TOP
from healthsim_state.analytics.star import DEFAULT_SCHEMA as DEFAULT_STAR_SCHEMA
from healthsim_state.interfaces.mcp.schemas import entities_schema
from healthsim_state.interfaces.mcp.tools import (
    DEFAULT_PAGE,
    MAX_INLINE_EXPORT,
    MAX_PAGE,
    add_entities,
    analytics_omop,
    analytics_star,
    analytics_summary,
    delete_scenario,
    export_scenario,
    get_summary,
    import_scenario,
    import_synthea,
    list_scenarios,
    load_scenario,
    query,
    save_scenario,
)
from healthsim_state.store.query import DEFAULT_TIMEOUT, ENV_TIMEOUT

_LINKS = ScenarioEntity.__table__
_TAGS = ScenarioTag.__table__


def _columns(table: Any) -> str:
    return ", ".join(c.name for c in table.columns)


#: Longest timeout, in seconds, a client may give the query tool.
MAX_QUERY_TIMEOUT = 300

_NAME = {"type": "string", "minLength": 1, "description": "the scenario's name (or its id)"}
_PATH = {"type": "string", "minLength": 1}
# Marks where a tool takes the registry-derived ``entities`` argument.
_ENTITIES: Any = object()


@dataclass(frozen=True)
class ToolSpec:
    """A tool: its function, description and argument schema.

    ``read_only`` and ``destructive`` are what clients are told; ``writes_store``
    says whether the tool writes to the database (the server runs such calls
    one at a time); ``cancellable`` tools take a ``cancellation`` the server
    cancels when the client cancels the call.
    """

    name: str
    description: str
    function: Callable[..., dict[str, Any]]
    properties: dict[str, Any]
    required: tuple[str, ...] = ("name",)
    read_only: bool = True
    destructive: bool = False
    writes_store: bool | None = None  # None: the same as not read_only
    cancellable: bool = False

    @property
    def writes(self) -> bool:
        return not self.read_only if self.writes_store is None else self.writes_store

    def input_schema(self, *, hints: bool = True) -> dict[str, Any]:
        """The arguments' JSON Schema; ``hints=False`` leaves out the per-type
        document hints (what the server checks itself)."""
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {},
            "required": list(self.required),
            "additionalProperties": False,
        }
        for key, value in self.properties.items():
            if value is _ENTITIES:
                value, schema["$defs"] = entities_schema(hints=hints)
            elif value is _ENTITY_TYPE:
                names = [name for et in ENTITY_TYPES for name in (et.name, et.plural)]
                value = {"type": "string", "enum": names, "description": "which entities to return"}
            schema["properties"][key] = value
        return schema


def _page(default: int, what: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": default, "description": f"{what} per page"}


_OFFSET = {
    "type": "integer",
    "minimum": 0,
    "maximum": 2**63 - 1,
    "default": 0,
    "description": "how many to skip (a previous result's next_offset)",
}
#: Stands for the entity_type argument: its names are read from the registry when a schema is made.
_ENTITY_TYPE: Any = object()

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "list_scenarios",
        "List stored scenarios by name, with their tags and entity counts per type. "
        "Pages: pass the result's next_offset as offset while it is not null.",
        list_scenarios,
        {
            "tag": {
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                "description": "only scenarios with this tag (several tags: all of them)",
            },
            "search": {"type": "string", "description": "case-insensitive text in the name or description"},
            "limit": _page(DEFAULT_PAGE, "scenarios"),
            "offset": _OFFSET,
        },
        required=(),
    ),
    ToolSpec(
        "load_scenario",
        "A scenario's metadata and entity counts; with entity_type, also one page of its entities of that "
        "type in saved order, as canonical JSON documents, as export_scenario writes them (save_scenario takes them back). "
        "Read further pages with offset = next_offset until next_offset is null.",
        load_scenario,
        {
            "name": _NAME,
            "entity_type": _ENTITY_TYPE,
            "offset": _OFFSET,
            "limit": _page(DEFAULT_PAGE, "entities"),
        },
    ),
    ToolSpec(
        "save_scenario",
        "Save a new scenario of entities (canonical JSON documents; unknown fields are kept). Everything is "
        "validated first; on any problem nothing is saved and the error lists each problem by type, position, "
        "id and field. An existing name needs overwrite=true (replaces its entities, description and tags). "
        "For large scenarios, save a first batch here and send the rest with add_entities.",
        save_scenario,
        {
            "name": _NAME | {"description": "the scenario's name (unique in the store)"},
            "entities": _ENTITIES,
            "description": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "overwrite": {"type": "boolean", "default": False},
        },
        required=("name", "entities"),
        read_only=False,
        destructive=True,
    ),
    ToolSpec(
        "add_entities",
        "Add (or update) entities in an existing scenario: batched saves of large scenarios. References "
        "resolve against this batch and what the scenario already holds. Validated like save_scenario.",
        add_entities,
        {"name": _NAME, "entities": _ENTITIES},
        required=("name", "entities"),
        read_only=False,
    ),
    ToolSpec(
        "delete_scenario",
        "Delete a scenario, its tags, and every entity no other scenario holds. Needs confirm=true; "
        "without it nothing is deleted.",
        delete_scenario,
        {"name": _NAME, "confirm": {"type": "boolean", "default": False, "description": "must be true"}},
        read_only=False,
        destructive=True,
    ),
    ToolSpec(
        "get_summary",
        "A scenario's metadata, tags and entity counts per type; without a name, the entity counts per "
        "type of the whole store.",
        get_summary,
        {"name": _NAME},
        required=(),
    ),
    ToolSpec(
        "query",
        "Run one read-only SQL statement on the store and return its columns and up to max_rows rows; "
        "truncated says whether rows were left out. The database refuses any write. Entity tables: "
        f"{', '.join(et.table_name for et in ENTITY_TYPES)} (primary key id). {_LINKS.name} "
        f"({_columns(_LINKS)}) says which rows a scenario holds; {Scenario.__tablename__} "
        f"({_columns(Scenario.__table__)}) and {_TAGS.name} ({_columns(_TAGS)}) describe scenarios. "
        "Decimals, dates and UUIDs come back as text. A query running longer than timeout seconds is "
        "cancelled with an error; other tools keep answering meanwhile.",
        query,
        {
            "sql": {"type": "string", "minLength": 1, "description": "one SQL statement"},
            "max_rows": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_QUERY_TIMEOUT,
                "description": f"seconds the query may run before it is cancelled (default: the server's "
                f"{ENV_TIMEOUT}, else {DEFAULT_TIMEOUT:g})",
            },
        },
        required=("sql",),
        cancellable=True,
    ),
    ToolSpec(
        "export_scenario",
        "Export a scenario as the versioned JSON scenario document (the format of 'healthsim scenario "
        "export'). With path, writes it to that file on the server's machine (an existing file only with "
        f"overwrite=true); without, returns the document as text in 'document' (scenarios of at most "
        f"{MAX_INLINE_EXPORT} entities).",
        export_scenario,
        {
            "name": _NAME,
            "path": _PATH | {"description": "absolute path of the file to write, on the server's machine"},
            "overwrite": {"type": "boolean", "default": False, "description": "replace an existing file"},
        },
        read_only=False,  # it may write a file
        destructive=True,
        writes_store=False,  # ... but only reads the database
    ),
    ToolSpec(
        "import_scenario",
        "Import a versioned JSON scenario document, from a file on the server's machine (path) or given as "
        "text (document, e.g. what export_scenario returned). The whole document is checked first; a "
        "refused document or entity writes nothing. An existing scenario name needs overwrite=true, or "
        "import under another name.",
        import_scenario,
        {
            "path": _PATH | {"description": "absolute path of the document, on the server's machine"},
            "document": {"type": "string", "minLength": 1, "description": "the document's JSON text"},
            "name": _NAME | {"description": "import under this name instead of the document's"},
            "overwrite": {"type": "boolean", "default": False, "description": "replace a scenario of that name"},
        },
        required=(),
        read_only=False,
        destructive=True,
    ),
    ToolSpec(
        "import_synthea",
        "Import a folder of Synthea CSV files (patients.csv at least; every release's layout) from the "
        "server's machine as one scenario: patients, members, encounters, diagnoses, medications, labs, "
        "vitals, observations, procedures, allergies, immunizations, care plans, devices, supplies, imaging, "
        "organizations, practitioners, payers, coverages, claims and claim lines. A malformed file is refused "
        "with its file, line and column and nothing is written. Importing the same folder again updates its "
        "entities in place. Returns rows read per file, rows excluded and why, and entities per type.",
        import_synthea,
        {
            "path": _PATH | {"description": "absolute path of the Synthea CSV folder, on the server's machine"},
            "scenario": _NAME | {"description": "name of the scenario to import into"},
            "overwrite": {"type": "boolean", "default": False, "description": "replace a scenario of that name"},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "description": "tags to give it"},
        },
        required=("path", "scenario"),
        read_only=False,
        destructive=True,
    ),
    ToolSpec(
        "analytics_omop",
        "Build the OMOP CDM 5.4 tables (the official DDL, in the database schema 'schema') of the named "
        "scenarios, or of all, replacing what those scenarios contributed before; ids stay the same across "
        "builds, other scenarios' rows stay. With vocabulary (an Athena vocabulary folder on the server's "
        "machine), codes map to standard concepts and each row goes to its concept's domain table; "
        "without, concept ids are 0. Returns rows written and rows without a concept, per OMOP table.",
        analytics_omop,
        {
            "scenarios": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": "scenario names or ids; default: all",
            },
            "schema": {"type": "string", "minLength": 1, "default": "omop", "description": "the OMOP schema"},
            "vocabulary": _PATH
            | {"description": "absolute path of an Athena vocabulary folder, on the server's machine"},
        },
        required=(),
        read_only=False,
        destructive=True,
    ),
    ToolSpec(
        "analytics_summary",
        "What an OMOP export holds, per exported scenario: persons, visits per visit concept, and the most "
        "frequent conditions and drugs (by persons, then records) with their concept names, or their source "
        "values where the concept is 0. Reads only.",
        analytics_summary,
        {
            "schema": {"type": "string", "minLength": 1, "default": "omop", "description": "the OMOP schema"},
            "top": {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": 10},
        },
        required=(),
    ),
    ToolSpec(
        "analytics_star",
        "Build the star schema (docs/analytics.md) of the named scenarios, or of every scenario, in the "
        "analytics schema: dim_patient (one row per person across products, with age band), dim_date, "
        "dim_provider, dim_scenario, bridge_person, fact_encounter (length of stay, 30-day readmission), "
        "fact_diagnosis, fact_medication, fact_lab, fact_claim (billed, allowed, paid, member "
        "responsibility), fact_pharmacy_claim and fact_trial_visit. Replaces what those scenarios "
        "contributed before; other scenarios' rows stay and keys are stable. Returns the rows per table. "
        "Read the tables with the query tool (e.g. SELECT * FROM analytics.dim_patient).",
        analytics_star,
        {
            "scenarios": {
                "type": "array",
                "items": _NAME,
                "description": "scenarios to rebuild, by name or id (default: every scenario)",
            },
            "schema": {
                "type": "string",
                "pattern": "^[a-z_][a-z0-9_]{0,62}$",
                "default": DEFAULT_STAR_SCHEMA,
                "description": "the schema of the star schema's tables",
            },
        },
        required=(),
        read_only=False,
        destructive=False,
        writes_store=True,
    ),
)
