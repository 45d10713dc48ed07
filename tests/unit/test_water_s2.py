"""Optical water indices, the automatic threshold and flood-s2 on hand-made arrays (the held-out Spain chip:
tests/quality/test_water_s2_spain.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from terrawatch.ml.water_s2 import (
    B,
    LITERATURE_THRESHOLD,
    mndwi,
    ndwi,
    nodata_mask,
    otsu_threshold,
    predict_mndwi_s2,
    predict_water_s2,
    to_reflectance,
)

# typical TOA reflectance x 10000 of clear water and of vegetated land (B1..B12)
WATER = np.array([1300, 1000, 800, 600, 500, 400, 380, 300, 280, 90, 10, 100, 60], np.float32)
LAND = np.array([1300, 1000, 900, 800, 1500, 2600, 3000, 3100, 3200, 900, 15, 2000, 1100], np.float32)


def _scene(water: np.ndarray) -> np.ndarray:
    s = np.where(water[None], WATER[:, None, None], LAND[:, None, None]).astype(np.float32)
    rng = np.random.default_rng(0)
    return s * rng.uniform(0.9, 1.1, size=s.shape).astype(np.float32)


def test_indices_known_values_and_nan():
    s = np.zeros((13, 1, 4), np.float32)
    s[B["B3"]] = [800, 1000, 0, np.nan]
    s[B["B11"]] = [100, 3000, 0, 500]
    s[B["B8"]] = [300, 1000, 0, 500]
    np.testing.assert_allclose(mndwi(s)[0, :2], [700 / 900, -0.5], rtol=1e-6)
    np.testing.assert_allclose(ndwi(s)[0, :2], [500 / 1100, 0.0], atol=1e-6)
    assert np.isnan(mndwi(s)[0, 2:]).all()  # 0/0 and NaN input
    np.testing.assert_array_equal(nodata_mask(s)[0], [False, False, True, True])


def test_processing_baseline_offset():
    dn = np.array([[[0, 1000, 1500]]] * 13, np.int16)
    r = to_reflectance(dn, dn_offset=-1000)
    assert np.isnan(r[0, 0, 0])
    np.testing.assert_array_equal(r[0, 0, 1:], [0, 500])
    # the offset changes a ratio index: MNDWI of DN (B3=2000, B11=1500) is 0.143, of reflectance 0.333
    s = np.full((13, 1, 1), 1500, np.float32)
    s[B["B3"]] = 2000
    assert mndwi(s)[0, 0] == pytest.approx(500 / 3500)
    assert mndwi(to_reflectance(s, dn_offset=-1000))[0, 0] == pytest.approx(500 / 1500)


def test_otsu_threshold_bimodal_and_fallback():
    rng = np.random.default_rng(1)
    bimodal = np.concatenate([rng.normal(-0.45, 0.05, 5000), rng.normal(0.4, 0.05, 2000)]).astype(np.float32)
    t, ok = otsu_threshold(bimodal)
    assert ok and -0.3 < t < 0.3
    # land only (two land classes): Otsu would split soil from vegetation; the guard falls back
    land = np.concatenate([rng.normal(-0.55, 0.04, 5000), rng.normal(-0.3, 0.04, 5000)]).astype(np.float32)
    assert otsu_threshold(land) == (LITERATURE_THRESHOLD, False)
    # NaN-aware and valid-mask aware
    with_nan = bimodal.copy()
    with_nan[:100] = np.nan
    assert otsu_threshold(with_nan)[1]
    assert otsu_threshold(bimodal, valid=np.zeros(bimodal.shape, bool)) == (LITERATURE_THRESHOLD, False)


def test_predict_on_handmade_scene():
    water = np.zeros((64, 64), bool)
    water[10:40, 5:30] = True
    s = _scene(water)
    s[:, 60:, 60:] = np.nan  # no data corner
    for f in (predict_water_s2, predict_mndwi_s2):
        p = f(s, mask_clouds=False)
        assert p.shape == (64, 64) and p.dtype == np.float32
        assert np.isnan(p[60:, 60:]).all()
        ok = np.isfinite(p)
        np.testing.assert_array_equal(p[ok] >= 0.5, water[ok])
    # baseline >= 04.00 DNs: same answer after the offset
    p_new = predict_water_s2(np.where(np.isfinite(s), s + 1000, 0), dn_offset=-1000, mask_clouds=False)
    np.testing.assert_array_equal(np.isnan(p_new), np.isnan(predict_water_s2(s, mask_clouds=False)))
    assert ((p_new >= 0.5) == water)[np.isfinite(p_new)].all()


def test_missing_band_falls_back_to_the_other_index():
    water = np.zeros((32, 32), bool)
    water[4:20, 4:20] = True
    s = _scene(water)
    s[B["B8"]] = np.nan  # no NIR: MNDWI alone
    p = predict_water_s2(s, mask_clouds=False)
    assert np.isfinite(p).all() and ((p >= 0.5) == water).all()
    s = _scene(water)
    s[B["B11"]] = 0  # SWIR no data (DN 0): NDWI alone
    p = predict_water_s2(s, mask_clouds=False)
    assert np.isfinite(p).all() and ((p >= 0.5) == water).all()
    assert np.isnan(predict_mndwi_s2(s)).all()
    s[B["B3"]] = np.nan  # no green: no estimate at all
    assert np.isnan(predict_water_s2(s, mask_clouds=False)).all()


def test_shape_validation():
    with pytest.raises(ValueError):
        predict_water_s2(np.zeros((6, 8, 8), np.float32))


def test_threshold_needs_a_bimodal_index():
    """Otsu always splits; the split is used only when a 2-Gaussian mixture fit is bimodal
    (Ashman's D >= 2). A unimodal index in the plausible range whose upper half has mean > 0 (it
    passed the older guard) now falls back to the literature threshold 0."""
    from terrawatch.ml.water_s2 import describe_threshold

    rng = np.random.default_rng(0)
    unimodal = rng.normal(0.1, 0.05, 20000).astype(np.float32)
    d = describe_threshold(unimodal)
    assert not d["from_otsu"] and d["threshold"] == LITERATURE_THRESHOLD and d["ashman_d"] < 2
    assert "not bimodal" in d["reason"]
    assert otsu_threshold(unimodal, min_ashman_d=0.0)[1]  # what the older guard accepted
    bimodal = np.r_[rng.normal(-0.3, 0.08, 19600), rng.normal(0.3, 0.1, 400)].astype(np.float32)  # 2 % water
    d = describe_threshold(bimodal)
    assert d["from_otsu"] and d["reason"] == "bimodal" and d["ashman_d"] > 4 and -0.1 < d["threshold"] < 0.2
    skewed = (rng.gamma(2.0, 0.1, 20000) - 0.5).astype(np.float32)  # one skewed land class
    assert not describe_threshold(skewed)["from_otsu"]
