"""GFM-like ensemble on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from terrawatch.ml.ensemble import (
    CLOUD,
    LIKELIHOOD_NODATA,
    NODATA,
    RADAR_SHADOW,
    WaterEstimate,
    combine,
    low_backscatter_mask,
    radar_shadow_layover,
    reference_water,
)


def _p(*vals):
    return np.array([vals], dtype=np.float32)  # (1, N)


def test_majority_vote_and_likelihood_of_supporters():
    s1 = WaterEstimate("s1-net", _p(0.9, 0.9, 0.1, 0.8), "s1")
    otsu = WaterEstimate("s1-otsu", _p(0.7, 0.2, 0.3, 0.4), "s1")
    s2 = WaterEstimate("s2", _p(0.8, 0.3, 0.0, 0.6), "s2")
    r = combine([s1, otsu, s2])
    np.testing.assert_array_equal(r.observed_water, [[True, False, False, True]])
    # supporters: (0.9+0.7+0.8)/3=80; (0.2+0.3)/2=25; (0.1+0.3+0.0)/3=13.3; (0.8+0.6)/2=70
    np.testing.assert_array_equal(r.likelihood, [[80, 25, 13, 70]])
    np.testing.assert_array_equal(r.n_valid, [[3, 3, 3, 3]])
    np.testing.assert_array_equal(r.exclusion, [[0, 0, 0, 0]])
    assert r.likelihood.dtype == np.uint8 and r.exclusion.dtype == np.uint8


def test_tie_broken_by_mean_probability():
    a = WaterEstimate("a", _p(0.9, 0.6), "s1")
    b = WaterEstimate("b", _p(0.2, 0.1), "s1")
    r = combine([a, b])
    # means 0.55 -> water (supporter a: 90); 0.35 -> dry (supporter b: 10)
    np.testing.assert_array_equal(r.observed_water, [[True, False]])
    np.testing.assert_array_equal(r.likelihood, [[90, 10]])


def test_weights_change_the_majority():
    heavy = WaterEstimate("heavy", _p(0.8), "s1", weight=3.0)
    l1 = WaterEstimate("l1", _p(0.1), "s1")
    l2 = WaterEstimate("l2", _p(0.2), "s2")
    assert combine([heavy, l1, l2]).observed_water[0, 0]
    assert not combine([WaterEstimate("h", _p(0.8), "s1"), l1, l2]).observed_water[0, 0]


def test_likelihood_50_iff_water_at_the_boundary():
    r = combine([WaterEstimate("a", _p(0.5, 0.499), "s1")])
    np.testing.assert_array_equal(r.observed_water, [[True, False]])
    np.testing.assert_array_equal(r.likelihood, [[50, 49]])


def test_cloud_invalidates_optical_only_and_is_flagged():
    s1 = WaterEstimate("s1", _p(0.2, 0.2), "s1")
    s2 = WaterEstimate("s2", _p(0.95, 0.95), "s2", weight=5.0)
    cloud = np.array([[True, False]])
    r = combine([s1, s2], cloud=cloud)
    np.testing.assert_array_equal(r.observed_water, [[False, True]])
    np.testing.assert_array_equal(r.likelihood, [[20, 95]])
    np.testing.assert_array_equal(r.exclusion, [[CLOUD, 0]])
    np.testing.assert_array_equal(r.n_valid, [[1, 2]])


def test_radar_shadow_invalidates_sar_and_nodata_when_nothing_left():
    s1 = WaterEstimate("s1", _p(0.9, 0.9, 0.9), "s1")
    s2 = WaterEstimate("s2", _p(0.1, np.nan, 0.1), "s2")
    shadow = np.array([[True, True, False]])
    nodata = np.array([[False, False, True]])
    r = combine([s1, s2], radar_shadow=shadow, nodata=nodata)
    # px0: only s2 valid -> dry; px1: s1 in shadow, s2 NaN -> nothing left; px2: input no data
    np.testing.assert_array_equal(r.observed_water, [[False, False, False]])
    np.testing.assert_array_equal(r.likelihood, [[10, LIKELIHOOD_NODATA, LIKELIHOOD_NODATA]])
    np.testing.assert_array_equal(r.exclusion, [[RADAR_SHADOW, RADAR_SHADOW | NODATA, NODATA]])


def test_per_estimate_valid_mask():
    a = WaterEstimate("a", _p(0.9, 0.9), "s1", valid=np.array([[False, True]]))
    b = WaterEstimate("b", _p(0.3, 0.3), "s1")
    r = combine([a, b])
    np.testing.assert_array_equal(r.observed_water, [[False, True]])
    np.testing.assert_array_equal(r.n_valid, [[1, 2]])


def test_flood_is_observed_minus_reference():
    pre = combine([WaterEstimate("pre", _p(0.9, 0.1, 0.1, 0.9), "s1")]).observed_water
    permanent = np.array([[False, False, True, False]])
    ref = reference_water(pre, permanent, None)
    np.testing.assert_array_equal(ref, [[True, False, True, True]])
    post = WaterEstimate("post", _p(0.9, 0.9, 0.9, 0.2), "s1")
    r = combine([post], reference_water=ref)
    np.testing.assert_array_equal(r.observed_water, [[True, True, True, False]])
    np.testing.assert_array_equal(r.flood, [[False, True, False, False]])
    # without a reference all observed water is flood
    np.testing.assert_array_equal(combine([post]).flood, r.observed_water)


def test_input_validation():
    with pytest.raises(ValueError):
        combine([])
    with pytest.raises(ValueError):
        combine([WaterEstimate("a", _p(0.5), "s3")])
    with pytest.raises(ValueError):
        combine([WaterEstimate("a", _p(0.5, 0.5)), WaterEstimate("b", _p(0.5))])
    with pytest.raises(ValueError):
        combine([WaterEstimate("a", _p(0.5))], cloud=np.zeros((2, 2), bool))


def test_radar_shadow_layover_on_synthetic_slopes():
    # 10 m grid; the sensor looks east (azimuth 90): height rising eastwards faces the sensor.
    x = np.arange(12) * 10.0
    cols = []
    for slope_deg in (45.0, -60.0, 10.0, -40.0):
        cols.append(np.tile(np.tan(np.deg2rad(slope_deg)) * x, (5, 1)))
    res = [radar_shadow_layover(d, 10.0, 35.0, 90.0) for d in cols]
    assert res[0].all()  # 45 deg facing the sensor > 35 incidence: layover
    assert res[1].all()  # 60 deg away > 90-35: shadow
    assert not res[2].any()  # gentle foreslope
    assert not res[3].any()  # 40 deg away < 55: lit
    # looking west the same terrain swaps roles: the 45 deg ramp faces away (45 < 55, lit)
    assert not radar_shadow_layover(cols[0], 10.0, 35.0, 270.0).any()
    # north-facing check: rows grow southwards, height rising northwards faces a north-looking radar
    north_ramp = np.tile((np.tan(np.deg2rad(50.0)) * -np.arange(8) * 10.0)[:, None], (1, 4))
    assert radar_shadow_layover(north_ramp, 10.0, 35.0, 0.0).all()


def test_low_backscatter_mask():
    vv = np.array([-35.0, -35.0, -20.0])
    vh = np.array([-40.0, -25.0, -40.0])
    np.testing.assert_array_equal(low_backscatter_mask(vv, vh), [True, False, False])
