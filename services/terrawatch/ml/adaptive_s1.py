"""Adaptive per-scene Sentinel-1 water estimate in the spirit of GFM's thresholding algorithm.

Training-free, so it carries no training-data bias (Martinis et al. 2015; Chini et al. 2017; the
Copernicus GFM product definition):

1. signal: mean of VV and VH in dB (VV alone when VH is missing), speckle-filtered (5x5 median);
2. split-based bimodality test: the scene is cut into ``tile`` px tiles; the tiles with the largest
   standard deviation that are darker than the scene median are candidates. Their pooled pixels are
   split by Otsu's threshold and the split is accepted as *bimodal* only when Ashman's D of the two
   classes is >= ``MIN_ASHMAN_D`` (2.0), the class means differ by >= ``MIN_SEPARATION_DB`` (6 dB),
   the dark class holds >= 5 % of those pixels and the threshold lies in a plausible water range;
3. bimodal: core water = signal < threshold; **region growing** adds pixels connected to a core
   (8-neighbours) whose signal is below threshold + ``GROW_DB`` (1 dB);
4. not bimodal (e.g. a dry scene): no threshold is forced. Only pixels far into the open-water
   range (signal < ``FALLBACK_DB`` = -23 dB for the VV/VH mean, -20 dB for VV alone) that form
   blobs of at least ``MIN_BLOB_PX`` pixels are reported, so a dry chip stays (almost) dry.

Output: water probability ``sigmoid((t - signal) / 1 dB)`` (t = threshold or fallback), raised to
at least 0.55 on grown pixels; NaN where the input has no data. ``describe`` returns the decision.
Constants are physical a-priori values, not fitted to any label.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from terrawatch.ml.baselines import PLAUSIBLE_DB, water_signal_s1

MIN_ASHMAN_D = 2.0
MIN_SEPARATION_DB = 6.0
MIN_DARK_SHARE = 0.05
GROW_DB = 1.0
FALLBACK_DB = {"mean": -23.0, "vv": -20.0}
MIN_BLOB_PX = 25
SLOPE_DB = 1.0


def _candidate_pixels(x: np.ndarray, valid: np.ndarray, tile: int) -> np.ndarray:
    h, w = x.shape
    stats = []
    for r in range(0, max(h - tile, 0) + 1, tile):
        for c in range(0, max(w - tile, 0) + 1, tile):
            v = valid[r : r + tile, c : c + tile]
            if v.size == 0 or v.mean() < 0.5:
                continue
            t = x[r : r + tile, c : c + tile][v]
            stats.append((float(t.std()), float(t.mean()), r, c))
    if len(stats) < 4:
        return x[valid]
    med = float(np.median(x[valid]))
    cut = np.percentile([s[0] for s in stats], 80)
    sel = [s for s in stats if s[0] >= cut and s[1] < med]
    if len(sel) < 2:
        return x[valid]
    return np.concatenate([x[r : r + tile, c : c + tile][valid[r : r + tile, c : c + tile]] for _, _, r, c in sel])


def bimodal_threshold(x: np.ndarray, valid: np.ndarray, kind: str = "mean", tile: int = 32) -> tuple[float | None, dict]:
    """Split-based bimodality test on a filtered (H,W) dB signal -> (threshold dB or None, info)."""
    info: dict = {"bimodal": False}
    if valid.sum() < 64:
        return None, info
    pix = _candidate_pixels(x, valid, tile)
    if pix.size < 64 or float(pix.max() - pix.min()) < 1e-3:
        return None, info
    t = float(threshold_otsu(pix))
    lo, hi = pix[pix < t], pix[pix >= t]
    if lo.size == 0 or hi.size == 0:
        return None, info
    d = float(np.sqrt(2.0) * abs(hi.mean() - lo.mean()) / np.sqrt(lo.var() + hi.var() + 1e-6))
    sep = float(hi.mean() - lo.mean())
    share = lo.size / pix.size
    a, b = PLAUSIBLE_DB[kind]
    info.update(threshold_db=round(t, 2), ashman_d=round(d, 2), separation_db=round(sep, 2), dark_share=round(share, 3))
    ok = d >= MIN_ASHMAN_D and sep >= MIN_SEPARATION_DB and share >= MIN_DARK_SHARE and a <= t <= b
    info["bimodal"] = bool(ok)
    return (t if ok else None), info


def _blobs_at_least(mask: np.ndarray, n: int) -> np.ndarray:
    lab, k = ndi.label(mask, structure=np.ones((3, 3), bool))
    if k == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    keep = sizes >= n
    keep[0] = False
    return keep[lab]


def describe(s1_db: np.ndarray, tile: int = 32) -> dict:
    """The per-scene decision (bimodal or not, threshold, Ashman D) for a (2,H,W) dB scene."""
    x, valid, kind = water_signal_s1(s1_db, 5)
    _, info = bimodal_threshold(x, valid, kind, tile)
    return {"signal": kind, **info}


def adaptive_water_s1(s1_db: np.ndarray, *, tile: int = 32) -> np.ndarray:
    """``adaptive-s1``: (2,H,W) sigma0 dB (VV, VH; NaN no data) -> (H,W) float32 water probability."""
    x, valid, kind = water_signal_s1(s1_db, 5)
    if not valid.any():
        return np.full(x.shape, np.nan, dtype=np.float32)
    t, _ = bimodal_threshold(x, valid, kind, tile)
    with np.errstate(over="ignore"):
        if t is not None:
            core = (x < t) & valid
            grown = ndi.binary_propagation(core, structure=np.ones((3, 3), bool), mask=(x < t + GROW_DB) & valid)
            p = 1.0 / (1.0 + np.exp((x - t) / SLOPE_DB))
            p = np.where(grown & ~core, np.maximum(p, 0.55), p)
        else:
            t = FALLBACK_DB[kind]
            p = 1.0 / (1.0 + np.exp((x - t) / SLOPE_DB))
            keep = _blobs_at_least((p >= 0.5) & valid, MIN_BLOB_PX)
            p = np.where(keep | (p < 0.5), p, 0.49)
    return np.where(valid, p, np.nan).astype(np.float32)
