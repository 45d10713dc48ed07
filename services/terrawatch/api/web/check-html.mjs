// Open the API's HTML pages in headless Debian Chromium under their Content-Security-Policy and report, as one
// JSON line per page, CSP violations, console errors, dialogs (an injected alert() would open one), requests
// that left the API's origin, and whether Swagger UI rendered its operations.
// usage: node check-html.mjs <base-url> <path> [<path> ...]
import { chromium } from "playwright-core";

const [base, ...paths] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];
const origin = new URL(base).origin;
const browser = await chromium.launch({ executablePath, args, headless: true });
try {
  for (const path of paths) {
    const out = { path, console_errors: [], csp_violations: [], dialogs: [], foreign_requests: [] };
    const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
    page.on("pageerror", (e) => out.console_errors.push(String(e)));
    page.on("dialog", async (d) => { out.dialogs.push(d.message()); await d.dismiss(); });
    page.on("request", (r) => {
      const u = r.url();
      if (!u.startsWith(origin) && !u.startsWith("data:") && !u.startsWith("blob:")) out.foreign_requests.push(u);
    });
    await page.addInitScript(() => {
      window.__csp = [];
      document.addEventListener("securitypolicyviolation",
        (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const res = await page.goto(base + path, { waitUntil: "load", timeout: 60000 });
    out.status = res.status();
    out.csp = res.headers()["content-security-policy"] || null;
    if (path.startsWith("/docs")) {
      await page.waitForSelector(".opblock", { timeout: 60000 }).catch(() => {});
      out.operations = await page.evaluate(() => document.querySelectorAll(".opblock").length);
    } else {
      await page.waitForTimeout(500);
    }
    out.csp_violations = await page.evaluate(() => window.__csp);
    out.text = (await page.evaluate(() => document.body.innerText)).slice(0, 20000);
    console.log(JSON.stringify(out));
    await page.close();
  }
} finally {
  await browser.close();
}
