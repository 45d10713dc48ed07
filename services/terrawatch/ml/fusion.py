"""Fused Sentinel-1 + Sentinel-2 flood product: one water raster with per-pixel source flags.

When an S1 and an S2 acquisition see the same place within ``window`` (default
:data:`DEFAULT_WINDOW`, 72 h; the CLI takes ``TERRAWATCH_FUSION_WINDOW_H``), each pixel takes

- the **S2** water probability where S2 has a clear-sky value (optical water indices are the more
  accurate estimate where the sky is clear: 0.77 vs 0.60-0.63 IoU on the Sen1Floods11 Spain chip);
- the **S1** probability where S2 has no value: cloud or cloud shadow, S2 no data, or no S2 scene
  in the window (radar sees through cloud);
- under **thin cloud** (cirrus, :attr:`terrawatch.ml.cloud.CloudLayers.thin`) the S2 estimate is
  kept where both say dry or S1 has no value; wherever either says water and S1 has a value, the
  S1 value decides ("water under thin cloud is left to S1": haze lowers the contrast optical indices
  rely on, radar is unaffected).

Inputs are on one grid (H, W) (any CRS; the caller reprojects one scene onto the other's grid):
``s1_prob`` / ``s2_prob`` float water probabilities in [0, 1] with NaN = no estimate (as returned by
``terrawatch.ml.flood_s1.predict_batch`` and ``terrawatch.ml.water_s2.predict_water_s2(...,
mask_clouds=False)``); ``s2_cloud`` / ``s2_thin`` bool masks (e.g. from
:func:`terrawatch.ml.cloud.cloud_layers`), ``s1_invalid`` bool (radar shadow/layover). Nothing here
is fitted to a label.

Output :class:`FusedResult`: ``prob`` float32 (NaN = no estimate), ``water`` bool (prob >= 0.5),
``likelihood`` uint8 0-100 (255 = no estimate) and ``source`` uint8 codes:

====  =================  ==========================================================
code  name               meaning
====  =================  ==========================================================
0     SOURCE_NONE        no estimate (no data in both sensors)
1     SOURCE_S2          S2 clear-sky estimate
2     SOURCE_S1          S1; no S2 value here (S2 no data or no S2 scene in window)
3     SOURCE_S1_CLOUD    S1; S2 flagged cloud or cloud shadow
4     SOURCE_S1_THIN     S1; thin cloud and S1 or S2 says water (water left to S1)
5     SOURCE_S2_THIN     S2 under thin cloud: both dry, or no S1 value there
6     SOURCE_S2_NOT_S1   S2 clear-sky water where S1 has a value and says dry: water S1
                         does not see (flooded vegetation, shallow water under crops);
                         an alert there rests on S2 alone (issue 27)
7     SOURCE_S1_BLIND    not observable by S1: S1 decides (S2 cloudy, thin cirrus, absent
                         or no data), its backscatter says dry, but context says water: the
                         reference water layer, or the S2 scene in the window under thin
                         cirrus; no estimate instead of "dry" (prob NaN, likelihood 255),
                         so no detection, hence no alert, rests on S1 there (issue 27)
====  =================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from terrawatch.ml.ensemble import as_mask

(SOURCE_NONE, SOURCE_S2, SOURCE_S1, SOURCE_S1_CLOUD, SOURCE_S1_THIN, SOURCE_S2_THIN, SOURCE_S2_NOT_S1,
 SOURCE_S1_BLIND) = range(8)
SOURCE_NAMES = {SOURCE_NONE: "none", SOURCE_S2: "s2", SOURCE_S1: "s1", SOURCE_S1_CLOUD: "s1_under_cloud",
                SOURCE_S1_THIN: "s1_under_thin_cloud", SOURCE_S2_THIN: "s2_under_thin_cloud",
                SOURCE_S2_NOT_S1: "s2_water_not_seen_by_s1", SOURCE_S1_BLIND: "not_observable_by_s1"}
LIKELIHOOD_NODATA = np.uint8(255)
DEFAULT_WINDOW = timedelta(hours=72)


@dataclass(frozen=True)
class FusedResult:
    prob: np.ndarray  # float32 (H,W) water probability, NaN no estimate
    water: np.ndarray  # bool (H,W)
    likelihood: np.ndarray  # uint8 (H,W) 0-100, 255 no estimate
    source: np.ndarray  # uint8 (H,W) SOURCE_* codes
    s2_used: bool  # False when the S2 scene was outside the window (or not given)


def within_window(t1: datetime | None, t2: datetime | None, window: timedelta = DEFAULT_WINDOW) -> bool:
    """Whether two acquisition times (timezone-aware) are at most ``window`` apart; False if one is None."""
    if t1 is None or t2 is None:
        return False
    if window < timedelta(0):
        raise ValueError("window must be >= 0")
    return abs(t1 - t2) <= window


def fuse_s1_s2(
    s1_prob: np.ndarray | None,
    s2_prob: np.ndarray | None,
    *,
    s2_cloud: np.ndarray | None = None,
    s2_thin: np.ndarray | None = None,
    s1_invalid: np.ndarray | None = None,
    s1_time: datetime | None = None,
    s2_time: datetime | None = None,
    window: timedelta = DEFAULT_WINDOW,
    reference_water: np.ndarray | None = None,
) -> FusedResult:
    """Fuse S1 and S2 water probabilities (H,W) into one product with source flags (see module).
    ``reference_water`` (bool, optional): known water; where S1 decides and says dry there (or where S2 in the
    window says water under thin cirrus and S1 dry), the pixel is "not observable by S1"
    (:data:`SOURCE_S1_BLIND`, no estimate) rather than dry.

    With both times given, S2 is used only when they are within ``window``; with a time missing the
    caller asserts the pairing. Either probability may be None (that sensor absent).
    """
    if s1_prob is None and s2_prob is None:
        raise ValueError("need at least one of s1_prob, s2_prob")
    ref = s1_prob if s1_prob is not None else s2_prob
    shape = np.asarray(ref).shape
    if len(shape) != 2:
        raise ValueError(f"probabilities must be (H, W), got {shape}")
    nan = np.full(shape, np.nan, np.float32)
    p1 = nan if s1_prob is None else np.asarray(s1_prob, dtype=np.float32)
    p2 = nan if s2_prob is None else np.asarray(s2_prob, dtype=np.float32)
    for p, what in ((p1, "s1_prob"), (p2, "s2_prob")):
        if p.shape != shape:
            raise ValueError(f"{what} has shape {p.shape}, expected {shape}")
    s2_used = s2_prob is not None and (s1_time is None or s2_time is None or within_window(s1_time, s2_time, window))
    if not s2_used:
        p2 = nan
    cloud = as_mask(s2_cloud, shape, "s2_cloud")
    thin = as_mask(s2_thin, shape, "s2_thin") & ~cloud
    p1 = np.where(as_mask(s1_invalid, shape, "s1_invalid"), np.nan, np.clip(p1, 0.0, 1.0))
    p2 = np.clip(p2, 0.0, 1.0)

    has1, has2 = np.isfinite(p1), np.isfinite(p2) & ~cloud
    with np.errstate(invalid="ignore"):
        wet_either = (p1 >= 0.5) | (p2 >= 0.5)
    s2_clear = has2 & ~thin
    thin_s1 = has2 & thin & has1 & wet_either
    thin_s2 = has2 & thin & ~thin_s1
    use_s1 = ~(s2_clear | thin_s2) & has1

    prob = np.where(s2_clear | thin_s2, p2, np.where(use_s1, p1, np.nan)).astype(np.float32)
    source = np.full(shape, SOURCE_NONE, np.uint8)
    source[s2_clear] = SOURCE_S2
    source[thin_s2] = SOURCE_S2_THIN
    source[use_s1] = SOURCE_S1
    source[use_s1 & cloud] = SOURCE_S1_CLOUD
    source[thin_s1] = SOURCE_S1_THIN
    with np.errstate(invalid="ignore"):
        s1_dry = has1 & (p1 < 0.5)
        source[s2_clear & (p2 >= 0.5) & s1_dry] = SOURCE_S2_NOT_S1
        # S1 decides and says dry where context says water: the S2 scene in the window (thin cirrus) ...
        blind = thin_s1 & s1_dry & (p2 >= 0.5)
    if reference_water is not None:  # ... or the reference water layer
        blind |= (use_s1 | thin_s1) & s1_dry & as_mask(reference_water, shape, "reference_water")
    source[blind] = SOURCE_S1_BLIND
    prob = np.where(blind, np.nan, prob).astype(np.float32)
    finite = np.isfinite(prob)
    water = finite & (np.nan_to_num(prob, nan=0.0) >= 0.5)
    lik = np.where(finite, np.rint(np.nan_to_num(prob, nan=0.0) * 100.0), LIKELIHOOD_NODATA)
    lik = np.where(water, np.maximum(lik, 50), np.where(finite, np.minimum(lik, 49), lik))
    return FusedResult(prob=prob, water=water, likelihood=lik.astype(np.uint8), source=source, s2_used=s2_used)


def source_shares(source: np.ndarray) -> dict[str, float]:
    """Share of pixels per source code name (for reports and the model card)."""
    s = np.asarray(source)
    n = max(int(s.size), 1)
    return {name: round(float((s == code).sum()) / n, 4) for code, name in SOURCE_NAMES.items()}
