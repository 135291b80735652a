"""The official MCP Python SDK (a 2025-era client) on a hub endpoint whose server speaks only
protocol revision 2026-07-28. Prints one JSON report on its last line: what the client saw.

usage: modern_client.py URL
"""

import json
import sys

import anyio
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

MODERN_KEYS = ("resultType", "ttlMs", "cacheScope")


def leaks(result) -> list:
    """What of the modern era a legacy client should not see in a result."""
    extra = dict(result.model_extra or {})
    seen = [k for k in MODERN_KEYS if k in extra]
    if result.meta and "io.modelcontextprotocol/serverInfo" in result.meta:
        seen.append("_meta.serverInfo")
    return seen


async def main() -> None:
    asked: list = []

    async def elicitation(ctx, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"color": "teal"})

    report: dict = {}
    async with streamable_http_client(sys.argv[1]) as streams:
        async with ClientSession(streams[0], streams[1], elicitation_callback=elicitation) as s:
            init = await s.initialize()
            report["server"] = init.server_info.name
            report["version"] = init.protocol_version
            tools = await s.list_tools()
            report["tools"] = sorted(t.name for t in tools.tools)
            report["leaks"] = leaks(tools)
            echo = await s.call_tool("echo", {"message": "from python"})
            report["echo"] = echo.content[0].text
            report["leaks"] += leaks(echo)
            ask = await s.call_tool("ask", {})
            report["ask"] = ask.content[0].text
            report["asked"] = asked
            doc = await s.read_resource("demo://doc")
            report["resource"] = doc.contents[0].text
            report["leaks"] += leaks(doc)
    print(json.dumps(report), flush=True)


anyio.run(main)
