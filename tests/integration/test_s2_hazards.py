"""Sentinel-2 through the real stack: flood (flood_s2), mining (mining_s2, sliding window) on the
same tiles, and deforestation (deforestation_s2) against the previous scene found in PostGIS."""

from __future__ import annotations

import json

import uuid
from datetime import timedelta

import numpy as np
import pytest
import rasterio
from geoalchemy2.shape import to_shape
from shapely.geometry import box
from sqlalchemy import select

from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch.products.cog import is_cog
from terrawatch_dev.samples import spain_sensing_time, synthetic_clearing
from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for
from tests.cloud_samples import l1c_with_real_cloud
from tests.conftest import shared_path
from tests.integration.helpers import isolated, publish, runs_for, start_worker, wait_for

pytestmark = pytest.mark.integration


def _global_aoa(tmp_path):
    """An operator's widened area of applicability (TERRAWATCH_AOA_OVERRIDES): the whole globe."""
    path = tmp_path / "global_aoa.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90],
                                                                     [-180, -90]]]}))
    return path


def test_s2_flood_mining_and_deforestation(stack, tmp_path):
    """The mining model's AoA is the Amazon basin: to exercise its sliding window on the Spain chip the
    AoA is widened by configuration, as an operator would after retraining."""
    s2 = shared_path("sen1floods11", "Spain_7370579_S2Hand.tif")
    s = isolated(stack.settings, "s2", products_root=tmp_path / "products",
                 aoa_overrides={"mining_s2": _global_aoa(tmp_path)})
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
        assert (excl == 2).mean() < 0.005  # the L1C scene mask on a cloud-free chip (measured 0.00 %)
    with rasterio.open(tmp_path / "products" / pre["id"] / "cloud_mask.tif") as ds:
        assert (ds.read(1) == 2).mean() < 0.005
    with rasterio.open(tmp_path / "post.tif") as ds:
        west, north = ds.transform * (col, row)
        east, south = ds.transform * (col + block, row + block)
    clearing = box(min(west, east), min(south, north), max(west, east), max(south, north))
    with engine_for(s.db_url).connect() as c:
        geoms = [to_shape(g) for (g,) in c.execute(select(t.detections.c.geom).where(
            t.detections.c.scene_id == post["id"], t.detections.c.hazard == "deforestation"))]
    assert geoms, "the synthetic clearing was not detected"
    assert all(g.intersects(clearing.buffer(0.0003)) for g in geoms), "forest loss reported outside the clearing"


