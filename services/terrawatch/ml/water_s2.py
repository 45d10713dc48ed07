"""Sentinel-2 open-water mapping: optical water indices with an automatic threshold.

Inputs are Sentinel-2 arrays (13, H, W) in band order B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9,
B10, B11, B12 (the L1C / Sen1Floods11 ``S2Hand`` order), as reflectance x 10000 on one grid
(any CRS; 10 m in Sen1Floods11, the 20 m SWIR bands already resampled). L2A products have no
B10: pass 13 bands with B10 set to NaN (it is not used here), or call the index functions on
single bands.

Processing baseline: from baseline 04.00 (25 Jan 2022) the L1C/L2A digital numbers carry
``BOA/TOA_ADD_OFFSET = -1000``, i.e. reflectance = (DN - 1000) / 10000. Pass ``dn_offset=-1000``
for such products (``dn_offset=0`` for older ones and for data already harmonised, e.g.
Sen1Floods11). Ratios like MNDWI are not offset invariant, so this matters.

Indices:
- MNDWI = (B3 - B11) / (B3 + B11)  (Xu 2006, Int. J. Remote Sens. 27:3025)
- NDWI  = (B3 - B8)  / (B3 + B8)   (McFeeters 1996, Int. J. Remote Sens. 17:1425)

Each index is thresholded per image with Otsu's method over valid, cloud-free pixels (Otsu 1979;
dynamic thresholds as in Ji et al. 2009, PE&RS 75:1307). A scene without water has no water/land
bimodality and Otsu then splits two land classes (or one unimodal class), so the Otsu threshold is
only accepted when the index is bimodal: a two-component Gaussian mixture fitted by EM (started
from the two Otsu classes, on the 256-bin histogram) has Ashman's D >= ``MIN_ASHMAN_D`` = 2
(Ashman et al. 1994; the bimodality test of GFM's thresholding algorithm). D on the Otsu classes
themselves would not do: a split unimodal Gaussian has D = 2.65, it lies in ``PLAUSIBLE`` and the pixels above it
look like water (mean index > 0, the textbook water threshold); otherwise the literature threshold
0 is used. :func:`describe_threshold` returns the decision.

Probabilities: each index becomes p = sigmoid((index - threshold) / SLOPE). ``flood-s2`` is the
mean of the MNDWI and NDWI probabilities (the available one where B8 or B11 has no data);
``mndwi-s2`` is the MNDWI probability alone.
SLOPE = 0.05 index units and the combination rule were fixed a priori; nothing here was fitted
to a label (see models/flood_s2/README.md for the measured numbers and why there is no trained
S2 network).
"""

from __future__ import annotations

import numpy as np

BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
B = {name: i for i, name in enumerate(BANDS)}

SLOPE = 0.05
PLAUSIBLE = (-0.3, 0.3)
LITERATURE_THRESHOLD = 0.0
MIN_VALID_PIXELS = 64
MIN_ASHMAN_D = 2.0


def to_reflectance(s2: np.ndarray, dn_offset: float = 0.0, nodata: float | None = 0) -> np.ndarray:
    """DN (13,H,W) -> reflectance x 10000 as float32 with NaN for no data.

    ``dn_offset``: added to DN (-1000 for processing baseline >= 04.00). ``nodata``: DN value
    marking no data (0 in ESA products), checked before the offset; None to skip.
    """
    x = np.asarray(s2, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected (bands, H, W), got shape {x.shape}")
    out = x + np.float32(dn_offset)
    if nodata is not None:
        out = np.where(x == nodata, np.nan, out)
    return out


def nodata_mask(s2: np.ndarray, bands: tuple[str, ...] = ("B3", "B8", "B11")) -> np.ndarray:
    """True where any of ``bands`` is NaN or <= 0 (reflectance x 10000, offset removed)."""
    sel = np.stack([np.asarray(s2[B[b]], dtype=np.float32) for b in bands])
    return np.any(~np.isfinite(sel) | (sel <= 0), axis=0)


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b) as float32; NaN where an input is NaN or a + b <= 0."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    s = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        nd = (a - b) / s
    return np.where(s > 0, nd, np.nan).astype(np.float32)


def mndwi(s2: np.ndarray) -> np.ndarray:
    """MNDWI (green B3, SWIR1 B11) of a (13,H,W) reflectance x 10000 array -> (H,W) float32."""
    return normalized_difference(s2[B["B3"]], s2[B["B11"]])


def ndwi(s2: np.ndarray) -> np.ndarray:
    """NDWI (green B3, NIR B8) of a (13,H,W) reflectance x 10000 array -> (H,W) float32."""
    return normalized_difference(s2[B["B3"]], s2[B["B8"]])


