// Bundle src/ into dist/ (served by the API under /map): no CDN, everything from npm at build time.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { feature, mesh } from "topojson-client";

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/map.js"],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  outdir: "dist",
  logLevel: "warning",
});
// MapLibre 6 runs its tile worker from a separate module file; .js so any server sends a JS MIME type.
copyFileSync("node_modules/maplibre-gl/dist/maplibre-gl-worker.mjs", "dist/maplibre-gl-worker.js");
copyFileSync("src/index.html", "dist/index.html");
// /docs (Swagger UI) and the OGC API HTML pages: served from here too, no CDN (issue 25). The Swagger UI
// page's own start-up script is a file (src/docs.js) so the Content-Security-Policy needs no inline script.
mkdirSync("dist/swagger", { recursive: true });
for (const f of ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"]) {
  copyFileSync(`node_modules/swagger-ui-dist/${f}`, `dist/swagger/${f}`);
}
copyFileSync("src/docs.js", "dist/swagger/docs.js");
copyFileSync("src/ogc.css", "dist/ogc.css");
// Offline basemap from the world-atlas package (Natural Earth 1:50m, public domain; world-atlas ISC):
// land polygons (coastlines = their outline; the sea is the map background) and country borders.
mkdirSync("dist/basemap", { recursive: true });
const countries = JSON.parse(readFileSync("node_modules/world-atlas/countries-50m.json", "utf8"));
const land = JSON.parse(readFileSync("node_modules/world-atlas/land-50m.json", "utf8"));
const round = (key, value) => (typeof value === "number" ? Math.round(value * 1e4) / 1e4 : value);
// Rings and lines that cross the antimeridian jump from +180 to -180 (Chukotka, Fiji): MapLibre would draw
// that jump as a line across the world. Make longitudes continuous instead (MapLibre wraps lon > 180).
const unwrapLine = (pts) => {
  let off = 0;
  return pts.map(([x, y], i) => {
    if (i > 0) {
      const prev = pts[i - 1][0];
      if (x - prev > 180) off -= 360;
      else if (prev - x > 180) off += 360;
    }
    return [x + off, y];
  });
};
// A ring around a pole (Antarctica) no longer closes once unwrapped: close it along the pole.
const unwrapRing = (pts) => {
  const r = unwrapLine(pts);
  const [x0, y0] = r[0];
  const [x1] = r[r.length - 1];
  if (Math.abs(x1 - x0) < 1e-9) return r;
  const pole = r.reduce((s, p) => s + p[1], 0) / r.length < 0 ? -90 : 90;
  return [...r, [x1, pole], [x0, pole], [x0, y0]];
};
const unwrap = (geom) => {
  if (!geom) return geom;
  if (geom.type === "FeatureCollection") return { ...geom, features: geom.features.map(unwrap) };
  if (geom.type === "Feature") return { ...geom, geometry: unwrap(geom.geometry) };
  if (geom.type === "LineString") return { ...geom, coordinates: unwrapLine(geom.coordinates) };
  if (geom.type === "MultiLineString") return { ...geom, coordinates: geom.coordinates.map(unwrapLine) };
  if (geom.type === "Polygon") return { ...geom, coordinates: geom.coordinates.map(unwrapRing) };
  if (geom.type === "MultiPolygon") return { ...geom, coordinates: geom.coordinates.map((p) => p.map(unwrapRing)) };
  return geom;
};
writeFileSync("dist/basemap/land.geojson", JSON.stringify(unwrap(feature(land, land.objects.land)), round));
writeFileSync("dist/basemap/borders.geojson",
  JSON.stringify(unwrap(mesh(countries, countries.objects.countries, (a, b) => a !== b)), round));
console.log("built dist/: index.html, map.js, map.css, maplibre-gl-worker.js, basemap/{land,borders}.geojson, "
  + "swagger/ (for /docs), ogc.css (OGC API HTML)");
