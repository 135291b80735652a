// Drives the dashboard in headless Chromium against a running hub (started by
// tests/it/dashboard.rs). Usage: node dashboard.mjs <hub url> <mode> <screenshot|-> [token] [long server name]
// Modes: open (everything, then keyboard and a 375 px window with long names, URLs and messages;
// a second screenshot *-narrow.png), token (asked once, however many requests are refused at
// once, and what was refused goes through afterwards), waiting (a server's question answered
// in the page, the feed's grouping and chatter, a pipeline's result as text, the session
// count explained), offline (hidden tab, back-off while the hub does not answer), many (50
// servers, the DOM untouched while nothing changes).
// Every wait has a deadline; any failure exits non-zero with the reason on stderr.
import { createRequire } from "node:module";

const require = createRequire(process.env.PLAYWRIGHT_CORE_DIR + "/");
const { chromium } = require("playwright-core");

const [url, mode, shot, token, longName] = process.argv.slice(2);
const T = 15000;
const problems = [];
let expectInstallError = false;
// Every poll of /dashboard/state the page starts: when, and (once known) whether it failed.
const polls = [];
let offline = false;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  timeout: 30000,
});
let failed = false;
try {
  // The picture shows the default (dark) theme; headless Chromium otherwise reports "light".
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: mode === "open" ? "dark" : "light" });
  page.setDefaultTimeout(T);
  // Chromium logs every 4xx answer to the console: the ones this script provokes are expected.
  const expected = (text) => (mode === "token" && text.includes("status of 401")) || text.includes("status of 400 (Bad Request)") && expectInstallError
    || mode === "offline" && text.includes("ERR_CONNECTION_REFUSED");
  page.on("console", (m) => { if (m.type() === "error" && !expected(m.text())) problems.push("console error: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("request", (r) => { if (r.url().includes("/dashboard/state")) polls.push({ at: Date.now(), request: r, failed: null }); });
  page.on("requestfailed", (r) => {
    const p = polls.find((p) => p.request === r); if (p) p.failed = true;
    if (!(offline && p)) problems.push("failed request: " + r.url() + " " + (r.failure() || {}).errorText);
  });
  page.on("requestfinished", (r) => { const p = polls.find((p) => p.request === r); if (p) p.failed = false; });
  page.on("response", (r) => {
    const expected401 = mode === "token" && r.status() === 401;
    const expected400 = expectInstallError && /\/servers\/install$|\/pipelines\/greet$|\/elicitations\//.test(r.url());
    if (r.status() >= 400 && !expected401 && !expected400) problems.push("HTTP " + r.status() + " " + r.url());
    if (!r.url().startsWith(url)) problems.push("request off the hub: " + r.url());
  });
  // The page asks in the page itself, never with a native dialog.
  page.on("dialog", (d) => { problems.push("native dialog: " + d.message()); d.dismiss(); });

  // In token mode the page's first poll is held until the token is entered: its 401 then
  // answers a request sent without the token, and must not ask for the token again.
  let releaseFirstPoll = () => {};
  if (mode === "token") {
    const entered = new Promise((resolve) => { releaseFirstPoll = resolve; });
    await page.route("**/dashboard/state*", async (route) => { await entered; await route.continue(); }, { times: 1 });
  }
  const resp = await page.goto(url + "/", { waitUntil: "load" });
  if (!resp.url().endsWith("/dashboard")) throw new Error("/ did not redirect to /dashboard: " + resp.url());
  const csp = resp.headers()["content-security-policy"] || "";
  if (!csp.includes("connect-src 'self'")) throw new Error("no CSP on the page: " + csp);

  if (mode === "token") {
    await page.locator("#tokenbox").waitFor({ state: "visible" });
    await page.fill("#token", token);
    await page.keyboard.press("Enter");
    await page.locator("#tokenbox").waitFor({ state: "hidden" });
    releaseFirstPoll();
    await page.locator('.card[data-name="fx"] .status', { hasText: "RUNNING" }).waitFor();
    if (await page.locator("#tokenbox").isVisible()) throw new Error("the token was asked for again");
    const stored = await page.evaluate(() => sessionStorage.getItem("agenthub.token"));
    if (stored !== token) throw new Error("token not kept in sessionStorage");
    await page.click("#clear-cache");
    await page.locator("#c-size", { hasText: "0" }).waitFor();
    await checkTokenAskedOnce(page);
  } else if (mode === "waiting") {
    await checkWaiting(page);
  } else if (mode === "offline") {
    await checkHiddenAndBackOff(page);
  } else if (mode === "many") {
    await checkManyServers(page);
  } else {
    await checkEverything(page);
    if (shot !== "-") await page.screenshot({ path: shot, fullPage: true });
    await checkKeyboardAndNarrow(page);
  }
  // No request may carry the token in its URL.
  if (token && problems.some((p) => p.includes(token))) throw new Error("the token appeared in a URL");
} catch (e) {
  failed = true;
  console.error("FAILED: " + (e && e.stack || e));
} finally {
  await browser.close();
}
if (problems.length) { console.error(problems.join("\n")); failed = true; }
console.log(failed ? "dashboard: failed" : "dashboard: ok");
process.exit(failed ? 1 : 0);

/// Runs one check of several in a row: its failure is recorded and the next still runs (each
/// says on its own whether the page does what it should).
async function part(name, f) {
  try { await f(); } catch (e) { problems.push(name + ": " + (e && e.message || e)); } finally { expectInstallError = false; }
}
/// Waits until `cond()` (in this script) holds; throws `what` after `ms`.
async function until(what, ms, cond) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out (" + ms + " ms) waiting for " + what);
    await new Promise((r) => setTimeout(r, 20));
  }
}
/// Resolves once `n` more polls than now have finished (answered or failed).
async function pollsDone(n, ms) {
  const start = polls.length;
  await until(n + " more polls", ms, () => polls.length >= start + n && polls.slice(start, start + n).every((p) => p.failed !== null));
}
/// True when a new poll starts within `ms`.
async function pollWithin(ms) {
  const start = polls.length;
  try { await until("a poll", ms, () => polls.length > start); return true; } catch (_) { return false; }
}
async function hub(method, path, body) {
  const r = await fetch(url + path, { method, headers: { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!r.ok) throw new Error(method + " " + path + ": HTTP " + r.status);
  return r.json();
}
function notify(data) { return hub("POST", "/mcp/fx/tools/call", { name: "notify", arguments: { data } }); }

/// The hub's token changes under the page: a poll and an action refused at the same moment
/// ask for it once, and once it is given the action goes through without another click.
async function checkTokenAskedOnce(page) {
  await part("pipelines loaded behind the token's question", async () => {
    await page.locator('#pl-name option[value="greet"]').waitFor({ state: "attached", timeout: 5000 });
    if ((await page.textContent("#pl-err")).trim()) throw new Error("the pipelines panel kept an error: " + await page.textContent("#pl-err"));
  });
  await part("a poll and an action refused at once", () => askedOnce(page));
}
async function askedOnce(page) {
  await page.evaluate(() => {
    window.asked = 0; const box = document.getElementById("tokenbox");
    new MutationObserver(() => { if (!box.hidden) window.asked++; }).observe(box, { attributes: true, attributeFilter: ["hidden"] });
    sessionStorage.setItem("agenthub.token", "a-token-the-hub-no-longer-takes");
  });
  const clears = [];
  page.on("response", (r) => { if (r.url().endsWith("/cache/clear")) clears.push(r.status()); });
  await page.evaluate(() => { poll(); document.getElementById("clear-cache").click(); });
  await page.locator("#tokenbox").waitFor({ state: "visible" });
  await until("both refusals", 5000, () => clears.length >= 1);
  await new Promise((r) => setTimeout(r, 500));
  await page.fill("#token", token);
  await page.keyboard.press("Enter");
  await page.locator("#tokenbox").waitFor({ state: "hidden" });
  await until("the clear to go through after the token", 5000, () => clears.includes(200));
  await pollsDone(2, 8000);
  const asked = await page.evaluate(() => window.asked);
  if (asked !== 1) throw new Error("the token was asked for " + asked + " times");
  if ((await page.textContent("#c-err")).trim()) throw new Error("the cache clear failed: " + await page.textContent("#c-err"));
}

/// Starts the fixture's `ask` of an elicitation through the REST relay (a caller that cannot
/// answer it, so a person is asked); resolves to what the server heard back.
function elicit(params) {
  return hub("POST", "/mcp/fx/tools/call", { name: "ask", arguments: { method: "elicitation/create", params, wait_ms: 30000 } })
    .then((r) => JSON.parse(r.content[0].text));
}

async function checkWaiting(page) {
  await page.locator('.card[data-name="fx"] .status', { hasText: "RUNNING" }).waitFor();
  if (!(await page.locator("#wait-box").isHidden())) throw new Error("the waiting panel shows with nothing waiting");
  // A server's question: a form from its schema, the time left, Accept.
  const schema = { type: "object", required: ["branch"], properties: {
    branch: { type: "string", title: "Branch" }, depth: { type: "integer", minimum: 1 }, force: { type: "boolean" },
    color: { type: "string", oneOf: [{ const: "r", title: "Red" }, { const: "g", title: "Green" }] } } };
  const answered = elicit({ message: "Which branch should I use?", requestedSchema: schema });
  answered.catch(() => {});
  await part("the question answered in the page", () => answerInPage(page, answered));
  await part("the feed's grouping and chatter", () => quietFeed(page));
  await part("a pipeline's result as text", () => resultAsText(page));
  await part("the session count explained", () => sessionsExplained(page));
}
async function answerInPage(page, answered) {
  const ask = page.locator('#wait .ask[data-server="fx"]');
  await ask.waitFor({ timeout: 5000 });
  await ask.locator("p", { hasText: "Which branch should I use?" }).waitFor();
  await ask.locator(".left", { hasText: /\d+s left/ }).waitFor();
  if ((await ask.locator('input[data-arg="force"]').getAttribute("type")) !== "checkbox") throw new Error("a boolean is no checkbox");
  if ((await ask.locator('select[data-arg="color"] option').allTextContents()).join() !== "—,Red,Green") throw new Error("the choices are not a select of their titles");
  expectInstallError = true;
  await ask.locator('input[data-arg="branch"]').fill("main");
  await ask.locator('input[data-arg="depth"]').fill("0");
  await ask.locator("button", { hasText: "Accept" }).click();
  await ask.locator(".err", { hasText: "content.depth: at least 1" }).waitFor();
  expectInstallError = false;
  await ask.locator('input[data-arg="depth"]').fill("2");
  await ask.locator('input[data-arg="force"]').check();
  await ask.locator('select[data-arg="color"]').selectOption({ label: "Green" });
  await ask.locator("button", { hasText: "Accept" }).click();
  await page.locator("#wait-box").waitFor({ state: "hidden", timeout: 3000 });
  const heard = await answered;
  const want = { action: "accept", content: { branch: "main", depth: 2, force: true, color: "g" } };
  if (JSON.stringify(heard.result) !== JSON.stringify(want)) throw new Error("the server heard " + JSON.stringify(heard));
  await pollsDone(2, 6000);
  if (await page.locator("#wait .ask").count()) throw new Error("an answered question came back");
}
async function quietFeed(page) {

  // The feed: alike events in a row are one line, chatter (list_changed, debug) hidden until asked for.
  for (let i = 0; i < 3; i++) await hub("POST", "/mcp/fx/tools/call", { name: "notify", arguments: { list_changed: true } });
  await hub("POST", "/mcp/fx/tools/call", { name: "notify", arguments: { level: "debug", data: "debug chatter" } });
  for (let i = 0; i < 4; i++) await notify("the same again");
  const same = page.locator("#feed li", { hasText: "the same again" });
  await same.locator(".x", { hasText: "×4" }).waitFor({ timeout: 5000 });
  if ((await same.count()) !== 1) throw new Error("4 alike events took " + await same.count() + " lines");
  const listed = page.locator("#feed li", { hasText: "notifications/tools/list_changed" });
  const debug = page.locator("#feed li", { hasText: "debug chatter" });
  if ((await listed.count()) !== 1 || await listed.isVisible() || await debug.isVisible()) throw new Error("chatter shows by default");
  await page.check("#f-all");
  await listed.locator(".x", { hasText: "×3" }).waitFor({ state: "visible" });
  await debug.waitFor({ state: "visible" });
  await page.uncheck("#f-all");
  await debug.waitFor({ state: "hidden" });
}
async function resultAsText(page) {

  // A pipeline's result, an MCP content array, is shown as its text.
  await page.selectOption("#pl-name", "report");
  await page.click("#pl-run");
  await page.locator("#pl-status", { hasText: "ok" }).waitFor({ timeout: 10000 });
  const result = await page.textContent("#pl-result");
  if (result !== "first line\nsecond line") throw new Error("the result is shown as " + JSON.stringify(result));
}
async function sessionsExplained(page) {

  // The session count says what it counts.
  const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "browser-test", version: "1" } } };
  const r = await fetch(url + "/mcp/fx", { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" }, body: JSON.stringify(init) });
  if (!r.ok) throw new Error("initialize: HTTP " + r.status);
  await page.locator("#h-sessions", { hasText: "1 MCP client session (0 idle)" }).waitFor({ timeout: 5000 });
  const title = await page.getAttribute("#h-sessions", "title");
  if (!/MCP client sessions/.test(title || "") || !/idle/i.test(title)) throw new Error("the session count does not explain itself: " + title);
}

async function checkEverything(page) {
  const card = (name) => page.locator(`.card[data-name="${name}"]`);
  // Servers with their status.
  await card("fx").locator(".status", { hasText: "RUNNING" }).waitFor();
  await card("idle").locator(".status", { hasText: "STOPPED" }).waitFor();

  // Restart: STARTING, then RUNNING, as the page shows it (every change of the badge recorded).
  await page.evaluate(() => {
    const b = document.querySelector('.card[data-name="fx"] .status');
    window.seen = [b.textContent];
    new MutationObserver(() => window.seen.push(b.textContent)).observe(b, { childList: true, characterData: true, subtree: true });
  });
  const pidBefore = await card("fx").locator("dd").first().textContent();
  await card("fx").locator('button[data-action="restart"]').click();
  await page.waitForFunction((pid) => {
    const c = document.querySelector('.card[data-name="fx"]');
    return window.seen.includes("STARTING") && c.dataset.status === "RUNNING" && c.querySelector("dd").textContent !== pid;
  }, pidBefore);
  const seen = await page.evaluate(() => window.seen);
  if (seen.indexOf("STARTING") > seen.lastIndexOf("RUNNING")) throw new Error("restart went " + seen.join(" → "));

  // Stop changes the card; Start brings it back.
  await card("fx2").locator(".status", { hasText: "RUNNING" }).waitFor();
  await card("fx2").locator('button[data-action="stop"]').click();
  await card("fx2").locator(".status", { hasText: "STOPPED" }).waitFor();
  await page.locator('.card[data-name="fx2"][data-status="STOPPED"]').waitFor();
  // A person's stop holds the server: the card says so, beside its Start button.
  await card("fx2").locator(".held", { hasText: "stopped by you" }).waitFor();
  if (!(await card("fx2").locator('button[data-action="start"]').isEnabled())) throw new Error("Start stays disabled");

  // The stderr drawer, with its filter.
  await card("fx").locator("button", { hasText: "Logs" }).click();
  await card("fx").locator("pre.logs", { hasText: "fixture" }).waitFor();

  // An event the test causes appears in the feed within one poll (2 s) and a margin.
  await notify("hello from fixture");
  await page.locator("#feed li", { hasText: "hello from fixture" }).waitFor({ timeout: 3000 });
  await page.selectOption("#f-kind", "server");
  if (await page.locator("#feed li:not(.hide)", { hasText: "hello from fixture" }).count()) throw new Error("kind filter ignored");
  await page.selectOption("#f-server", "fx2");
  await page.selectOption("#f-kind", "");
  if (await page.locator("#feed li:not(.hide)", { hasText: "hello from fixture" }).count()) throw new Error("server filter ignored");
  await page.selectOption("#f-server", "");

  // The feed holds still while scrolled away from its top, and catches up back at the top.
  for (let i = 0; i < 24; i++) await notify("burst " + i);
  await page.locator("#feed li", { hasText: "burst 23" }).waitFor({ timeout: 5000 });
  await page.evaluate(() => { document.getElementById("feed").scrollTop = 150; });
  await page.waitForFunction(() => document.getElementById("feed").scrollTop >= 100, null, { timeout: 3000 });
  const feedNow = () => page.evaluate(() => ({ top: document.getElementById("feed").scrollTop,
    text: [...document.querySelectorAll("#feed li")].map((li) => li.textContent).join("\n") }));
  const held = await feedNow();
  await notify("while paused 1");
  await notify("while paused 2");
  await page.waitForResponse(async (r) => r.url().includes("/dashboard/state") && (await r.text()).includes("while paused 2"), { timeout: 5000 });
  await pollsDone(1, 5000);
  const after = await feedNow();
  if (after.text !== held.text || after.top !== held.top) throw new Error("the feed changed while scrolled: " + JSON.stringify({ held, after }).slice(0, 400));
  await page.locator("#more", { hasText: /\d+ new/ }).waitFor({ timeout: 3000 });
  await page.evaluate(() => { document.getElementById("feed").scrollTop = 0; });
  await page.locator("#feed li", { hasText: "while paused 2" }).waitFor({ timeout: 3000 });
  await page.locator("#feed li", { hasText: "while paused 1" }).waitFor({ timeout: 3000 });
  await page.locator("#more").waitFor({ state: "hidden", timeout: 3000 });

  // Prompt tester: a real answer from the (fake) model, then the same from the cache.
  await page.selectOption("#t-rule", "vscode");
  await page.click("#t-run");
  await page.locator("#t-out", { hasText: "[qwen2.5-coder:7b] explain docker volumes" }).waitFor();
  await page.locator("#t-enhanced", { hasText: "true" }).waitFor();
  await page.click("#t-run");
  await page.locator("#t-cached", { hasText: "true" }).waitFor();
  await page.locator("#o-stats td", { hasText: "qwen2.5-coder:7b" }).waitFor();

  // Cache card, then Clear cache empties it.
  await page.locator("#c-size", { hasText: "1" }).waitFor({ timeout: 5000 });
  await page.click("#clear-cache");
  await page.locator("#c-size", { hasText: "0" }).waitFor();

  // Tool playground: a running server, a tool, arguments, a real result.
  await page.selectOption("#p-server", "fx");
  await page.locator("#p-tool option", { hasText: "echo" }).waitFor({ state: "attached" });
  await page.selectOption("#p-tool", "echo");
  await page.fill("#p-extra", JSON.stringify({ text: "hello from the playground" }));
  await page.click("#p-run");
  await page.locator("#p-text", { hasText: "hello from the playground" }).waitFor();
  await page.locator("#p-iserror", { hasText: "false" }).waitFor();

  // A tool annotated destructiveHint asks first, in the page: Escape (the focus starts on
  // Cancel) calls nothing; "Run anyway" calls it.
  const wipes = [];
  page.on("request", (r) => { if (r.url().endsWith("/tools/call") && (r.postData() || "").includes('"wipe"')) wipes.push(r); });
  await page.selectOption("#p-tool", "wipe");
  await page.click("#p-run");
  const ask = page.locator("#p-confirm");
  await ask.waitFor({ state: "visible", timeout: 3000 });
  if (!/destructive/i.test(await ask.textContent())) throw new Error("the confirmation does not say why: " + await ask.textContent());
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === "p-no", null, { timeout: 3000 });
  await page.keyboard.press("Escape");
  await ask.waitFor({ state: "hidden", timeout: 3000 });
  await pollsDone(2, 6000);
  const activity = JSON.stringify(await hub("GET", "/activity"));
  if (wipes.length || activity.includes("wiped by fixture")) throw new Error("a dismissed destructive tool was called");
  await page.click("#p-run");
  await ask.waitFor({ state: "visible", timeout: 3000 });
  await page.keyboard.press("Shift+Tab");
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === "p-yes", null, { timeout: 3000 });
  await page.keyboard.press("Enter");
  await page.locator("#p-text", { hasText: "wiped" }).waitFor();
  await page.locator("#feed li", { hasText: "wiped by fixture" }).waitFor({ timeout: 5000 });
  if (wipes.length !== 1) throw new Error("wipe called " + wipes.length + " times");

  // Pipelines: a form from the inputs, a run whose steps fill in as they end, its result; a
  // missing input is the hub's 400, shown.
  await page.selectOption("#pl-name", "greet");
  await page.locator("#pl-who").waitFor();
  if ((await page.inputValue("#pl-times")) !== "2") throw new Error("the input's default is not in the form");
  expectInstallError = true;
  await page.click("#pl-run");
  await page.locator("#pl-err", { hasText: "inputs.who: required" }).waitFor();
  expectInstallError = false;
  await page.fill("#pl-who", "browser");
  await page.click("#pl-run");
  await page.locator('#pl-steps li[data-step="echo"][data-status="ok"]').waitFor();
  if ((await page.textContent("#pl-status")) !== "running") throw new Error("the run's steps were not shown while it ran");
  await page.locator('#pl-steps li[data-step="later"][data-status="pending"]').waitFor({ state: "attached" });
  await page.locator("#pl-status", { hasText: "ok" }).waitFor({ timeout: 10000 });
  await page.locator("#pl-result", { hasText: "hello browser x2" }).waitFor();
  await page.locator("#feed li", { hasText: "greet run-" }).first().waitFor({ timeout: 5000 });

  // Install: a bad name is refused and the error shown.
  expectInstallError = true;
  await page.fill("#i-package", "Not A Package!");
  await page.click("#i-run");
  await page.locator("#i-err", { hasText: "HTTP 400" }).waitFor();
  await page.fill("#i-package", "");
  expectInstallError = false;

  // Connect snippets come from the hub's recipe table (GET /clients) and name this hub's address.
  await page.click("#snippets .tab >> text=VS Code");
  await page.locator("#snippet", { hasText: url + "/mcp" }).waitFor();
  await page.locator("#snippet", { hasText: "X-Client-Name" }).waitFor();
  await page.locator("#snippet-where", { hasText: "agenthub connect vscode --write" }).waitFor();
  await page.click("#snippets .tab >> text=Claude Desktop");
  await page.locator("#snippet", { hasText: "stdio" }).waitFor();
  await page.click("#snippets .tab >> text=Codex CLI");
  await page.locator("#snippet", { hasText: "[mcp_servers.agenthub]" }).waitFor();
  await page.click("#snippets .tab >> text=Continue");
  await page.locator("#snippet", { hasText: "streamable-http" }).waitFor();
  await page.click("#snippets .tab >> text=VS Code");
  await page.evaluate(() => window.scrollTo(0, 0));

  // Profiles: each with its servers, its tools and what they cost a client's context.
  const coding = page.locator("#p-rows tr", { hasText: "coding" });
  await coding.locator("td", { hasText: "fx (1)" }).waitFor();
  const cells = await coding.locator("td").allTextContents();
  if (cells[2] !== "1" || !(Number(cells[3].replace(/\D/g, "")) > 0) || !cells[5].includes("cursor"))
    throw new Error("the coding profile reads " + JSON.stringify(cells));
  await page.locator("#p-rows tr", { hasText: "all (default)" }).waitFor();
}

