"""The MCP tools: each one a repository call in a session of its own, a
read-only query through :func:`healthsim_state.query.run_query`, or an
export or import of the versioned JSON document (:mod:`healthsim_state.exchange`).

A tool is a plain function ``(store, **arguments) -> dict`` that returns a
JSON-friendly result, plus the JSON Schema of its arguments
(:class:`ToolSpec`). Tools never keep a session or connection between calls;
:class:`Store` holds only the engine, which for a DuckDB file keeps no idle
connection, so another process (the ``healthsim`` CLI) can use the file
between two calls.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Engine

from healthsim_models.engine import create_store_engine, resolve_database_url, session_scope
from healthsim_models.errors import InvalidArgumentError
from healthsim_models.registry import ENTITY_TYPES, entity_type
from healthsim_models.state import Scenario, ScenarioEntity, ScenarioTag
from healthsim_state import exchange
from healthsim_state.mcp.schemas import entities_schema
from healthsim_state.query import json_value, run_query
from healthsim_state.repository import SaveSummary, ScenarioInfo, ScenarioRepository

#: Largest page of scenarios, entities or rows one call returns.
MAX_PAGE = 1000
DEFAULT_PAGE = 100
#: Largest scenario (in entities) export_scenario returns inline rather than writing to a file.
MAX_INLINE_EXPORT = 1000


class Store:
    """The database the tools work on. The engine is created on first use
    (so a server can start while another process holds the file) and kept;
    sessions live for one tool call."""

    def __init__(self, url: str | URL | None = None) -> None:
        self.url = resolve_database_url(url)
        self._engine: Engine | None = None

    @property
    def url_text(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_store_engine(self.url)
        return self._engine

    @contextmanager
    def repository(self) -> Iterator[ScenarioRepository]:
        """A repository over a new session, committed when the block succeeds."""
        with session_scope(self.engine()) as session:
            yield ScenarioRepository(session)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


# -- results as JSON (values rendered as `healthsim query --format json` renders them) ----


def scenario_json(info: ScenarioInfo) -> dict[str, Any]:
    return json_value(
        {
            "id": info.id,
            "name": info.name,
            "description": info.description,
            "tags": info.tags,
            "entity_counts": info.entity_counts,
            "total_entities": sum(info.entity_counts.values()),
            "created_at": info.created_at,
            "updated_at": info.updated_at,
            "extra": info.extra,
        }
    )


def save_json(summary: SaveSummary) -> dict[str, Any]:
    return json_value(
        {
            "id": summary.id,
            "name": summary.name,
            "counts": summary.counts,
            "saved": summary.saved,
            "warnings": summary.warnings,
        }
    )


# -- the tools --------------------------------------------------------------------


def list_scenarios(
    store: Store, tag: str | list[str] | None = None, search: str | None = None,
    limit: int = DEFAULT_PAGE, offset: int = 0,
) -> dict[str, Any]:
    with store.repository() as repo:
        # One more than asked says whether another page exists.
        infos = repo.list(tag=tag, search=search, limit=limit + 1, offset=offset)
    page = infos[:limit]
    return {
        "scenarios": [scenario_json(i) for i in page],
        "offset": offset,
        "next_offset": offset + limit if len(infos) > limit else None,
    }


def load_scenario(
    store: Store, name: str, entity_type: str | None = None, offset: int = 0, limit: int = DEFAULT_PAGE
) -> dict[str, Any]:
    with store.repository() as repo:
        info = repo.scenario_summary(name)
        result: dict[str, Any] = {"scenario": scenario_json(info)}
        if entity_type is None:
            return result
        type_name = _type_name(entity_type)
        total = info.entity_counts.get(type_name, 0)
        # Streamed in saved order; only the page (and what precedes it) is read.
        stream = repo.iter_entities(info.id, type_name, batch_size=min(offset + limit, 10 * MAX_PAGE))
        with closing(stream):
            documents = list(itertools.islice(stream, offset, offset + limit))
    end = offset + len(documents)
    result.update(
        entity_type=type_name,
        offset=offset,
        total=total,
        entities=json_value(documents),
        next_offset=end if end < total else None,
    )
    return result


def _type_name(name: str) -> str:
    """The singular name; an unknown name raises the registry's error listing the valid ones."""
    return entity_type(name).name


def save_scenario(
    store: Store, name: str, entities: Mapping[str, Any], description: str | None = None,
    tags: list[str] | None = None, overwrite: bool = False,
) -> dict[str, Any]:
    with store.repository() as repo:
        summary = repo.save(name, entities, description=description, tags=tags, overwrite=overwrite)
    return save_json(summary)


