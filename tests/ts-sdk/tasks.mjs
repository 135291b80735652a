// A tool that runs as a task, called as the official TypeScript SDK's tasks extension
// (@modelcontextprotocol/ext-tasks, pinned in package.json) calls it: the client negotiates its
// era (auto: 2026-07-28 where offered), opts in to the tasks extension, and lets the extension's
// session drive the call to its end (task creation, polling, the outcome). Prints one JSON line:
// {era, text}: the era negotiated and the tool result's text. MCP_ERA=legacy keeps the client in
// the initialize era (the extension then speaks the first version of tasks).
//
// usage: node tasks.mjs URL TOOL ARGS_JSON
// TS_SDK names the directory the SDK is installed in (.deps/ts-sdk).

import path from "node:path";
import { pathToFileURL } from "node:url";

// ESM both (the extension is ESM only, and must see the same SDK module as this script).
const sdk = (p) => import(pathToFileURL(path.join(process.env.TS_SDK, "node_modules/@modelcontextprotocol", p)).href);
const { Client, StreamableHTTPClientTransport } = await sdk("client/dist/index.mjs");
const { createTaskSessionFromClient, resultFromTaskOutcome } = await sdk("ext-tasks/dist/client/index.js");

const [url, tool, argsJson] = process.argv.slice(2);
const capabilities = { extensions: { "io.modelcontextprotocol/tasks": {} } };
const clientInfo = { name: "ts-tasks", version: "1.0.0" };
const auto = process.env.MCP_ERA !== "legacy";
const client = new Client(clientInfo, { capabilities, ...(auto && { versionNegotiation: { mode: "auto" } }) });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const era = client.getNegotiatedProtocolVersion();

// The extension's raw path for the 2026-07-28 task requests the SDK's codecs do not carry: the
// framed request gets an id and is POSTed with the headers that revision's HTTP transport
// requires; the answer goes back as the extension takes it ({kind: "result" | "error"}).
let nextId = 1;
async function rawDispatch(framed) {
  const request = { jsonrpc: "2.0", id: `raw-${nextId++}`, ...framed };
  const named = request.params?.name ?? request.params?.uri ?? request.params?.taskId;
  const headers = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": era,
    "mcp-method": request.method,
    ...(named !== undefined && { "mcp-name": String(named) }),
  };
  const res = await fetch(url, { method: "POST", headers, body: JSON.stringify(request) });
  const text = await res.text();
  const sse = (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
  const messages = sse
    ? text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)))
    : [JSON.parse(text)];
  const response = messages.find((m) => m.id === request.id && m.method === undefined);
  if (response === undefined) throw new Error(`no answer to ${request.method} (HTTP ${res.status})`);
  return response.error !== undefined
    ? { kind: "error", error: response.error }
    : { kind: "result", result: response.result };
}

const session = createTaskSessionFromClient(client, {
  endpointId: url,
  ...(era >= "2026-07-28" && {
    rawDispatch,
    v2RequestFraming: { protocolVersion: era, clientInfo, clientCapabilities: capabilities },
  }),
});
try {
  const execution = await session.callTool(tool, JSON.parse(argsJson));
  const { outcome } = await execution.settle();
  const result = resultFromTaskOutcome(outcome);
  const text = result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
  console.log(JSON.stringify({ era, text }));
} finally {
  await session.close();
  await client.close();
}
