"""The HealthSim MCP server (``healthsim mcp``): the store's scenarios as MCP tools over stdio.

:mod:`~healthsim_state.mcp.tools` holds the tools (repository, query and
exchange calls), :mod:`~healthsim_state.mcp.catalog` their descriptions and
argument schemas, :mod:`~healthsim_state.mcp.schemas` the registry-derived
``entities`` schema, :mod:`~healthsim_state.mcp.server` the protocol side.
docs/mcp.md says how to register the server with a client.
"""

from healthsim_state.mcp.catalog import TOOLS
from healthsim_state.mcp.server import build_server, serve_stdio
from healthsim_state.mcp.tools import Store

__all__ = ["TOOLS", "Store", "build_server", "serve_stdio"]
