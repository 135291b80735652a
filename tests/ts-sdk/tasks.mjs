// A tool that runs as a task, called as the official TypeScript SDK's tasks extension
// (@modelcontextprotocol/ext-tasks, pinned in package.json) calls it: the client negotiates its
// era (auto: 2026-07-28 where offered), opts in to the tasks extension, and lets the extension's
// session drive the call to its end (task creation, polling, the outcome). Prints one JSON line:
// {era, text}: the era negotiated and the tool result's text. MCP_ERA=legacy keeps the client in
// the initialize era (the extension then speaks the first version of tasks).
//
// usage: node tasks.mjs http URL TOOL ARGS_JSON
//        node tasks.mjs stdio TOOL ARGS_JSON COMMAND...   (a stdio server: the hub's shim)
// TS_SDK names the directory the SDK is installed in (.deps/ts-sdk).

import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { pathToFileURL } from "node:url";

// ESM both (the extension is ESM only, and must see the same SDK module as this script).
const sdk = (p) => import(pathToFileURL(path.join(process.env.TS_SDK, "node_modules/@modelcontextprotocol", p)).href);
const { Client, StreamableHTTPClientTransport } = await sdk("client/dist/index.mjs");
const { StdioClientTransport } = await sdk("client/dist/stdio.mjs");
const { createTaskSessionFromClient, resultFromTaskOutcome } = await sdk("ext-tasks/dist/client/index.js");

const [kind, ...rest] = process.argv.slice(2);
const http = kind === "http";
const [url, tool, argsJson, ...command] = http ? rest : [undefined, ...rest];
const capabilities = { extensions: { "io.modelcontextprotocol/tasks": {} } };
const clientInfo = { name: "ts-tasks", version: "1.0.0" };
const auto = process.env.MCP_ERA !== "legacy";
const client = new Client(clientInfo, { capabilities, ...(auto && { versionNegotiation: { mode: "auto" } }) });
const transport = http
  ? new StreamableHTTPClientTransport(new URL(url))
  : new StdioClientTransport({ command: command[0], args: command.slice(1), stderr: "ignore" });
await client.connect(transport);
const era = client.getNegotiatedProtocolVersion();

// The extension's raw path for the 2026-07-28 task requests the SDK's codecs do not carry: the
// framed request gets an id and is POSTed with the headers that revision's HTTP transport
// requires; the answer goes back as the extension takes it ({kind: "result" | "error"}).
// Over stdio the requests of that revision hold no session, so a second process of the same
// server carries them, a line each way.
let nextId = 1;
let raw;
function rawLines() {
  if (raw) return raw;
  const child = spawn(command[0], command.slice(1), { stdio: ["pipe", "pipe", "ignore"] });
  const waiting = new Map();
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    const msg = JSON.parse(line);
    waiting.get(msg.id)?.(msg);
    waiting.delete(msg.id);
  });
  raw = {
    child,
    send: (request) => new Promise((resolve) => {
      waiting.set(request.id, resolve);
      child.stdin.write(JSON.stringify(request) + "\n");
    }),
  };
  return raw;
}
const answer = (response) => response.error !== undefined
  ? { kind: "error", error: response.error }
  : { kind: "result", result: response.result };
async function rawDispatch(framed) {
  const request = { jsonrpc: "2.0", id: `raw-${nextId++}`, ...framed };
  if (!http) return answer(await rawLines().send(request));
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
  return answer(response);
}

const session = createTaskSessionFromClient(client, {
  endpointId: url ?? command.join(" "),
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
  raw?.child.stdin.end();
}
