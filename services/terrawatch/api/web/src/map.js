// The terrawatch map page: vector tiles from /tiles/<layer>, coloured by hazard and confidence,
// a sensing-time slider and a click popup, over an offline basemap (or TERRAWATCH_MAP_STYLE_URL) with the
// scenes' likelihood rasters and quicklooks (found through the STAC API). Hash parameters: key=tw_... (an API
// key, kept for the browser session and removed from the address bar) and bbox=minx,miny,maxx,maxy (lon/lat
// to show; default: the newest alert, at a readable size). The page is "ready" once the vector layers have
// drawn; the scenes' rasters and the place labels are added after that (window.terrawatch.rastersReady,
// placesReady).
import * as maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import "./map.css";

// ms from navigation start at each start-up step (reported by the browser check beside readyMs).
const TIMINGS = {};
const mark = (step) => { TIMINGS[step] = Math.round(performance.now()); };
mark("script");

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
const OBSERVED_WATER = "#17becf";  // the legend's "observed water" (api/routes/map.py OTHER_COLOURS)

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
  // Observed water (issue 26): what each scene's flood run saw as water before reference water was subtracted;
  // flood detections are this minus the permanent water. Off by default: it lies under every flood polygon.
  { id: "observed_water", label: "observed water (before reference water)", timed: true, visible: false, styles: [
    { id: "observed-water-fill", type: "fill", paint: { "fill-color": OBSERVED_WATER, "fill-opacity": 0.35 } },
    { id: "observed-water-line", type: "line", paint: { "line-color": OBSERVED_WATER, "line-width": 0.75 } },
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

// Basemap: TERRAWATCH_MAP_STYLE_URL when the deployment has a style, else the offline one bundled by
// `make web` from the world-atlas package (Natural Earth 1:50m land and country borders; sea = background).
// Asked at once, while the configuration, style and basemap load: the layers' TileJSON and the newest alert.
const early = { specs: Promise.all(LAYERS.map((l) => tilejson(l.id))), newest: newestAlert().catch(() => null) };
early.specs.catch(() => {});  // awaited (and reported) in `ready`

const config = await fetch(here("map/config.json")).then((r) => (r.ok ? r.json() : {})).catch(() => ({}));
const SEA = "#b9d3e6";
const LAND = "#f1eee4";
const offlineStyle = {
  version: 8,
  sources: {
    // maxzoom 6: 1:50m data has no more detail; deeper views overzoom z6 tiles instead of cutting new ones
    "basemap-land": { type: "geojson", data: here("map/static/basemap/land.geojson"), maxzoom: 6,
                      attribution: "Natural Earth (public domain) via world-atlas" },
    "basemap-borders": { type: "geojson", data: here("map/static/basemap/borders.geojson"), maxzoom: 6 },
  },
  layers: [
    { id: "basemap-sea", type: "background", paint: { "background-color": SEA } },
    { id: "basemap-land", type: "fill", source: "basemap-land", paint: { "fill-color": LAND } },
    { id: "basemap-coastline", type: "line", source: "basemap-land",
      paint: { "line-color": "#6f93ad", "line-width": 0.8 } },
    { id: "basemap-borders", type: "line", source: "basemap-borders",
      paint: { "line-color": "#8c8c8c", "line-width": 0.7, "line-dasharray": [3, 2] } },
  ],
};

// The initial view: #bbox= if given (the map starts there), else the newest alert (the news, at a readable
// size), else the layers' extent; the map is created at once so the basemap loads while those are asked.
const requested = requestedBbox.length === 4 && requestedBbox.every(Number.isFinite)
  ? new maplibregl.LngLatBounds(requestedBbox.slice(0, 2), requestedBbox.slice(2)) : null;
const FIT = { padding: 40, maxZoom: 13 };

const map = new maplibregl.Map({
  container: "map",
  style: config.style_url || offlineStyle,
  ...(requested ? { bounds: requested, fitBoundsOptions: FIT } : { center: [0, 20], zoom: 1 }),
  attributionControl: { compact: true, customAttribution: ["terrawatch (Copernicus Sentinel data)", "GeoNames (CC BY 4.0)"] },
  transformRequest: (url) => (sameOrigin(url) && key ? { url, headers: headers() } : { url }),
});
const styleLoaded = map.once("style.load");  // the layers are added then, beside the basemap's loading
// When each source first has all the tiles of the view (TIMINGS["source:<id>"]): where start-up time goes.
map.on("sourcedata", (e) => {
  if (e.sourceId && !(`source:${e.sourceId}` in TIMINGS) && !e.sourceId.startsWith("raster-")
      && map.isSourceLoaded(e.sourceId)) mark(`source:${e.sourceId}`);
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
  applyRasterFilter();
  map.once("idle", () => recount());
}

// A raster follows its checkbox and the slider (shown only if its scene was sensed inside the window).
function applyRasterFilter() {
  for (const kind of Object.keys(RASTERS)) {
    for (const id of RASTERS[kind]) {
      const t = RASTER_TIME[id];
      const inTime = t === undefined || timeFilter.end === null
        || (t <= timeFilter.end && (timeFilter.start === null || t >= timeFilter.start));
      map.setLayoutProperty(id, "visibility", RASTER_ON[kind] && inTime ? "visible" : "none");
    }
  }
}

function recount() {
  const rasters = Object.values(RASTERS).flat().filter((id) => map.getLayoutProperty(id, "visibility") !== "none");
  setStatus(`${distinctFeatures(map.queryRenderedFeatures({ layers: INTERACTIVE }))} features on screen`
    + (rasters.length ? `, ${rasters.length} raster layer(s)` : ""));
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

// Raster layers of the scenes' products (STAC terrawatch-products): likelihood per hazard, quicklook.
const RASTERS = { likelihood: [], quicklook: [] };
const RASTER_TIME = {};  // raster layer id -> its scene's sensing time (Unix seconds), for the slider
const RASTER_ON = { likelihood: true, quicklook: false };  // the panel's checkboxes
const RASTER_LABELS = {};  // kind -> the panel's label text (with its count)
const EXTENTS = {};  // layer id -> LngLatBounds of its features (TileJSON bounds)

// A view's bounds as a STAC bbox: MapLibre's bounds go past +-180 degrees when the world wraps (a wide
// initial view), which the STAC API rightly refuses; such a view searches every longitude.
function stacBbox(bounds) {
  if (!bounds) return null;
  const [[w, s], [e, n]] = bounds.toArray();
  const wrap = (x) => ((((x + 180) % 360) + 360) % 360) - 180;
  let west = wrap(w);
  let east = wrap(e);
  if (e - w >= 360 || west > east) [west, east] = [-180, 180];
  return [west, Math.max(-90, s), east, Math.min(90, n)].map((v) => v.toFixed(6)).join(",");
}

async function addProductRasters(bounds) {
  const bbox = stacBbox(bounds);
  const res = await fetch(here(`stac/search?limit=100${bbox ? `&bbox=${bbox}` : ""}`), { headers: headers() });
  if (!res.ok) return 0;
  const items = (await res.json()).features || [];
  const below = INTERACTIVE[0];
  let added = 0;
  for (const item of items.slice().reverse()) {  // newest on top
    for (const [name, asset] of Object.entries(item.assets || {})) {
      const tj = asset["terrawatch:tilejson"];
      if (!tj || !sameOrigin(tj)) continue;
      const kind = name === "quicklook" ? "quicklook" : "likelihood";
      const id = `raster-${item.id}-${name}`;
      if (map.getSource(id)) continue;  // added by an earlier view
      added += 1;
      const when = Date.parse(item.properties && item.properties.datetime);
      if (Number.isFinite(when)) RASTER_TIME[id] = Math.round(when / 1000);
      map.addSource(id, { type: "raster", url: tj, tileSize: 256 });
      map.addLayer({ id, type: "raster", source: id, paint: { "raster-opacity": kind === "quicklook" ? 1 : 0.85 },
                     layout: { visibility: kind === "quicklook" ? "none" : "visible" } },
                   kind === "quicklook" && RASTERS.likelihood.length ? RASTERS.likelihood[0] : below);
      RASTERS[kind].push(id);
    }
  }
  if (added) {  // rasters found by a later view follow the panel's toggles, the time slider and the counts
    applyRasterFilter();
    for (const [kind, text] of Object.entries(RASTER_LABELS)) text.textContent = ` ${text.dataset.label} (${RASTERS[kind].length})`;
  }
  return items.length;
}

function setupRasterToggles() {
  const box = document.getElementById("layers");
  for (const [kind, label, on] of [["likelihood", "likelihood rasters", true], ["quicklook", "scene quicklooks", false]]) {
    const row = document.createElement("label");
    row.style.display = "block";
    const cb = document.createElement("input");
    cb.type = "checkbox";
    cb.checked = on;
    cb.dataset.layer = `raster-${kind}`;
    cb.addEventListener("change", () => {
      RASTER_ON[kind] = cb.checked;
      applyRasterFilter();
    });
    const text = document.createElement("span");
    text.dataset.label = label;
    text.textContent = ` ${label} (${RASTERS[kind].length})`;
    RASTER_LABELS[kind] = text;
    row.append(cb, text);
    box.prepend(row);
  }
}

// Features drawn by several styles, or cut into several tiles, are one feature: count distinct ids.
function distinctFeatures(feats) {
  return new Set(feats.map((f) => `${f.source}:${f.properties.id ?? f.id}`)).size;
}

function escapeHtml(v) {
  return String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

const isoTime = (t) => new Date(Number(t) * 1000).toISOString().slice(0, 19) + "Z";
const link = (href, text) => `<a href="${escapeHtml(here(href))}" target="_blank" rel="noopener">${escapeHtml(text)}</a>`;

function table(rows) {
  return `<table>${rows.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${v}</td></tr>`).join("")}</table>`;
}

function productLinks(sceneIds) {
  return sceneIds.map((sid) => link(`stac/collections/terrawatch-products/items/${encodeURIComponent(sid)}`, sid))
    .join("<br>");
}

async function alertPopup(p) {
  // The alert itself (legality, scenes) needs a viewer key; without one the tile attributes are shown.
  let a = null;
  try {
    const res = await fetch(here(`alerts/${encodeURIComponent(p.id)}`), { headers: headers() });
    if (res.ok) a = (await res.json()).properties;
  } catch { /* keep the tile attributes */ }
  const scenes = (a && a.context && a.context.scene_ids) || [];
  // mining: {status: licensed|illegal|unknown, rule, ...} in the alert's context (tiles carry status and rule)
  const ctx = a && a.context ? a.context.legality : undefined;
  const legality = ctx && typeof ctx === "object" ? `${ctx.status}${ctx.rule ? ` (${ctx.rule})` : ""}`
    : p.legality ? `${p.legality}${p.legality_rule ? ` (${p.legality_rule})` : ""}` : ctx;
  return `<strong>alert</strong>` + table([
    ["hazard", escapeHtml(p.hazard)],
    ["confidence", escapeHtml(p.confidence)],
    ["status", escapeHtml(p.status)],
    ["legality", escapeHtml(legality ?? (p.hazard === "mining" ? "unknown" : "n/a"))],
    ["area", `${escapeHtml(p.area_ha)} ha`],
    ["likelihood", escapeHtml(p.likelihood)],
    ["first sensed", escapeHtml(a ? a.first_sensed : isoTime(p.t0))],
    ["last sensed", escapeHtml(a ? a.last_sensed : isoTime(p.t))],
    ["raised", p.created ? escapeHtml(isoTime(p.created)) : undefined],
    ["updated", p.updated ? escapeHtml(isoTime(p.updated)) : undefined],
    ["test", scenes.some(isSynthetic) ? "<strong>synthetic test scene: not a real event</strong>" : undefined],
    ["products", scenes.length ? productLinks(scenes) : undefined],
  ]) + await lifecycle(p.id);
}

// Synthetic scenes are named synthetic-* by `terrawatch demo` and the samples: never a real event.
const isSynthetic = (sid) => String(sid).startsWith("synthetic-");

// The alert's lifecycle events, fetched with the session's key (a plain link would carry none).
async function lifecycle(id) {
  try {
    const res = await fetch(here(`alerts/${encodeURIComponent(id)}/events`), { headers: headers() });
    if (!res.ok) return `<div class="note">lifecycle events: ${res.status === 401 ? "need a viewer key" : `HTTP ${res.status}`}</div>`;
    const rows = (await res.json()).map((e) => `<li>${escapeHtml(String(e.at).slice(0, 19))}Z ${escapeHtml(e.from_status || "-")}`
      + ` &rarr; ${escapeHtml(e.to_status)} (${escapeHtml(e.actor)}${e.reason ? `: ${escapeHtml(e.reason)}` : ""})</li>`);
    return `<div class="events"><strong>lifecycle events</strong><ol>${rows.join("")}</ol></div>`;
  } catch {
    return "";
  }
}

async function popupHtml(f) {
  const p = f.properties;
  if (f.source === "alerts") return alertPopup(p);
  const rows = Object.entries(p).map(([k, v]) => [k, escapeHtml(["t", "t0", "created", "updated"].includes(k) ? isoTime(v) : v)]);
  if ((f.source === "detections" || f.source === "observed_water") && p.scene_id) {
    rows.push(["products", productLinks([p.scene_id])]);
  }
  if (f.source === "scenes" && p.id) rows.push(["products", productLinks([p.id])]);
  const sid = f.source === "scenes" ? p.id : p.scene_id;
  if (sid && isSynthetic(sid)) rows.push(["test", "<strong>synthetic test scene: not a real event</strong>"]);
  return `<strong>${escapeHtml(f.source)}</strong>${table(rows)}`;
}

// Place labels, offline: the most populous GeoNames places in view (/map/places.geojson, the table CAP areaDesc
// is named from) as HTML markers - text needs no glyph server - most populous first, skipping any that would
// overlap one already placed. Views wider than the server's limit show none.
const PLACES = { on: true, shown: [], pending: Promise.resolve([]) };
const PLACES_MAX_SPAN = 30;  // degrees each way (the server refuses wider)
const PLACES_MAX_SHOWN = 25;
let placesSeq = 0;
let placeMarkers = [];

function clearPlaces() {
  placeMarkers.forEach((m) => m.remove());
  placeMarkers = [];
  PLACES.shown = [];
}

async function updatePlaces() {
  const seq = ++placesSeq;
  const [[w, s], [e, n]] = map.getBounds().toArray();
  if (!PLACES.on || e - w > PLACES_MAX_SPAN || n - s > PLACES_MAX_SPAN) {
    clearPlaces();
    return [];
  }
  const wrap = (x) => ((((x + 180) % 360) + 360) % 360) - 180;
  const bbox = [wrap(w), Math.max(-90, s), wrap(e), Math.min(90, n)].map((v) => v.toFixed(5)).join(",");
  const res = await fetch(here(`map/places.geojson?bbox=${bbox}&limit=100`));
  if (!res.ok) throw new Error(`places: HTTP ${res.status}`);
  const feats = (await res.json()).features || [];
  if (seq !== placesSeq) return PLACES.shown;  // a newer view asked meanwhile
  clearPlaces();
  const boxes = [];
  for (const f of feats) {
    const p = f.properties;
    const pt = map.project(f.geometry.coordinates);
    const box = [pt.x - 5, pt.y - 9, pt.x + 10 + 7 * p.name.length, pt.y + 9];  // dot + text, px (approx.)
    if (boxes.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) continue;
    boxes.push(box);
    const el = document.createElement("div");
    el.className = "place-label";
    el.textContent = p.name;  // text, never HTML
    el.dataset.place = [p.name, p.region, p.country].filter(Boolean).join(", ");
    placeMarkers.push(new maplibregl.Marker({ element: el, anchor: "left" }).setLngLat(f.geometry.coordinates).addTo(map));
    PLACES.shown.push(el.dataset.place);
    if (boxes.length >= PLACES_MAX_SHOWN) break;
  }
  return PLACES.shown;
}

function refreshPlaces() {
  PLACES.pending = updatePlaces().catch((err) => {
    console.warn(`place labels: ${err.message}`);
    return [];
  });
  return PLACES.pending;
}

function setupPlaceToggle() {
  const row = document.createElement("label");
  row.style.display = "block";
  const cb = document.createElement("input");
  cb.type = "checkbox";
  cb.checked = PLACES.on;
  cb.dataset.layer = "places";
  cb.addEventListener("change", () => {
    PLACES.on = cb.checked;
    refreshPlaces();
  });
  row.append(cb, " place labels (GeoNames)");
  document.getElementById("layers").append(row);
}

const NEWEST = { bounds: null };
const READY_MS = { value: null };
let rastersReady = Promise.resolve(0);

// The most recently raised or changed alert (OGC API, sorted on the server): its bounds, and a view around
// it at least ~5 km wide so it reads at a useful size with some context.
async function newestAlert() {
  const res = await fetch(here("ogc/collections/alerts/items?sortby=-updated_at&limit=1&f=geojson"), { headers: headers() });
  if (!res.ok) return null;
  const f = ((await res.json()).features || [])[0];
  if (!f || !f.geometry) return null;
  const b = new maplibregl.LngLatBounds();
  const walk = (c) => (typeof c[0] === "number" ? b.extend(c) : c.forEach(walk));
  walk(f.geometry.coordinates);
  const [[w, s], [e, n]] = b.toArray();
  const half = 0.025;  // degrees (~2.5 km): the minimum half-width of the first view
  const cx = (w + e) / 2;
  const cy = (s + n) / 2;
  const padded = new maplibregl.LngLatBounds([Math.min(w, cx - half), Math.min(s, cy - half)],
                                             [Math.max(e, cx + half), Math.max(n, cy + half)]);
  return { id: f.id, bounds: b, padded };
}

// Every colour on screen, from /map/legend.json (the server's own ramps and colours).
async function buildLegend() {
  const res = await fetch(here("map/legend.json"));
  if (!res.ok) return;
  const lg = await res.json();
  const box = document.getElementById("legend");
  box.querySelectorAll("div").forEach((d) => d.remove());
  const row = (html) => { const d = document.createElement("div"); d.innerHTML = html; box.append(d); };
  for (const [h, c] of Object.entries(lg.hazards)) row(`<i class="sw" style="background:${escapeHtml(c)}"></i>${escapeHtml(h)} detections and alerts`);
  row(`<span class="note">${escapeHtml(lg.confidence)}</span>`);
  for (const r of Object.values(lg.ramps)) {
    row(`<i class="ramp" style="background:linear-gradient(to right, ${r.colours.map(escapeHtml).join(", ")})"></i>${escapeHtml(r.label)}`);
  }
  for (const [label, c] of Object.entries(lg.other)) row(`<i class="sw" style="background:${escapeHtml(c)}"></i>${escapeHtml(label)}`);
  row(`<span class="note">scene quicklooks: true colour (S2) or VV/VH (S1)</span>`);
}

const ready = (async () => {
  mark("map_created");
  await styleLoaded;
  mark("style_loaded");
  const specs = await early.specs;
  mark("tilejson");
  const newest = await early.newest;  // before any source is added: no tile is asked for the start view
  mark("newest_alert");
  let range = null;
  const extents = EXTENTS;
  LAYERS.forEach((layer, i) => {
    const tj = specs[i];
    map.addSource(layer.id, { type: "vector", tiles: tj.tiles, minzoom: tj.minzoom, maxzoom: 16 });
    for (const s of layer.styles) {
      map.addLayer({ id: s.id, type: s.type, source: layer.id, "source-layer": layer.id, paint: s.paint,
                     layout: { visibility: layer.visible ? "visible" : "none" },
                     ...(s.filter ? { filter: s.filter } : {}) });
    }
    const tr = tj["terrawatch:time_range"];
    if (tr) range = range ? [Math.min(range[0], tr[0]), Math.max(range[1], tr[1])] : tr;
    if (layer.id !== "reference_layers" && tj.bounds && tj.bounds[0] > -180) {
      extents[layer.id] = new maplibregl.LngLatBounds([tj.bounds[0], tj.bounds[1]], [tj.bounds[2], tj.bounds[3]]);
    }
  });
  NEWEST.bounds = newest;
  if (!requested) {
    const bounds = newest ? newest.padded : extents.detections || extents.scenes || extents.alerts || null;
    if (bounds) map.fitBounds(bounds, { ...FIT, duration: 0 });
  }
  setupToggles();
  buildLegend().catch(() => {});
  map.on("click", async (e) => {
    const feats = map.queryRenderedFeatures(e.point, { layers: INTERACTIVE });
    if (!feats.length) return;
    const top = feats.find((f) => f.source === "alerts") || feats[0];
    const popup = new maplibregl.Popup({ maxWidth: "340px" }).setLngLat(e.lngLat).setHTML("…").addTo(map);
    popup.setHTML(await popupHtml(top));
  });
  map.on("mousemove", (e) => {
    map.getCanvas().style.cursor = map.queryRenderedFeatures(e.point, { layers: INTERACTIVE }).length ? "pointer" : "";
  });
  await map.once("idle");
  mark("idle");
  const n = distinctFeatures(map.queryRenderedFeatures({ layers: INTERACTIVE }));
  setStatus(`${n} features on screen`);
  map.on("moveend", () => map.once("idle", recount));
  document.body.dataset.state = "ready";
  READY_MS.value = Math.round(performance.now());
  setupPlaceToggle();
  map.on("moveend", refreshPlaces);
  refreshPlaces();
  // Rasters after the page is usable: a scene's likelihood tiles can take longer than its polygons.
  rastersReady = addProductRasters(map.getBounds()).catch(() => 0).then((count) => {
    setupRasterToggles();
    setupSlider(range);
    // The scenes' rasters of every later view too (the first view is only the newest alert's place)
    map.on("moveend", () => {
      rastersReady = rastersReady.then(() => addProductRasters(map.getBounds())).catch(() => 0);
    });
    return count;
  });
  return n;
})().catch((err) => {
  setStatus(`error: ${err.message}`);
  document.body.dataset.state = "error";
  throw err;
});

window.terrawatch = { map, ready, layers: LAYERS, interactive: INTERACTIVE, rasters: RASTERS, extents: EXTENTS,
                      rastersReady: () => ready.then(() => rastersReady), newest: NEWEST, readyMs: READY_MS,
                      distinct: () => distinctFeatures(map.queryRenderedFeatures({ layers: INTERACTIVE })),
                      showUntil: (t) => showUntil(t),
                      placesReady: () => ready.then(() => PLACES.pending), places: PLACES, timings: TIMINGS };
