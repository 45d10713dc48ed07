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
// Offline basemap from the world-atlas package (Natural Earth 1:50m, public domain; world-atlas ISC):
// land polygons (coastlines = their outline; the sea is the map background) and country borders.
mkdirSync("dist/basemap", { recursive: true });
const countries = JSON.parse(readFileSync("node_modules/world-atlas/countries-50m.json", "utf8"));
const land = JSON.parse(readFileSync("node_modules/world-atlas/land-50m.json", "utf8"));
const round = (key, value) => (typeof value === "number" ? Math.round(value * 1e4) / 1e4 : value);
writeFileSync("dist/basemap/land.geojson", JSON.stringify(feature(land, land.objects.land), round));
writeFileSync("dist/basemap/borders.geojson",
  JSON.stringify(mesh(countries, countries.objects.countries, (a, b) => a !== b), round));
console.log("built dist/: index.html, map.js, map.css, maplibre-gl-worker.js, basemap/{land,borders}.geojson");
