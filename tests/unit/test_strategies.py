"""The per-kind strategies (terrawatch.inference.strategies) on fakes: a fake ``infer`` returning known arrays and
a fake pre-event scene, no Ray, no Triton."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from affine import Affine

from terrawatch.domain.hazards import REGISTRY
from terrawatch.domain.jobs import HazardJob
from terrawatch.domain.tiles import EXCLUDED_CLOUD, EXCLUDED_NODATA, EXCLUDED_RADAR, Tile, TileGrid
from terrawatch.inference.strategies import NODATA, STRATEGIES, classify_tiles, probabilities, strategy_for

SIZE = 32


def _tiles(n: int) -> list[Tile]:
    return [Tile(i, 0, i, 0, i * SIZE, SIZE, 0, i * SIZE, SIZE, SIZE) for i in range(n)]


class FakeInfer:
    """Records each call's inputs and returns ``out(*inputs)``."""

    def __init__(self, out):
        self.out = out
        self.calls: list[tuple[np.ndarray, ...]] = []

    def __call__(self, *inputs):
        self.calls.append(tuple(np.array(a) for a in inputs))
        return self.out(*inputs)


class FakePreScene:
    """A pre-event scene as full-scene arrays: (bands, H, W) bands and an optional (H, W) uint8 mask."""

    def __init__(self, bands: np.ndarray, mask: np.ndarray | None = None):
        self.bands, self.mask, self.reads = bands, mask, []

    def read(self, row, col, size):
        self.reads.append((row, col, size))
        return self.bands[:, row:row + size, col:col + size].copy()

    def read_mask(self, row, col, size):
        return None if self.mask is None else self.mask[row:row + size, col:col + size].copy()


class FakePreRead:
    def __init__(self, scene: FakePreScene):
        self.scene, self.cloud_masks = scene, []

    def __call__(self, cloud_mask):
        self.cloud_masks.append(cloud_mask)
        return self.scene


def test_every_registry_kind_has_a_strategy():
    assert {h.kind for h in REGISTRY} <= set(STRATEGIES)


def test_an_unknown_kind_is_a_clear_error():
    job = HazardJob("lava", "lava_s2", kind="lava_flow")
    with pytest.raises(ValueError, match=r"unknown hazard kind 'lava_flow'.*bitemporal.*patches.*segment"):
        probabilities(job, _tiles(1), np.zeros((1, 2, SIZE, SIZE), np.float32), FakeInfer(lambda a: a))
    with pytest.raises(ValueError, match="unknown hazard kind"):
        strategy_for("")


def test_segment_without_a_pre_scene_is_the_model_output():
    arrays = np.random.default_rng(0).normal(size=(2, 13, SIZE, SIZE)).astype(np.float32)
    out = np.random.default_rng(1).random((2, SIZE, SIZE)).astype(np.float32)
    infer = FakeInfer(lambda a: out)
    prob = probabilities(HazardJob("flood", "flood_s2"), _tiles(2), arrays, infer, None)
    assert prob is out
    assert len(infer.calls) == 1 and len(infer.calls[0]) == 1 and np.array_equal(infer.calls[0][0], arrays)


