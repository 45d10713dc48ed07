"""The fused S1 + S2 flood product (terrawatch.ml.fusion) on hand-made arrays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from terrawatch.ml.fusion import (
    SOURCE_NONE,
    SOURCE_S1,
    SOURCE_S1_CLOUD,
    SOURCE_S1_THIN,
    SOURCE_S2,
    SOURCE_S1_BLIND,
    SOURCE_S2_NOT_S1,
    SOURCE_S2_THIN,
    fuse_s1_s2,
    source_shares,
    within_window,
)

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def _arrays():
    s1 = np.array([[0.9, 0.1, 0.8, 0.2, np.nan, 0.7]], np.float32)
    s2 = np.array([[0.1, 0.9, 0.2, 0.9, np.nan, 0.1]], np.float32)
    return s1, s2


def test_s2_where_clear_s1_under_cloud_and_no_data():
    s1, s2 = _arrays()
    cloud = np.array([[False, False, True, False, False, False]])
    s2[0, 5] = np.nan  # S2 no data, S1 has a value
    f = fuse_s1_s2(s1, s2, s2_cloud=cloud)
    # S2 clear-sky water where S1 says dry (pixels 1, 3): S2 decides, flagged "not seen by S1" (issue 27)
    assert f.source.tolist() == [[SOURCE_S2, SOURCE_S2_NOT_S1, SOURCE_S1_CLOUD, SOURCE_S2_NOT_S1, SOURCE_NONE, SOURCE_S1]]
    np.testing.assert_allclose(f.prob[0, [0, 1, 2, 3, 5]], [0.1, 0.9, 0.8, 0.9, 0.7])
    assert np.isnan(f.prob[0, 4])
    assert f.water.tolist() == [[False, True, True, True, False, True]]
    assert f.likelihood.tolist() == [[10, 90, 80, 90, 255, 70]]
    assert f.s2_used


def test_water_under_thin_cloud_is_left_to_s1():
    s1 = np.array([[0.9, 0.1, 0.1, np.nan]], np.float32)
    s2 = np.array([[0.2, 0.8, 0.1, 0.7]], np.float32)
    thin = np.ones((1, 4), bool)
    f = fuse_s1_s2(s1, s2, s2_thin=thin)
    # S1 wet -> S1; S2 wet but S1 dry -> not observable by S1 (issue 27: no estimate, not "dry"); both dry -> S2;
    # no S1 value -> S2
    assert f.source.tolist() == [[SOURCE_S1_THIN, SOURCE_S1_BLIND, SOURCE_S2_THIN, SOURCE_S2_THIN]]
    assert f.water.tolist() == [[True, False, False, True]]
    assert f.likelihood[0, 1] == 255 and np.isnan(f.prob[0, 1])


def test_time_window_decides_whether_s2_is_used():
    s1, s2 = _arrays()
    near = fuse_s1_s2(s1, s2, s1_time=T0, s2_time=T0 + timedelta(hours=30), window=timedelta(hours=48))
    far = fuse_s1_s2(s1, s2, s1_time=T0, s2_time=T0 + timedelta(days=5), window=timedelta(hours=48))
    assert near.s2_used and np.isin(near.source, [SOURCE_S2, SOURCE_S2_NOT_S1]).sum() == 5
    assert not far.s2_used
    assert set(np.unique(far.source)) == {SOURCE_S1, SOURCE_NONE}
    np.testing.assert_array_equal(np.nan_to_num(far.prob, nan=-1), np.nan_to_num(s1, nan=-1))
    assert within_window(T0, T0 - timedelta(hours=72)) and not within_window(T0, None)
    with pytest.raises(ValueError):
        within_window(T0, T0, timedelta(hours=-1))


def test_one_sensor_only_and_invalid_radar():
    s1, s2 = _arrays()
    only2 = fuse_s1_s2(None, s2, s2_cloud=np.array([[True, False, False, False, False, False]]))
    assert only2.source[0, 0] == SOURCE_NONE and np.isnan(only2.prob[0, 0])
    shadow = np.array([[True, True, False, False, False, False]])
    only1 = fuse_s1_s2(s1, None, s1_invalid=shadow)
    assert only1.source[0, :2].tolist() == [SOURCE_NONE, SOURCE_NONE]
    shares = source_shares(only1.source)
    assert shares["s1"] == pytest.approx(3 / 6, abs=1e-4) and shares["none"] == pytest.approx(3 / 6, abs=1e-4)


def test_shapes_are_checked():
    s1, s2 = _arrays()
    with pytest.raises(ValueError):
        fuse_s1_s2(None, None)
    with pytest.raises(ValueError):
        fuse_s1_s2(s1, s2[:, :3])
    with pytest.raises(ValueError):
        fuse_s1_s2(s1, s2, s2_cloud=np.zeros((2, 2), bool))
    with pytest.raises(ValueError):
        fuse_s1_s2(s1[0], s2[0])


def test_reliability_table_bins():
    from terrawatch_research.train.flood_s2 import reliability_table

    prob = np.array([[0.05, 0.05, 0.95, 0.95, np.nan, 0.55]], np.float32)
    label = np.array([[0, 1, 1, 1, 1, -1]])
    t = reliability_table(prob, label)
    assert len(t) == 10 and t[0] == {"bin": "0.0-0.1", "pixels": 2, "water_share": 0.5}
    assert t[9]["pixels"] == 2 and t[9]["water_share"] == 1.0 and t[5]["pixels"] == 0 and t[5]["water_share"] is None


def test_reference_water_that_s1_calls_dry_is_not_observable_by_s1_instead_of_dry():
    """Issue 27: S1 alone, dry backscatter, but the reference layer says water -> no estimate, flagged."""
    s1 = np.array([[0.1, 0.1, 0.9, 0.1]], np.float32)
    ref = np.array([[True, False, True, True]])
    s2 = np.array([[np.nan, np.nan, np.nan, 0.1]], np.float32)
    f = fuse_s1_s2(s1, s2, reference_water=ref)
    assert f.source.tolist() == [[SOURCE_S1_BLIND, SOURCE_S1, SOURCE_S1, SOURCE_S2]]
    assert np.isnan(f.prob[0, 0]) and f.likelihood[0, 0] == 255 and not f.water[0, 0]
    assert f.water[0, 2] and f.likelihood[0, 1] == 10
    # S1 under S2 cloud, dry, on reference water -> also not observable; clear S2 on reference water stays S2
    cloud = np.array([[True, True, False, False]])
    f = fuse_s1_s2(s1, np.array([[0.9, 0.1, 0.1, 0.1]], np.float32), s2_cloud=cloud, reference_water=ref)
    assert f.source.tolist() == [[SOURCE_S1_BLIND, SOURCE_S1_CLOUD, SOURCE_S2, SOURCE_S2]]
    # without any context (no reference, S2 clear and dry or cloudy) S1's dry stays dry
    f = fuse_s1_s2(s1, np.array([[0.9, 0.1, 0.1, 0.1]], np.float32), s2_cloud=cloud)
    assert not (f.source == SOURCE_S1_BLIND).any()
