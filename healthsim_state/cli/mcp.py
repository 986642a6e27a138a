"""``healthsim mcp``: serve the store to an MCP client (Claude Desktop, Claude Code, ...) over stdio.

stdout carries the protocol only; the server logs to stderr. docs/mcp.md says
how to register the command with a client.
"""

from __future__ import annotations

import logging

import typer

from healthsim_models.engine import create_store_engine, resolve_database_url
from healthsim_state.cli.options import DatabaseUrl


def mcp(database_url: str | None = DatabaseUrl) -> None:
    """Serve the store's scenarios as MCP tools on stdin/stdout until the client disconnects."""
    from healthsim_state.mcp import serve_stdio  # the SDK is only needed here

    url = resolve_database_url(database_url)
    # A store that cannot be opened (bad URL, server down, not a store) fails now, as one line,
    # rather than at the client's first call; opening it also brings it to the latest schema.
    create_store_engine(url).dispose()
    logging.basicConfig(level=logging.WARNING, format="healthsim mcp: %(levelname)s %(name)s: %(message)s")
    try:
        serve_stdio(url)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