def add_entities(store: Store, name: str, entities: Mapping[str, Any]) -> dict[str, Any]:
    with store.repository() as repo:
        summary = repo.add_entities(name, entities)
    return save_json(summary)


def delete_scenario(store: Store, name: str, confirm: bool = False) -> dict[str, Any]:
    if confirm is not True:
        raise InvalidArgumentError(
            f"delete_scenario needs confirm=true to delete {name!r} (the scenario and every entity "
            "no other scenario holds); nothing was deleted"
        )
    with store.repository() as repo:
        info = repo.scenario_summary(name)
        repo.delete(info.id)
    return {"deleted": scenario_json(info)}


def get_summary(store: Store, name: str | None = None) -> dict[str, Any]:
    with store.repository() as repo:
        if name is not None:
            return {"scenario": scenario_json(repo.scenario_summary(name))}
        counts = repo.count_entities_by_type()
    return {"entity_counts": counts, "total_entities": sum(counts.values())}


def query(store: Store, sql: str, max_rows: int = DEFAULT_PAGE) -> dict[str, Any]:
    result = run_query(sql, database_url=store.url_text, max_rows=max_rows)
    return {"columns": result.columns, "rows": json_value(result.rows), "truncated": result.truncated}


def export_scenario(
    store: Store, name: str, path: str | None = None, overwrite: bool = False
) -> dict[str, Any]:
    target = None if path is None else _server_path("path", path)
    if target is not None and target.exists() and not overwrite:
        raise InvalidArgumentError(f"{target} exists; pass overwrite=true to replace it")
    with store.repository() as repo:
        if target is not None:
            return asdict(exchange.export_scenario(repo.session, name, target))
        info = repo.scenario_summary(name)
        total = sum(info.entity_counts.values())
        if total > MAX_INLINE_EXPORT:
            raise InvalidArgumentError(
                f"scenario {info.name!r} holds {total} entities, more than the {MAX_INLINE_EXPORT} returned "
                "inline; give a path to write the document to"
            )
        buffer = io.BytesIO()
        summary = exchange.export_scenario(repo.session, info.id, buffer)
    return {**asdict(summary), "document": buffer.getvalue().decode("utf-8")}


def import_scenario(
    store: Store, path: str | None = None, document: str | None = None, name: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    if (path is None) == (document is None):
        raise InvalidArgumentError("import_scenario needs either path or document (not both)")
    if path is not None:
        source: Any = _server_path("path", path)
    else:
        source = io.BytesIO(document.encode("utf-8"))
        source.name = "the document"  # how the importer's messages will call it
    with store.repository() as repo:
        summary = exchange.import_scenario(repo.session, source, overwrite=overwrite, name=name)
    return save_json(summary)


def _server_path(argument: str, text: str) -> Path:
    """An absolute path on the server's machine; relative ones are refused, as
    the client cannot know the server's working directory."""
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        raise InvalidArgumentError(
            f"{argument} must be an absolute path on the server's machine, got {text!r} "
            f"(the server runs in {os.getcwd()})"
        )
    return path


_LINKS = ScenarioEntity.__table__
_TAGS = ScenarioTag.__table__


def _columns(table: Any) -> str:
    return ", ".join(c.name for c in table.columns)


# -- schemas ------------------------------------------------------------------------

_NAME = {"type": "string", "minLength": 1, "description": "the scenario's name (or its id)"}
_PATH = {"type": "string", "minLength": 1}
# Marks where a tool takes the registry-derived ``entities`` argument.
_ENTITIES: Any = object()


@dataclass(frozen=True)
class ToolSpec:
    """A tool: its function, description and argument schema."""

    name: str
    description: str
    function: Callable[..., dict[str, Any]]
    properties: dict[str, Any]
    required: tuple[str, ...] = ("name",)
    read_only: bool = True
    destructive: bool = False

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
            schema["properties"][key] = value
        return schema


def _page(default: int, what: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": default, "description": f"{what} per page"}


_OFFSET = {"type": "integer", "minimum": 0, "default": 0, "description": "how many to skip (a previous result's next_offset)"}
_TYPE_NAMES = [name for et in ENTITY_TYPES for name in (et.name, et.plural)]

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
        "type in saved order, as canonical JSON documents (decimal fields as strings such as \"148.83\"). "
        "Read further pages with offset = next_offset until next_offset is null.",
        load_scenario,
        {
            "name": _NAME,
            "entity_type": {"type": "string", "enum": _TYPE_NAMES, "description": "which entities to return"},
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
        "Decimals, dates and UUIDs come back as text.",
        query,
        {
            "sql": {"type": "string", "minLength": 1, "description": "one SQL statement"},
            "max_rows": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
        },
        required=("sql",),
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
)
