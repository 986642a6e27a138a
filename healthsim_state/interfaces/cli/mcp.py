"""``healthsim mcp``: serve the store to an MCP client (Claude Desktop, Claude Code, ...) over stdio.

stdout carries the protocol only; the server logs to stderr. docs/mcp.md says
how to register the command with a client.
"""

from __future__ import annotations

import logging

import typer

from healthsim_models.engine import resolve_database_url
from healthsim_state.interfaces.cli.options import DatabaseUrl


def mcp(database_url: str | None = DatabaseUrl) -> None:
    """Serve the store's scenarios as MCP tools on stdin/stdout until the client disconnects."""
    from healthsim_state.interfaces.mcp import serve_stdio  # the SDK is only needed here

    # A URL that cannot be parsed fails now, as one line. A store that cannot be opened yet (its
    # server down, its DuckDB file held by another program) does not stop the server: each
    # tool call opens it and reports what is wrong as a tool error, and works once it can.
    url = resolve_database_url(database_url)
    logging.basicConfig(level=logging.WARNING, format="healthsim mcp: %(levelname)s %(name)s: %(message)s")
    try:
        serve_stdio(url)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