def _otsu(v: np.ndarray, nbins: int = 256) -> float:
    """Otsu threshold of 1-D values; on a plateau of maximal between-class variance (two
    well separated clusters) the plateau's middle, not its first bin (as skimage returns)."""
    hist, edges = np.histogram(v, bins=nbins)
    centers = 0.5 * (edges[:-1] + edges[1:])
    hist = hist.astype(np.float64)
    w1 = np.cumsum(hist)
    w2 = np.cumsum(hist[::-1])[::-1]
    m1 = np.cumsum(hist * centers) / np.maximum(w1, 1e-12)
    m2 = (np.cumsum((hist * centers)[::-1]) / np.maximum(w2[::-1], 1e-12))[::-1]
    var = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    best = int(np.argmax(var))
    on = var >= var[best] * (1.0 - 1e-9)
    lo = hi = best
    while lo > 0 and on[lo - 1]:
        lo -= 1
    while hi < len(on) - 1 and on[hi + 1]:
        hi += 1
    return float(0.5 * (centers[lo] + centers[hi]))


def _gmm2_ashman_d(v: np.ndarray, t: float, nbins: int = 256, iters: int = 100) -> float:
    """Ashman's D of a 2-component 1-D Gaussian mixture fitted by EM to the histogram of ``v``,
    started from the classes v <= t and v > t. Unimodal data -> overlapping components, D < 2."""
    hist, edges = np.histogram(v, bins=nbins)
    c = 0.5 * (edges[:-1] + edges[1:])
    h = hist.astype(np.float64) / hist.sum()
    lo = c <= t
    w = np.array([h[lo].sum(), h[~lo].sum()])
    mu = np.array([(h * c)[lo].sum() / max(w[0], 1e-12), (h * c)[~lo].sum() / max(w[1], 1e-12)])
    var = np.array([(h * (c - mu[0]) ** 2)[lo].sum() / max(w[0], 1e-12),
                    (h * (c - mu[1]) ** 2)[~lo].sum() / max(w[1], 1e-12)])
    floor = max(float(c[1] - c[0]) ** 2 / 12.0, 1e-10)  # a bin's own variance
    var = np.maximum(var, floor)
    for _ in range(iters):
        dens = w[:, None] / np.sqrt(2 * np.pi * var[:, None]) * np.exp(-0.5 * (c[None] - mu[:, None]) ** 2 / var[:, None])
        r = dens / np.maximum(dens.sum(0, keepdims=True), 1e-300) * h[None]
        w = r.sum(1)
        if (w < 1e-9).any():
            return 0.0
        mu = (r * c[None]).sum(1) / w
        var = np.maximum((r * (c[None] - mu[:, None]) ** 2).sum(1) / w, floor)
    return float(np.sqrt(2.0) * abs(mu[1] - mu[0]) / np.sqrt(var[0] + var[1]))


def describe_threshold(
    index: np.ndarray,
    valid: np.ndarray | None = None,
    plausible: tuple[float, float] = PLAUSIBLE,
    fallback: float = LITERATURE_THRESHOLD,
    min_ashman_d: float = MIN_ASHMAN_D,
) -> dict:
    """The per-scene threshold decision for a water index: {"threshold", "from_otsu", "otsu",
    "ashman_d", "upper_share", "reason"} (reason: "bimodal" or why the fallback was used)."""
    x = np.asarray(index, dtype=np.float32)
    ok = np.isfinite(x)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    v = np.clip(x[ok], -1.0, 1.0)
    out: dict = {"threshold": fallback, "from_otsu": False, "otsu": None, "ashman_d": None, "upper_share": None}
    if v.size < MIN_VALID_PIXELS or float(v.max() - v.min()) < 1e-6:
        return {**out, "reason": "too few or constant values"}
    t = _otsu(v)
    lo, upper = v[v <= t], v[v > t]
    out["otsu"] = round(t, 4)
    if upper.size == 0 or lo.size == 0:
        return {**out, "reason": "one class empty"}
    d = _gmm2_ashman_d(v, t)
    out.update(ashman_d=round(d, 3), upper_share=round(upper.size / v.size, 4))
    if d < min_ashman_d:
        return {**out, "reason": f"not bimodal (Ashman D {d:.2f} < {min_ashman_d})"}
    if not (plausible[0] <= t <= plausible[1]):
        return {**out, "reason": f"Otsu {t:.3f} outside plausible {plausible}"}
    if float(upper.mean()) <= 0.0:
        return {**out, "reason": "upper class not water-like (mean index <= 0)"}
    return {**out, "threshold": t, "from_otsu": True, "reason": "bimodal"}


