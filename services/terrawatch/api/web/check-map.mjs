// Drive /map in headless Debian Chromium and report what rendered, as one JSON line.
// usage: node check-map.mjs <map-url> [screenshot.png] [until-unix-seconds]
// Exit 0 with {"state": "ready", ...} or non-zero with the error; the caller decides what passes.
import { chromium } from "playwright-core";

const [url, shot, until] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
  // WebGL without a GPU: SwiftShader, which newer Chromium only enables on request.
  "--use-angle=swiftshader", "--enable-unsafe-swiftshader"];

const browser = await chromium.launch({ executablePath, args, headless: true });
const out = { url: url.replace(/#.*$/, ""), console_errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
  page.on("pageerror", (e) => out.console_errors.push(String(e)));
  await page.goto(url, { waitUntil: "load", timeout: 60000 });
  await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state), null, { timeout: 90000 });
  out.state = await page.evaluate(() => document.body.dataset.state);
  out.status_text = await page.evaluate(() => document.getElementById("status").textContent);
  if (out.state === "ready") {
    out.counts = await page.evaluate(() => {
      const c = {};
      for (const f of window.terrawatch.map.queryRenderedFeatures({ layers: window.terrawatch.interactive })) {
        c[f.layer.id] = (c[f.layer.id] || 0) + 1;
      }
      return c;
    });
    // Click popup: find a canvas point over an alert or detection, click it, read the popup.
    const hit = await page.evaluate(() => {
      const map = window.terrawatch.map;
      const { width, height } = map.getCanvas().getBoundingClientRect();
      for (let y = 10; y < height; y += 8) {
        for (let x = 10; x < width; x += 8) {
          const f = map.queryRenderedFeatures([x, y], { layers: ["alerts-fill", "detections-fill"] });
          if (f.length) return { x, y, layer: f[0].layer.id };
        }
      }
      return null;
    });
    out.click = hit;
    if (hit) {
      const box = await page.locator("#map canvas").boundingBox();
      await page.mouse.click(box.x + hit.x, box.y + hit.y);
      await page.waitForSelector(".maplibregl-popup-content", { timeout: 10000 });
      out.popup = (await page.textContent(".maplibregl-popup-content")).slice(0, 400);
    }
    // Time filter: the slider's earliest position, and (if given) an exact time `until`.
    const count = () => page.evaluate(() =>
      window.terrawatch.map.queryRenderedFeatures({ layers: ["detections-fill"] }).length);
    const idle = () => page.evaluate(() => new Promise((r) => {
      window.terrawatch.map.once("idle", r);
      window.terrawatch.map.triggerRepaint();
    }));
    const before = await count();
    await page.evaluate(() => {
      const s = document.getElementById("slider");
      s.value = s.min;
      s.dispatchEvent(new Event("input"));
    });
    await idle();
    out.slider = { detections_before: before, detections_at_min: await count(),
                   label_at_min: await page.textContent("#time-label") };
    if (until) {
      await page.evaluate((t) => window.terrawatch.showUntil(t), Number(until));
      await idle();
      out.slider.detections_until = await count();
      out.slider.label_until = await page.textContent("#time-label");
    }
    if (shot) {
      await page.evaluate(() => {
        const s = document.getElementById("slider");
        s.value = s.max;
        s.dispatchEvent(new Event("input"));
      });
      await page.evaluate(() => new Promise((r) => window.terrawatch.map.once("idle", r)));
      await page.screenshot({ path: shot });
    }
  }
} catch (e) {
  out.state = out.state || "failed";
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.state === "ready" ? 0 : 1);