def test_segment_with_a_pre_scene_keeps_water_only_where_the_backscatter_fell():
    """S1 flood's change gate: post -20 dB everywhere; pre -8 dB (a 12 dB drop) on the left half of the scene,
    -20 dB (already dark: no drop) on the right. The network says water (0.9) everywhere."""
    n = 2
    w = n * SIZE
    pre_bands = np.full((2, SIZE, w), -20.0, np.float32)
    pre_bands[:, :, : w // 2] = -8.0
    pre_bands[1] -= 6.0
    pre = FakePreRead(FakePreScene(pre_bands))
    arrays = np.full((n, 2, SIZE, SIZE), -20.0, np.float32)
    arrays[:, 1] -= 6.0
    infer = FakeInfer(lambda a: np.full((len(a), SIZE, SIZE), 0.9, np.float32))
    job = HazardJob("flood", "flood_s1", kind="segment", pre_item={"id": "pre"}, pre_cloud_mask="ignored.tif")
    prob = probabilities(job, _tiles(n), arrays, infer, pre)
    assert prob.shape == (n, SIZE, SIZE) and prob.dtype == np.float32
    assert pre.cloud_masks == [None]  # the gate reads the pre scene without a cloud mask
    assert pre.scene.reads == [(0, 0, SIZE), (0, SIZE, SIZE)]  # each tile's window of the pre scene
    assert np.allclose(prob[0][:, : SIZE - 3], 0.9)  # fell by 12 dB: the network's water is kept
    assert (prob[1][:, 3:] < 0.5).all()  # no drop: not new flood
    assert not np.isnan(prob).any()


def test_bitemporal_reads_the_pre_windows_with_its_cloud_mask_and_gives_no_estimate_under_pre_cloud():
    n = 2
    pre_bands = np.full((13, SIZE, n * SIZE), 1000.0, np.float32)
    mask = np.zeros((SIZE, n * SIZE), np.uint8)
    mask[:8, :] = EXCLUDED_CLOUD  # top rows of both tiles cloudy in the pre scene
    mask[:, -4:] = EXCLUDED_NODATA
    pre = FakePreRead(FakePreScene(pre_bands, mask))
    arrays = np.full((n, 13, SIZE, SIZE), 2000.0, np.float32)
    infer = FakeInfer(lambda pre_a, post_a: np.full((len(post_a), SIZE, SIZE), 0.8, np.float32))
    job = HazardJob("deforestation", "deforestation_s2", kind="bitemporal", pre_item={"id": "pre"},
                    pre_cloud_mask="/products/pre/cloud_mask.tif")
    prob = probabilities(job, _tiles(n), arrays, infer, pre)
    assert pre.cloud_masks == ["/products/pre/cloud_mask.tif"]
    (pre_in, post_in), = infer.calls  # one call, (pre, post) in the model's input order
    assert pre_in.shape == post_in.shape == (n, 13, SIZE, SIZE)
    assert np.array_equal(post_in, arrays)
    assert np.isnan(pre_in[:, :, :8]).all() and np.isnan(pre_in[1, :, :, -4:]).all()  # hidden: NaN in
    assert (pre_in[0, :, 8:] == 1000.0).all()
    assert prob.shape == (n, SIZE, SIZE)
    assert np.isnan(prob[:, :8]).all() and np.isnan(prob[1, :, -4:]).all()  # ... and NaN out
    assert (prob[0, 8:] == np.float32(0.8)).all() and (prob[1, 8:, :-4] == np.float32(0.8)).all()


def test_bitemporal_without_a_pre_mask_hides_nothing():
    pre = FakePreRead(FakePreScene(np.ones((13, SIZE, SIZE), np.float32)))
    infer = FakeInfer(lambda pre_a, post_a: np.full((len(post_a), SIZE, SIZE), 0.3, np.float32))
    job = HazardJob("deforestation", "deforestation_s2", kind="bitemporal", pre_item={"id": "pre"})
    prob = probabilities(job, _tiles(1), np.ones((1, 13, SIZE, SIZE), np.float32), infer, pre)
    assert pre.cloud_masks == [None]
    assert not np.isnan(infer.calls[0][0]).any() and (prob == np.float32(0.3)).all()


def test_bitemporal_without_a_pre_scene_is_a_clear_error():
    job = HazardJob("deforestation", "deforestation_s2", kind="bitemporal")
    with pytest.raises(ValueError, match="deforestation .*needs a pre-event scene"):
        probabilities(job, _tiles(1), np.ones((1, 13, SIZE, SIZE), np.float32), FakeInfer(lambda *a: a[0]), None)


@pytest.mark.parametrize("stride, windows", [(16, 4), (8, 16)])
def test_patches_slides_the_classifier_every_stride_pixels(stride, windows):
    """Each window's score fills its ``stride`` x ``stride`` cell: a fake classifier scoring windows 0, 0.1,
    0.2, ... in order gives a map of those cells."""
    n = 2
    arrays = np.full((n, 13, SIZE, SIZE), 1500.0, np.float32)

    def score(p):
        return (np.arange(len(p), dtype=np.float32) / 10).astype(np.float32)

    infer = FakeInfer(score)
    prob = probabilities(HazardJob("mining", "mining_s2", kind="patches", stride=stride), _tiles(n), arrays, infer)
    assert prob.shape == (n, SIZE, SIZE) and prob.dtype == np.float32
    assert len(infer.calls) == n and all(c[0].shape == (windows, 12, 48, 48) for c in infer.calls)
    side = SIZE // stride
    expected = np.repeat(np.repeat((np.arange(windows, dtype=np.float32) / 10).reshape(side, side), stride, 0),
                         stride, 1)
    assert np.array_equal(prob[0], expected) and np.array_equal(prob[1], expected)


def test_classify_thresholds_each_job_and_flags_no_estimate_with_its_exclusion_bit():
    """One 32 px tile, no overlap: left half probability 0.7, right half NaN (radar shadow), top row no data.
    At threshold 0.7 the left half is detected (>=), at 0.71 nothing is; the NaN half is EXCLUDED_RADAR."""
    (tile,) = list(TileGrid(SIZE, SIZE, size=SIZE, overlap=0))
    arrays = np.zeros((1, 2, SIZE, SIZE), np.float32)
    arrays[:, :, 0, :] = np.nan
    prob = np.full((1, SIZE, SIZE), 0.7, np.float32)
    prob[:, :, SIZE // 2:] = np.nan
    jobs = [HazardJob("flood", "flood_s1", 0.7, excluded_flag=EXCLUDED_RADAR),
            HazardJob("other", "flood_s1", 0.71, excluded_flag=EXCLUDED_RADAR)]
    (res,), _ = classify_tiles([tile], arrays, jobs, Affine.identity(), lambda job, ts, arr: prob)
    lk, ex = res.likelihood["flood"], res.exclusion["flood"]
    assert (lk[1:, : SIZE // 2] == 70).all() and (lk[:, SIZE // 2:] == NODATA).all() and (lk[0] == NODATA).all()
    assert (ex[0] == EXCLUDED_NODATA).all() and (ex[1:, SIZE // 2:] == EXCLUDED_RADAR).all()
    assert (ex[1:, : SIZE // 2] == 0).all()
    assert res.valid_pixels == (SIZE - 1) * SIZE
    assert sum(int(p.pixels) for p in res.parts["flood"]) == (SIZE - 1) * SIZE // 2
    assert res.parts["other"] == [] and (res.likelihood["other"] == lk).all()


def test_the_module_is_pure():
    """No Ray, no Triton client, no torch when the strategies are imported (ml modules load lazily)."""
    code = ("import sys, terrawatch.inference.strategies; "
            "print(sorted(m for m in ('ray', 'tritonclient', 'torch', 'confluent_kafka') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
