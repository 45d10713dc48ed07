"""A water body in sunlit surroundings is not cloud shadow (issue 27).

The cloud/shadow CNN (:mod:`terrawatch.ml.cloud`) calls small ponds shadow, together with the sunlit land around
them on its 30 m grid. Water is dark on its own; a cloud shadow darkens the land around it too (Fmask's shadow
evidence is a NIR deficit, Zhu & Woodcock 2012). :func:`sunlit_water` finds the water bodies whose surroundings are
not shadow-dark; :func:`terrawatch.ml.cloud.cloud_layers` removes them from the shadow layer last.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SUNLIT_RING_M = 60.0  # the surroundings: land within this of the water body (2 cells of the CNN's 30 m grid)
SHADOW_NIR_FRACTION = 0.5  # land is shadow-dark below this share of the scene's clear-land median NIR
SUNLIT_DARK_SHARE_MAX = 0.5  # a water body is sunlit when under this share of its surroundings is shadow-dark
SUNLIT_MIN_AREA_M2 = 1800.0  # smallest water body tested (2 cells of the 30 m grid): single pixels are noise
SHORE_KEEP_M = 30.0  # water within this of shadow-dark land keeps the mask (a shadow crossing the shore)
SUNLIT_MIN_CLEAR_PX = 100  # fewer clear-land pixels than this: no NIR reference, the test is skipped


def sunlit_water(green: np.ndarray, nir: np.ndarray, water_like: np.ndarray, cloud: np.ndarray,
                 shadow_class: np.ndarray, gsd_m: float) -> np.ndarray:
    """Water bodies whose surroundings are sunlit -> bool (H,W): pixels that are water and not cloud shadow.

    All inputs (H,W) on one grid of ``gsd_m`` m pixels: ``green``, ``nir`` TOA reflectance 0..1 of B3 and B8 (NaN
    no data); ``water_like`` (:func:`terrawatch.ml.cloud.water_like`), ``cloud`` and ``shadow_class`` (the CNN's
    shadow class) bool. A water body = an 8-connected object of NDWI (green-nir)/(green+nir) > 0 pixels (NIR below
    green, McFeeters 1996) of at least ``SUNLIT_MIN_AREA_M2``. Its surroundings = the pixels within
    ``SUNLIT_RING_M`` of it that are neither water-like, cloud nor no data; a surrounding pixel is shadow-dark when
    its NIR is below ``SHADOW_NIR_FRACTION`` of the scene's clear-land median NIR (clear = not cloud, not shadow
    class, not water-like). The body is sunlit when under ``SUNLIT_DARK_SHARE_MAX`` of its surroundings are
    shadow-dark; its pixels within ``SHORE_KEEP_M`` of shadow-dark land are left out (where a shadow crosses the
    shore, shadowed water and shadowed shore cannot be told apart). Empty when the scene has fewer than
    ``SUNLIT_MIN_CLEAR_PX`` clear-land pixels (no NIR reference)."""
    out = np.zeros(cloud.shape, bool)
    valid = np.isfinite(green) & np.isfinite(nir)
    with np.errstate(invalid="ignore", divide="ignore"):
        core = valid & ((green - nir) / (green + nir) > 0.0)
    if not core.any():
        return out
    ctx = valid & ~water_like & ~cloud
    clear = ctx & ~shadow_class
    if clear.sum() < SUNLIT_MIN_CLEAR_PX:
        return out
    dark = ctx & (nir < SHADOW_NIR_FRACTION * float(np.median(nir[clear])))
    lab, n = ndimage.label(core, structure=np.ones((3, 3), bool))
    r = max(1, int(round(SUNLIT_RING_M / gsd_m)))
    near = ndimage.maximum_filter(lab, size=2 * r + 1)  # a surrounding pixel belongs to the highest label in reach
    ring = (near > 0) & (lab == 0) & ctx
    n_ring = np.bincount(near[ring], minlength=n + 1)
    n_dark = np.bincount(near[ring & dark], minlength=n + 1)
    size = np.bincount(lab.ravel(), minlength=n + 1)
    ok = (n_ring > 0) & (n_dark < SUNLIT_DARK_SHARE_MAX * n_ring) & (size * gsd_m * gsd_m >= SUNLIT_MIN_AREA_M2)
    ok[0] = False
    out = ok[lab]
    if out.any() and SHORE_KEEP_M > 0:
        k = max(1, int(round(SHORE_KEEP_M / gsd_m)))
        out &= ~ndimage.binary_dilation(dark, structure=np.ones((3, 3), bool), iterations=k)
    return out
