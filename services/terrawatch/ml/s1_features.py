"""Physically meaningful per-pixel Sentinel-1 features for the ``flood_s1`` classifier.

Input (2, H, W) sigma0 dB, VV, VH, NaN = no data; a missing VH band (all NaN, or NaN where VV is
valid) is replaced by VV - ``VH_FILL_OFFSET_DB`` (7 dB, the typical land/water VV-VH difference).
No-data pixels are filled with the scene median before filtering (their output is NaN later).
Output (F, H, W) float32, normalised by fixed physical constants (not fitted to any data):

| # | feature | centre, scale (dB) |
|---|---|---|
| 0, 1 | VV, VH single-look | -12, 6 / -19, 6 |
| 2 | VV - VH (cross-pol ratio) | 7, 3 |
| 3, 4 | VV, VH multilook 5x5 (boxcar mean of linear power, back to dB): speckle filtered | as 0, 1 |
| 5, 6 | VV, VH multilook 11x11 | as 0, 1 |
| 7 | local std of VV dB, 5x5 (texture; speckle on calm water is low in dB terms) | 3, 1.5 |
| 8 | VH 5x5 multilook minus the scene's 5th-95th percentile mid-point (a per-scene anchor that
      absorbs calibration offsets and incidence-angle gain) | 0, 6 |

dB values are clipped to [-40, 10] before normalising, features to [-6, 6] after.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

N_FEATURES = 9
VH_FILL_OFFSET_DB = 7.0
CLIP_DB = (-40.0, 10.0)
_CENTER = np.array([-12, -19, 7, -12, -19, -12, -19, 3, 0], dtype=np.float32)
_SCALE = np.array([6, 6, 3, 6, 6, 6, 6, 1.5, 6], dtype=np.float32)


def feature_constants() -> dict:
    return {"n_features": N_FEATURES, "center": _CENTER.tolist(), "scale": _SCALE.tolist(), "clip_db": list(CLIP_DB),
            "vh_fill_offset_db": VH_FILL_OFFSET_DB}


def _multilook_db(x_db: np.ndarray, k: int) -> np.ndarray:
    lin = np.power(10.0, x_db / 10.0, dtype=np.float32)
    return (10.0 * np.log10(ndi.uniform_filter(lin, k, mode="reflect") + 1e-7)).astype(np.float32)


def fill_s1(s1_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2,H,W) dB -> (filled (2,H,W) dB without NaN, valid (H,W) bool: some band has data)."""
    s1 = np.asarray(s1_db, dtype=np.float32)
    if s1.ndim != 3 or s1.shape[0] != 2:
        raise ValueError(f"expected (2, H, W) VV, VH dB, got {s1.shape}")
    vv, vh = s1[0].copy(), s1[1].copy()
    vv[~np.isfinite(vv)] = np.nan
    vh[~np.isfinite(vh)] = np.nan
    valid = np.isfinite(vv) | np.isfinite(vh)
    vh = np.where(np.isnan(vh) & np.isfinite(vv), vv - VH_FILL_OFFSET_DB, vh)
    vv = np.where(np.isnan(vv) & np.isfinite(vh), vh + VH_FILL_OFFSET_DB, vv)
    out = np.stack([vv, vh])
    for b in range(2):
        med = float(np.median(out[b][valid])) if valid.any() else (-12.0, -19.0)[b]
        out[b] = np.where(np.isfinite(out[b]), out[b], med)
    return np.clip(out, *CLIP_DB).astype(np.float32), valid


def s1_features(s1_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2,H,W) sigma0 dB -> (features (F,H,W) float32 normalised, valid (H,W) bool). See module."""
    x, valid = fill_s1(s1_db)
    vv, vh = x
    vv5, vh5 = _multilook_db(vv, 5), _multilook_db(vh, 5)
    vv11, vh11 = _multilook_db(vv, 11), _multilook_db(vh, 11)
    m = ndi.uniform_filter(vv, 5, mode="reflect")
    m2 = ndi.uniform_filter(vv * vv, 5, mode="reflect")
    std = np.sqrt(np.maximum(m2 - m * m, 0.0))
    if valid.any():
        lo, hi = np.percentile(vh5[valid], [5, 95])
        anchor = 0.5 * (lo + hi)
    else:
        anchor = -19.0
    f = np.stack([vv, vh, vv - vh, vv5, vh5, vv11, vh11, std, vh5 - anchor]).astype(np.float32)
    f = (f - _CENTER[:, None, None]) / _SCALE[:, None, None]
    return np.clip(f, -6.0, 6.0).astype(np.float32), valid
