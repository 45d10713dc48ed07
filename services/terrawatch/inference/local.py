"""In-process model runners (tests, evaluation, the ensemble): same weights as Triton serves.

``predict_water_s1(s1_db)``: (2, H, W) float32 Sentinel-1 sigma0 in dB, band order VV, VH,
NaN = no data -> (H, W) float32 water probability 0..1 (NaN where both bands are no data).
Any H, W. Weights: the highest version of ``models/flood_s1/<v>/model.pt`` found by
:func:`terrawatch.ml.registry.latest_version_dir` (override the repository with
``TERRAWATCH_MODEL_REPOSITORY``), loaded once per process.
"""

from __future__ import annotations

import functools

import numpy as np

from terrawatch.ml import flood_s1
from terrawatch.ml.registry import latest_version_dir


@functools.lru_cache(maxsize=1)
def _flood_s1_net():
    return flood_s1.load_net(latest_version_dir(flood_s1.NAME) / "model.pt")


def predict_water_s1(s1_db: np.ndarray) -> np.ndarray:
    """(2,H,W) dB (VV, VH; NaN no data) -> (H,W) float32 water probability (see module)."""
    s1 = np.asarray(s1_db, dtype=np.float32)
    if s1.ndim != 3 or s1.shape[0] != 2:
        raise ValueError(f"expected (2, H, W) VV, VH dB, got {s1.shape}")
    return flood_s1.predict_batch(_flood_s1_net(), s1[None])[0]
