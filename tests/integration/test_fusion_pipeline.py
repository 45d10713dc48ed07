"""The fused S1 + S2 flood product written by the pipeline when both sensors saw a place within the window."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import numpy as np
import pytest
import rasterio
from sqlalchemy import select

from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch.domain.tiles import EXCLUDED_CLOUD, EXCLUDED_NODATA
from terrawatch.ml.fusion import SOURCE_S1, SOURCE_S1_CLOUD, SOURCE_S2, SOURCE_S2_NOT_S1
from terrawatch.products.cog import is_cog
from terrawatch_dev.samples import spain_sensing_time
from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for
from tests.conftest import shared_path
from tests.integration.helpers import isolated, publish, runs_for, start_worker, wait_for

pytestmark = pytest.mark.integration


def test_s1_scene_after_an_s2_scene_gets_a_fused_flood_product(stack, tmp_path):
    """The real Spain chips (moved elsewhere, see below): S2 (L1C, 2019-09-18) whose east 40 % is cut off (no
    data, as at a tile edge), then S1 of the same place 20 h later. The S1 scene's fused product takes S2's flood likelihood where S2
    has a clear value and S1's elsewhere, flagged per pixel; its water beats S1 alone against the hand label."""
    s = isolated(stack.settings, "fusion", products_root=tmp_path / "products")
    # both chips moved to a place no other test uses (same shift): the scenes live in the shared PostGIS,
    # and a cut-off S2 copy of the Spain chip must never become another test's pre-event (deforestation) scene
    from affine import Affine

    shift = Affine.translation(random.uniform(5.0, 25.0), random.uniform(-10.0, 10.0))
    with rasterio.open(shared_path("sen1floods11", "Spain_7370579_S2Hand.tif")) as src:
        profile, data = src.profile, src.read()
    cut = int(data.shape[2] * 0.6)
    data[:, :, cut:] = 0  # L1C no data
    with rasterio.open(tmp_path / "s2.tif", "w", **{**profile, "transform": shift * profile["transform"]}) as dst:
        dst.write(data)
    with rasterio.open(shared_path("sen1floods11", "Spain_7370579_S1Hand.tif")) as src:
        profile1, data1 = src.profile, src.read()
    with rasterio.open(tmp_path / "s1.tif", "w", **{**profile1, "transform": shift * profile1["transform"]}) as dst:
        dst.write(data1)
    tag = uuid.uuid4().hex[:6]
    t2 = spain_sensing_time("s2") + timedelta(minutes=random.randint(0, 600))
    s2 = item_from_geotiff(tmp_path / "s2.tif", scene_id=f"fuse-s2-{tag}", sensing_time=t2)
    s1 = item_from_geotiff(tmp_path / "s1.tif", scene_id=f"fuse-s1-{tag}", sensing_time=t2 + timedelta(hours=20))
    worker = start_worker(s, tmp_path / "worker.log", "--max-idle-s", "30")
    try:
        publish(s, s2)
        wait_for(lambda: any(r["hazard"] == "flood" for r in runs_for(s, s2["id"])), 300, "the S2 flood run")
        publish(s, s1)
        wait_for(lambda: runs_for(s, s1["id"]), 240, "the S1 flood run")
    finally:
        worker.terminate()
        worker.wait(60)

    with engine_for(s.db_url).connect() as c:
        status = c.execute(select(t.scenes.c.hazard_status).where(t.scenes.c.id == s1["id"])).scalar_one()
        s2_status = c.execute(select(t.scenes.c.hazard_status).where(t.scenes.c.id == s2["id"])).scalar_one()
    fusion = status["flood"]["fusion"]
    assert fusion["status"] == "fused" and fusion["with_scene"] == s2["id"], fusion
    assert s2_status["flood"]["fusion"]["status"] == "no_partner"  # the S1 scene came later
    folder = tmp_path / "products"
    fused_path = folder / s1["id"] / "flood_fused.tif"
    assert is_cog(fused_path)
    with rasterio.open(fused_path) as ds:
        lk, src = ds.read(1), ds.read(2)
    with rasterio.open(folder / s1["id"] / "flood_likelihood.tif") as ds:
        lk1 = ds.read(1)
    with rasterio.open(folder / s2["id"] / "flood_likelihood.tif") as ds:  # same 10 m grid as the S1 chip
        lk2, fl2 = ds.read(1), ds.read(2)
    # S2 decides where it classified; 6 = S2 water that S1 calls dry (issue 27), still S2's value
    from_s2, from_s1 = np.isin(src, [SOURCE_S2, SOURCE_S2_NOT_S1]), src == SOURCE_S1
    print(f"fused sources: {fusion['shares']}")
    # per pixel: S2 where its product classified, S1 where S2 has no data (the cut) or cloud/shadow
    assert from_s2[fl2 == 0].all() and (fl2[:, cut + 1:] == EXCLUDED_NODATA).all()
    assert (src[fl2 == EXCLUDED_NODATA] == SOURCE_S1).all() and (src[fl2 == EXCLUDED_CLOUD] == SOURCE_S1_CLOUD).all()
    assert (fl2[:, :cut - 1] == 0).mean() > 0.9  # the L1C mask flags a few % of this cloud-free chip as shadow
    assert (lk[from_s2] == lk2[from_s2]).all()
    assert (lk[from_s1] == lk1[from_s1]).all() and (lk[src == SOURCE_S1_CLOUD] == lk1[src == SOURCE_S1_CLOUD]).all()
    with rasterio.open(shared_path("sen1floods11", "Spain_7370579_LabelHand.tif")) as ds:
        label = ds.read(1)
    ok = label >= 0

    def iou(pred: np.ndarray) -> float:
        return float((pred & (label == 1) & ok).sum() / ((pred | (label == 1)) & ok).sum())

    fused_iou, s1_iou = iou((lk >= 50) & (lk <= 100)), iou((lk1 >= 50) & (lk1 <= 100))
    print(f"water IoU vs the hand label: fused {fused_iou:.4f}, S1 alone {s1_iou:.4f}")
    assert fused_iou > s1_iou
