// A server of protocol revision 2026-07-28 only, on the TypeScript SDK's server package: it
// refuses `initialize` (legacy: "reject") and answers `server/discover`. Tools: `echo`, `ask`
// (asks its client a color through `inputRequired`, then says what came back and the state it
// passed), `nag` (asks again whatever the answer), `sample` (a sampling), `roots` and `log` (an info and a warning line); a resource `demo://doc`.
//
// usage: TS_SDK=<dir of the SDK's node_modules> node modern_server.mjs [--http PORT [LOG]]
// Over stdio by default; with --http, Streamable HTTP on 127.0.0.1:PORT/mcp (createMcpHandler),
// each POST's method, Mcp-Method, Mcp-Name and Mcp-Session-Id headers appended to LOG.
import { createRequire } from "node:module";
import { appendFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";

const require = createRequire(path.join(process.env.TS_SDK || ".deps/ts-sdk", "package.json"));
const { McpServer, inputRequired, inputResponse, createMcpHandler } = require("@modelcontextprotocol/server");
const { serveStdio } = require("@modelcontextprotocol/server/stdio");
const z = require("zod");

const stateOf = (req) => (typeof req.requestState === "function" ? req.requestState() : req.requestState);

const factory = () => {
  const s = new McpServer(
    { name: "modern-only", version: "1.0.0" },
    { capabilities: { tools: {}, resources: {}, logging: {} }, instructions: "a modern-only test server" },
  );
  s.registerTool("echo", { description: "echo", inputSchema: z.object({ message: z.string() }) },
    async ({ message }) => ({ content: [{ type: "text", text: `Echo: ${message}` }] }));
  s.registerTool("ask", { description: "asks its client a color", inputSchema: z.object({}) }, async (_a, ctx) => {
    const r = inputResponse(ctx.mcpReq.inputResponses, "color");
    if (r.kind !== "elicit") {
      return inputRequired({
        inputRequests: {
          color: inputRequired.elicit({
            message: "color?",
            requestedSchema: { type: "object", properties: { color: { type: "string" } } },
          }),
        },
        requestState: "state-1",
      });
    }
    const said = r.action === "accept" ? r.content?.color : r.action;
    return { content: [{ type: "text", text: `color ${said} state ${stateOf(ctx.mcpReq)}` }] };
  });
  s.registerTool("nag", { description: "asks, whatever it is told", inputSchema: z.object({}) }, async () =>
    inputRequired({
      inputRequests: { again: inputRequired.elicit({ message: "again?", requestedSchema: { type: "object", properties: {} } }) },
      requestState: "nagging",
    }));
  s.registerTool("sample", { description: "asks its client's model", inputSchema: z.object({}) }, async (_a, ctx) => {
    const r = inputResponse(ctx.mcpReq.inputResponses, "answer");
    if (r.kind !== "sampling") {
      const messages = [{ role: "user", content: { type: "text", text: "hello modern" } }];
      return inputRequired({ inputRequests: { answer: inputRequired.createMessage({ messages, maxTokens: 40 }) } });
    }
    return { content: [{ type: "text", text: `sampled ${r.result.content.text}` }] };
  });
  s.registerTool("roots", { description: "asks its client's roots", inputSchema: z.object({}) }, async (_a, ctx) => {
    const r = inputResponse(ctx.mcpReq.inputResponses, "roots");
    if (r.kind !== "roots") return inputRequired({ inputRequests: { roots: inputRequired.listRoots() } });
    return { content: [{ type: "text", text: `roots ${r.roots.map((x) => x.uri).join(" ")}` }] };
  });
  s.registerTool("log", { description: "logs at two levels", inputSchema: z.object({}) }, async (_a, ctx) => {
    await ctx.mcpReq.log("info", "an info line");
    await ctx.mcpReq.log("warning", "a warning line");
    return { content: [{ type: "text", text: "logged" }] };
  });
  s.registerResource("doc", "demo://doc", { mimeType: "text/plain" },
    async () => ({ contents: [{ uri: "demo://doc", text: "hello from a modern server" }] }));
  return s;
};

if (process.argv[2] === "--http") {
  const [port, log] = [Number(process.argv[3]), process.argv[4]];
  const handler = createMcpHandler(factory, { legacy: "reject" });
  http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const h = req.headers;
    if (log) {
      const seen = [req.method, h["mcp-method"], h["mcp-name"], h["mcp-session-id"], h["mcp-protocol-version"]];
      appendFileSync(log, JSON.stringify(seen) + "\n");
    }
    const headers = new Headers();
    for (const [k, v] of Object.entries(h)) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    const body = req.method === "GET" || req.method === "HEAD" ? undefined : Buffer.concat(chunks);
    const response = await handler.fetch(new Request(`http://127.0.0.1:${port}${req.url}`, { method: req.method, headers, body }));
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (response.body) for await (const chunk of response.body) res.write(chunk);
    res.end();
  }).listen(port, "127.0.0.1");
} else {
  serveStdio(factory, { legacy: process.env.LEGACY || "reject" });
}
