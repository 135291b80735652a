// What the official MCP TypeScript SDK (client, pinned in package.json) sees of server-everything,
// feature by feature, as one JSON object on stdout: the parity suite runs it straight over stdio
// and through the hub and compares. Same report as tests/python/parity.py.
//
// usage: node parity.mjs stdio PREFIX COMMAND...   (PREFIX "-" for none)
//        node parity.mjs http PREFIX URL
// TS_SDK names the directory the SDK is installed in (.deps/ts-sdk). MCP_ERA=auto has the client
// negotiate its era (`versionNegotiation: {mode: "auto"}`: 2026-07-28 where it is offered, else
// initialize); the report then names the era it got, and leaves out what that revision removed
// or deprecated (resource subscriptions, logging/setLevel, roots list changes).

import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.TS_SDK, "package.json"));
const { Client, StreamableHTTPClientTransport } = require("@modelcontextprotocol/client");
const { StdioClientTransport } = require("@modelcontextprotocol/client/stdio");

const ROOT = "file:///tmp/parity-root";
const DEADLINE_MS = 20000;

async function until(what, f) {
  const end = Date.now() + DEADLINE_MS;
  for (;;) {
    if (await f()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  const [kind, rawPrefix, ...rest] = process.argv.slice(2);
  const prefix = rawPrefix === "-" ? "" : rawPrefix;
  const transport = kind === "http"
    ? new StreamableHTTPClientTransport(new URL(rest[0]))
    : new StdioClientTransport({ command: rest[0], args: rest.slice(1), stderr: "ignore" });
  const auto = process.env.MCP_ERA === "auto";
  const client = new Client({ name: "ts-parity", version: "1.0.0" }, {
    capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } },
    ...(auto && { versionNegotiation: { mode: "auto" } }),
  });
  const logs = [];
  const updates = [];
  const elicited = [];
  client.setRequestHandler("sampling/createMessage", async (req) => ({
    role: "assistant",
    content: { type: "text", text: `typescript sampled: ${req.params.messages[0].content.text}` },
    model: "parity",
    stopReason: "endTurn",
  }));
  client.setRequestHandler("elicitation/create", async (req) => {
    elicited.push(req.params.mode ?? "form");
    if (req.params.mode === "url") return { action: "accept" };
    return { action: "accept", content: { color: "red", number: 7, pets: "fish" } };
  });
  client.setRequestHandler("roots/list", async () => ({ roots: [{ uri: ROOT, name: "parity" }] }));
  client.setNotificationHandler("notifications/message", (n) => { logs.push(n.params.level); });
  client.setNotificationHandler("notifications/resources/updated", (n) => { updates.push(n.params.uri); });
  await client.connect(transport);

  const report = {};
  const era = client.getNegotiatedProtocolVersion();
  const modern = era >= "2026-07-28";
  if (auto) report.era = era;
  const { tools } = await client.listTools();
  // As text: the schemas' key order counts too. By name: /mcp lists each server's tools sorted
  // (a stable list for clients' prompt caches), a server in its own order.
  report.tools = JSON.stringify(tools
    .filter((t) => t.name.startsWith(prefix) && t.name !== "agenthub__enhance_prompt")
    .map((t) => [t.name.slice(prefix.length), t.inputSchema])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
  const call = async (name, args) => {
    const r = await client.callTool({ name: prefix + name, arguments: args });
    return r.content.filter((c) => c.type === "text").map((c) => c.text);
  };
  report.call = await call("echo", { message: "parity" });
  // 3 s of work reporting progress each second: past the hub's 2 s request timeout.
  const seen = [];
  const long = await client.callTool(
    { name: prefix + "trigger-long-running-operation", arguments: { duration: 3, steps: 3 } },
    { onprogress: (p) => seen.push(p.progress), resetTimeoutOnProgress: true },
  );
  // The last one races the response in the SDKs (seen or not, directly too): the first two.
  report.progress = [seen.slice(0, 2), long.content.filter((c) => c.type === "text").map((c) => c.text)];
  // On /mcp a resource URI names its server: `demo://everything+resource/...`.
  const server = prefix.replace(/__$/, "");
  const pub = (uri) => (server ? uri.replace("://", `://${server}+`) : uri);
  const doc = await client.readResource({ uri: pub("demo://resource/static/document/features.md") });
  report.resource = doc.contents[0].text.length;
  const prompt = await client.getPrompt({ name: prefix + "args-prompt", arguments: { city: "Lisbon", state: "Lisboa" } });
  report.prompt = prompt.messages[0].content.text;
  const done = await client.complete({
    ref: { type: "ref/prompt", name: prefix + "completable-prompt" },
    argument: { name: "department", value: "S" },
  });
  report.completion = done.completion.values;

  if (!modern) {
  const uri = "demo://resource/dynamic/text/1";
  await client.subscribeResource({ uri: pub(uri) });
  await call("toggle-subscriber-updates", {});
  await until("a resource update", () => updates.includes(pub(uri)));
  await call("toggle-subscriber-updates", {});
  await client.unsubscribeResource({ uri: pub(uri) });
  report.subscription = uri;

  await client.setLoggingLevel("debug");
  await call("toggle-simulated-logging", {});
  await until("a log message", () => logs.length > 0);
  await call("toggle-simulated-logging", {});
  report.logging = "received";
  }

  const sampled = await call("trigger-sampling-request", { prompt: "say hi", maxTokens: 10 });
  report.sampling = sampled[0].includes("typescript sampled") && sampled[0].includes("say hi");
  const form = (await call("trigger-elicitation-request", {})).join(" ");
  report.elicitation = [form.toLowerCase().includes("accept"), form.includes("red")];
  const url = (await call("trigger-url-elicitation", { url: "https://example.com/parity", message: "open it" })).join(" ");
  report.url_elicitation = [elicited.filter((m) => m === "url").length, url.toLowerCase().includes("accept")];

  if (!modern) {
    await client.sendRootsListChanged();
    await until("the roots", async () => (await call("get-roots-list", {})).join(" ").includes(ROOT));
    report.roots = ROOT;
  }

  await client.close();
  console.log(JSON.stringify(report));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