async function checkKeyboardAndNarrow(page) {
  const card = (name) => page.locator(`.card[data-name="${name}"]`);
  // Keyboard: Tab from the top of the page reaches a server's buttons, and Enter acts.
  await card("idle").locator(".status", { hasText: "STOPPED" }).waitFor();
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.mouse.click(5, 5);
  let reached = false;
  for (let i = 0; i < 80 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement.matches('.card[data-name="idle"] button[data-action="start"]'));
  }
  if (!reached) throw new Error("Tab never reached idle's Start");
  const started = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith("/servers/idle/start"), { timeout: 3000 });
  await page.keyboard.press("Enter");
  await started;
  await card("idle").locator(".status", { hasText: "RUNNING" }).waitFor();

  // A phone-sized window: nothing scrolls sideways, with a 64-character server name, a long
  // unbroken log line, a question with a long URL waiting; cards and controls are on screen and work.
  await page.setViewportSize({ width: 375, height: 800 });
  const long = "https://example.com/" + "very-long-path-segment-".repeat(12) + "?q=" + "x".repeat(120);
  const declined = elicit({ mode: "url", url: long, elicitationId: "narrow-1", message: "Please-open-" + "y".repeat(150) });
  declined.catch(() => {});
  await notify("a-log-line-without-spaces-" + "z".repeat(300));
  await until("the question held", 5000, async () => (await hub("GET", "/elicitations")).elicitations.length === 1);
  await page.locator("#feed li", { hasText: "a-log-line-without-spaces" }).waitFor({ timeout: 5000 });
  await page.locator(`#f-server option[value="${longName}"]`).waitFor({ state: "attached" });
  await pollsDone(1, 5000);
  await page.evaluate(() => window.scrollTo(0, 0));
  const fit = await page.evaluate(() => ({ scroll: document.scrollingElement.scrollWidth, width: innerWidth,
    wide: [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5)
      .slice(0, 6).map((e) => e.tagName + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "")) }));
  if (fit.scroll > fit.width) throw new Error("at 375 px the page scrolls sideways: " + JSON.stringify(fit));
  await page.locator("#wait .ask a", { hasText: "very-long-path-segment" }).waitFor({ timeout: 5000 });
  for (const sel of ['.card[data-name="fx"]', '.card[data-name="fx2"]', '.card[data-name="idle"]', `.card[data-name="${longName}"]`, "#wait .ask", "#clear-cache", "#p-run", "#t-run", "#i-run", "#f-kind", "#f-server"]) {
    const l = page.locator(sel);
    await l.scrollIntoViewIfNeeded();
    const box = await l.boundingBox();
    if (!box || box.x < 0 || box.x + box.width > 375.5 || !(await l.isVisible())) throw new Error(sel + " is not on screen at 375 px: " + JSON.stringify(box));
  }
  await card("fx2").locator('button[data-action="start"]').click();
  await card("fx2").locator(".status", { hasText: "RUNNING" }).waitFor();
  await page.evaluate(() => window.scrollTo(0, 0));
  if (shot !== "-") await page.screenshot({ path: shot.replace(/\.png$/, "-narrow.png"), fullPage: true });
  // The URL question declined from the page.
  await page.locator("#wait .ask button", { hasText: "Decline" }).click();
  await page.locator("#wait-box").waitFor({ state: "hidden", timeout: 3000 });
  if ((await declined).result.action !== "decline") throw new Error("the server heard " + JSON.stringify(await declined));
}

