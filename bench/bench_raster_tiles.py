"""Raster tile reads of scene products: time and peak memory per zoom, small scene vs full-size scene.

Products are built with the pipeline's own writers from the synthetic Sentinel-2 L1C scene of
``bench_scale.py`` (13 native-resolution COGs, cached under ``~/.cache/terrawatch/bench``):

* the quicklook (``products.quicklook.write_quicklook``, B4/B3/B2/B8 on the scene grid, <= 4096 px, COG);
* a likelihood product of the scene's size (2-band uint8, band 1 = 90 on the scene's water, 5 elsewhere,
  written strip by strip as the tiler does, then ``products.cog.to_cog`` with the pipeline's resampling).

For each scene size, product and zoom from ``--min-zoom`` (5) to the product's native zoom (the TileJSON's
``maxzoom``), a **fresh subprocess** renders one tile of a tiny unrelated product (imports, GDAL drivers),
then up to ``--tiles`` (6) tiles of the product at that zoom with ``products.tiles.render_planned`` (the
API's code path, the API's default cap). Per zoom: median wall and CPU ms per tile, peak RSS growth over the
RSS before the first measured tile (``VmHWM`` after a reset), the level read (-1 = full resolution, k = k-th
overview) and the pixels that level covers for one tile; a refused zoom (under the TileJSON's minzoom)
is listed as refused. Side by side in one run: ``ratio_low_over_native`` = the worst of z5-z7 over the
native zoom, for CPU time, wall time and memory (memory growth floored at 1 MB, the noise of a read).

``issue25_512px``: issue 25's case side by side, a 512 px likelihood product (10 m) in the layout written
before this change (GDAL's default COG overviews stop once the raster fits one 512 px block: none) read
the old way (rio-tiler picks the level, no cap), and the same product written and read now, each at
``--before-zoom`` (7) and at its native zoom, in fresh processes (the old z7 read warps a ~23,000 px
square: seconds of CPU and hundreds of MB; now the old file is refused at z7, the new one read from an
overview).

    .venv/bin/python bench/bench_raster_tiles.py                       # 1098 vs 10980 px (full tile)
    .venv/bin/python bench/bench_raster_tiles.py --small 1098 --full 3294
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_scale  # noqa: E402

PRODUCTS_DIR = "products_v2"  # v2: overviews down to 1-2 px (issue 25); v1 products had GDAL's default


def _status_kb(field: str) -> int:
    """VmRSS / VmHWM (peak RSS of this process's address space, reset at exec) in kB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _warm(tmp: str) -> None:
    """Imports, GDAL driver registration, rio-tiler's first tile: on a tiny unrelated product."""
    import morecantile
    import rasterio
    from rasterio.transform import from_origin

    from terrawatch.products import tiles
    from terrawatch.products.cog import LIKELIHOOD_RESAMPLING, to_cog

    p = Path(tmp) / "warm.tif"
    with rasterio.open(p, "w", driver="GTiff", width=64, height=64, count=2, dtype="uint8", nodata=255,
                       crs="EPSG:32633", transform=from_origin(*bench_scale.ORIGIN, 10, 10)) as ds:
        ds.write(np.full((2, 64, 64), 5, np.uint8))
    to_cog(p, resampling=LIKELIHOOD_RESAMPLING)
    i = tiles.info(p)
    t = morecantile.tms.get("WebMercatorQuad").tile(*bench_scale_centre(i.bounds), i.maxzoom)
    tiles.render(p, "flood", t.z, t.x, t.y)


def bench_scale_centre(bounds) -> tuple[float, float]:
    w, s, e, n = bounds
    return (w + e) / 2, (s + n) / 2


def _tiles_at(bounds, z: int, k: int):
    """Up to ``k`` tiles at zoom ``z`` spread over the product, the centre tile first."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    w, s, e, n = bounds
    ts = list(tms.tiles(w, s, e, n, [z]))
    centre = tms.tile(*bench_scale_centre(bounds), z)
    rest = [t for t in ts if t != centre]
    step = max(1, len(rest) // max(1, k - 1))
    return [centre, *rest[::step][: k - 1]]


def _measure_zoom(path: str, product: str, z: int, k: int, mode: str, out) -> None:
    """In a fresh process: per-tile wall/CPU ms and peak RSS growth of reading tiles of ``path`` at ``z``.
    ``mode`` "planned": the API's path (level chosen, cap); "before": plain rio-tiler as before the change."""
    import tempfile
    import warnings

    from rasterio.errors import NodataShadowWarning

    from terrawatch.products import tiles

    warnings.simplefilter("ignore", NodataShadowWarning)  # 4-band quicklooks: nodata 0 rules, as intended

    with tempfile.TemporaryDirectory() as tmp:
        _warm(tmp)
    p = Path(path)
    info = tiles.info(p)
    comp = "truecolor" if product == "quicklook" else None
    wall, cpu, levels, pixels = [], [], set(), set()
    before = _status_kb("VmRSS")
    _reset_peak()
    refused = None
    for t in _tiles_at(info.bounds, z, k):
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            if mode == "before":
                _render_before(p, t.z, t.x, t.y)
                levels.add("gdal")
            else:
                _, plan = tiles.render_planned(p, product, t.z, t.x, t.y, comp)
                levels.add(plan.level.overview)
                pixels.add(plan.pixels)
        except tiles.TileTooCostly as exc:
            refused = str(exc)[:160]
            break
        except tiles.TileNotFound:
            continue
        wall.append(1000 * (time.perf_counter() - w0))
        cpu.append(1000 * (time.process_time() - c0))
    peak = _status_kb("VmHWM")
    if refused:
        out.put({"zoom": z, "refused": refused, "plan_pixels": tiles.read_plan(p, z).pixels})
        return
    out.put({"zoom": z, "tiles": len(wall), "wall_ms": round(statistics.median(wall), 1),
             "cpu_ms": round(statistics.median(cpu), 1), "peak_growth_mb": round((peak - before) / 1024, 1),
             "peak_rss_mb": round(peak / 1024, 1), "levels_read": sorted(levels, key=str),
             "pixels": max(pixels) if pixels else None})


def _render_before(p: Path, z: int, x: int, y: int) -> bytes:
    """A likelihood tile as ``products/tiles.render`` read it before issue 25: rio-tiler on the file, no cap."""
    from rio_tiler.io import Reader

    from terrawatch.products import tiles

    with Reader(str(p)) as r:
        if not r.tile_exists(x, y, z):
            raise tiles.TileNotFound("outside")
        img = r.tile(x, y, z, tilesize=256, indexes=1)
        return img.render(img_format="PNG", colormap=tiles.likelihood_colormap("flood"))


def _run(ctx, path: Path, product: str, z: int, k: int, mode: str = "planned") -> dict:
    q = ctx.Queue()
    proc = ctx.Process(target=_measure_zoom, args=(str(path), product, z, k, mode, q))
    proc.start()
    row = q.get(timeout=900)
    proc.join()
    return row


def _likelihood(size: int, path: Path, old_layout: bool = False) -> None:
    import rasterio
    import rasterio.shutil
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from terrawatch.products.cog import INTERMEDIATE_COMPRESSION, LIKELIHOOD_RESAMPLING, to_cog

    cols = (np.arange(size, dtype=np.float32) + 0.5)[None, :]
    tmp = path.with_name(f".{path.name}.tmp")
    with rasterio.open(tmp, "w", driver="GTiff", width=size, height=size, count=2, dtype="uint8", nodata=255,
                       crs="EPSG:32633", transform=from_origin(*bench_scale.ORIGIN, 10, 10), tiled=True,
                       blockxsize=256, blockysize=256, **INTERMEDIATE_COMPRESSION) as ds:
        for r0 in range(0, size, bench_scale.STRIP):
            h = min(bench_scale.STRIP, size - r0)
            rows = (np.arange(r0, r0 + h, dtype=np.float32) + 0.5)[:, None]
            lk = np.where(bench_scale._water(rows, cols, size), 90, 5).astype(np.uint8)
            ds.write(np.stack([lk, np.zeros_like(lk)]), window=Window(0, r0, size, h))
    if old_layout:  # products/cog.py before issue 25: GDAL's default overviews (until one 512 px block)
        rasterio.shutil.copy(tmp, path, driver="COG", compress="DEFLATE", blocksize=512,
                             overview_resampling="NEAREST")
        tmp.unlink()
    else:
        to_cog(tmp, resampling=LIKELIHOOD_RESAMPLING)
        tmp.replace(path)


def build(size: int, cache: Path, log) -> dict[str, Path]:
    from terrawatch.domain.scene import scene_from_item
    from terrawatch.imagery.reader import SceneReader
    from terrawatch.products.quicklook import write_quicklook

    folder = cache / f"s2_l1c_{size}_v1"
    if not (folder / "complete.json").exists():
        log(f"generating the synthetic S2 L1C scene {size} px in {folder} (once; cached)")
        proc = mp.get_context("spawn").Process(target=bench_scale.generate, args=(size, folder))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit("scene generation failed")
    out = folder / PRODUCTS_DIR
    out.mkdir(exist_ok=True)
    ql, lk = out / "quicklook.tif", out / "flood_likelihood.tif"
    if not ql.exists():
        t0 = time.perf_counter()
        scene = scene_from_item(bench_scale.scene_item(size, folder))
        with SceneReader(scene) as r:
            write_quicklook(scene, r.grid, ql)
        log(f"quicklook {size} px: {time.perf_counter() - t0:.0f} s, {ql.stat().st_size / 1e6:.1f} MB")
    if not lk.exists():
        t0 = time.perf_counter()
        _likelihood(size, lk)
        log(f"likelihood {size} px: {time.perf_counter() - t0:.0f} s, {lk.stat().st_size / 1e6:.1f} MB")
    return {"quicklook": ql, "flood": lk}


def _ratios(rows: list[dict], native: int, low: range) -> dict:
    nat = next(r for r in rows if r["zoom"] == native)
    lows = [r for r in rows if r["zoom"] in low and "refused" not in r]
    if not lows:
        return {"low_zooms_served": 0}
    return {"low_zooms_served": len(lows),
            "cpu": round(max(r["cpu_ms"] for r in lows) / max(nat["cpu_ms"], 0.1), 2),
            "wall": round(max(r["wall_ms"] for r in lows) / max(nat["wall_ms"], 0.1), 2),
            "memory": round(max(max(r["peak_growth_mb"], 1.0) for r in lows) / max(nat["peak_growth_mb"], 1.0), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=1098)
    ap.add_argument("--full", type=int, default=10980)
    ap.add_argument("--min-zoom", type=int, default=5)
    ap.add_argument("--tiles", type=int, default=6, help="tiles per zoom (fewer where the product has fewer)")
    ap.add_argument("--before-zoom", type=int, default=7, help="the zoom of issue 25's 17 s tile")
    ap.add_argument("--cache", type=Path, default=None, help="default ~/.cache/terrawatch/bench")
    args = ap.parse_args()
    from terrawatch.products import tiles
    from terrawatch.settings import Settings

    cache = args.cache or Settings().cache_dir / "bench"
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    built = {size: build(size, cache, log) for size in (args.small, args.full)}
    ctx = mp.get_context("spawn")
    low = range(args.min_zoom, args.min_zoom + 3)
    result: dict = {"bench": "raster_tiles", "small_px": args.small, "full_px": args.full,
                    "max_source_pixels": tiles.MAX_SOURCE_PIXELS}
    for product in ("flood", "quicklook"):
        result[product] = {}
        for label, size in (("small", args.small), ("full", args.full)):
            path = built[size][product]
            info = tiles.info(path)
            rows = []
            for z in range(args.min_zoom, info.maxzoom + 1):
                rows.append(_run(ctx, path, product, z, args.tiles))
                log(f"{product} {size} px z{z}: {rows[-1]}")
            result[product][label] = {"px": size, "minzoom": info.minzoom, "native_zoom": info.maxzoom,
                                      "overviews": len(tiles.levels(path)) - 1, "zooms": rows,
                                      "ratio_low_over_native": _ratios(rows, info.maxzoom, low)}
    full_low = [r for r in result["flood"]["full"]["zooms"] + result["quicklook"]["full"]["zooms"]
                if r["zoom"] in low]
    result["full_low_zoom_from_overviews"] = all("refused" not in r and min(r["levels_read"]) >= 0
                                                 for r in full_low)
    # issue 25's product: 512 px, old layout read the old way vs new layout read now, same zooms
    folder = cache / "issue25_512px_v2"
    folder.mkdir(parents=True, exist_ok=True)
    old, new = folder / "flood_likelihood_before.tif", folder / "flood_likelihood.tif"
    if not old.exists():
        _likelihood(512, old, old_layout=True)
    if not new.exists():
        _likelihood(512, new)
    native = tiles.info(new).maxzoom
    case: dict = {"overviews_before": len(tiles.levels(old)) - 1, "overviews_now": len(tiles.levels(new)) - 1,
                  "minzoom_before_file_now": tiles.info(old).minzoom, "minzoom_now": tiles.info(new).minzoom}
    for label, path, mode in (("before", old, "before"), ("now", new, "planned")):
        for z in (args.before_zoom, native):
            row = _run(ctx, path, "flood", z, 1, mode=mode)
            log(f"issue 25 512 px {label} z{z}: {row}")
            case[f"{label}_z{z}"] = {k: row[k] for k in ("wall_ms", "cpu_ms", "peak_growth_mb", "levels_read")}
    case["before_file_z%d_now" % args.before_zoom] = _run(ctx, old, "flood", args.before_zoom, 1)
    result["issue25_512px"] = case
    print(json.dumps(result))


if __name__ == "__main__":
    main()
