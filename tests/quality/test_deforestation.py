"""Deforestation: forest mask, index baseline, learned model on cases with a known answer.

Known-answer cases are (a) hand-made spectra, (b) held-out synthetic pairs built from real pixels of
the Spain S2 chip's test blocks (never seen in training) and (c) no-change pairs of the real chip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from terrawatch.ml import deforestation as defo
from terrawatch_research.train import deforestation as tr

from tests.conftest import SHARED as DATA, shared_path

S2 = DATA / "sen1floods11" / "Spain_7370579_S2Hand.tif"

# Hand-made TOA spectra x 10000, bands B1..B12 incl. B10 (typical values, not from a dataset).
FOREST = np.array([1300, 1000, 900, 600, 1100, 2600, 3100, 3300, 3400, 900, 15, 1600, 800], np.float32)
BARE = np.array([1500, 1400, 1500, 1700, 1900, 2100, 2200, 2300, 2400, 800, 15, 3200, 2600], np.float32)


def scene(spectrum: np.ndarray, h: int = 8, w: int = 8) -> np.ndarray:
    return np.repeat(spectrum[:, None, None], h, 1).repeat(w, 2).copy()


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    return defo.load_model()


@pytest.fixture(scope="module")
def chip() -> np.ndarray:
    shared_path("sen1floods11", S2.name)
    import rasterio

    with rasterio.open(S2) as ds:
        return ds.read().astype(np.float32)


def test_indices_forest_mask_and_baseline_on_hand_made_spectra():
    pre = scene(FOREST)
    post = pre.copy()
    post[:, 2:5, 3:6] = BARE[:, None, None]
    assert defo.ndvi(pre)[0, 0] == pytest.approx((3300 - 600) / (3300 + 600))
    assert defo.forest_mask(pre).all()
    assert not defo.forest_mask(scene(BARE)).any()
    loss = defo.change_baseline(pre, post)
    expect = np.zeros((8, 8), bool)
    expect[2:5, 3:6] = True
    np.testing.assert_array_equal(loss, expect)
    # bare -> forest (regrowth) and bare -> bare are never loss
    assert not defo.change_baseline(scene(BARE), scene(FOREST)).any()
    with pytest.raises(ValueError):
        defo.change_baseline(pre, post[:, :4])


def test_learned_model_on_hand_made_spectra(model):
    pre = scene(FOREST)
    post = pre.copy()
    post[:, 2:5, 3:6] = BARE[:, None, None]
    res = defo.detect_forest_loss(pre, post, model=model)
    assert res.prob.shape == (8, 8) and res.prob.dtype == np.float32
    assert res.prob[2:5, 3:6].min() > 0.9
    outside = np.ones((8, 8), bool)
    outside[2:5, 3:6] = False
    assert res.prob[outside].max() < 0.1
    np.testing.assert_array_equal(res.mask, ~outside)


def test_no_data_and_non_forest_are_never_loss(model):
    pre = scene(FOREST)
    post = scene(BARE)
    pre[:, 0, 0] = np.nan
    post[:, 1, 1] = 0  # L1C no-data
    pre[:, 2] = BARE[:, None]  # row 2 not forest in the pre scene
    res = defo.detect_forest_loss(pre, post, model=model)
    assert res.prob[0, 0] == 0 and res.prob[1, 1] == 0 and not res.valid[0, 0] and not res.valid[1, 1]
    assert (res.prob[2] == 0).all() and not res.forest[2].any()
    assert res.mask[3:].all()


def test_identical_real_pair_gives_no_loss(model, chip):
    res = defo.detect_forest_loss(chip, chip.copy(), model=model)
    assert res.forest.sum() > 10000  # the chip has ~13k forest-like px (NDVI >= 0.5)
    assert not res.mask.any()
    assert float(res.prob.max()) < 0.5


def test_real_chip_radiometric_change_only_gives_almost_no_loss(model, chip):
    rng = np.random.default_rng(7)
    post = tr.perturb(chip, rng)
    res = defo.detect_forest_loss(chip, post, model=model)
    assert res.mask.sum() / res.forest.sum() < 0.001


def test_splits_are_disjoint_and_pairs_are_consistent(chip):
    train, test = tr.split_mask(512, 512, "train"), tr.split_mask(512, 512, "test")
    assert not (train & test).any() and (train | test).all()
    pools = tr.spectral_pools(chip, test)
    rng = np.random.default_rng(3)
    for _ in range(5):
        pre, post, label = tr.synth_pair(pools, rng)
        assert pre.shape == post.shape == (13, 64, 64)
        assert not (label & ~defo.forest_mask(pre)).any()
    pre, post, label = tr.synth_pair(pools, rng, p_event=0.0)
    assert not label.any()


def test_held_out_synthetic_pairs(model, chip):
    """Known-answer pairs from real test-block spectra: learned F1 >= 0.9 and above the baseline."""
    region = tr.split_mask(512, 512, "test")
    pools = tr.spectral_pools(chip, region)
    rng = np.random.default_rng(11)
    learned, base = tr.Counts(), tr.Counts()
    for _ in range(40):
        pre, post, label = tr.synth_pair(pools, rng)
        learned.add(defo.loss_probability(pre, post, model) >= 0.5, label)
        base.add(defo.change_baseline(pre, post), label)
    lm, bm = learned.metrics(), base.metrics()
    print("learned", lm, "baseline", bm)
    assert lm["positives"] > 1000
    assert lm["f1"] >= 0.9 and lm["f1"] > bm["f1"]


def test_real_paste_pair(model, chip):
    region = tr.split_mask(512, 512, "test")
    pre, post, label = tr.real_paste_pair(chip, region, np.random.default_rng(5))
    assert label.sum() > 500
    pred = defo.loss_probability(pre, post, model) >= 0.5
    iou = (pred & label).sum() / (pred | label).sum()
    assert iou >= 0.9


def test_training_pipeline_learns_from_scratch(chip):
    """A tiny run of the real training code must beat chance clearly on held-out pairs."""
    torch.set_num_threads(2)
    net, info = tr.train(chip, n_scenes=30, epochs=2, seed=5, log=lambda _: None)
    assert info["train_forest_pixels"] > 10000  # measured F1 0.949 with this seed
    pools = tr.spectral_pools(chip, tr.split_mask(512, 512, "test"))
    rng = np.random.default_rng(12)
    c = tr.Counts()
    for _ in range(15):
        pre, post, label = tr.synth_pair(pools, rng)
        c.add(defo.loss_probability(pre, post, net) >= 0.5, label)
    assert c.metrics()["f1"] >= 0.85
