// Bundle src/ into dist/ (served by the API under /map): no CDN, everything from npm at build time.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

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
console.log("built dist/: index.html, map.js, map.css, maplibre-gl-worker.js");
