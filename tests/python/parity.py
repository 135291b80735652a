"""What the official MCP Python SDK sees of server-everything, feature by feature, as one JSON
object on stdout: the parity suite runs it straight over stdio and through the hub and compares.

usage: parity.py stdio PREFIX COMMAND...   (PREFIX "-" for none)
       parity.py http PREFIX URL
"""

import json
import sys

import anyio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

ROOT = "file:///tmp/parity-root"
DEADLINE = 20


async def exercise(read, write, prefix: str) -> dict:
    logs: list = []
    updates: list = []
    elicited: list = []

    async def sampling(ctx, params):
        asked = params.messages[0].content.text
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"python sampled: {asked}"),
            model="parity", stop_reason="endTurn")

    async def elicitation(ctx, params):
        elicited.append(params.mode or "form")
        if params.mode == "url":
            return types.ElicitResult(action="accept")
        return types.ElicitResult(action="accept", content={"color": "red", "number": 7, "pets": "fish"})

    async def roots(ctx):
        return types.ListRootsResult(roots=[types.Root(uri=ROOT, name="parity")])

    async def logging(params):
        logs.append(params.level)

    async def messages(msg):
        if isinstance(msg, types.ResourceUpdatedNotification):
            updates.append(str(msg.params.uri))

    report: dict = {}
    async with ClientSession(read, write, sampling_callback=sampling, elicitation_callback=elicitation,
                             list_roots_callback=roots, logging_callback=logging,
                             message_handler=messages) as s:
        await s.initialize()
        tools = (await s.list_tools()).tools
        mine = [t for t in tools if t.name.startswith(prefix) and t.name != "agenthub__enhance_prompt"]
        # As text: the schemas' key order counts too. By name: /mcp lists each server's tools
        # sorted (a stable list for clients' prompt caches), a server in its own order.
        report["tools"] = json.dumps(sorted([[t.name[len(prefix):], t.input_schema] for t in mine], key=lambda t: t[0]))

        async def call(name, args):
            r = await s.call_tool(prefix + name, args)
            return [c.text for c in r.content if getattr(c, "type", "") == "text"]

        report["call"] = await call("echo", {"message": "parity"})
        # 3 s of work reporting progress each second: past the hub's 2 s request timeout.
        seen: list = []

        async def progress(done, total, message):
            seen.append(done)

        long = await s.call_tool(prefix + "trigger-long-running-operation", {"duration": 3, "steps": 3},
                                 progress_callback=progress)
        # The last one races the response in the SDKs (seen or not, directly too): the first two.
        report["progress"] = [seen[:2], [c.text for c in long.content if getattr(c, "type", "") == "text"]]
        # On /mcp a resource URI names its server: `demo://everything+resource/...`.
        server = prefix.removesuffix("__")
        pub = (lambda u: u.replace("://", f"://{server}+", 1)) if server else (lambda u: u)
        doc = await s.read_resource(pub("demo://resource/static/document/features.md"))
        report["resource"] = len(doc.contents[0].text)
        prompt = await s.get_prompt(prefix + "args-prompt", {"city": "Lisbon", "state": "Lisboa"})
        report["prompt"] = prompt.messages[0].content.text
        done = await s.complete(types.PromptReference(type="ref/prompt", name=prefix + "completable-prompt"),
                                {"name": "department", "value": "S"})
        report["completion"] = done.completion.values

        uri = "demo://resource/dynamic/text/1"
        await s.subscribe_resource(pub(uri))
        await call("toggle-subscriber-updates", {})
        with anyio.fail_after(DEADLINE):
            while pub(uri) not in updates:
                await anyio.sleep(0.05)
        await call("toggle-subscriber-updates", {})
        await s.unsubscribe_resource(pub(uri))
        report["subscription"] = uri

        await s.set_logging_level("debug")
        await call("toggle-simulated-logging", {})
        with anyio.fail_after(DEADLINE):
            while not logs:
                await anyio.sleep(0.05)
        await call("toggle-simulated-logging", {})
        report["logging"] = "received"

        sampled = await call("trigger-sampling-request", {"prompt": "say hi", "maxTokens": 10})
        report["sampling"] = "python sampled" in sampled[0] and "say hi" in sampled[0]
        form = await call("trigger-elicitation-request", {})
        report["elicitation"] = ["accept" in " ".join(form).lower(), "red" in " ".join(form)]
        url = await call("trigger-url-elicitation", {"url": "https://example.com/parity", "message": "open it"})
        report["url_elicitation"] = [elicited.count("url"), "accept" in " ".join(url).lower()]

        await s.send_roots_list_changed()
        with anyio.fail_after(DEADLINE):
            while True:
                listed = " ".join(await call("get-roots-list", {}))
                if ROOT in listed:
                    break
                await anyio.sleep(0.1)
        report["roots"] = ROOT
    return report


async def main() -> None:
    kind, prefix = sys.argv[1], sys.argv[2]
    prefix = "" if prefix == "-" else prefix
    if kind == "http":
        async with streamable_http_client(sys.argv[3]) as streams:
            report = await exercise(streams[0], streams[1], prefix)
    else:
        params = StdioServerParameters(command=sys.argv[3], args=sys.argv[4:], env=None)
        async with stdio_client(params) as (read, write):
            report = await exercise(read, write, prefix)
    print(json.dumps(report), flush=True)


anyio.run(main)
