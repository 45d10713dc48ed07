"""Sentinel-2 through the real stack: flood (flood_s2), mining (mining_s2, sliding window) on the
same tiles, and deforestation (deforestation_s2) against the previous scene found in PostGIS."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
import rasterio
from geoalchemy2.shape import to_shape
from shapely.geometry import box
from sqlalchemy import select

from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch.samples import spain_sensing_time, synthetic_clearing
from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for
from tests.conftest import shared_path
from tests.integration.helpers import isolated, publish, runs_for, start_worker, wait_for

pytestmark = pytest.mark.integration


def test_s2_flood_mining_and_deforestation(stack, tmp_path):
    s2 = shared_path("sen1floods11", "Spain_7370579_S2Hand.tif")
    s = isolated(stack.settings, "s2", products_root=tmp_path / "products")
    tag = uuid.uuid4().hex[:6]
    pre = item_from_geotiff(s2, scene_id=f"s2-pre-{tag}", sensing_time=spain_sensing_time("s2"))
    row, col, block = synthetic_clearing(s2, tmp_path / "post.tif")
    post = item_from_geotiff(tmp_path / "post.tif", scene_id=f"s2-post-{tag}",
                             sensing_time=spain_sensing_time("s2") + timedelta(days=10))
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        publish(s, pre)
        pre_runs = wait_for(lambda: (r := runs_for(s, pre["id"])) and len(r) >= 2 and r, 300, "pre scene runs")
        publish(s, post)
        post_runs = wait_for(lambda: (r := runs_for(s, post["id"])) and len(r) >= 3 and r, 300, "post scene runs")
    finally:
        worker.terminate()
        worker.wait(60)
    assert {r["hazard"] for r in pre_runs} == {"flood", "mining"}  # no earlier scene: no deforestation
    assert {r["hazard"] for r in post_runs} == {"flood", "mining", "deforestation"}
    # one read per tile for all hazards: every run of a scene reports the same tile count
    assert len({r["tiles"] for r in post_runs}) == 1
    for hazard in ("flood", "mining"):
        product = tmp_path / "products" / pre["id"] / f"{hazard}_likelihood.tif"
        with rasterio.open(product) as ds:
            assert ds.count == 2  # likelihood, exclusion flags
            lk, excl = ds.read(1), ds.read(2)
        assert lk.shape == (512, 512) and ((lk <= 100) | (lk == 255)).all() and (lk <= 100).any()
        assert ((lk == 255) == (excl != 0)).all() and set(np.unique(excl).tolist()) <= {0, 1, 2}
    with rasterio.open(tmp_path / "post.tif") as ds:
        west, north = ds.transform * (col, row)
        east, south = ds.transform * (col + block, row + block)
    clearing = box(min(west, east), min(south, north), max(west, east), max(south, north))
    with engine_for(s.db_url).connect() as c:
        geoms = [to_shape(g) for (g,) in c.execute(select(t.detections.c.geom).where(
            t.detections.c.scene_id == post["id"], t.detections.c.hazard == "deforestation"))]
    assert geoms, "the synthetic clearing was not detected"
    assert all(g.intersects(clearing.buffer(0.0003)) for g in geoms), "forest loss reported outside the clearing"
