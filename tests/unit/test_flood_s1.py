"""The S1 water network through the in-process API, and the S1 Otsu baseline, on small arrays (the held-out Spain
chip: tests/quality/test_flood_s1_spain.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from terrawatch.inference.local import predict_water_s1
from terrawatch.ml import registry
from terrawatch.ml.baselines import otsu_water_s1
from terrawatch_research.eval.metrics import label_scores


def test_model_dir_resolution(monkeypatch, tmp_path):
    assert (registry.model_dir("flood_s1") / "config.pbtxt").is_file()
    assert registry.latest_version_dir("flood_s1").name == "1"
    monkeypatch.setenv(registry.ENV, str(tmp_path))
    assert registry.model_dir("flood_s1") == tmp_path / "flood_s1"
    with pytest.raises(FileNotFoundError):
        registry.latest_version_dir("flood_s1")


def test_weights_are_small():
    assert (registry.latest_version_dir("flood_s1") / "model.pt").stat().st_size < 10 * 2**20


def test_any_shape_nan_and_missing_band():
    rng = np.random.default_rng(0)
    x = rng.normal(-10, 2, (2, 37, 53)).astype(np.float32)
    x[:, 10:20, 5:30] = rng.normal(-24, 2, (2, 10, 25))  # a dark (water-like) patch
    x[:, 0, 0] = np.nan  # no data
    x[1, 5, 5] = np.nan  # only VH missing there
    p = predict_water_s1(x)
    assert p.shape == (37, 53) and p.dtype == np.float32
    assert np.isnan(p[0, 0]) and np.isfinite(p[5, 5])
    fin = p[np.isfinite(p)]
    assert fin.min() >= 0 and fin.max() <= 1
    assert p[12:18, 10:25].mean() > p[25:, 35:].mean()  # dark patch more water-like than land
    no_vh = x.copy()
    no_vh[1] = np.nan
    assert np.isfinite(predict_water_s1(no_vh)[1:, 1:]).all()
    with pytest.raises(ValueError):
        predict_water_s1(x[:1])


def test_hysteresis_growing():
    from terrawatch.ml.flood_s1 import grow_water

    p = np.full((20, 20), 0.05, dtype=np.float32)
    p[5:8, 5:8] = 0.9  # a confident seed
    p[5:8, 8:12] = 0.3  # unsure, connected to the seed -> water, in [0.5, 0.6)
    p[15:18, 15:18] = 0.4  # unsure, isolated -> unchanged
    p[0, 0] = np.nan
    g = grow_water(p)
    assert (g[5:8, 8:12] >= 0.5).all() and (g[5:8, 8:12] < 0.6).all()
    assert (g[15:18, 15:18] == np.float32(0.4)).all() and (g[5:8, 5:8] == np.float32(0.9)).all()
    assert np.isnan(g[0, 0]) and (g[10:, :10] == np.float32(0.05)).all()
    assert grow_water(np.full((4, 4), 0.4, dtype=np.float32)).max() < 0.5  # no seed: nothing grows


def test_otsu_baseline_synthetic_and_spain():
    rng = np.random.default_rng(1)
    x = rng.normal(-9, 2.5, (2, 128, 128)).astype(np.float32)
    x[1] -= 7
    truth = np.zeros((128, 128), dtype=int)
    truth[30:90, 20:70] = 1
    x[:, truth == 1] = rng.normal(-21, 2.5, (2, int(truth.sum()))) - np.array([[0], [6]])
    x[:, 0, :4] = np.nan
    p = otsu_water_s1(x)
    assert np.isnan(p[0, 0]) and p.shape == (128, 128)
    assert label_scores(np.nan_to_num(p) >= 0.5, truth)["iou"] > 0.9
    # on the Spain chip: tests/quality/test_flood_s1_spain.py
