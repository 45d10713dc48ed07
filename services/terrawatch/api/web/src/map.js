// The terrawatch map page: vector tiles from /tiles/<layer>, coloured by hazard and confidence,
// a sensing-time slider and a click popup. Hash parameters: key=tw_... (an API key, kept for the
// browser session and removed from the address bar) and bbox=minx,miny,maxx,maxy (lon/lat to show).
import * as maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import "./map.css";

const here = (path) => new URL(path, document.baseURI).href;
const KEY_STORE = "terrawatch.key";

const hash = new URLSearchParams(location.hash.slice(1));

function apiKey() {
  if (hash.get("key")) {
    sessionStorage.setItem(KEY_STORE, hash.get("key"));
    hash.delete("key");
    const rest = hash.toString();  // keep the key out of the address bar and history
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  return sessionStorage.getItem(KEY_STORE);
}

const key = apiKey();
const requestedBbox = (hash.get("bbox") || "").split(",").map(Number);
const sameOrigin = (url) => new URL(url, location.href).origin === location.origin;
const headers = () => (key ? { "X-API-Key": key } : {});

const HAZARD_COLOUR = ["match", ["get", "hazard"], "flood", "#1f78b4", "deforestation", "#33a02c",
  "mining", "#e6550d", "#777777"];
const CONFIDENCE = ["coalesce", ["get", "confidence"], "low"];
const FILL_OPACITY = ["match", CONFIDENCE, "highest", 0.8, "high", 0.55, 0.3];
const LINE_WIDTH = ["match", CONFIDENCE, "highest", 2.5, "high", 1.5, 0.75];
const IS_POINT = ["==", ["geometry-type"], "Point"];

// Bottom to top. `timed` layers carry t (Unix seconds of sensing) and follow the slider.
const LAYERS = [
  // Failed scenes (DLQ) are drawn apart - red, hatched by a fill - so a footprint never reads as
  // "processed, nothing found"; scenes outside every model's area of applicability are pale.
  { id: "scenes", label: "scene footprints", timed: true, visible: true, styles: [
    { id: "scenes-line", type: "line", filter: ["!", ["in", ["get", "status"], ["literal", ["failed", "outside_aoa"]]]],
      paint: { "line-color": "#555", "line-width": 1, "line-dasharray": [3, 2] } },
    { id: "scenes-outside-aoa", type: "line", filter: ["==", ["get", "status"], "outside_aoa"],
      paint: { "line-color": "#aaa", "line-width": 1, "line-dasharray": [1, 2] } },
    { id: "scenes-failed-fill", type: "fill", filter: ["==", ["get", "status"], "failed"],
      paint: { "fill-color": "#d62728", "fill-opacity": 0.12 } },
    { id: "scenes-failed", type: "line", filter: ["==", ["get", "status"], "failed"],
      paint: { "line-color": "#d62728", "line-width": 2 } },
  ] },
  { id: "reference_layers", label: "reference layers", timed: false, visible: true, styles: [
    { id: "reference-fill", type: "fill", paint: { "fill-color": "#6a3d9a", "fill-opacity": 0.08 } },
    { id: "reference-line", type: "line", paint: { "line-color": "#6a3d9a", "line-width": 1.5 } },
  ] },
  { id: "detections", label: "detections", timed: true, visible: true, styles: [
    { id: "detections-fill", type: "fill", paint: { "fill-color": HAZARD_COLOUR, "fill-opacity": FILL_OPACITY } },
    { id: "detections-point", type: "circle", filter: IS_POINT,
      paint: { "circle-color": HAZARD_COLOUR, "circle-radius": 3, "circle-opacity": FILL_OPACITY } },
  ] },
  { id: "alerts", label: "alerts", timed: true, visible: true, styles: [
    { id: "alerts-fill", type: "fill", paint: { "fill-color": HAZARD_COLOUR, "fill-opacity": 0.15 } },
    { id: "alerts-line", type: "line", paint: { "line-color": HAZARD_COLOUR, "line-width": LINE_WIDTH } },
    { id: "alerts-point", type: "circle", filter: IS_POINT,
      paint: { "circle-color": HAZARD_COLOUR, "circle-radius": 5, "circle-stroke-color": "#000",
               "circle-stroke-width": LINE_WIDTH, "circle-opacity": FILL_OPACITY } },
  ] },
];
const INTERACTIVE = LAYERS.flatMap((l) => l.styles.map((s) => s.id));

async function tilejson(layer) {
  const res = await fetch(here(`tiles/${layer}.json`), { headers: headers() });
  if (!res.ok) throw new Error(`${layer}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

maplibregl.setWorkerUrl(here("map/static/maplibre-gl-worker.js"));

const map = new maplibregl.Map({
  container: "map",
  style: { version: 8, sources: {}, layers: [{ id: "background", type: "background",
                                                paint: { "background-color": "#eef2f3" } }] },
  center: [0, 20],
  zoom: 1,
  attributionControl: { compact: true, customAttribution: "terrawatch (Copernicus Sentinel data)" },
  transformRequest: (url) => (sameOrigin(url) && key ? { url, headers: headers() } : { url }),
});
map.addControl(new maplibregl.NavigationControl(), "top-right");
map.addControl(new maplibregl.ScaleControl(), "bottom-right");

const timeFilter = { start: null, end: null };

function applyFilters() {
  for (const layer of LAYERS) {
    for (const s of layer.styles) {
      const parts = [];
      if (s.filter) parts.push(s.filter);
      if (layer.timed && timeFilter.end !== null) {
        parts.push(["<=", ["get", "t"], timeFilter.end]);
        if (timeFilter.start !== null) parts.push([">=", ["get", "t"], timeFilter.start]);
      }
      map.setFilter(s.id, parts.length ? ["all", ...parts] : null);
    }
  }
}

function setupSlider(range) {
  const slider = document.getElementById("slider");
  const windowSel = document.getElementById("window");
  const label = document.getElementById("time-label");
  if (!range) {
    slider.disabled = true;
    label.textContent = "no timed features yet";
    return;
  }
  const [tmin, tmax] = range;
  const STEPS = 500;  // slider positions; the last one is exactly tmax
  slider.min = "0";
  slider.max = String(STEPS);
  slider.step = "1";
  slider.value = String(STEPS);
  const iso = (t) => new Date(t * 1000).toISOString().slice(0, 16) + "Z";
  const update = () => {
    const i = Number(slider.value);
    const end = i >= STEPS ? tmax : Math.round(tmin + (i * (tmax - tmin)) / STEPS);
    const win = Number(windowSel.value);
    const everything = i >= STEPS && win === 0;
    timeFilter.end = everything ? null : end;
    timeFilter.start = win > 0 ? end - win : null;
    label.textContent = everything ? `all (up to ${iso(tmax)})` : `up to ${iso(end)}`;
    applyFilters();
  };
  slider.addEventListener("input", update);
  windowSel.addEventListener("change", update);
  update();
  // Show features sensed up to `t` (Unix seconds) exactly; the slider moves to the nearest position.
  showUntil = (t) => {
    slider.value = String(Math.round(((Math.min(t, tmax) - tmin) / Math.max(1, tmax - tmin)) * STEPS));
    windowSel.value = "0";
    timeFilter.start = null;
    timeFilter.end = t;
    label.textContent = `up to ${iso(t)}`;
    applyFilters();
  };
}

let showUntil = () => {};

function setupToggles() {
  const box = document.getElementById("layers");
  for (const layer of LAYERS) {
    const row = document.createElement("label");
    row.style.display = "block";
    const cb = document.createElement("input");
    cb.type = "checkbox";
    cb.checked = layer.visible;
    cb.dataset.layer = layer.id;
    cb.addEventListener("change", () => {
      for (const s of layer.styles) map.setLayoutProperty(s.id, "visibility", cb.checked ? "visible" : "none");
    });
    row.append(cb, " " + layer.label);
    box.append(row);
  }
}

function escapeHtml(v) {
  return String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function popupHtml(f) {
  const rows = Object.entries(f.properties).map(([k, v]) => {
    const shown = k === "t" || k === "t0" ? new Date(Number(v) * 1000).toISOString() : v;
    return `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(shown)}</td></tr>`;
  });
  return `<strong>${escapeHtml(f.source)}</strong><table>${rows.join("")}</table>`;
}

const ready = (async () => {
  await map.once("load");
  const specs = await Promise.all(LAYERS.map((l) => tilejson(l.id)));
  let bounds = null;
  let range = null;
  LAYERS.forEach((layer, i) => {
    const tj = specs[i];
    map.addSource(layer.id, { type: "vector", tiles: tj.tiles, minzoom: tj.minzoom, maxzoom: 16 });
    for (const s of layer.styles) {
      map.addLayer({ id: s.id, type: s.type, source: layer.id, "source-layer": layer.id, paint: s.paint,
                     ...(s.filter ? { filter: s.filter } : {}) });
    }
    const tr = tj["terrawatch:time_range"];
    if (tr) range = range ? [Math.min(range[0], tr[0]), Math.max(range[1], tr[1])] : tr;
    if (layer.id !== "reference_layers" && tj.bounds && tj.bounds[0] > -180) {
      const b = new maplibregl.LngLatBounds([tj.bounds[0], tj.bounds[1]], [tj.bounds[2], tj.bounds[3]]);
      bounds = bounds ? bounds.extend(b) : b;
    }
  });
  setupToggles();
  setupSlider(range);
  if (requestedBbox.length === 4 && requestedBbox.every(Number.isFinite)) {
    bounds = new maplibregl.LngLatBounds(requestedBbox.slice(0, 2), requestedBbox.slice(2));
  }
  if (bounds) map.fitBounds(bounds, { padding: 40, duration: 0, maxZoom: 14 });
  map.on("click", (e) => {
    const feats = map.queryRenderedFeatures(e.point, { layers: INTERACTIVE });
    if (!feats.length) return;
    new maplibregl.Popup({ maxWidth: "320px" }).setLngLat(e.lngLat).setHTML(popupHtml(feats[0])).addTo(map);
  });
  map.on("mousemove", (e) => {
    map.getCanvas().style.cursor = map.queryRenderedFeatures(e.point, { layers: INTERACTIVE }).length ? "pointer" : "";
  });
  await map.once("idle");
  const n = map.queryRenderedFeatures({ layers: INTERACTIVE }).length;
  setStatus(`${n} features on screen`);
  document.body.dataset.state = "ready";
  return n;
})().catch((err) => {
  setStatus(`error: ${err.message}`);
  document.body.dataset.state = "error";
  throw err;
});

window.terrawatch = { map, ready, layers: LAYERS, interactive: INTERACTIVE, showUntil: (t) => showUntil(t) };
