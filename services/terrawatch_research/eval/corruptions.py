"""Input corruptions for robustness evaluation (in the spirit of REOBench), as pure functions.

Every corruption maps a model input in physical units to a corrupted copy of the same shape:
``corrupt(kind, x, sensor, seed)``. ``sensor`` is "s1" (x = (2,H,W) sigma0 dB, VV, VH, NaN no data)
or "s2" (x = (13,H,W) reflectance x 10000, bands B1..B12 with B8A and B10). Labels are never
changed, so occluded or destroyed water still counts as a miss.

| kind | S1 (dB) | S2 (reflectance x 10000) |
|---|---|---|
| noise | additive Gaussian, sigma 2 dB, per pixel and band | additive Gaussian, sigma 200 (0.02 reflectance) |
| haze | C-band sees through haze; stand-in: contrast loss, x -> m + 0.5 (x - m), m = band median | x -> (1 - a_b) x + a_b 2500 with a_b = 0.5 (B1-B4), 0.35 (B5-B8A), 0.2 (B9, B10), 0.1 (B11, B12) |
| cloud | C-band sees through cloud; stand-in: the same synthetic cloud blobs (~30 % cover) set to no data (NaN) | synthetic cloud blobs (~30 % cover, soft edges) blended to 6000 (B1-B9), 3500 (B10), 4000 (B11, B12) |
| speckle | single-look speckle: + 10 log10(E), E ~ Exponential(1) (std 5.6 dB) | multiplicative noise x (1 + N(0, 0.15)) |
| missing-band | VH set to NaN (no data) | B8 (NIR) set to NaN (no data) |
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

KINDS = ("noise", "haze", "cloud", "speckle", "missing-band")
_S2_HAZE = np.array([0.5, 0.5, 0.5, 0.5, 0.35, 0.35, 0.35, 0.35, 0.35, 0.2, 0.2, 0.1, 0.1], dtype=np.float32)
_S2_CLOUD = np.array([6000] * 10 + [3500, 4000, 4000], dtype=np.float32)  # B1..B9 (incl. B8A), B10, B11, B12
S2_MISSING_BAND = 7  # B8 in B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12


def _check(x: np.ndarray, sensor: str) -> np.ndarray:
    x = np.array(x, dtype=np.float32, copy=True)
    want = {"s1": 2, "s2": 13}.get(sensor)
    if want is None:
        raise ValueError(f"sensor must be s1 or s2, got {sensor!r}")
    if x.ndim != 3 or x.shape[0] != want:
        raise ValueError(f"{sensor} input must be ({want}, H, W), got {x.shape}")
    return x


def cloud_blobs(shape: tuple[int, int], rng: np.random.Generator, cover: float = 0.3, sigma: float = 16.0) -> np.ndarray:
    """Soft cloud opacity (H,W) in [0,1]: smoothed noise, ~``cover`` of pixels fully opaque."""
    field = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    t = np.quantile(field, 1.0 - cover)
    scale = field.std() * 0.25 + 1e-6
    return np.clip((field - t) / scale + 0.5, 0.0, 1.0)


def noise(x: np.ndarray, sensor: str, rng: np.random.Generator) -> np.ndarray:
    x = _check(x, sensor)
    sigma = 2.0 if sensor == "s1" else 200.0
    return x + rng.normal(0.0, sigma, size=x.shape).astype(np.float32)


def haze(x: np.ndarray, sensor: str, rng: np.random.Generator) -> np.ndarray:
    x = _check(x, sensor)
    if sensor == "s1":
        for b in range(2):
            fin = np.isfinite(x[b])
            if fin.any():
                m = np.median(x[b][fin])
                x[b] = m + 0.5 * (x[b] - m)
        return x
    a = _S2_HAZE[:, None, None]
    return (1.0 - a) * x + a * 2500.0


def cloud(x: np.ndarray, sensor: str, rng: np.random.Generator) -> np.ndarray:
    x = _check(x, sensor)
    alpha = cloud_blobs(x.shape[1:], rng)
    if sensor == "s1":
        x[:, alpha >= 0.5] = np.nan
        return x
    return (1.0 - alpha) * x + alpha * _S2_CLOUD[:, None, None]


def speckle(x: np.ndarray, sensor: str, rng: np.random.Generator) -> np.ndarray:
    x = _check(x, sensor)
    if sensor == "s1":
        return x + (10.0 * np.log10(rng.exponential(1.0, size=x.shape) + 1e-10)).astype(np.float32)
    return x * (1.0 + rng.normal(0.0, 0.15, size=x.shape)).astype(np.float32)


def missing_band(x: np.ndarray, sensor: str, rng: np.random.Generator) -> np.ndarray:
    x = _check(x, sensor)
    x[1 if sensor == "s1" else S2_MISSING_BAND] = np.nan
    return x


CORRUPTIONS: dict[str, Callable[[np.ndarray, str, np.random.Generator], np.ndarray]] = {
    "noise": noise, "haze": haze, "cloud": cloud, "speckle": speckle, "missing-band": missing_band,
}


def corrupt(kind: str, x: np.ndarray, sensor: str, seed: int = 0) -> np.ndarray:
    """Apply corruption ``kind`` (one of :data:`KINDS`) to ``x``; deterministic for a given seed."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {', '.join(KINDS)}")
    return CORRUPTIONS[kind](x, sensor, np.random.default_rng(seed))
