"""The HealthSim MCP server (``healthsim mcp``): the store's scenarios as MCP tools over stdio.

:mod:`~healthsim_state.interfaces.mcp.tools` holds the tools (repository, query and
exchange calls), :mod:`~healthsim_state.interfaces.mcp.catalog` their descriptions and
argument schemas, :mod:`~healthsim_state.interfaces.mcp.schemas` the registry-derived
``entities`` schema, :mod:`~healthsim_state.interfaces.mcp.server` the protocol side.
docs/mcp.md says how to register the server with a client.
"""

from healthsim_state.interfaces.mcp.catalog import TOOLS
from healthsim_state.interfaces.mcp.server import build_server, serve_stdio
from healthsim_state.interfaces.mcp.tools import Store

__all__ = ["TOOLS", "Store", "build_server", "serve_stdio"]
