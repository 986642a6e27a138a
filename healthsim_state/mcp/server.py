"""The MCP server: the tools of :mod:`healthsim_state.mcp.tools` over stdio.

Built on the SDK's low-level ``Server`` so that each tool's input schema is
exactly the one derived from the registry. A call's arguments are checked
against that schema (without the per-type document hints: documents are the
repository's to check), then the tool runs in a worker thread, one call at a
time, in a session of its own. Library errors come back as tool errors
(``isError``) carrying the library's message.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
import anyio.to_thread
import jsonschema
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from sqlalchemy.engine import URL

from healthsim_models.errors import HealthSimError, InvalidArgumentError
from healthsim_state.mcp.catalog import TOOLS, ToolSpec
from healthsim_state.mcp.tools import Store

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "HealthSim Store: named scenarios of synthetic healthcare entities (patients, encounters, claims, "
    "prescriptions, trial subjects, ...). Start with list_scenarios or get_summary; read entities with "
    "load_scenario(name, entity_type, offset, limit), page by page. Writes are validated and atomic."
)
#: Argument problems listed in one error.
MAX_ARGUMENT_PROBLEMS = 10


def _package_version() -> str:
    try:
        return version("healthsim-store")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


class _Tool:
    """A tool as the server offers and checks it."""

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec
        self.listing = types.Tool(
            name=spec.name,
            description=spec.description,
            input_schema=spec.input_schema(),
            annotations=types.ToolAnnotations(
                read_only_hint=spec.read_only,
                destructive_hint=spec.destructive if not spec.read_only else None,
                open_world_hint=False,
            ),
        )
        self.validator = jsonschema.Draft202012Validator(spec.input_schema(hints=False))

    def arguments(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """``given`` checked against the schema; raises InvalidArgumentError naming each problem.

        A null argument counts as absent: clients often send null for optional arguments.
        """
        arguments = {key: value for key, value in (given or {}).items() if value is not None}
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            shown = [f"{_where(e.absolute_path)}: {e.message}" for e in errors[:MAX_ARGUMENT_PROBLEMS]]
            more = f" (and {len(errors) - len(shown)} more)" if len(errors) > len(shown) else ""
            raise InvalidArgumentError(
                f"invalid arguments for {self.spec.name}: {shown[0]}{more}" + "".join(f"\n  - {s}" for s in shown[1:])
            )
        return arguments


def _where(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(arguments)"


def _result(payload: dict[str, Any]) -> types.CallToolResult:
    text = json.dumps(payload, ensure_ascii=False)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=payload)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def build_server(store: Store) -> Server[Any]:
    """The MCP server offering every tool over ``store``."""
    tools = {spec.name: _Tool(spec) for spec in TOOLS}
    one_at_a_time = anyio.Lock()

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool.listing for tool in tools.values()])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            raise MCPError(
                types.INVALID_PARAMS, f"unknown tool {params.name!r}; tools: {', '.join(tools)}"
            )
        try:
            arguments = tool.arguments(params.arguments)
            async with one_at_a_time:
                payload = await anyio.to_thread.run_sync(partial(tool.spec.function, store, **arguments))
        except HealthSimError as exc:
            logger.info("tool %s refused: %s", params.name, str(exc).splitlines()[0])
            return _error(str(exc))
        except Exception as exc:  # reported to the client and logged with its traceback
            logger.exception("tool %s failed", params.name)
            return _error(f"{type(exc).__name__}: {exc}")
        return _result(payload)

    return Server(
        "healthsim",
        version=_package_version(),
        title="HealthSim Store",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def _serve(store: Store) -> None:
    server = build_server(store)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def serve_stdio(url: str | URL | None = None) -> None:
    """Serve the store at ``url`` (default: the usual resolution) on stdin/stdout until the client closes."""
    store = Store(url)
    try:
        anyio.run(_serve, store)
    finally:
        store.close()
