// Drives the dashboard in headless Chromium against a running hub (started by
// tests/it/dashboard.rs). Usage: node dashboard.mjs <hub url> <mode: open|token> <screenshot|-> [token]
// Every wait has a deadline; any failure exits non-zero with the reason on stderr.
import { createRequire } from "node:module";

const require = createRequire(process.env.PLAYWRIGHT_CORE_DIR + "/");
const { chromium } = require("playwright-core");

const [url, mode, shot, token] = process.argv.slice(2);
const T = 15000;
const problems = [];
let expectInstallError = false;

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
  const expected = (text) => (mode === "token" && text.includes("status of 401")) || text.includes("status of 400 (Bad Request)") && expectInstallError;
  page.on("console", (m) => { if (m.type() === "error" && !expected(m.text())) problems.push("console error: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("requestfailed", (r) => problems.push("failed request: " + r.url() + " " + (r.failure() || {}).errorText));
  page.on("response", (r) => {
    const expected401 = mode === "token" && r.status() === 401;
    if (r.status() >= 400 && !expected401 && !(expectInstallError && r.url().endsWith("/servers/install"))) problems.push("HTTP " + r.status() + " " + r.url());
    if (!r.url().startsWith(url)) problems.push("request off the hub: " + r.url());
  });
  page.on("dialog", (d) => d.accept());

  const resp = await page.goto(url + "/", { waitUntil: "load" });
  if (!resp.url().endsWith("/dashboard")) throw new Error("/ did not redirect to /dashboard: " + resp.url());
  const csp = resp.headers()["content-security-policy"] || "";
  if (!csp.includes("connect-src 'self'")) throw new Error("no CSP on the page: " + csp);

  if (mode === "token") {
    await page.locator("#tokenbox").waitFor({ state: "visible" });
    await page.fill("#token", token);
    await page.keyboard.press("Enter");
    await page.locator("#tokenbox").waitFor({ state: "hidden" });
    await page.locator('.card[data-name="fx"] .status', { hasText: "RUNNING" }).waitFor();
    const stored = await page.evaluate(() => sessionStorage.getItem("agenthub.token"));
    if (stored !== token) throw new Error("token not kept in sessionStorage");
    await page.click("#clear-cache");
    await page.locator("#c-size", { hasText: "0" }).waitFor();
  } else {
    await checkEverything(page);
    if (shot !== "-") await page.screenshot({ path: shot, fullPage: true });
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
  if (!(await card("fx2").locator('button[data-action="start"]').isEnabled())) throw new Error("Start stays disabled");

  // The stderr drawer, with its filter.
  await card("fx").locator("button", { hasText: "Logs" }).click();
  await card("fx").locator("pre.logs", { hasText: "fixture" }).waitFor();

  // An event the test causes appears in the feed within one poll (2 s) and a margin.
  const r = await fetch(url + "/mcp/fx/tools/call", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: "notify", arguments: {} }) });
  if (!r.ok) throw new Error("notify: HTTP " + r.status);
  await page.locator("#feed li", { hasText: "hello from fixture" }).waitFor({ timeout: 3000 });
  await page.selectOption("#f-kind", "server");
  if (await page.locator("#feed li:not(.hide)", { hasText: "hello from fixture" }).count()) throw new Error("kind filter ignored");
  await page.selectOption("#f-server", "fx2");
  await page.selectOption("#f-kind", "");
  if (await page.locator("#feed li:not(.hide)", { hasText: "hello from fixture" }).count()) throw new Error("server filter ignored");
  await page.selectOption("#f-server", "");

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

  // Install: a bad name is refused and the error shown.
  expectInstallError = true;
  await page.fill("#i-package", "Not A Package!");
  await page.click("#i-run");
  await page.locator("#i-err", { hasText: "HTTP 400" }).waitFor();
  await page.fill("#i-package", "");
  expectInstallError = false;

  // Connect snippets name this hub's address.
  await page.locator("#snippet", { hasText: url + "/mcp" }).waitFor();
  await page.locator("#snippet", { hasText: "X-Client-Name" }).waitFor();
  await page.click("#snippets .tab >> text=Claude Desktop");
  await page.locator("#snippet", { hasText: "stdio" }).waitFor();
  await page.click("#snippets .tab >> text=VS Code");
  await page.evaluate(() => window.scrollTo(0, 0));
}
