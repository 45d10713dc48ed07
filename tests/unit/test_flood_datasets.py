"""Flood dataset loaders: synthetic folders in the real layouts, and the shared real data (skipped if absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from terrawatch.ml.datasets import ETCI2021, ETCI_VH_DB, ETCI_VV_DB, OmbriaS1, Sen1Floods11, ombria_png_to_db, png_to_db

from tests.conftest import shared_path as shared


def _tif(path: Path, arr: np.ndarray, nodata=None) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=arr.dtype, crs="EPSG:4326", transform=from_origin(0, 1, 1e-4, 1e-4), nodata=nodata) as dst:
        dst.write(arr)


def test_png_to_db_is_linear_over_the_stated_range():
    dn = np.array([0, 51, 255], dtype=np.uint8)
    np.testing.assert_allclose(png_to_db(dn, ETCI_VV_DB), [-25.0, -19.0, 5.0], atol=1e-5)
    np.testing.assert_allclose(png_to_db(dn, ETCI_VH_DB), [-35.0, -29.0, -5.0], atol=1e-5)



def test_ombria_png_to_db_anchors_the_90th_percentile():
    dn = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (10, 1))  # p90 = 178.2
    db = ombria_png_to_db(dn)
    assert np.percentile(db, 90) == pytest.approx(-7.0, abs=1e-4)
    assert db[0, 1] - db[0, 0] == pytest.approx(2 * 30 / 255, abs=1e-5)  # ETCI slope
    np.testing.assert_allclose(ombria_png_to_db(dn.astype(np.int16) + 40), db, atol=1e-4)  # stretch offset removed


def test_sen1floods11_any_ids_flat_or_nested(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "S1Hand").mkdir()
    for cid in ("Ghana_1", "USA_22"):
        s1 = rng.normal(-12, 3, (2, 32, 48)).astype(np.float32)
        s1[:, 0, 0] = np.nan
        _tif(tmp_path / "S1Hand" / f"{cid}_S1Hand.tif", s1, nodata=np.nan)
        _tif(tmp_path / f"{cid}_LabelHand.tif", rng.integers(-1, 2, (1, 32, 48)).astype(np.int16))
    _tif(tmp_path / "Ghana_1_S2Hand.tif", rng.integers(0, 5000, (13, 32, 48)).astype(np.int16))
    ds = Sen1Floods11(tmp_path)
    assert len(ds) == 2
    a, b = ds[0], ds[1]
    assert a["id"] == "Ghana_1" and a["s1"].shape == (2, 32, 48) and a["s1"].dtype == np.float32
    assert a["s2"].shape == (13, 32, 48) and "s2" not in b
    assert a["mask"].dtype == np.int64 and a["mask"][0, 0] == -1  # no-data input pixel is excluded
    assert set(np.unique(b["mask"])) <= {-1, 0, 1}


def test_etci_layout_nodata_and_split(tmp_path):
    for ev in ("ev_a", "ev_b"):
        t = tmp_path / ev / "tiles"
        for d in ("vv", "vh", "flood_label", "water_body_label"):
            (t / d).mkdir(parents=True)
        for x in (3, 18):
            base = f"{ev}_x-{x}_y-7"
            vv = np.full((16, 16, 3), 128, np.uint8)
            vh = np.full((16, 16, 3), 154, np.uint8)
            vv[0, 0] = vh[0, 0] = 0
            Image.fromarray(vv).save(t / "vv" / f"{base}_vv.png")
            Image.fromarray(vh).save(t / "vh" / f"{base}_vh.png")
            lab = np.zeros((16, 16, 3), np.uint8)
            lab[4:8] = 255
            Image.fromarray(lab).save(t / "flood_label" / f"{base}.png")
            Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(t / "water_body_label" / f"{base}.png")
    ds = ETCI2021(tmp_path)
    assert len(ds) == 4 and len(ETCI2021(tmp_path, split="holdout")) == 2 and len(ETCI2021(tmp_path, split="train")) == 2
    s = ds[0]
    assert s["s1"].shape == (2, 16, 16)
    assert s["s1"][0, 5, 5] == pytest.approx(-25 + 128 * 30 / 255, abs=1e-4)
    assert s["s1"][1, 5, 5] == pytest.approx(-35 + 154 * 30 / 255, abs=1e-4)
    assert np.isnan(s["s1"][:, 0, 0]).all() and s["mask"][0, 0] == -1
    assert s["mask"][5, 5] == 1 and s["mask"][10, 10] == 0
    assert len(ETCI2021(tmp_path / "ev_a")) == 2  # one event folder works too


def test_ombria_layout(tmp_path):
    for d in ("BEFORE", "AFTER", "MASK"):
        (tmp_path / d).mkdir()
    for n in (1, 2, 705):
        Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "AFTER" / f"S1_after_{n:04d}.png")
        before = np.zeros((8, 8), np.uint8)
        before[4:] = 85
        Image.fromarray(before).save(tmp_path / "BEFORE" / f"S1_before_{n:04d}.png")
        m = np.zeros((8, 8), np.uint8)
        m[:2] = 255
        Image.fromarray(m).save(tmp_path / "MASK" / f"S1_mask_{n:04d}.png")
    ds = OmbriaS1(tmp_path)
    assert [ds[i]["id"] for i in range(len(ds))] == ["0001", "0002", "0705"]
    assert len(OmbriaS1(tmp_path, split="holdout")) == 1
    s = ds[0]
    assert s["s1"].shape == (2, 8, 8) and np.allclose(s["s1"][0], -7.0) and np.isnan(s["s1"][1]).all()
    assert np.allclose(s["before"][0, 4:], -7.0) and np.allclose(s["before"][0, :4], -17.0, atol=1e-4)
    assert s["mask"][:2].all() and not s["mask"][2:].any()


def test_shared_sen1floods11_is_db():
    s = Sen1Floods11(shared("sen1floods11"))[0]
    assert s["s1"].shape == (2, 512, 512) and s["s2"].shape == (13, 512, 512)
    vv, vh = (np.nanmedian(b) for b in s["s1"])
    assert -20 < vv < -5 and -28 < vh < -10 and vv > vh  # sigma0 dB, VV brighter than VH
    assert set(np.unique(s["mask"])) == {-1, 0, 1}


def test_shared_etci_is_db_and_water_is_dark():
    ds = ETCI2021(shared("etci2021"))
    assert len(ds) == 198 and len(ETCI2021(shared("etci2021"), split="holdout")) == 37
    vv_water, vv_dry = [], []
    for i in range(0, len(ds), 10):
        s = ds[i]
        assert s["s1"].shape == (2, 256, 256)
        assert np.nanmin(s["s1"][0]) >= -25 and np.nanmax(s["s1"][0]) <= 5
        assert np.nanmin(s["s1"][1]) >= -35 and np.nanmax(s["s1"][1]) <= -5
        vv_water.append(s["s1"][0][s["water_body"] == 1])
        vv_dry.append(s["s1"][0][(s["mask"] == 0) & (s["water_body"] == 0)])
    assert np.nanmedian(np.concatenate(vv_water)) < -15 < -12 < np.nanmedian(np.concatenate(vv_dry)) < -6


def test_shared_ombria_is_db():
    ds = OmbriaS1(shared("ombria", "OmbriaS1", "train"))
    assert len(ds) == 624 and len(OmbriaS1(ds.root, split="holdout")) == 61
    land, flooded = [], []
    for i in range(0, len(ds), 12):
        s = ds[i]
        assert s["s1"].shape == (2, 256, 256) and s["before"].shape == (2, 256, 256)
        assert np.isnan(s["s1"][1]).all() and set(np.unique(s["mask"])) <= {0, 1}
        assert np.percentile(s["s1"][0], 90) == pytest.approx(-7.0, abs=0.01)
        land.append(np.median(s["s1"][0][s["mask"] == 0]) if (s["mask"] == 0).any() else np.nan)
        flooded.append(np.median(s["s1"][0][s["mask"] == 1]) if (s["mask"] == 1).any() else np.nan)
    assert -11 < np.nanmedian(land) < -8 and -20 < np.nanmedian(flooded) < -14
