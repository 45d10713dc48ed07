// Drive /map in headless Debian Chromium and report what rendered, as one JSON line.
// usage: node check-map.mjs <map-url> [screenshot.png] [until-unix-seconds]
// env: CHECK_RASTER_BBOX=w,s,e,n (raster and basemap pixels), CHECK_PLACES_AT=lon,lat,zoom (place labels there)
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
  // ms from navigation start to "ready" (vector layers drawn), measured by the page itself
  out.ready_ms = await page.evaluate(() => window.terrawatch && window.terrawatch.readyMs.value);
  out.timings = await page.evaluate(() => window.terrawatch && window.terrawatch.timings);  // ms per start-up step
  out.status_text = await page.evaluate(() => document.getElementById("status").textContent);
  if (out.state === "ready") {
    out.counts = await page.evaluate(() => {
      const c = {};
      for (const f of window.terrawatch.map.queryRenderedFeatures({ layers: window.terrawatch.interactive })) {
        c[f.layer.id] = (c[f.layer.id] || 0) + 1;
      }
      return c;
    });
    await page.evaluate(() => window.terrawatch.rastersReady());
    out.legend = await page.evaluate(() => document.getElementById("legend").textContent);
    out.rasters = await page.evaluate(() => ({ likelihood: window.terrawatch.rasters.likelihood.length,
                                               quicklook: window.terrawatch.rasters.quicklook.length }));
    out.distinct_features = await page.evaluate(() => window.terrawatch.distinct());
    // The initial view must contain the newest alert, drawn at a readable size (its on-screen width/height in px).
    out.initial_view = await page.evaluate(() => {
      const map = window.terrawatch.map;
      const v = map.getBounds();
      const a = window.terrawatch.newest.bounds;
      const b = a ? a.bounds : null;
      const contains = b ? v.contains(b.getSouthWest()) && v.contains(b.getNorthEast()) : null;
      let px = null;
      if (b) {
        const sw = map.project(b.getSouthWest());
        const ne = map.project(b.getNorthEast());
        px = [Math.round(Math.abs(ne.x - sw.x)), Math.round(Math.abs(sw.y - ne.y))];
      }
      return { view: v.toArray(), newest: b ? b.toArray() : null, newest_id: a ? a.id : null,
               contains_newest: contains, newest_px: px, zoom: map.getZoom() };
    });
    // The first view's place labels ("name, region, country"), once fetched and placed.
    out.places_initial = await page.evaluate(() => window.terrawatch.placesReady());
    // Click popup: find a canvas point over an alert or detection, click it, read the popup.
    const findHit = () => page.evaluate(() => {
      const map = window.terrawatch.map;
      const canvas = map.getCanvas();
      const { left, top, width, height } = canvas.getBoundingClientRect();
      for (let y = 10; y < height; y += 8) {
        for (let x = 10; x < width; x += 8) {
          const f = map.queryRenderedFeatures([x, y], { layers: ["alerts-fill", "detections-fill"] });
          // only where a click reaches the map (the side panel and controls lie over the canvas)
          if (f.length && document.elementFromPoint(left + x, top + y) === canvas) {
            return { x, y, layer: f[0].layer.id };
          }
        }
      }
      return null;
    });
    let hit = await findHit();
    const initial = await page.evaluate(() => ({ center: window.terrawatch.map.getCenter().toArray(),
                                                 zoom: window.terrawatch.map.getZoom() }));
    if (!hit && process.env.CHECK_RASTER_BBOX) {
      // With many alerts far apart (a shared test database), the fitted view can make every polygon
      // smaller than the search grid: zoom to the scene under test, then search again.
      const b = process.env.CHECK_RASTER_BBOX.split(",").map(Number);
      await page.evaluate((b) => new Promise((r) => {
        window.terrawatch.map.once("idle", r);
        window.terrawatch.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { duration: 0, padding: 20 });
      }), b);
      hit = await findHit();
    }
    out.click = hit;
    if (hit) {
      const box = await page.locator("#map canvas").boundingBox();
      await page.mouse.click(box.x + hit.x, box.y + hit.y);
      await page.waitForSelector(".maplibregl-popup-content", { timeout: 30000 });
      // The popup opens with "…" (and its close button, "×") until the alert's details have been fetched.
      await page.waitForFunction(() => !document.querySelector(".maplibregl-popup-content").textContent.startsWith("…"),
                                 null, { timeout: 30000 });
      out.popup = (await page.textContent(".maplibregl-popup-content")).slice(0, 600);
      out.popup_links = await page.evaluate(() =>
        [...document.querySelectorAll(".maplibregl-popup-content a")].map((a) => a.getAttribute("href")));
      await page.evaluate(() => document.querySelectorAll(".maplibregl-popup").forEach((p) => p.remove()));
    }
    await page.evaluate((v) => new Promise((r) => {
      window.terrawatch.map.once("idle", r);
      window.terrawatch.map.jumpTo(v);
    }), initial);
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
    if (process.env.CHECK_RASTER_BBOX) {
      // Likelihood raster under the flood polygons: pixels at flood detections with the rasters shown vs hidden
      // (vector layers hidden both times); then the basemap: a land and a sea pixel at world view.
      const bbox = process.env.CHECK_RASTER_BBOX.split(",").map(Number);
      await page.evaluate(() => { document.getElementById("panel").style.display = "none"; });
      const pixels = async (points) => {
        const png = (await page.screenshot()).toString("base64");
        return page.evaluate(async ({ png, points }) => {
          const img = new Image();
          img.src = `data:image/png;base64,${png}`;
          await img.decode();
          const c = document.createElement("canvas");
          c.width = img.width;
          c.height = img.height;
          const ctx = c.getContext("2d");
          ctx.drawImage(img, 0, 0);
          return points.map(([x, y]) => Array.from(ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data));
        }, { png, points });
      };
      const idleNow = () => page.evaluate(() => new Promise((r) => {
        window.terrawatch.map.once("idle", r);
        window.terrawatch.map.triggerRepaint();
      }));
      await page.evaluate((b) => window.terrawatch.map.fitBounds([[b[0], b[1]], [b[2], b[3]]],
                                                                 { duration: 0, padding: 20 }), bbox);
      await idleNow();
      // The rasters of this view are searched for after the move (the first view may be another place)
      await page.evaluate(() => window.terrawatch.rastersReady());
      await idleNow();
      out.rasters = await page.evaluate(() => ({ likelihood: window.terrawatch.rasters.likelihood.length,
                                                 quicklook: window.terrawatch.rasters.quicklook.length }));
      const flood = await page.evaluate(() => {
        const map = window.terrawatch.map;
        const rect = map.getCanvas().getBoundingClientRect();
        const pts = [];
        for (let y = 5; y < rect.height && pts.length < 400; y += 6) {
          for (let x = 5; x < rect.width && pts.length < 400; x += 6) {
            const f = map.queryRenderedFeatures([x, y], { layers: ["detections-fill"] });
            if (f.some((g) => g.properties.hazard === "flood")) pts.push([x + rect.left, y + rect.top]);
          }
        }
        return pts;
      });
      const setVis = (ids, on) => page.evaluate(({ ids, on }) => {
        for (const id of ids) window.terrawatch.map.setLayoutProperty(id, "visibility", on ? "visible" : "none");
      }, { ids, on });
      // Observed water (off by default): its toggle draws the scene's water, which the legend names.
      const waterCount = () => page.evaluate(() =>
        window.terrawatch.map.queryRenderedFeatures({ layers: ["observed-water-fill"] }).length);
      const water = { off: await waterCount() };
      await page.evaluate(() => { document.getElementById("panel").style.display = ""; });
      await page.click('input[data-layer="observed_water"]');
      await idleNow();
      water.on = await waterCount();
      await page.click('input[data-layer="observed_water"]');
      await idleNow();
      water.off_again = await waterCount();
      out.observed_water = water;
      await page.evaluate(() => { document.getElementById("panel").style.display = "none"; });
      // Only the layers shown now are hidden and shown again (observed water stays off).
      const interactive = await page.evaluate(() => window.terrawatch.interactive.filter(
        (id) => window.terrawatch.map.getLayoutProperty(id, "visibility") !== "none"));
      const likelihood = await page.evaluate(() => window.terrawatch.rasters.likelihood);
      await setVis(interactive, false);
      await idleNow();
      const withRaster = await pixels(flood);
      await setVis(likelihood, false);
      await idleNow();
      const without = await pixels(flood);
      const differ = withRaster.filter((p, i) => p.slice(0, 3).some((v, k) => Math.abs(v - without[i][k]) > 8)).length;
      out.raster_under_flood = { points: flood.length, differing: differ };
      if (shot) await page.screenshot({ path: shot.replace(/\.png$/, "-raster.png") });
      await setVis(likelihood, true);
      await page.evaluate(() => window.terrawatch.map.jumpTo({ center: [0, 20], zoom: 1.5 }));
      await idleNow();
      const pts = await page.evaluate(() => {
        const map = window.terrawatch.map;
        const rect = map.getCanvas().getBoundingClientRect();
        const at = (ll) => { const p = map.project(ll); return [p.x + rect.left, p.y + rect.top]; };
        return [at([20, 12]), at([-35, 25])];  // Chad (land), the central Atlantic (sea)
      });
      const [land, sea] = await pixels(pts);
      out.basemap = { land, sea, differ: land.slice(0, 3).some((v, k) => Math.abs(v - sea[k]) > 20) };
      if (shot) await page.screenshot({ path: shot.replace(/\.png$/, "-world.png") });
      await setVis(interactive, true);
      await page.evaluate(() => { document.getElementById("panel").style.display = ""; });
      await page.evaluate((b) => window.terrawatch.map.fitBounds([[b[0], b[1]], [b[2], b[3]]],
                                                                 { duration: 0, padding: 20 }), bbox);
      await idleNow();
      // The rasters of this view are searched for after the move (the first view may be another place)
      await page.evaluate(() => window.terrawatch.rastersReady());
      await idleNow();
      out.rasters = await page.evaluate(() => ({ likelihood: window.terrawatch.rasters.likelihood.length,
                                                 quicklook: window.terrawatch.rasters.quicklook.length }));
    }
    // Place labels around a given spot (CHECK_PLACES_AT=lon,lat,zoom), as the map shows them (text in the DOM).
    if (process.env.CHECK_PLACES_AT) {
      const [lon, lat, zoom] = process.env.CHECK_PLACES_AT.split(",").map(Number);
      out.places_at = await page.evaluate(({ lon, lat, zoom }) => {
        window.terrawatch.map.jumpTo({ center: [lon, lat], zoom });
        return window.terrawatch.placesReady();
      }, { lon, lat, zoom });
      out.place_labels_dom = await page.evaluate(() =>
        [...document.querySelectorAll("#map .place-label")].map((e) => e.textContent));
      if (shot) {
        await page.evaluate(() => new Promise((r) => {
          window.terrawatch.map.once("idle", r);
          window.terrawatch.map.triggerRepaint();
        }));
        await page.screenshot({ path: shot.replace(/\.png$/, "-places.png") });
      }
      await page.evaluate((v) => new Promise((r) => {
        window.terrawatch.map.once("idle", r);
        window.terrawatch.map.jumpTo(v);
      }), initial);
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
