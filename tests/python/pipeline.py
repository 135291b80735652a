"""A pipeline run as an MCP tool, through the official Python SDK on the hub's /mcp.

usage: pipeline.py URL TOOL ARGUMENTS_JSON

Lists the tools (the pipeline's must be there with its input schema), calls it with a
progress callback, and prints one JSON object: the schema's properties, the progress values and
messages seen, isError and the run's report.
"""

import json
import sys

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    url, tool, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    async with streamable_http_client(url) as streams:
        async with ClientSession(streams[0], streams[1]) as s:
            await s.initialize()
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert tool in tools, sorted(tools)
            seen = []

            async def progress(done, total, message):
                seen.append([done, total, message])

            result = await s.call_tool(tool, args, read_timeout_seconds=600, progress_callback=progress)
            print(json.dumps({
                "properties": sorted(tools[tool].input_schema.get("properties", {})),
                "progress": seen,
                "is_error": result.is_error,
                "report": result.structured_content,
            }), flush=True)


anyio.run(main)
