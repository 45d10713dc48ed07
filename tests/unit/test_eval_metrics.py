"""Evaluation metrics and corruptions on hand-made arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from terrawatch_research.eval import metrics
from terrawatch_research.eval.corruptions import KINDS, cloud_blobs, corrupt


def test_counts_and_scores_known_values():
    pred = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    truth = np.array([[1, 0, 1, 0], [1, 1, 0, 0]], dtype=bool)
    tp, fp, fn, tn = metrics.confusion(pred, truth)
    assert (tp, fp, fn, tn) == (2, 1, 2, 3)
    s = metrics.scores(tp, fp, fn)
    assert s["iou"] == pytest.approx(2 / 5)
    assert s["csi"] == pytest.approx(2 / 5)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 4)
    assert s["f1"] == pytest.approx(4 / 7)


def test_nodata_pixels_are_excluded():
    label = np.array([[1, 1, -1, 0], [0, -1, 1, 0]])
    pred = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=bool)
    # valid pixels: (0,0) tp, (0,1) fn, (0,3) fp, (1,0) tn, (1,2) tp, (1,3) tn; the two -1 are ignored
    s = metrics.label_scores(pred, label)
    assert s["iou"] == pytest.approx(2 / 4)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)


def test_perfect_and_disjoint_and_empty():
    t = np.zeros((5, 5), dtype=bool)
    t[1:3, 1:4] = True
    assert metrics.label_scores(t, t.astype(int))["iou"] == 1.0
    assert metrics.label_scores(~t, t.astype(int))["iou"] == 0.0
    assert math.isnan(metrics.scores(0, 0, 0)["iou"])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        metrics.confusion(np.zeros((2, 2), bool), np.zeros((2, 3), bool))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sensor,bands", [("s1", 2), ("s2", 13)])
def test_corruptions_are_pure_and_deterministic(kind, sensor, bands):
    rng = np.random.default_rng(1)
    x = (rng.normal(-12, 3, (bands, 48, 40)) if sensor == "s1" else rng.uniform(0, 4000, (bands, 48, 40))).astype(np.float32)
    before = x.copy()
    a = corrupt(kind, x, sensor, seed=3)
    b = corrupt(kind, x, sensor, seed=3)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(x, before)  # input untouched
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b))
    assert not np.allclose(np.nan_to_num(a, nan=1e9), x)  # it changed something


def test_corruption_specifics():
    x = np.full((2, 64, 64), -10.0, dtype=np.float32)
    x[:, :32] = -22.0
    assert np.isnan(corrupt("missing-band", x, "s1")[1]).all()
    assert np.isfinite(corrupt("missing-band", x, "s1")[0]).all()
    hazy = corrupt("haze", x, "s1")
    assert np.ptp(hazy[0]) == pytest.approx(0.5 * np.ptp(x[0]))
    occluded = np.isnan(corrupt("cloud", x, "s1")[0]).mean()
    assert 0.15 < occluded < 0.45
    s2 = np.full((13, 64, 64), 500.0, dtype=np.float32)
    assert np.isnan(corrupt("missing-band", s2, "s2")[7]).all()
    assert corrupt("haze", s2, "s2")[2].mean() > 500.0
    alpha = cloud_blobs((128, 128), np.random.default_rng(0))
    assert 0.2 < (alpha >= 0.5).mean() < 0.4
    with pytest.raises(ValueError):
        corrupt("fog", x, "s1")
    with pytest.raises(ValueError):
        corrupt("noise", x, "s2")
