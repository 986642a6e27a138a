"""The MCP server: the tools of :mod:`healthsim_state.interfaces.mcp.tools` over stdio.

Built on the SDK's low-level ``Server`` so that each tool's input schema is
exactly the one derived from the registry. A call's arguments are checked
against that schema (without the per-type document hints: documents are the
repository's to check), then the tool runs in a worker thread, in a session
of its own.

Calls run side by side (the SDK handles each request in a task of its own),
as far as the store allows (:class:`_Gate`): reads beside reads, writes one at
a time. A client's cancellation of a query interrupts it in the database; a
cancelled call of another tool runs to its end before the next write starts.

Library errors come back as tool errors (``isError``) carrying the library's
message; anything else as a short generic message, its traceback logged on
stderr (never SQL text or a traceback to the client).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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

from healthsim_models.audit import acting_as, event_scope
from healthsim_models.errors import HealthSimError, InvalidArgumentError
from healthsim_state.interfaces.mcp.catalog import TOOLS, ToolSpec
from healthsim_state.interfaces.mcp.tools import Store
from healthsim_state.store.audit import reads_audited, record_read_apart
from healthsim_state.store.query import Cancellation

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


class _Gate:
    """Which tool calls may run at the same time.

    Writes run one at a time. On PostgreSQL reads run beside each other and
    beside writes. On a DuckDB file reads run beside each other too (on
    read-only connections), but one process cannot hold the file read-only
    and read-write at once: a write waits until no read runs, and reads wait
    for a write that runs (not for one that waits, so that a long query never
    holds up the other reads).
    An in-memory DuckDB store has one connection: one call at a time.
    """

    def __init__(self, store: Store) -> None:
        self._apart = store.reads_apart
        self._one_at_a_time = store.one_connection
        self._writer = anyio.Lock()
        self._changed = anyio.Condition()
        self._readers = 0
        self._writing = False

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        if self._one_at_a_time:
            async with self._writer:
                yield
            return
        if not self._apart:
            yield
            return
        async with self._changed:
            while self._writing:
                await self._changed.wait()
            self._readers += 1
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    self._readers -= 1
                    self._changed.notify_all()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        async with self._writer:
            if not self._apart:
                yield
                return
            async with self._changed:
                while self._readers:
                    await self._changed.wait()
                self._writing = True
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    async with self._changed:
                        self._writing = False
                        self._changed.notify_all()


async def _in_thread(function: Callable[[], Any], cancellation: Cancellation | None) -> Any:
    """``function()`` in a worker thread. When the call is cancelled (by the client, or
    as the server stops), ``cancellation`` is cancelled and the thread is still waited
    for, so that its connection is closed before the gate lets another call in."""
    if cancellation is None:
        return await anyio.to_thread.run_sync(function)  # a cancelled call waits for its thread
    ended = threading.Event()

    def run() -> Any:
        try:
            return function()
        finally:
            ended.set()

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(cancellation.cancel)  # may talk to the server: not on the loop
            await anyio.to_thread.run_sync(ended.wait)
        raise


def _client_name(ctx: Any) -> str:
    """The name the client gave in its initialize request."""
    params = getattr(getattr(ctx, "session", None), "client_params", None)
    info = getattr(params, "client_info", None)
    return getattr(info, "name", None) or "unnamed MCP client"


def _read(store: Store, run: Callable[[], Any]) -> tuple[Any, bool]:
    """A read tool's result, and whether reads are audited (read on the read tool's connections).
    What the tool calls records no read of its own: the call is the one event."""
    with event_scope():
        payload = run()
    with store.reader_engine().connect() as connection:
        return payload, reads_audited(connection)


def _record_read(store: Store, tool: str, arguments: dict[str, Any]) -> None:
    scenario = arguments.get("name")
    record_read_apart(
        store.engine(), "mcp_read", scenario=scenario if isinstance(scenario, str) else None, details={"tool": tool}
    )


def build_server(store: Store) -> Server[Any]:
    """The MCP server offering every tool over ``store``."""
    tools = {spec.name: _Tool(spec) for spec in TOOLS}
    gate = _Gate(store)

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool.listing for tool in tools.values()])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name!r}; tools: {', '.join(tools)}")
        try:
            arguments = tool.arguments(params.arguments)
            cancellation = Cancellation() if tool.spec.cancellable else None
            if cancellation is not None:
                arguments["cancellation"] = cancellation
            # The events the call records name the MCP client (worker threads run in a copy of this context).
            with acting_as("mcp", _client_name(ctx)):
                run = partial(tool.spec.function, store, **arguments)
                if tool.spec.writes:
                    async with gate.write():
                        payload = await _in_thread(run, cancellation)
                else:
                    async with gate.read():
                        payload, audit_read = await _in_thread(partial(_read, store, run), cancellation)
                    if audit_read:  # one event for the call, written as a write is: one at a time
                        async with gate.write():
                            await anyio.to_thread.run_sync(partial(_record_read, store, params.name, arguments))
        except HealthSimError as exc:
            logger.info("tool %s refused: %s", params.name, str(exc).splitlines()[0])
            return _error(str(exc))
        except Exception:  # a bug or a driver error: its text may hold SQL, so only the log has it
            logger.exception("tool %s failed", params.name)
            return _error(
                f"{params.name} failed with an unexpected error; the server logged the details on its "
                "standard error. A write that fails changes nothing."
            )
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
