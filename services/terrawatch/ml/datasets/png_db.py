"""The 8-bit PNG -> sigma0 dB mappings assumed by the ETCI 2021 and OMBRIA loaders.

The PNGs are renderings, not calibrated backscatter, and neither dataset documents its scaling.
The assumptions below come from the data (measured with the shared copies; numbers are DN):

ETCI 2021 (``vv``/``vh`` PNG, 3 equal channels): linear in dB, clipped at both ends.
  Evidence: the local speckle standard deviation is flat in DN (about 4 DN for VV, 6 DN for VH over
  DN 90-220), as for log-scaled data, and both ends saturate (0.5 % of VV pixels are 0: calm
  river water below the range). Assumed ranges: **VV: DN 0..255 -> -25..+5 dB; VH: DN 0..255 ->
  -35..-5 dB** (0.1176 dB per DN). With them the Nebraska class medians are VV -9.9 dB / VH
  -16.9 dB on dry land (DN 128 / 154) and VV -19.8 dB / VH -25.9 dB on the reference water layer
  (DN 44 / 77): the textbook Sentinel-1 values, and within 1 dB of the medians of the real dB
  Sen1Floods11 Spain chip (dry VV -9.4 / VH -16.6 dB; water VH -25.2 dB).

OMBRIA S1 (single-band greyscale PNG, assumed VV; VH is not provided): **every image is min-max
  stretched on its own** (in most files exactly one pixel is 0 and one is 255), so no fixed inverse
  exists: with one fixed map the median of the non-flooded pixels would wander over 13 dB between
  images (DN 101..213, 5th..95th percentile). Assumed: the same slope as ETCI (30 dB per 255 DN) and
  a **per-image anchor: the image's 90th DN percentile -> -7 dB**, i.e.
  ``dB = -7 + (DN - p90(DN)) * 30 / 255``. The 90th percentile is land in almost every image (it
  correlates 0.81 with the median of the non-flooded pixels, which lies 20 DN = 2.4 dB below it), so
  this puts land at about -9.4 dB, the Spain chip's dry-land median; pooled over the AFTER images
  the flooded (MASK=255) pixels then sit near -17 dB. It is label free (only the image's own
  histogram is used). The remaining per-image error (contrast) is why training applies random dB
  gain/contrast augmentation.
"""

from __future__ import annotations

import numpy as np

ETCI_VV_DB = (-25.0, 5.0)
ETCI_VH_DB = (-35.0, -5.0)
OMBRIA_P90_DB = -7.0
OMBRIA_DB_PER_DN = 30.0 / 255.0


def png_to_db(dn: np.ndarray, db_range: tuple[float, float]) -> np.ndarray:
    """uint8 DN (any shape) -> float32 dB, linear: 0 -> db_range[0], 255 -> db_range[1]."""
    lo, hi = db_range
    return (lo + np.asarray(dn, dtype=np.float32) * np.float32((hi - lo) / 255.0)).astype(np.float32)


def ombria_png_to_db(dn: np.ndarray) -> np.ndarray:
    """One OMBRIA uint8 image (H,W) -> float32 dB with the per-image anchor described above."""
    dn = np.asarray(dn, dtype=np.float32)
    return (OMBRIA_P90_DB + (dn - np.percentile(dn, 90)) * np.float32(OMBRIA_DB_PER_DN)).astype(np.float32)