def _as_l2a(src, dst_dir, name: str, cloud: tuple[int, int, int]) -> tuple:
    """Re-label a 13-band S2 chip as L2A: 12 bands (B10 dropped) + an SCL GeoTIFF at 20 m, all
    vegetation (4) except a ``cloud`` = (row, col, size) block of high-probability cloud (9), 10 m px."""
    with rasterio.open(src) as ds:
        data, profile = ds.read(), ds.profile
    keep = [i for i in range(13) if i != 10]  # B10
    dst_dir.mkdir(parents=True, exist_ok=True)
    bands = dst_dir / f"{name}.tif"
    with rasterio.open(bands, "w", **{**profile, "count": 12}) as out:
        out.write(data[keep])
    h, w = data.shape[1] // 2, data.shape[2] // 2
    scl = np.full((h, w), 4, dtype=np.uint8)
    r, c, n = cloud
    scl[r // 2:(r + n) // 2, c // 2:(c + n) // 2] = 9
    t20 = profile["transform"] * rasterio.Affine.scale(2)
    with rasterio.open(dst_dir / f"{name}_SCL.tif", "w", driver="GTiff", width=w, height=h, count=1,
                       dtype="uint8", crs=profile["crs"], transform=t20, nodata=0) as out:
        out.write(scl, 1)
    return bands, dst_dir / f"{name}_SCL.tif"


def test_s2_l2a_flood_and_deforestation_run_mining_skipped_with_reason(stack, tmp_path):
    """Real Sen1Floods11 S2 bands re-labelled as L2A with an SCL band: flood and deforestation products are
    written, SCL cloud is flagged as cloud in them, mining is skipped with its reason recorded."""
    s2 = shared_path("sen1floods11", "Spain_7370579_S2Hand.tif")
    s = isolated(stack.settings, "l2a", products_root=tmp_path / "products")
    tag = uuid.uuid4().hex[:6]
    cloud = (0, 0, 64)  # top-left 64 x 64 px under cloud in the post scene
    pre_tif, pre_scl = _as_l2a(s2, tmp_path / "l2a", "pre", (448, 448, 0))
    row, col, block = synthetic_clearing(s2, tmp_path / "post13.tif")
    post_tif, post_scl = _as_l2a(tmp_path / "post13.tif", tmp_path / "l2a", "post", cloud)
    pre = item_from_geotiff(pre_tif, scene_id=f"s2-l2a-pre-{tag}", sensing_time=spain_sensing_time("s2"),
                            scl=pre_scl)
    post = item_from_geotiff(post_tif, scene_id=f"s2-l2a-post-{tag}", scl=post_scl,
                             sensing_time=spain_sensing_time("s2") + timedelta(days=10))
    assert pre["properties"]["processing:level"] == "L2A" and "SCL" in pre["assets"]
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        publish(s, pre)
        pre_runs = wait_for(lambda: (r := runs_for(s, pre["id"])) and len(r) >= 1 and r, 300, "pre scene runs")
        publish(s, post)
        post_runs = wait_for(lambda: (r := runs_for(s, post["id"])) and len(r) >= 2 and r, 300, "post scene runs")
    finally:
        worker.terminate()
        worker.wait(60)
    assert {r["hazard"] for r in pre_runs} == {"flood"}
    assert {r["hazard"] for r in post_runs} == {"flood", "deforestation"}
    with engine_for(s.db_url).connect() as c:
        skips = {(sid, h): reason for sid, h, reason in c.execute(select(
            t.scene_hazard_skips.c.scene_id, t.scene_hazard_skips.c.hazard, t.scene_hazard_skips.c.reason
        ).where(t.scene_hazard_skips.c.scene_id.in_([pre["id"], post["id"]])))}
    assert "L1C" in skips[(post["id"], "mining")] and "L2A" in skips[(post["id"], "mining")]
    assert "L1C" in skips[(pre["id"], "mining")]
    assert "no earlier L2A scene" in skips[(pre["id"], "deforestation")]
    products = tmp_path / "products" / post["id"]
    assert not (products / "mining_likelihood.tif").exists()
    assert is_cog(products / "flood_likelihood.tif") and is_cog(products / "quicklook.tif")
    with rasterio.open(products / "quicklook.tif") as ds:
        assert ds.count == 4 and (ds.read(1) > 0).any()  # B4, B3, B2, B8 display bands
    for hazard in ("flood", "deforestation"):
        with rasterio.open(products / f"{hazard}_likelihood.tif") as ds:
            lk, excl = ds.read(1), ds.read(2)
        assert lk.shape == (512, 512) and (lk <= 100).any()
        r, c_, n = cloud
        assert (excl[r:r + n, c_:c_ + n] == 2).all(), f"{hazard}: SCL cloud not flagged as cloud"
        assert (lk[r:r + n, c_:c_ + n] == 255).all()
        assert (excl[n:, n:] != 2).all()  # no cloud flag outside the SCL cloud
    with rasterio.open(tmp_path / "post13.tif") as ds:
        west, north = ds.transform * (col, row)
        east, south = ds.transform * (col + block, row + block)
    clearing = box(min(west, east), min(south, north), max(west, east), max(south, north))
    with engine_for(s.db_url).connect() as c:
        geoms = [to_shape(g) for (g,) in c.execute(select(t.detections.c.geom).where(
            t.detections.c.scene_id == post["id"], t.detections.c.hazard == "deforestation"))]
    assert geoms and all(g.intersects(clearing.buffer(0.0003)) for g in geoms)


def test_s2_l1c_clouds_are_masked_per_scene(stack, tmp_path):
    """Real clouds (the ukis-csmask check scene as a 13-band L1C GeoTIFF, tests/cloud_samples.py): the worker
    computes the scene's cloud/shadow mask once, and the flood product flags its pixels 2 (cloud) and leaves
    them unclassified, as SCL does for L2A; the hazard status records the mask and its share."""
    npz = shared_path("cloud", "ukis_sentinel2.npz")
    path, cloud, shadow = l1c_with_real_cloud(npz, shared_path("sen1floods11", "Spain_7370579_S2Hand.tif"),
                                              tmp_path / "cloudy.tif")
    s = isolated(stack.settings, "l1cmask", products_root=tmp_path / "products")
    item = item_from_geotiff(path, scene_id=f"s2-l1c-cloudy-{uuid.uuid4().hex[:6]}",
                             sensing_time=spain_sensing_time("s2"))
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        publish(s, item)
        wait_for(lambda: any(r["hazard"] == "flood" for r in runs_for(s, item["id"])), 300, "flood run")
    finally:
        worker.terminate()
        worker.wait(60)
    products = tmp_path / "products" / item["id"]
    with rasterio.open(products / "cloud_mask.tif") as ds:
        masked = ds.read(1) == 2  # the mask grid is the scene grid here (30 m pixels)
    with rasterio.open(products / "flood_likelihood.tif") as ds:
        lk, excl = ds.read(1), ds.read(2)
    assert masked[cloud].mean() > 0.95 and masked[shadow].mean() > 0.9  # measured 0.998 and 0.999
    assert (excl[masked] == 2).all() and (lk[masked] == 255).all()  # excluded, never classified
    assert (excl[~masked] != 2).all() and (lk[~masked] <= 100).any()
    with engine_for(s.db_url).connect() as c:
        status = c.execute(select(t.scenes.c.hazard_status).where(t.scenes.c.id == item["id"])).scalar_one()
    mask = status["flood"]["cloud_mask"]
    assert mask["status"] == "applied" and abs(mask["share"] - masked.mean()) < 0.001