async function checkHiddenAndBackOff(page) {
  const card = (name) => page.locator(`.card[data-name="${name}"]`);
  await card("fx2").locator(".status", { hasText: "RUNNING" }).waitFor();
  // Hidden: no poll for 3 s (visible, one would come within 2 s); visible again: a poll at once.
  await pollsDone(1, 5000);
  await new Promise((r) => setTimeout(r, 200)); // let the page schedule its next poll
  await page.evaluate(() => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    document.dispatchEvent(new Event("visibilitychange"));
  });
  const hiddenAt = Date.now();
  if (await pollWithin(3000)) throw new Error("polled " + (polls[polls.length - 1].at - hiddenAt) + " ms after the tab was hidden");
  await page.evaluate(() => { delete document.visibilityState; delete document.hidden; document.dispatchEvent(new Event("visibilitychange")); });
  if (!(await pollWithin(1000))) throw new Error("no poll within 1 s of the tab showing again");
  await pollsDone(1, 3000);

  // The hub stops answering: a banner with the time it went, and retries that back off.
  offline = true;
  const from = polls.length;
  await page.route(/\/dashboard\/state/, (r) => r.abort("connectionrefused"));
  const failures = () => polls.slice(from).filter((p) => p.failed === true);
  await until("a failed poll", 5000, () => failures().length >= 1);
  const banner = page.locator("#banner");
  await banner.waitFor({ state: "visible", timeout: 3000 });
  const sinceOf = async () => ((await banner.textContent()).match(/disconnected since (\d{1,2}:\d\d:\d\d)/i) || [])[1];
  const since = await sinceOf();
  if (!since) throw new Error("the banner does not say since when: " + await banner.textContent());
  const first = new Date(failures()[0].at);
  const [h, m, sec] = since.split(":").map(Number);
  const drift = Math.abs((h * 3600 + m * 60 + sec) - (first.getHours() * 3600 + first.getMinutes() * 60 + first.getSeconds()));
  if (drift > 2 && drift < 86398) throw new Error("banner says since " + since + ", the first failure was at " + first.toTimeString());
  if (!(await page.evaluate(() => document.getElementById("conn").classList.contains("down")))) throw new Error("the dot does not show the hub down");
  await until("3 failed polls", 20000, () => failures().length >= 3);
  const f = failures();
  const gaps = [f[1].at - f[0].at, f[2].at - f[1].at];
  if (!(gaps[0] >= 1500 && gaps[1] >= 1.6 * gaps[0])) throw new Error("no back-off between failed polls: gaps " + gaps.join(", ") + " ms");
  if ((await sinceOf()) !== since) throw new Error("the banner's time moved: " + await banner.textContent());

  // Something changes while the page cannot see it; the hub answers again: banner gone, data new.
  await hub("POST", "/servers/fx2/stop");
  const lastFail = f[2].at;
  await page.unroute(/\/dashboard\/state/);
  await banner.waitFor({ state: "hidden", timeout: 20000 });
  const back = polls.find((p) => p.at > lastFail && p.failed === false);
  if (!back || back.at - lastFail < 1.6 * gaps[1]) throw new Error("the retry after " + gaps.join(", ") + " ms came after " + (back ? back.at - lastFail : "?") + " ms");
  await card("fx2").locator(".status", { hasText: "STOPPED" }).waitFor({ timeout: 3000 });
  if (!(await page.evaluate(() => document.getElementById("conn").classList.contains("up")))) throw new Error("the dot does not show the hub up again");
}

