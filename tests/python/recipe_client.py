"""A client recipe's entry for the hub, launched the way its client launches it, by the official
MCP Python SDK.

usage: recipe_client.py ENTRY_JSON CLIENT_INFO_NAME [PROMPT]

ENTRY_JSON is the hub's entry as the client's file holds it. An entry with a `command` runs over
stdio exactly as written (command, args; the environment passed on); any other is Streamable
HTTP at its `url` (Windsurf: `serverUrl`) with the headers it names (`headers`; Codex:
`http_headers` and `bearer_token_env_var`; Continue: `requestOptions.headers`), `${env:X}` and
`${X}` expanded from the environment as the clients do. Prints "ok initialize", "ok tools/list
N", and with PROMPT "ok enhance RULE TEXT" (agenthub__enhance_prompt, no `client` argument).
"""

import json
import os
import re
import sys

import anyio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def expand(value: str) -> str:
    return re.sub(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: os.environ.get(m.group(1), ""), value)


def http_headers(entry: dict) -> dict:
    headers = dict(entry.get("headers") or entry.get("http_headers") or {})
    headers.update((entry.get("requestOptions") or {}).get("headers") or {})
    if entry.get("bearer_token_env_var"):
        headers["Authorization"] = "Bearer " + os.environ[entry["bearer_token_env_var"]]
    return {k: expand(v) for k, v in headers.items()}


async def exercise(session: ClientSession, prompt: str | None) -> None:
    init = await session.initialize()
    print("ok initialize", init.server_info.name, flush=True)
    tools = await session.list_tools()
    print("ok tools/list", len(tools.tools), flush=True)
    if prompt:
        result = await session.call_tool("agenthub__enhance_prompt", {"prompt": prompt})
        assert not result.is_error, result
        print("ok enhance", result.structured_content["client"], result.content[0].text, flush=True)


async def main() -> None:
    entry = json.loads(sys.argv[1])
    info = types.Implementation(name=sys.argv[2], version="1.0")
    prompt = sys.argv[3] if len(sys.argv) > 3 else None
    if "command" in entry:
        params = StdioServerParameters(command=entry["command"], args=entry.get("args", []), env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, client_info=info) as session:
                await exercise(session, prompt)
    else:
        url = entry.get("url") or entry["serverUrl"]
        async with create_mcp_http_client(headers=http_headers(entry)) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                async with ClientSession(streams[0], streams[1], client_info=info) as session:
                    await exercise(session, prompt)
    print("all ok", flush=True)


anyio.run(main)
