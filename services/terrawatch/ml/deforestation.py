"""Bi-temporal Sentinel-2 forest loss: forest baseline mask, index-change baseline, learned model.

Scenes: ``pre`` and ``post`` arrays (13, H, W), Sentinel-2 L1C TOA reflectance x 10000, band order
B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12, same footprint and pixel grid (any CRS; 10 m pixels
assumed only by the minimum mapping unit, which the vectorizer applies - not this module).
No data: NaN or all bands <= 0 in either scene -> never loss.

- ``forest_mask``: NDVI_pre >= 0.5 (TOA NDVI; dense green vegetation).
- ``change_baseline``: forest & dNBR >= 0.27 & dNDVI >= 0.20 (d = pre - post). 0.27 is the lower
  bound of the "moderate-low severity" dNBR class of Key & Benson (2006, FIREMON); the dNDVI
  threshold is a heuristic requiring a clear loss of greenness too.
- ``loss_probability`` / ``detect_forest_loss``: the learned per-pixel model
  (``terrawatch.ml.nets.deforestation.DeforestationNet``, weights ``models/deforestation_s2/1/model.pt``,
  trained by ``python -m terrawatch_research.train.deforestation train``), gated by the forest mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from terrawatch.ml.nets.deforestation import B4, B8, B12, DeforestationNet

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_WEIGHTS = REPO_ROOT / "models" / "deforestation_s2" / "1" / "model.pt"
FOREST_NDVI = 0.5
DNBR_MIN = 0.27
DNDVI_MIN = 0.20
DEFAULT_THRESHOLD = 0.5


@dataclass
class ForestLoss:
    """Per-pixel result, all (H, W): ``prob`` float32 loss probability, ``mask`` bool loss,
    ``forest`` bool forest in the pre scene, ``valid`` bool data in both scenes."""

    prob: np.ndarray
    mask: np.ndarray
    forest: np.ndarray
    valid: np.ndarray


def _check(s2: np.ndarray, name: str) -> np.ndarray:
    s2 = np.asarray(s2, dtype=np.float32)
    if s2.ndim != 3 or s2.shape[0] != 13:
        raise ValueError(f"{name}: expected (13, H, W) Sentinel-2 L1C bands, got {s2.shape}")
    return s2


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((a - b) / np.maximum(a + b, 1e-6)).astype(np.float32)


def ndvi(s2: np.ndarray) -> np.ndarray:
    """(13, H, W) -> (H, W) float32 (B8 - B4) / (B8 + B4); NaN stays NaN."""
    return _nd(s2[B8], s2[B4])


def nbr(s2: np.ndarray) -> np.ndarray:
    """(13, H, W) -> (H, W) float32 (B8 - B12) / (B8 + B12)."""
    return _nd(s2[B8], s2[B12])


def valid_mask(s2: np.ndarray) -> np.ndarray:
    """(13, H, W) -> (H, W) bool: no NaN band (B10 ignored: L2A has none) and not all bands <= 0."""
    s2 = s2[[i for i in range(s2.shape[0]) if i != 10]]
    return ~np.isnan(s2).any(0) & (np.nan_to_num(s2, nan=0.0) > 0).any(0)


def forest_mask(pre: np.ndarray, ndvi_min: float = FOREST_NDVI) -> np.ndarray:
    """(13, H, W) pre scene -> (H, W) bool forest baseline (NDVI >= ndvi_min, valid data)."""
    pre = _check(pre, "pre")
    return (np.nan_to_num(ndvi(pre), nan=-1.0) >= ndvi_min) & valid_mask(pre)


def change_baseline(
    pre: np.ndarray,
    post: np.ndarray,
    dnbr_min: float = DNBR_MIN,
    dndvi_min: float = DNDVI_MIN,
    forest_ndvi: float = FOREST_NDVI,
) -> np.ndarray:
    """Index-change forest loss, (H, W) bool: forest & (NBR_pre - NBR_post >= dnbr_min)
    & (NDVI_pre - NDVI_post >= dndvi_min) & valid in both scenes."""
    pre, post = _check(pre, "pre"), _check(post, "post")
    if pre.shape != post.shape:
        raise ValueError(f"pre {pre.shape} and post {post.shape} differ")
    dnbr = np.nan_to_num(nbr(pre) - nbr(post), nan=0.0)
    dndvi = np.nan_to_num(ndvi(pre) - ndvi(post), nan=0.0)
    return forest_mask(pre, forest_ndvi) & valid_mask(post) & (dnbr >= dnbr_min) & (dndvi >= dndvi_min)


def load_model(weights: str | Path | None = None) -> DeforestationNet:
    """The learned model in eval mode; default weights ``models/deforestation_s2/1/model.pt``."""
    model = DeforestationNet()
    model.load_state_dict(torch.load(weights or DEFAULT_WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval()


def loss_probability(
    pre: np.ndarray,
    post: np.ndarray,
    model: DeforestationNet | None = None,
    threads: int = 2,
    rows_per_chunk: int = 512,
) -> np.ndarray:
    """Learned forest-loss probability, (H, W) float32 in [0, 1]; 0 outside forest / no data."""
    pre, post = _check(pre, "pre"), _check(post, "post")
    if pre.shape != post.shape:
        raise ValueError(f"pre {pre.shape} and post {post.shape} differ")
    if threads:
        torch.set_num_threads(min(threads, torch.get_num_threads()) or 1)
    model = model or load_model()
    out = np.empty(pre.shape[1:], dtype=np.float32)
    with torch.inference_mode():
        for r in range(0, pre.shape[1], rows_per_chunk):  # bounds memory on full 10980 px tiles
            a = torch.from_numpy(np.ascontiguousarray(pre[None, :, r : r + rows_per_chunk]))
            b = torch.from_numpy(np.ascontiguousarray(post[None, :, r : r + rows_per_chunk]))
            out[r : r + rows_per_chunk] = model(a, b)[0, 0].numpy()
    return out


def detect_forest_loss(
    pre: np.ndarray,
    post: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    model: DeforestationNet | None = None,
) -> ForestLoss:
    """Learned loss probability plus its boolean mask (``prob >= threshold``), the forest baseline
    mask and the valid-data mask. The minimum mapping unit (default 0.2 ha) is applied downstream."""
    model = model or load_model()
    prob = loss_probability(pre, post, model=model)
    forest = forest_mask(pre, float(model.forest_ndvi))
    valid = valid_mask(_check(pre, "pre")) & valid_mask(_check(post, "post"))
    return ForestLoss(prob=prob, mask=(prob >= threshold) & forest & valid, forest=forest, valid=valid)
