"""API load: vector tiles and OGC API - Features endpoints under concurrent requests (p50/p95, errors).

    python bench/api_load.py [--concurrency 8] [--seconds 30] [--port-base 41000]
    terrawatch bench api

On a private stack, the pipeline first stores real results: river/lake scenes and one "speckled
flood" scene of 4096 small polygons (one alert of 4096 parts). Then ``terrawatch serve`` (uvicorn,
one process, public read) is loaded by a bounded client (asyncio + httpx, ``--concurrency``
requests in flight, no queue) for ``--seconds`` per endpoint group:
- tiles: /tiles/{detections,alerts}/{z}/{x}/{y}.pbf for every tile over a scene at z 8, 10, 12, 14;
- features: /ogc/collections/{detections,alerts}/items with bbox filters and limit=100.
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


async def load(targets: list[str], concurrency: int, seconds: float) -> dict:
    import httpx
    import numpy as np

    lat: list[float] = []
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
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(one(client, k) for k in range(concurrency)))
    wall = time.perf_counter() - t0
    ms = np.asarray(lat) * 1000 if lat else np.asarray([np.nan])
    return {"requests": len(lat) + sum(errors.values()), "ok": len(lat), "errors": errors,
            "rps": round(len(lat) / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "mean_bytes": int(np.mean(sizes)) if sizes else 0, "distinct_urls": len(targets)}


def run(concurrency: int = 8, seconds: float = 30, port_base: int = 41000, scenes: int = 4,
        keep_stack: bool = False) -> dict:
    from shapely.geometry import shape

    result: dict = {"bench": "api", "machine": machine(), "concurrency": concurrency, "seconds_per_group": seconds}
    work = Path(tempfile.mkdtemp(prefix="tw-bench-api-"))
    with private_stack(port_base, keep=keep_stack) as bs:
        s = bs.settings
        items = synthetic_items(work, scenes, 512, "api") + [blobs_item(work, (200_000.0 + scenes * 30_000, 5_000_000.0))]
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
            for group, tgt in targets.items():
                asyncio.run(load(tgt[:4], 1, 3))  # warm caches and connections
                log(f"{group}: {len(tgt)} URLs, {concurrency} in flight, {seconds:.0f} s ...")
                result[group] = asyncio.run(load(tgt, concurrency, seconds))
                log(f"{group}: {result[group]}")
        finally:
            stop_worker(api)
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