async function checkManyServers(page) {
  await page.waitForFunction(() => document.querySelectorAll("#servers .card").length === 50, null, { timeout: T });
  // Every running card has its tool count (fetched once per process) before the watch starts.
  await page.waitForFunction(() => {
    const running = [...document.querySelectorAll('#servers .card[data-status="RUNNING"]')];
    return running.length === 5 && running.every((c) => /^\d+$/.test([...c.querySelectorAll("dt")].find((d) => d.textContent === "tools").nextElementSibling.textContent));
  }, null, { timeout: T });
  await pollsDone(1, 5000);
  // Every change inside the server list, by card; an uptime ticking is a real change.
  await page.evaluate(() => {
    window.muts = [];
    const uptime = (card) => [...card.querySelectorAll("dt")].find((d) => d.textContent === "uptime").nextElementSibling;
    new MutationObserver((list) => { for (const m of list) {
      const node = m.target.nodeType === 1 ? m.target : m.target.parentElement; const card = node.closest(".card");
      window.muts.push({ card: card ? card.dataset.name : null, uptime: !!card && uptime(card).contains(node), type: m.type, attr: m.attributeName, tag: node.tagName });
    } }).observe(document.getElementById("servers"), { subtree: true, childList: true, attributes: true, characterData: true });
  });
  const muts = async (test) => (await page.evaluate(() => window.muts)).filter(test);
  const show = (list) => list.length + " mutations, e.g. " + JSON.stringify(list.slice(0, 4));
  await pollsDone(3, 10000);
  const idle = await muts((m) => !m.uptime || !["s00", "s01", "s02", "s03", "s04"].includes(m.card));
  if (idle.length) throw new Error("polls that changed nothing touched the server list: " + show(idle));

  await page.evaluate(() => { window.muts = []; });
  await hub("POST", "/servers/s10/start");
  await page.locator('.card[data-name="s10"][data-status="RUNNING"]').waitFor({ timeout: T });
  await pollsDone(2, 6000);
  const touched = await muts((m) => !m.uptime && m.card !== "s10");
  if (touched.length) throw new Error("starting s10 touched other cards: " + show(touched));
  if (!(await muts((m) => m.card === "s10")).length) throw new Error("s10's card never changed");
}
