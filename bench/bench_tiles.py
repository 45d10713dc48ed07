"""Vector tiles per zoom: bytes and milliseconds of ``ST_AsMVT`` tiles, simplified vs not.

Data: synthetic detections seeded into PostGIS by ``terrawatch_dev.api_samples.seed_layers``
(``--scenes`` x ``--per-scene`` polygons of ``--vertices`` vertices, 1-60 ha each, like
polygonized 10 m rasters) over a ``--spread`` degree square around (``--lon``, ``--lat``),
with alerts grouping them by four. They are removed at the end.

For each zoom, the tile containing one seeded detection is rendered with the API's own SQL
(``terrawatch.store.vector_tiles.TILE_SQL``: tolerance = half a 256-px pixel at that zoom,
features under 2 x 2 px as points) and once without simplification or points (tolerance 0,
for comparison), ``--repeat`` times each;
reported: MVT bytes, gzip bytes (what an HTTP client with Accept-Encoding receives),
median ms (server-side, one SQL round trip), features and vertices in the tile.

Needs a migrated PostGIS (``terrawatch stack up``; TERRAWATCH_* env selects it):

    .venv/bin/python bench/bench_tiles.py
    .venv/bin/python bench/bench_tiles.py --scenes 2 --per-scene 200   # quick

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
import uuid

import mapbox_vector_tile
import morecantile
from sqlalchemy import text

from terrawatch.store.vector_tiles import render, tolerance_m
from terrawatch_dev.api_samples import delete_seeded, seed_layers
from terrawatch.settings import get_settings
from terrawatch.store.uow import engine_for


def _vertices(geom: dict) -> int:
    def count(c):
        return 1 if isinstance(c[0], (int, float)) else sum(count(x) for x in c)
    return count(geom["coordinates"])


def measure(conn, layer: str, z: int, x: int, y: int, simplify: bool, repeat: int) -> dict:
    times, body = [], b""
    for _ in range(repeat):
        t0 = time.perf_counter()
        body = render(conn, layer, z, x, y, simplify)
        times.append((time.perf_counter() - t0) * 1000)
    feats = mapbox_vector_tile.decode(body).get(layer, {}).get("features", []) if body else []
    return {"bytes": len(body), "gzip_bytes": len(gzip.compress(body, 6)) if body else 0,
            "ms_median": round(statistics.median(times), 1), "features": len(feats),
            "vertices": sum(_vertices(f["geometry"]) for f in feats)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=5)
    ap.add_argument("--per-scene", type=int, default=600)
    ap.add_argument("--vertices", type=int, default=150)
    ap.add_argument("--spread", type=float, default=2.0, help="side of the seeded square (degrees)")
    ap.add_argument("--lon", type=float, default=-62.0)
    ap.add_argument("--lat", type=float, default=-9.0)
    ap.add_argument("--zooms", default="3,5,7,9,11,13,15")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--layers", default="detections,alerts")
    args = ap.parse_args()

    s = get_settings()
    engine = engine_for(s.db_url)
    t0 = time.perf_counter()
    seeded = seed_layers(engine, center=(args.lon, args.lat), spread_deg=args.spread, scenes=args.scenes,
                         detections_per_scene=args.per_scene, vertices=args.vertices,
                         tag=f"bench-{uuid.uuid4().hex[:6]}")
    with engine.begin() as conn:  # planner statistics, as autovacuum keeps them in a running system
        conn.execute(text("analyze detections; analyze alerts; analyze scenes"))
    seed_s = time.perf_counter() - t0
    tms = morecantile.tms.get("WebMercatorQuad")
    # Tiles are the ones containing one seeded detection, so high zooms have something in them.
    with engine.connect() as conn:
        anchor = conn.execute(text("select ST_X(p), ST_Y(p) from (select ST_PointOnSurface(geom) p from detections "
                                   "where id = :id) q"), {"id": seeded.detection_ids[0]}).one()
    out: dict = {"bench": "tiles", "features_seeded": len(seeded.detection_ids), "alerts_seeded": len(seeded.alert_ids),
                 "vertices_per_polygon": args.vertices, "spread_deg": args.spread, "seed_s": round(seed_s, 1),
                 "repeat": args.repeat, "layers": {}}
    try:
        with engine.connect() as conn:
            for layer in args.layers.split(","):
                rows = {}
                for z in (int(v) for v in args.zooms.split(",")):
                    tile = tms.tile(*anchor, z)
                    simplified = measure(conn, layer, z, tile.x, tile.y, True, args.repeat)
                    raw = measure(conn, layer, z, tile.x, tile.y, False, args.repeat)
                    rows[str(z)] = {"tile": f"{z}/{tile.x}/{tile.y}", "tolerance_m": round(tolerance_m(z), 2),
                                    **simplified, "unsimplified": raw}
                    print(f"{layer:10s} z{z:<2d} {rows[str(z)]['tile']:>14s}  {simplified['features']:5d} feats "
                          f"{simplified['vertices']:7d} verts {simplified['bytes']:8d} B ({simplified['gzip_bytes']:7d} gz)"
                          f" {simplified['ms_median']:7.1f} ms | unsimplified {raw['vertices']:7d} verts "
                          f"{raw['bytes']:8d} B {raw['ms_median']:7.1f} ms", flush=True)
                out["layers"][layer] = rows
    finally:
        delete_seeded(engine, seeded)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
