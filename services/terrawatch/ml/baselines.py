"""Physically based Sentinel-1 water baseline: split-based Otsu threshold on dB backscatter.

Open calm water is a specular reflector and appears dark in C-band SAR (below about -18 dB VV,
-24 dB VH). :func:`otsu_water_s1` is an independent, training-free water estimate for the GFM-like
ensemble and the ``otsu-s1`` evaluation model:

1. signal: mean of VV and VH in dB (VV alone when VH is missing in more than half the pixels);
2. speckle: ``smooth`` x ``smooth`` median filter in dB (no-data holes are filled first, then
   restored);
3. threshold: Otsu (1979) over the pixels of the "split" tiles: tiles of ``tile`` px whose
   standard deviation is in the top 20 % and whose mean is below the image median, i.e. tiles likely
   to hold both water and land (the split-based idea of Martinis et al. 2015, Chini et al. 2017);
   global Otsu when fewer than 3 tiles qualify. The Otsu split is accepted only when the means of
   its two classes differ by at least ``MIN_SEPARATION_DB`` (6 dB; water/land contrast is ~10 dB,
   two land classes differ less) and the threshold lies in a plausible water range
   (``PLAUSIBLE_DB``); otherwise the textbook threshold ``DEFAULT_DB`` is used (VV -18 dB; the
   mean of VV -18 and VH -24 dB = -21 dB), as in images without enough water for bimodality;
4. probability: ``sigmoid((threshold - signal) / slope_db)``; NaN where the input has no data.

All constants were fixed a priori; nothing was fitted to a label.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

PLAUSIBLE_DB = {"vv": (-24.0, -12.0), "mean": (-27.0, -15.0)}
DEFAULT_DB = {"vv": -18.0, "mean": -21.0}
MIN_SEPARATION_DB = 6.0


def _split_tiles(x: np.ndarray, valid: np.ndarray, tile: int) -> np.ndarray | None:
    h, w = x.shape
    stats = []
    for r in range(0, h - tile + 1, tile):
        for c in range(0, w - tile + 1, tile):
            v = valid[r : r + tile, c : c + tile]
            if v.mean() < 0.9:
                continue
            t = x[r : r + tile, c : c + tile][v]
            stats.append((t.std(), t.mean(), r, c))
    if len(stats) < 3:
        return None
    med = float(np.median(x[valid]))
    stds = np.array([s[0] for s in stats])
    cut = np.percentile(stds, 80)
    sel = [s for s in stats if s[0] >= cut and s[1] < med]
    if len(sel) < 3:
        return None
    return np.concatenate([x[r : r + tile, c : c + tile][valid[r : r + tile, c : c + tile]] for _, _, r, c in sel])


def otsu_threshold_db(signal: np.ndarray, valid: np.ndarray, kind: str = "mean", tile: int = 64) -> float:
    """Split-based Otsu threshold (dB) of a filtered (H,W) signal over ``valid`` pixels."""
    lo, hi = PLAUSIBLE_DB[kind]
    if valid.sum() < 16:
        return DEFAULT_DB[kind]
    pix = _split_tiles(signal, valid, tile)
    if pix is None:
        pix = signal[valid]
    try:
        t = float(threshold_otsu(pix))
    except ValueError:  # constant image
        return DEFAULT_DB[kind]
    below, above = pix[pix < t], pix[pix >= t]
    if below.size == 0 or above.size == 0 or above.mean() - below.mean() < MIN_SEPARATION_DB:
        return DEFAULT_DB[kind]
    return t if lo <= t <= hi else DEFAULT_DB[kind]


def water_signal_s1(s1_db: np.ndarray, smooth: int = 5) -> tuple[np.ndarray, np.ndarray, str]:
    """(2,H,W) dB -> (filtered signal (H,W) dB, valid (H,W) bool, kind "mean"|"vv")."""
    s1 = np.asarray(s1_db, dtype=np.float32)
    if s1.ndim != 3 or s1.shape[0] != 2:
        raise ValueError(f"expected (2, H, W) VV, VH dB, got {s1.shape}")
    vv, vh = s1
    use_vh = np.isfinite(vh).mean() >= 0.5
    x = 0.5 * (vv + vh) if use_vh else vv
    valid = np.isfinite(x)
    if not valid.any():
        return x, valid, "mean" if use_vh else "vv"
    filled = np.where(valid, x, np.median(x[valid])).astype(np.float32)
    if smooth > 1:
        filled = ndi.median_filter(filled, size=smooth, mode="reflect")
    return filled, valid, "mean" if use_vh else "vv"


def otsu_water_s1(s1_db: np.ndarray, *, smooth: int = 5, slope_db: float = 1.0, tile: int = 64) -> np.ndarray:
    """``otsu-s1``: (2,H,W) sigma0 dB (VV, VH; NaN no data) -> (H,W) float32 water probability.

    NaN where the input has no data. ``prob >= 0.5`` is the thresholded water mask.
    """
    x, valid, kind = water_signal_s1(s1_db, smooth)
    t = otsu_threshold_db(x, valid, kind, tile)
    with np.errstate(over="ignore"):
        p = 1.0 / (1.0 + np.exp((x - t) / slope_db))
    return np.where(valid, p, np.nan).astype(np.float32)
