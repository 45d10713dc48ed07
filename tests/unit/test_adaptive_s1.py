"""The adaptive per-scene S1 estimate (bimodality test, threshold, region growing), the S1 features
and the cross-validation table: pure code, synthetic scenes plus the real dry chips where present."""

from __future__ import annotations

import numpy as np
import pytest

from terrawatch.ml.adaptive_s1 import adaptive_water_s1, describe
from terrawatch_research.eval.cv import format_table
from terrawatch_research.eval.metrics import label_scores
from terrawatch.ml.s1_features import N_FEATURES, s1_features

from tests.conftest import shared_path


def _scene(water_fraction: float, seed: int = 0, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Speckled land (-9/-16 dB) with a water block (-21/-28 dB) covering ``water_fraction`` rows."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), dtype=int)
    truth[: int(size * water_fraction)] = 1
    lin = np.where(truth == 1, [[[10 ** -2.1]], [[10 ** -2.8]]], [[[10 ** -0.9]], [[10 ** -1.6]]])
    lin = lin * rng.gamma(4.4, 1 / 4.4, size=(2, size, size))
    return (10 * np.log10(lin)).astype(np.float32), truth


def test_bimodal_scene_is_mapped_with_region_growing():
    x, truth = _scene(0.3)
    x[:, 0, :3] = np.nan
    info = describe(x)
    assert info["bimodal"] and -24 < info["threshold_db"] < -14
    p = adaptive_water_s1(x)
    assert np.isnan(p[0, 0]) and p.dtype == np.float32
    assert label_scores(np.nan_to_num(p) >= 0.5, truth)["iou"] > 0.9


def test_dry_scene_is_not_forced_to_hold_water():
    x, _ = _scene(0.0, seed=3)
    assert not describe(x)["bimodal"]
    assert (np.nan_to_num(adaptive_water_s1(x)) >= 0.5).mean() < 0.005
    # a land-only scene with two land classes 4 dB apart is not bimodal water either
    x2, _ = _scene(0.0, seed=4)
    x2[:, :128] -= 4
    assert (np.nan_to_num(adaptive_water_s1(x2)) >= 0.5).mean() < 0.005


def test_features_shape_missing_vh_and_nodata():
    x, _ = _scene(0.3, size=64)
    x[:, 0, 0] = np.nan
    f, valid = s1_features(x)
    assert f.shape == (N_FEATURES, 64, 64) and f.dtype == np.float32 and np.isfinite(f).all()
    assert not valid[0, 0] and valid[1:, 1:].all()
    x[1] = np.nan
    f2, valid2 = s1_features(x)
    assert np.isfinite(f2).all() and valid2[1:, 1:].all()


@pytest.mark.parametrize("chip", ["Ghana_53713", "Ghana_97059"])
def test_real_dry_chips_stay_dry(chip):
    from terrawatch.ml.datasets import Sen1Floods11

    root = shared_path("sen1floods11-extra", f"{chip}_S1Hand.tif").parent
    s = next(s for s in Sen1Floods11(root) if s["id"] == chip)
    valid = np.isfinite(s["s1"]).any(0)
    share = (np.nan_to_num(adaptive_water_s1(s["s1"])) >= 0.5)[valid].mean()
    assert share < 0.005, f"{chip}: {share:.4%} of valid pixels mapped as water"


def test_cv_table_reports_folds_pooled_and_worst_fold():
    fold = lambda tp, fp, fn, water: {"tp": tp, "fp": fp, "fn": fn, "water": water, "valid": 1000,  # noqa: E731
                                      "pred_water": tp + fp, "iou": (tp / (tp + fp + fn)) if tp + fp + fn else None,
                                      "pred_share": (tp + fp) / 1000}
    res = {"data": "x", "events": ["A", "B"], "candidates": {
        "otsu-s1": {"folds": {"A": fold(50, 10, 40, 90), "B": fold(0, 3, 0, 0)}, "pooled": {"iou": 0.5},
                    "mean_fold_iou": 0.5},
        "m": {"folds": {"A": fold(80, 10, 10, 90), "B": fold(0, 0, 0, 0)}, "pooled": {"iou": 0.8},
              "mean_fold_iou": 0.8}}}
    out = format_table(res)
    assert "[0.30%]" in out and "[0.00%]" in out  # dry fold: predicted water share
    assert "m: pooled +0.300 vs otsu-s1; wins 1/1 wet folds; worst fold A +0.300" in out


def test_cv_rejects_unknown_candidates():
    from terrawatch_research.eval.cv import cross_validate

    with pytest.raises(ValueError, match="unknown candidate"):
        cross_validate(["otsu-s1+nope"], data=None)
