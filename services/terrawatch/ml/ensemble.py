"""GFM-like flood ensemble in pure numpy: several per-pixel water estimates -> observed water,
likelihood 0-100, exclusion mask and flood (observed water minus reference water).

Like the Copernicus Global Flood Monitoring ensemble (Salamon et al. 2021; GFM product
definition), each estimate votes water/no-water (probability >= 0.5), the (weighted) majority
decides, and the likelihood is the mean probability of the estimates that agree with the
decision, so ``likelihood >= 50`` exactly where ``observed_water``. Ties are broken by the
weighted mean probability of all valid estimates.

All arrays are on one grid, shape (H, W). Probabilities are float in [0, 1]; NaN means the
estimate has no value there. Each estimate declares its sensor: a cloud mask invalidates
optical ("s2") estimates, a radar shadow/layover mask invalidates SAR ("s1") estimates, and the
no-data mask invalidates all. Outputs:

- ``observed_water``: bool; False where no estimate is valid.
- ``likelihood``: uint8 0-100 water likelihood of the decision's supporters; 255 = no estimate.
- ``exclusion``: uint8 bit flags, stored rather than silently dropped:
  1 NODATA (input no data, or no valid estimate left), 2 CLOUD (optical cloud/shadow mask),
  4 RADAR_SHADOW (SAR shadow or layover). A pixel flagged only 2 or 4 is still classified when
  an estimate of the other sensor is valid there; a pixel flagged 1 is unclassified.
- ``flood``: observed water minus reference water (permanent/seasonal water from a pre-event
  scene's observed water, or a reference water layer, given as a bool array). Without a
  reference every observed water pixel is reported as flood.

Radar shadow/layover: pass a mask (e.g. from :func:`radar_shadow_layover` with a DEM and the
acquisition geometry); without a DEM no such mask is derived and nothing is flagged with 4.
:func:`low_backscatter_mask` (both polarisations at the noise floor) is offered as an opt-in
heuristic only, because very calm open water also approaches the noise floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from terrawatch.domain.tiles import EXCLUDED_CLOUD, EXCLUDED_NODATA, EXCLUDED_RADAR

NODATA = np.uint8(EXCLUDED_NODATA)
CLOUD = np.uint8(EXCLUDED_CLOUD)
RADAR_SHADOW = np.uint8(EXCLUDED_RADAR)
LIKELIHOOD_NODATA = np.uint8(255)
SENSORS = ("s1", "s2")


@dataclass(frozen=True)
class WaterEstimate:
    """One per-pixel water estimate. ``valid`` (bool) further restricts where it counts."""

    name: str
    prob: np.ndarray
    sensor: str = "s1"
    valid: np.ndarray | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class EnsembleResult:
    observed_water: np.ndarray  # bool (H,W)
    likelihood: np.ndarray  # uint8 (H,W), 0-100, 255 no estimate
    exclusion: np.ndarray  # uint8 (H,W) bit flags NODATA | CLOUD | RADAR_SHADOW
    flood: np.ndarray  # bool (H,W)
    reference_water: np.ndarray  # bool (H,W)
    n_valid: np.ndarray  # uint8 (H,W) number of estimates used per pixel


def as_mask(m: np.ndarray | None, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``m`` as a bool (H,W) array of ``shape`` (all False when None); ValueError on another shape."""
    if m is None:
        return np.zeros(shape, dtype=bool)
    m = np.asarray(m)
    if m.shape != shape:
        raise ValueError(f"{what} has shape {m.shape}, expected {shape}")
    return m.astype(bool)


