"""The official MCP Python SDK as a client of the hub.

usage: sdk_client.py http URL MODE     (MODE: server = /mcp/everything, aggregate = /mcp)
       sdk_client.py stdio COMMAND...  (the hub's stdio shim as a stdio server)

Runs initialize, tools/list, tools/call (echo), a long-running tool with progress,
resources/read and prompts/get, printing one "ok <step>" line per step; any failure raises
(non-zero exit).
"""

import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


async def exercise(session: ClientSession, prefix: str) -> None:
    init = await session.initialize()
    print("ok initialize", init.server_info.name, init.protocol_version, flush=True)

    tools = await session.list_tools()
    names = [t.name for t in tools.tools]
    assert f"{prefix}echo" in names, names
    print("ok tools/list", len(names), flush=True)

    result = await session.call_tool(f"{prefix}echo", {"message": "hello from python"})
    text = result.content[0].text
    assert "hello from python" in text, text
    print("ok tools/call", text, flush=True)

    progress = []

    async def on_progress(value, total, message):
        progress.append(value)

    result = await session.call_tool(
        f"{prefix}trigger-long-running-operation",
        {"duration": 1, "steps": 3},
        progress_callback=on_progress,
    )
    assert not result.is_error, result
    assert len(progress) >= 3, progress
    print("ok progress", progress, flush=True)

    resource = await session.read_resource("demo://resource/static/document/features.md")
    body = resource.contents[0].text
    assert len(body) > 0
    print("ok resources/read", len(body), flush=True)

    prompt = await session.get_prompt(f"{prefix}args-prompt", {"city": "Lisbon", "state": "Lisboa"})
    said = prompt.messages[0].content.text
    assert "Lisbon" in said, said
    print("ok prompts/get", said[:60], flush=True)


async def main() -> None:
    kind = sys.argv[1]
    if kind == "http":
        url, mode = sys.argv[2], sys.argv[3]
        prefix = "everything__" if mode == "aggregate" else ""
        async with streamable_http_client(url) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await exercise(session, prefix)
    else:
        params = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:-1], env=None)
        prefix = sys.argv[-1] if sys.argv[-1] != "-" else ""
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await exercise(session, prefix)
    print("all ok", flush=True)


anyio.run(main)
