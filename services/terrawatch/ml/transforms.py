"""Input normalisation for the S1 flood network: the ONE place it is defined.

Sentinel-1 input is (..., 2, H, W) sigma0 in dB, band order VV, VH, NaN = no data. The network
sees ``(clip(db, -50, 20) - center) / scale`` per band with NaN (and +-inf) replaced by 0, i.e.
by the band's typical value, so a missing pixel or a whole missing band looks "average".
The constants are fixed physical typical values (not fitted to any dataset): dry land is about
-10 dB (VV) / -17 dB (VH), open water below about -18 dB (VV) / -24 dB (VH).
"""

from __future__ import annotations

import numpy as np
import torch

S1_BANDS = ("VV", "VH")
S1_DB_CENTER = (-12.0, -19.0)
S1_DB_SCALE = (6.0, 6.0)
S1_DB_CLIP = (-50.0, 20.0)


def s1_norm_constants() -> dict:
    """The constants as a JSON-able dict (stored next to the weights)."""
    return {"bands": list(S1_BANDS), "units": "dB", "center": list(S1_DB_CENTER), "scale": list(S1_DB_SCALE),
            "clip_db": list(S1_DB_CLIP), "nan_to": 0.0}


def normalize_s1_db(db: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(..., 2, H, W) dB (VV, VH; NaN = no data) -> float32 normalised, NaN-free. numpy or torch."""
    if db.shape[-3] != 2:
        raise ValueError(f"expected 2 bands (VV, VH) on axis -3, got shape {tuple(db.shape)}")
    lo, hi = S1_DB_CLIP
    if isinstance(db, torch.Tensor):
        x = db.float()
        center = torch.tensor(S1_DB_CENTER, dtype=x.dtype, device=x.device).view(2, 1, 1)
        scale = torch.tensor(S1_DB_SCALE, dtype=x.dtype, device=x.device).view(2, 1, 1)
        x = (x.clamp(lo, hi) - center) / scale
        return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    x = np.asarray(db, dtype=np.float32)
    center = np.asarray(S1_DB_CENTER, dtype=np.float32).reshape(2, 1, 1)
    scale = np.asarray(S1_DB_SCALE, dtype=np.float32).reshape(2, 1, 1)
    with np.errstate(invalid="ignore"):
        x = (np.clip(x, lo, hi) - center) / scale
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)
