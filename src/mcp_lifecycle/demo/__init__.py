"""The example MCP server behind the `mcp-lifecycle-demo` console script."""
