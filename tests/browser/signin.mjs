// A person signs in to a remote server from the dashboard, in headless Chromium (started by
// tests/it/oauth.rs against a hub whose server `remote` waits for a sign-in and a local
// authorization server that redirects at once). Usage: node signin.mjs <hub url>
// The card's "Sign in" opens the authorization URL in a new tab; the authorization server sends
// the browser to the hub's callback, whose page says the sign-in is done; the card turns RUNNING
// and offers "Sign out". Every wait has a deadline; a failure exits non-zero with the reason.
import { createRequire } from "node:module";

const require = createRequire(process.env.PLAYWRIGHT_CORE_DIR + "/");
const { chromium } = require("playwright-core");

const [url] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  timeout: 30000,
});
let failed = false;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(url + "/dashboard");
  const card = page.locator('.card[data-name="remote"]');
  await card.locator(".status", { hasText: "AUTH_REQUIRED" }).waitFor();
  const [tab] = await Promise.all([page.waitForEvent("popup"), card.locator("button", { hasText: "Sign in" }).click()]);
  await tab.waitForURL(/\/oauth\/callback/);
  const said = await tab.locator("p").textContent();
  if (!said.includes("Signed in to remote")) throw new Error("the page after the callback says: " + said);
  await card.locator(".status", { hasText: "RUNNING" }).waitFor();
  await card.locator("button", { hasText: "Sign out" }).waitFor({ state: "visible" });
  console.log("signin: ok (" + said + ")");
} catch (e) {
  failed = true;
  console.error("signin: " + (e && e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