def otsu_threshold(
    index: np.ndarray,
    valid: np.ndarray | None = None,
    plausible: tuple[float, float] = PLAUSIBLE,
    fallback: float = LITERATURE_THRESHOLD,
    min_ashman_d: float = MIN_ASHMAN_D,
) -> tuple[float, bool]:
    """Otsu threshold of a water index over finite (and ``valid``) pixels.

    Returns (threshold, from_otsu). Falls back to ``fallback`` when there are fewer than
    MIN_VALID_PIXELS pixels, the values are constant, the split is not bimodal (Ashman's D <
    ``min_ashman_d``), the Otsu value lies outside ``plausible`` or the upper class is not
    water-like (mean index <= 0). See :func:`describe_threshold`.
    """
    d = describe_threshold(index, valid, plausible, fallback, min_ashman_d)
    return d["threshold"], d["from_otsu"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)


def index_probability(index: np.ndarray, threshold: float, slope: float = SLOPE) -> np.ndarray:
    """Logistic water probability of an index around ``threshold``; NaN stays NaN."""
    return _sigmoid((np.asarray(index, dtype=np.float32) - np.float32(threshold)) / np.float32(slope))


def _prepare(s2: np.ndarray, dn_offset: float) -> np.ndarray:
    """Validate (13,H,W), mark no data (NaN or DN 0) as NaN, apply the DN offset.

    After a -1000 offset dark water can have reflectance <= 0; it is kept (clipped to 1e-4)
    rather than treated as no data.
    """
    x = np.asarray(s2, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] != 13:
        raise ValueError(f"expected S2 array (13, H, W), got shape {x.shape}")
    bad = ~np.isfinite(x) | (x == 0) if dn_offset else ~np.isfinite(x) | (x <= 0)
    return np.where(bad, np.nan, np.maximum(x + np.float32(dn_offset), np.float32(1.0)))


def _cloud_nan(x: np.ndarray, indices: list[np.ndarray], mask_clouds: bool, gsd_m: float,
               product_level: str, cloud_method: str = "hybrid", sun=None) -> list[np.ndarray]:
    if not mask_clouds:
        return indices
    from terrawatch.ml.cloud import cloud_mask

    cm = cloud_mask(x, gsd_m=gsd_m, product_level=product_level, method=cloud_method, sun=sun)
    return [np.where(cm, np.nan, i) for i in indices]


def _auto_probability(index: np.ndarray) -> np.ndarray:
    t, _ = otsu_threshold(index)
    return index_probability(index, t)


def predict_mndwi_s2(
    s2: np.ndarray,
    *,
    dn_offset: float = 0.0,
    mask_clouds: bool = False,
    gsd_m: float = 10.0,
    product_level: str = "l1c",
    cloud_method: str = "hybrid",
) -> np.ndarray:
    """``mndwi-s2``: (13,H,W) reflectance x 10000 -> (H,W) float32 water probability.

    Logistic MNDWI around its Otsu threshold. NaN marks no data in B3 or B11 (and cloud/shadow
    when ``mask_clouds``).
    """
    x = _prepare(s2, dn_offset)
    (m,) = _cloud_nan(x, [mndwi(x)], mask_clouds, gsd_m, product_level, cloud_method)
    return _auto_probability(m)


def predict_water_s2(
    s2: np.ndarray,
    *,
    dn_offset: float = 0.0,
    mask_clouds: bool = True,
    gsd_m: float = 10.0,
    product_level: str = "l1c",
    cloud_method: str = "hybrid",
    sun=None,
) -> np.ndarray:
    """``flood-s2``: (13,H,W) S2 reflectance x 10000 -> (H,W) float32 water probability in [0,1].

    Mean of the MNDWI and NDWI logistic probabilities, each around its own Otsu threshold over
    this array's valid cloud-free pixels; where only one index is available (B8 or B11 missing)
    that one is used. NaN marks pixels with no estimate: no data and, with ``mask_clouds``
    (default), cloud or cloud shadow from :func:`terrawatch.ml.cloud.cloud_mask` (``gsd_m``: input
    pixel size in metres, the cloud model runs at ~30 m and needs context: use whole scenes or
    large windows, not 256 px tiles; ``product_level``: "l1c" or "l2a"; ``cloud_method``: "hybrid"
    (s2cloudless + ukis-csmask, shadows only on the clouds' projection away from the sun) or "csmask", see
    :mod:`terrawatch.ml.cloud`; ``sun``: :class:`terrawatch.ml.cloud.SunAngles` of the scene, None = unknown).
    """
    x = _prepare(s2, dn_offset)
    indices = _cloud_nan(x, [mndwi(x), ndwi(x)], mask_clouds, gsd_m, product_level, cloud_method, sun)
    probs = np.stack([_auto_probability(i) for i in indices])
    n = np.isfinite(probs).sum(0)
    with np.errstate(invalid="ignore"):
        p = np.nansum(probs, axis=0) / n
    return np.where(n > 0, p, np.nan).astype(np.float32)
