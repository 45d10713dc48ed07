"""Sentinel-1 change detection against a pre-event acquisition of the same place (and orbit).

Open water appearing between two acquisitions lowers the backscatter by several dB (specular
reflection), while the post-event value falls into the open-water range. In the spirit of the
change-detection member of the Copernicus GFM ensemble (there against a backscatter history;
here against one reference scene, as in Clement et al. 2018, J. Flood Risk Manag. 11:152, and
the UN-SPIDER recommended practice):

1. signal: mean of VV and VH in dB (VV alone when VH is missing in either scene), 5x5 median
   filtered (:func:`terrawatch.ml.baselines.water_signal_s1`), for the pre and the post scene;
2. decrease d = pre - post (dB); **change** where d >= ``DROP_DB`` (3 dB);
3. **low post backscatter**: post signal below the post scene's split-based Otsu threshold
   (:func:`terrawatch.ml.baselines.otsu_threshold_db`, -21 dB VV/VH mean or -18 dB VV when no
   bimodal split);
4. probability = min(sigmoid((d - 3 dB) / 1 dB), sigmoid((t - post) / 1 dB)): >= 0.5 only where
   both hold. NaN where either scene has no data.

Output is *new* water (flood), not all observed water: water present before (permanent or
seasonal) shows no decrease. Inputs (2,H,W) float32 sigma0 dB (VV, VH; NaN no data), both scenes
on one grid, same relative orbit (a different incidence geometry changes backscatter by itself).
Constants are a-priori physical values, fitted to nothing. Measured only on OMBRIA's 8-bit
BEFORE/AFTER renderings (``python -m terrawatch_research.eval.change``); unmeasured on real dB pairs.
"""

from __future__ import annotations

import numpy as np

from terrawatch.ml.baselines import otsu_threshold_db, water_signal_s1

DROP_DB = 3.0
SLOPE_DB = 1.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def change_water_s1(post_db: np.ndarray, pre_db: np.ndarray, *, drop_db: float = DROP_DB,
                    smooth: int = 5) -> np.ndarray:
    """``change-s1``: post and pre (2,H,W) sigma0 dB -> (H,W) float32 new-water probability (see module)."""
    post = np.asarray(post_db, dtype=np.float32)
    pre = np.asarray(pre_db, dtype=np.float32)
    if post.shape != pre.shape or post.ndim != 3 or post.shape[0] != 2:
        raise ValueError(f"expected two (2, H, W) dB scenes of one shape, got {post.shape} and {pre.shape}")
    both_vh = np.isfinite(post[1]).mean() >= 0.5 and np.isfinite(pre[1]).mean() >= 0.5
    if not both_vh:  # one signal for both scenes: VV alone
        post = np.stack([post[0], np.full_like(post[0], np.nan)])
        pre = np.stack([pre[0], np.full_like(pre[0], np.nan)])
    xa, va, kind = water_signal_s1(post, smooth)
    xb, vb, _ = water_signal_s1(pre, smooth)
    valid = va & vb
    if not valid.any():
        return np.full(xa.shape, np.nan, np.float32)
    t = otsu_threshold_db(xa, va, kind)
    p = np.minimum(_sigmoid(((xb - xa) - drop_db) / SLOPE_DB), _sigmoid((t - xa) / SLOPE_DB))
    return np.where(valid, p, np.nan).astype(np.float32)


GATE_DROP_DB = 1.5


def _mean_signal(s1: np.ndarray, smooth: int) -> tuple[np.ndarray, np.ndarray]:
    """(2,H,W) dB (VH all NaN = VV alone) -> (``smooth`` x ``smooth`` mean of the VV/VH-mean signal in dB, valid).
    A box mean, not the median of :func:`water_signal_s1`: 25x cheaper per 512 px tile (6 vs 150 ms), and
    the gate only compares two acquisitions filtered alike."""
    from scipy import ndimage as ndi

    x = s1[0] if not np.isfinite(s1[1]).any() else 0.5 * (s1[0] + s1[1])
    valid = np.isfinite(x)
    if not valid.any():
        return x, valid
    filled = np.where(valid, x, np.median(x[valid])).astype(np.float32)
    return (ndi.uniform_filter(filled, size=smooth, mode="reflect") if smooth > 1 else filled), valid


def gate_by_change(prob: np.ndarray, post_db: np.ndarray, pre_db: np.ndarray, *, drop_db: float = GATE_DROP_DB,
                   smooth: int = 5) -> np.ndarray:
    """Served S1 flood probability with a pre-event scene: the network's water only where the backscatter fell.

    ``prob`` (H,W) water probability 0-1 of the post scene (NaN = no estimate); ``post_db``, ``pre_db``
    (2,H,W) sigma0 dB on one grid, same relative orbit. Returns (H,W) float32
    ``min(prob, sigmoid(d - drop_db))`` with ``d = pre - post`` of the ``smooth`` x ``smooth`` box-mean
    VV/VH-mean signal (dB; VV alone when either scene lacks VH), so
    ``>= 0.5`` needs the network's water *and* a drop of ``drop_db``: water that was already dark before
    (permanent or seasonal water, dark dry sand or tarmac, radar shadow) is not new flood. Where the pre
    scene has no data the network's probability is kept unchanged (no evidence either way).

    ``drop_db`` = 1.5 dB: on OMBRIA's 61 holdout pairs (8-bit renderings) every drop of 1-3 dB won 38-39
    pairs against the network alone and 1-2 dB raised pooled IoU 0.390 -> 0.397-0.398 (median-filtered
    signal; precision 0.42 -> 0.53-0.58, recall 0.85 -> 0.56-0.61); 1.5 dB is the middle of that range. With
    the box mean served here: 0.400, 39/61 pairs won (models/flood_s1/README.md).
    """
    p = np.asarray(prob, dtype=np.float32)
    post = np.asarray(post_db, dtype=np.float32)
    pre = np.asarray(pre_db, dtype=np.float32)
    if post.shape != pre.shape or post.ndim != 3 or post.shape[0] != 2 or p.shape != post.shape[1:]:
        raise ValueError(f"expected (H, W) and two (2, H, W) dB scenes of one grid, got {p.shape}, {post.shape}, "
                         f"{pre.shape}")
    both_vh = np.isfinite(post[1]).mean() >= 0.5 and np.isfinite(pre[1]).mean() >= 0.5
    if not both_vh:  # one signal for both scenes: VV alone
        post = np.stack([post[0], np.full_like(post[0], np.nan)])
        pre = np.stack([pre[0], np.full_like(pre[0], np.nan)])
    xa, va = _mean_signal(post, smooth)
    xb, vb = _mean_signal(pre, smooth)
    both = va & vb
    gate = _sigmoid(np.where(both, xb - xa, 0.0) - drop_db)
    return np.where(both, np.minimum(p, gate), p).astype(np.float32)
