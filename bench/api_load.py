"""API load: vector tiles, OGC API - Features and raster tiles under concurrent requests (p50/p95, errors).

    python bench/api_load.py [--concurrency 8] [--seconds 30] [--port-base 41000]
    terrawatch bench api

On a private stack, the pipeline first stores real results: river/lake scenes and one "speckled
flood" scene of 4096 small polygons (one alert of 4096 parts). Then ``terrawatch serve`` (uvicorn,
one process, public read) is loaded by a bounded client (asyncio + httpx, ``--concurrency``
requests in flight, no queue) for ``--seconds`` per endpoint group:
- tiles: /tiles/{detections,alerts}/{z}/{x}/{y}.pbf for every tile over a scene at z 8, 10, 12, 14;
- features: /ogc/collections/{detections,alerts}/items with bbox filters and limit=100;
- raster: /raster/scenes/{scene}/{flood,quicklook}/{z}/{x}/{y}.png of every stored scene, every tile over
  the product at every zoom its TileJSON advertises (minzoom..maxzoom), requests spread evenly over the
  zooms; p50/p95/p99 per zoom under ``raster.by_zoom`` (issue 29: p95 < 150 ms at every zoom).
Responses that carry ``X-Tile-Cache`` (the API's tile cache: raster tiles) are also split into
``by_cache.hit`` / ``by_cache.miss`` (a miss = rendered for that request: the cold cost under load), and
per zoom into ``hits`` and ``hit_p95_ms``.
Latencies are client-side wall times per request. Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    emit, log, machine, private_stack, publish, start_worker, stop_worker, synthetic_items, wait_http, wait_runs,
)


def blobs_item(folder: Path, origin: tuple[float, float]) -> dict:
    """A speckled-flood S1 scene: a 64 x 64 lattice of 6 x 6 px water squares (4096 detections)."""
    import uuid
    from datetime import datetime, timedelta, timezone

    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    from terrawatch.ingest.stac_items import item_from_geotiff

    size, spacing, blob = 768, 12, 6
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size, 0:size]
    water = ((yy % spacing) < blob) & ((xx % spacing) < blob)
    sp = rng.gamma(4.4, 1 / 4.4, size=(2, size, size))
    data = 10 * np.log10(np.stack([np.where(water, 10 ** -2.2, 10 ** -0.8) * sp[0],
                                   np.where(water, 10 ** -2.8, 10 ** -1.5) * sp[1]]))
    path = folder / "blobs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=2, dtype="float32",
                       crs="EPSG:32630", transform=from_origin(*origin, 10, 10), nodata=np.nan) as ds:
        ds.write(data.astype(np.float32))
    return item_from_geotiff(path, scene_id=f"bench-blobs-{uuid.uuid4().hex[:6]}",
                             sensing_time=datetime.now(timezone.utc) - timedelta(minutes=2))


def urls(base: str, footprints: list[tuple[float, float, float, float]]) -> dict[str, list[str]]:
    """Tile URLs over each scene footprint (so tiles hold data) and bbox queries over all of them."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = []
    for z in (8, 10, 12, 14):
        for layer in ("detections", "alerts"):
            keys = {(t.z, t.x, t.y) for fp in footprints for t in tms.tiles(*fp, zooms=[z])}
            tiles += [f"{base}/tiles/{layer}/{z}/{x}/{y}.pbf" for z, x, y in sorted(keys)]
    w, s = min(f[0] for f in footprints), min(f[1] for f in footprints)
    e, n = max(f[2] for f in footprints), max(f[3] for f in footprints)
    boxes = [(w, s, e, n), (w, s, (w + e) / 2, (s + n) / 2), ((w + e) / 2, (s + n) / 2, e, n)]
    feats = [f"{base}/ogc/collections/{c}/items?bbox={','.join(f'{v:.5f}' for v in b)}&limit=100"
             for c in ("detections", "alerts") for b in boxes]
    return {"tiles": tiles, "features": feats}


