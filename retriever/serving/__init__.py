"""Long-running servers (HTTP, MCP, the background server `ask` starts) and the clients that find and stop them."""
