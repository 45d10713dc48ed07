"""Raster tile reads of scene products: peak memory of a tile read, small scene vs full-size scene.

Products are built with the pipeline's own writers from the synthetic Sentinel-2 L1C scene of
``bench_scale.py`` (13 native-resolution COGs, cached under ``~/.cache/terrawatch/bench``):

* the quicklook (``products.quicklook.write_quicklook``, B4/B3/B2/B8 on the scene grid, <= 4096 px, COG);
* a likelihood product of the scene's size (2-band uint8, band 1 = 90 on the scene's water, 5 elsewhere,
  written strip by strip as the tiler does, then ``products.cog.to_cog``).

For each scene size and product a **fresh subprocess** imports the tile code, renders one tile to warm
up imports, then reads tiles with ``products.tiles.render`` at the lowest zoom (the whole scene in a
tile or two: the overview path), a middle zoom and the highest zoom (full resolution), 12 tiles per zoom
where the product has them. Reported: peak RSS (``ru_maxrss``) minus the RSS before the first measured
tile, per product and size, and ``ratio_full_over_small`` = that delta on the full-size scene / on the
small one, side by side in one run. A ratio near 1 means tile-read memory does not grow with scene size.

    .venv/bin/python bench/bench_raster_tiles.py                       # 1098 vs 10980 px (full tile)
    .venv/bin/python bench/bench_raster_tiles.py --small 1098 --full 3294
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_scale  # noqa: E402


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


def _measure(path: str, product: str, out) -> None:
    """In a fresh process: RSS growth (kB) of reading tiles of ``path`` at three zoom levels."""
    import morecantile

    from terrawatch.products import tiles

    tms = morecantile.tms.get("WebMercatorQuad")
    p = Path(path)
    info = tiles.info(p)
    w, s, e, n = info.bounds
    comp = "truecolor" if product == "quicklook" else None
    warm = tms.tile((w + e) / 2, (s + n) / 2, info.maxzoom)
    tiles.render(p, product, warm.z, warm.x, warm.y, comp)  # imports, GDAL driver registration
    before = _status_kb("VmRSS")
    _reset_peak()
    count = 0
    t0 = time.perf_counter()
    lo = max(0, info.minzoom - 4)  # below the native range: the overview path (TileJSON advertises from 0)
    for z in (lo, (lo + info.maxzoom) // 2, info.maxzoom):
        ts = list(tms.tiles(w, s, e, n, [z]))
        step = max(1, len(ts) // 12)
        for t in ts[::step][:12]:
            try:
                tiles.render(p, product, t.z, t.x, t.y, comp)
                count += 1
            except tiles.TileNotFound:
                pass
    peak = _status_kb("VmHWM")
    out.put({"tiles": count, "rss_before_mb": round(before / 1024, 1), "peak_mb": round(peak / 1024, 1),
             "peak_growth_mb": round((peak - before) / 1024, 1),
             "ms_per_tile": round(1000 * (time.perf_counter() - t0) / max(count, 1), 1),
             "zooms": [lo, (lo + info.maxzoom) // 2, info.maxzoom]})


def _likelihood(size: int, path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from terrawatch.products.cog import to_cog

    cols = (np.arange(size, dtype=np.float32) + 0.5)[None, :]
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=2, dtype="uint8", nodata=255,
                       crs="EPSG:32633", transform=from_origin(*bench_scale.ORIGIN, 10, 10), tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate") as ds:
        for r0 in range(0, size, bench_scale.STRIP):
            h = min(bench_scale.STRIP, size - r0)
            rows = (np.arange(r0, r0 + h, dtype=np.float32) + 0.5)[:, None]
            lk = np.where(bench_scale._water(rows, cols, size), 90, 5).astype(np.uint8)
            ds.write(np.stack([lk, np.zeros_like(lk)]), window=Window(0, r0, size, h))
    to_cog(path)


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
    out = folder / "products"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=1098)
    ap.add_argument("--full", type=int, default=10980)
    ap.add_argument("--cache", type=Path, default=None, help="default ~/.cache/terrawatch/bench")
    args = ap.parse_args()
    from terrawatch.settings import Settings

    cache = args.cache or Settings().cache_dir / "bench"
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    built = {size: build(size, cache, log) for size in (args.small, args.full)}
    ctx = mp.get_context("spawn")
    result: dict = {"bench": "raster_tiles", "small_px": args.small, "full_px": args.full}
    for product in ("flood", "quicklook"):
        rows = {}
        for size in (args.small, args.full):
            q = ctx.Queue()
            proc = ctx.Process(target=_measure, args=(str(built[size][product]), product, q))
            proc.start()
            rows[size] = q.get(timeout=600)
            proc.join()
            log(f"{product} {size} px: {rows[size]}")
        small, full = rows[args.small]["peak_growth_mb"], rows[args.full]["peak_growth_mb"]
        result[product] = {"small": rows[args.small], "full": rows[args.full],
                           "ratio_full_over_small": round(full / max(small, 0.1), 2),
                           "scene_px_ratio": round((args.full / args.small) ** 2, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