RASTER_PRODUCTS = ("flood", "quicklook")  # the flood likelihood (flood_s1) and the scene's quicklook


def raster_urls(base: str, scenes: dict[str, dict]) -> tuple[list[str], dict]:
    """Raster tile URLs of each scene's products at every zoom their TileJSON advertises, the tiles that
    overlap both the product's bounds and the scene's footprint (``scenes``: id -> GeoJSON geometry, lon/lat;
    a corner tile of the bounds can miss a footprint that is tilted in lon/lat: the API answers it with an
    empty transparent tile, left out here so the group measures tiles with data, as in the runs before that
    answer), interleaved so each zoom gets the same share of requests; and what was found
    ({"tilesets": n, "missing": [scene/product...], "zooms": {z: distinct tiles}})."""
    import httpx
    import morecantile
    from shapely.geometry import box, shape

    tms = morecantile.tms.get("WebMercatorQuad")
    by_zoom: dict[int, list[str]] = {}
    found: dict = {"tilesets": 0, "missing": []}
    with httpx.Client(timeout=60) as client:
        for sid, geometry in scenes.items():
            footprint = shape(geometry)
            for product in RASTER_PRODUCTS:
                r = client.get(f"{base}/raster/scenes/{sid}/{product}.json")
                if r.status_code != 200:
                    found["missing"].append(f"{sid}/{product}: {r.status_code}")
                    continue
                tj = r.json()
                found["tilesets"] += 1
                for z in range(int(tj["minzoom"]), int(tj["maxzoom"]) + 1):
                    by_zoom.setdefault(z, []).extend(
                        tj["tiles"][0].format(z=t.z, x=t.x, y=t.y) for t in tms.tiles(*tj["bounds"], zooms=[z])
                        if footprint.intersection(box(*tms.bounds(t))).area > 0)
    found["zooms"] = {z: len(u) for z, u in sorted(by_zoom.items())}
    longest = max((len(u) for u in by_zoom.values()), default=0)
    interleaved = [u[i % len(u)] for i in range(longest) for _, u in sorted(by_zoom.items())]
    return interleaved, found


def url_zoom(url: str) -> int:
    """The z of a .../{z}/{x}/{y}.png URL."""
    return int(url.split("?")[0].rsplit("/", 3)[-3])


def stats(lat_s: list[float], sizes: list[int]) -> dict:
    """p50/p95/p99 in ms and mean body bytes of successful requests."""
    import numpy as np

    ms = np.asarray(lat_s) * 1000 if lat_s else np.asarray([np.nan])
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "mean_bytes": int(np.mean(sizes)) if sizes else 0}


async def load(targets: list[str], concurrency: int, seconds: float, group_by=None) -> dict:
    """``concurrency`` clients loop over ``targets`` for ``seconds``; ``group_by(url)`` adds per-key stats."""
    import httpx

    lat: list[float] = []
    keyed: dict = {}
    cached: dict = {}  # "hit"/"miss" (X-Tile-Cache) -> (latencies, sizes)
    keyed_hits: dict = {}  # group_by key -> latencies of the answers that came from the tile cache
    errors: dict[str, int] = {}
    sizes: list[int] = []
    stop = time.monotonic() + seconds

    async def one(client: httpx.AsyncClient, k: int) -> None:
        i = k
        while time.monotonic() < stop:
            url = targets[i % len(targets)]
            i += concurrency
            t0 = time.perf_counter()
            try:
                r = await client.get(url)
                dt = time.perf_counter() - t0
                if r.status_code >= 400:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                else:
                    lat.append(dt)
                    sizes.append(len(r.content))
                    if group_by is not None:
                        k_lat, k_sizes = keyed.setdefault(group_by(url), ([], []))
                        k_lat.append(dt)
                        k_sizes.append(len(r.content))
                        if r.headers.get("x-tile-cache") == "hit":
                            keyed_hits.setdefault(group_by(url), []).append(dt)
                    if "x-tile-cache" in r.headers:
                        c_lat, c_sizes = cached.setdefault(r.headers["x-tile-cache"], ([], []))
                        c_lat.append(dt)
                        c_sizes.append(len(r.content))
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(one(client, k) for k in range(concurrency)))
    wall = time.perf_counter() - t0
    out = {"requests": len(lat) + sum(errors.values()), "ok": len(lat), "errors": errors,
           "rps": round(len(lat) / wall, 1), **stats(lat, sizes), "distinct_urls": len(set(targets))}
    if group_by is not None:
        out["by_zoom"] = {str(k): {"ok": len(v[0]), **stats(*v)} for k, v in sorted(keyed.items())}
        for k, hits in keyed_hits.items():  # the same per key, cache hits only (misses = ok - hits)
            out["by_zoom"][str(k)] |= {"hits": len(hits), "hit_p95_ms": stats(hits, [])["p95_ms"]}
    if cached:
        out["by_cache"] = {k: {"ok": len(v[0]), **stats(*v)} for k, v in sorted(cached.items())}
    return out


