"""The official MCP Python SDK as a client of the hub whose profile decides what it sees.

usage: profile_client.py http URL [--header K:V]... [--client-info NAME] [--call TOOL]...
       profile_client.py stdio [--call TOOL]... -- COMMAND ARGS...

Prints one JSON line: what the client saw (tools with their descriptions, prompts, resources,
resource templates) and, for each --call, the tool's text or the error it got. An initialize
that fails is reported as {"initialize_error": ...}.
"""

import argparse
import json
import sys

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


async def look(session: ClientSession, calls: list) -> dict:
    report: dict = {}
    try:
        await session.initialize()
    except Exception as e:  # the hub refused the session
        return {"initialize_error": str(e)}
    tools = await session.list_tools()
    report["tools"] = {t.name: t.description for t in tools.tools}
    prompts = await session.list_prompts()
    report["prompts"] = sorted(p.name for p in prompts.prompts)
    resources = await session.list_resources()
    report["resources"] = sorted(str(r.uri) for r in resources.resources)
    try:
        templates = await session.list_resource_templates()
        report["templates"] = sorted(t.uri_template for t in templates.resource_templates)
    except Exception as e:  # a server without templates says so
        report["templates"] = f"error: {e}"
    report["calls"] = {}
    for name in calls:
        try:
            result = await session.call_tool(name, {"text": "hi"})
            said = result.content[0].text if result.content else ""
            report["calls"][name] = ("error: " if result.is_error else "") + said
        except Exception as e:
            report["calls"][name] = f"error: {e}"
    return report


async def main() -> None:
    argv = sys.argv[1:]
    command = []
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["http", "stdio"])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--client-info")
    parser.add_argument("--call", action="append", default=[])
    args = parser.parse_args(argv)
    info = types.Implementation(name=args.client_info, version="1.0") if args.client_info else None
    if args.kind == "http":
        headers = dict(h.split(":", 1) for h in args.header)
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(args.url, http_client=http) as streams:
                async with ClientSession(streams[0], streams[1], client_info=info) as session:
                    report = await look(session, args.call)
    else:
        params = StdioServerParameters(command=command[0], args=command[1:], env=None)
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, client_info=info) as session:
                report = await look(session, args.call)
    print(json.dumps(report), flush=True)


anyio.run(main)