def combine(
    estimates: Sequence[WaterEstimate],
    *,
    reference_water: np.ndarray | None = None,
    nodata: np.ndarray | None = None,
    cloud: np.ndarray | None = None,
    radar_shadow: np.ndarray | None = None,
) -> EnsembleResult:
    """Combine water estimates into observed water, likelihood, exclusion and flood (see module)."""
    if not estimates:
        raise ValueError("need at least one water estimate")
    shape = np.asarray(estimates[0].prob).shape
    if len(shape) != 2:
        raise ValueError(f"probabilities must be (H, W), got {shape}")
    nodata_m = as_mask(nodata, shape, "nodata")
    cloud_m = as_mask(cloud, shape, "cloud")
    shadow_m = as_mask(radar_shadow, shape, "radar_shadow")
    ref = as_mask(reference_water, shape, "reference_water")

    probs, valids, weights = [], [], []
    for e in estimates:
        if e.sensor not in SENSORS:
            raise ValueError(f"estimate {e.name}: sensor must be one of {SENSORS}, got {e.sensor!r}")
        if e.weight <= 0:
            raise ValueError(f"estimate {e.name}: weight must be > 0")
        p = np.asarray(e.prob, dtype=np.float32)
        if p.shape != shape:
            raise ValueError(f"estimate {e.name} has shape {p.shape}, expected {shape}")
        v = np.isfinite(p) & ~nodata_m & ~(cloud_m if e.sensor == "s2" else shadow_m)
        if e.valid is not None:
            v &= as_mask(e.valid, shape, f"{e.name}.valid")
        probs.append(np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0))
        valids.append(v)
        weights.append(np.float32(e.weight))
    p = np.stack(probs)
    v = np.stack(valids)
    w = np.asarray(weights, dtype=np.float32)[:, None, None] * v

    vote = p >= 0.5
    w_water = (w * vote).sum(0)
    w_dry = (w * ~vote).sum(0)
    w_all = w_water + w_dry
    n_valid = v.sum(0).astype(np.uint8)
    has = n_valid > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_all = np.where(has, (w * p).sum(0) / w_all, 0.0)
    water = np.where(w_water == w_dry, mean_all >= 0.5, w_water > w_dry) & has

    agree = w * (vote == water[None])
    with np.errstate(invalid="ignore", divide="ignore"):
        lik = (agree * p).sum(0) / agree.sum(0)
    lik = np.rint(np.nan_to_num(lik, nan=0.0) * 100.0)
    lik = np.where(water, np.maximum(lik, 50), np.minimum(lik, 49))  # keep likelihood >= 50 <=> water
    likelihood = np.where(has, lik, LIKELIHOOD_NODATA).astype(np.uint8)

    exclusion = np.zeros(shape, dtype=np.uint8)
    exclusion[nodata_m | ~has] |= NODATA
    exclusion[cloud_m] |= CLOUD
    exclusion[shadow_m] |= RADAR_SHADOW
    return EnsembleResult(
        observed_water=water,
        likelihood=likelihood,
        exclusion=exclusion,
        flood=water & ~ref,
        reference_water=ref,
        n_valid=n_valid,
    )


def reference_water(*layers: np.ndarray | None) -> np.ndarray:
    """Union of reference water layers (bool (H,W)): e.g. a pre-event scene's ``observed_water``
    and a permanent water layer rasterised from PostGIS. ``None`` entries are skipped."""
    given = [np.asarray(x, dtype=bool) for x in layers if x is not None]
    if not given:
        raise ValueError("need at least one reference layer")
    out = given[0].copy()
    for x in given[1:]:
        if x.shape != out.shape:
            raise ValueError(f"reference layers differ in shape: {x.shape} vs {out.shape}")
        out |= x
    return out


def radar_shadow_layover(
    dem_m: np.ndarray,
    pixel_size_m: float | tuple[float, float],
    incidence_deg: float | np.ndarray,
    look_azimuth_deg: float,
) -> np.ndarray:
    """Active radar shadow and layover from local terrain slope -> bool (H,W).

    ``dem_m``: heights (m) on a north-up projected grid (row 0 = north); ``pixel_size_m``:
    (y, x) or one size; ``incidence_deg``: ellipsoid incidence angle; ``look_azimuth_deg``: azimuth
    of the range direction (sensor -> ground), clockwise from north (Sentinel-1 is right-looking:
    heading + 90, about 78 for ascending and 282 for descending passes). Layover where the slope
    facing the sensor exceeds the incidence angle; shadow where the slope facing away exceeds
    90 - incidence. Passive shadow/layover cast by distant terrain is not modelled.
    """
    dem = np.asarray(dem_m, dtype=np.float64)
    dy, dx = (pixel_size_m, pixel_size_m) if np.isscalar(pixel_size_m) else pixel_size_m
    dz_drow, dz_dcol = np.gradient(dem, dy, dx)
    dz_north, dz_east = -dz_drow, dz_dcol
    az = np.deg2rad(look_azimuth_deg)
    along = dz_east * np.sin(az) + dz_north * np.cos(az)  # height gain per metre of ground range
    slope = np.rad2deg(np.arctan(along))
    inc = np.asarray(incidence_deg, dtype=np.float64)
    layover = slope > inc
    shadow = -slope > 90.0 - inc
    return (layover | shadow) & np.isfinite(dem)


def low_backscatter_mask(vv_db: np.ndarray, vh_db: np.ndarray, vv_max: float = -30.0,
                         vh_max: float = -36.0) -> np.ndarray:
    """Opt-in heuristic: both polarisations below the Sentinel-1 IW noise floor (dB) -> bool.

    The defaults sit several dB below the typical open-water range (VV about -18 to -25 dB),
    but calm water can still reach them; use only where no DEM-based mask is available.
    """
    vv = np.asarray(vv_db, dtype=np.float32)
    vh = np.asarray(vh_db, dtype=np.float32)
    return (vv < vv_max) & (vh < vh_max)