def run(concurrency: int = 8, seconds: float = 30, port_base: int = 41000, scenes: int = 4,
        keep_stack: bool = False) -> dict:
    from shapely.geometry import shape

    result: dict = {"bench": "api", "machine": machine(), "concurrency": concurrency, "seconds_per_group": seconds}
    work = Path(tempfile.mkdtemp(prefix="tw-bench-api-"))
    try:  # the work dir goes even when making the scenes fails
        with private_stack(port_base, keep=keep_stack) as bs:
            s = bs.settings
            items = synthetic_items(work, scenes, 512, "api") + [
                blobs_item(work, (200_000.0 + scenes * 30_000, 5_000_000.0))]
            worker = start_worker(bs, work / "worker.log")
            try:
                log(f"storing {len(items)} scenes through the pipeline ...")
                publish(s, items)
                wait_runs(s, [i["id"] for i in items], 1800)
            finally:
                stop_worker(worker)
            from sqlalchemy import text

            from terrawatch.store.uow import engine_for

            with engine_for(s.db_url).connect() as c:
                result["data"] = {"detections": c.execute(text("select count(*) from detections")).scalar_one(),
                                  "alerts": c.execute(text("select count(*) from alerts")).scalar_one()}
            footprints = [shape(i["geometry"]).bounds for i in items]
            base = f"http://127.0.0.1:{s.api_port}"
            fh = open(work / "api.log", "ab")
            api = subprocess.Popen([sys.executable, "-m", "terrawatch.cli", "serve", "--port", str(s.api_port)],
                                   env=bs.worker_env(TERRAWATCH_API_PUBLIC_READ="true"), stdout=fh,
                                   stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_http(f"{base}/ops/livez", 120)
                targets = urls(base, footprints)
                targets["raster"], result["raster_tiles"] = raster_urls(base, {i["id"]: i["geometry"] for i in items})
                for group, tgt in targets.items():
                    if not tgt:
                        log(f"{group}: no URLs")
                        continue
                    asyncio.run(load(tgt[:4], 1, 3))  # warm caches and connections
                    log(f"{group}: {len(set(tgt))} URLs, {concurrency} in flight, {seconds:.0f} s ...")
                    result[group] = asyncio.run(load(tgt, concurrency, seconds,
                                                     group_by=url_zoom if group == "raster" else None))
                    log(f"{group}: {result[group]}")
            finally:
                stop_worker(api)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--scenes", type=int, default=4, help="river/lake scenes stored before the load")
    ap.add_argument("--port-base", type=int, default=41000)
    ap.add_argument("--keep-stack", action="store_true")
    a = ap.parse_args(argv)
    emit(run(a.concurrency, a.seconds, a.port_base, a.scenes, a.keep_stack))


if __name__ == "__main__":
    main()
