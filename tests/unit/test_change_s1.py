"""S1 change detection (terrawatch.ml.change_s1) on hand-made dB scenes."""

from __future__ import annotations

import numpy as np
import pytest

from terrawatch.ml.change_s1 import change_water_s1


def _scene(vv: np.ndarray, vh_offset: float = -6.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vv = vv + rng.normal(0, 0.7, vv.shape)
    return np.stack([vv, vv + vh_offset]).astype(np.float32)


def test_new_water_is_flood_permanent_water_and_unchanged_land_are_not():
    h = w = 128
    pre = np.full((h, w), -8.0)
    pre[:, :20] = -22.0  # a river, present before and after
    post = pre.copy()
    post[40:100, 40:110] = -22.0  # flooded fields
    p = change_water_s1(_scene(post, seed=1), _scene(pre, seed=2))
    assert p.shape == (h, w) and p.dtype == np.float32
    assert (p[45:95, 45:105] >= 0.5).mean() > 0.99
    assert (p[:, :15] >= 0.5).mean() < 0.01  # permanent water: no decrease
    assert (p[:30, 30:] >= 0.5).mean() < 0.01  # unchanged land


def test_a_drop_that_stays_above_the_water_range_is_not_water():
    """Wet soil after rain: -8 -> -13 dB (a 5 dB drop) is not open water."""
    pre = np.full((96, 96), -8.0)
    post = pre.copy()
    post[20:70, 20:70] = -13.0
    post[:, 80:] = -22.0  # some real water so the post scene has a bimodal split
    pre[:, 80:] = -22.0
    p = change_water_s1(_scene(post, seed=3), _scene(pre, seed=4))
    assert (p[25:65, 25:65] >= 0.5).mean() < 0.01


def test_no_data_and_vv_only():
    pre = _scene(np.full((64, 64), -8.0), seed=5)
    post = _scene(np.where(np.arange(64)[None, :] < 32, -22.0, -8.0) * np.ones((64, 1)), seed=6)
    pre[:, :8, :] = np.nan
    post[1] = np.nan  # VH missing after: both scenes use VV
    p = change_water_s1(post, pre)
    assert np.isnan(p[:8]).all() and np.isfinite(p[8:]).all()
    assert (p[10:, 2:28] >= 0.5).mean() > 0.95 and (p[10:, 36:] >= 0.5).mean() < 0.01
    with pytest.raises(ValueError):
        change_water_s1(post, pre[:, :32])


def test_gate_keeps_new_water_and_drops_what_was_as_dark_before():
    """gate_by_change: the network's water survives only where the backscatter fell (>= 1.5 dB)."""
    from terrawatch.ml.change_s1 import gate_by_change

    h = w = 96
    pre = np.full((h, w), -9.0)
    pre[:, :20] = -22.0  # dark before: a river, or dry sand the network takes for water
    post = pre.copy()
    post[40:80, 40:80] = -22.0  # new water
    prob = np.zeros((h, w), np.float32)
    prob[:, :20] = 0.9
    prob[40:80, 40:80] = 0.8
    prob[0:10, 40:60] = 0.7  # the network says water, but nothing changed here (-9 dB both times)
    g = gate_by_change(prob, _scene(post, seed=5), _scene(pre, seed=6))
    assert g.shape == (h, w) and g.dtype == np.float32
    assert (g[44:76, 44:76] >= 0.5).mean() > 0.99 and np.allclose(g[44:76, 44:76], 0.8, atol=0.01)
    assert (g[:, :15] >= 0.5).mean() < 0.01
    assert (g[0:10, 40:60] >= 0.5).mean() < 0.01
    assert (g <= prob + 1e-6).all()  # a gate only lowers the probability


def test_gate_keeps_the_network_where_the_pre_scene_has_no_data():
    from terrawatch.ml.change_s1 import gate_by_change

    pre = _scene(np.full((64, 64), -22.0), seed=7)
    pre[:, :, 32:] = np.nan  # the pre-event scene does not cover the right half
    post = _scene(np.full((64, 64), -22.0), seed=8)
    prob = np.full((64, 64), 0.9, np.float32)
    prob[0, 0] = np.nan
    g = gate_by_change(prob, post, pre)
    assert np.allclose(g[:, 40:], 0.9)  # no evidence either way: unchanged
    assert (g[1:, :24] < 0.5).all()  # dark both times: not new water
    assert np.isnan(g[0, 0])


def test_gate_refuses_mismatched_shapes():
    from terrawatch.ml.change_s1 import gate_by_change

    with pytest.raises(ValueError):
        gate_by_change(np.zeros((32, 32)), _scene(np.zeros((32, 32))), _scene(np.zeros((16, 16))))
    with pytest.raises(ValueError):
        gate_by_change(np.zeros((16, 16)), _scene(np.zeros((32, 32))), _scene(np.zeros((32, 32))))
