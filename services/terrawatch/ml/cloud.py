"""Sentinel-2 cloud, cloud-shadow and thin-cirrus masking from the two models shipped in PyPI wheels.

Default (``method="hybrid"``), per scene:

- **cloud** = s2cloudless (Sentinel Hub's LightGBM pixel classifier, Skakun et al. 2022 RSE 274;
  weights in the ``s2cloudless`` wheel, CC BY-SA 4.0) on the 10 L1C bands B1, B2, B4, B5, B8, B8A,
  B9, B10, B11, B12 with its published settings (probability >= 0.4, disk average over 4 px,
  dilation 2 px), OR the cloud class of ukis-csmask (below). Where a band s2cloudless needs is
  missing (L2A has no B10) only ukis-csmask is used;
- **shadow** = the ukis-csmask shadow class, kept only where a detected cloud, **projected away from
  the sun** along the solar azimuth at a cloud height between ``CLOUD_BASE_MIN_M`` (200 m) and
  ``CLOUD_TOP_MAX_M`` (12 km) (the height range Fmask searches, Zhu & Woodcock 2012), lands on it
  (:func:`shadow_projection`; buffered by ``SHADOW_BUFFER_M``). The azimuth is matched like Fmask's
  cloud-shadow matching: among directions within ``AZIMUTH_TOLERANCE_DEG`` of the sun's (or, when the sun
  is unknown, within the sector the sun can occupy at Sentinel-2's 10:30 overpass), the one whose
  projection lands on the most dark (shadow-class) pixels per projected pixel. The sun comes from
  :func:`sun_angles` (issue 27): STAC ``view:sun_azimuth``/``view:sun_elevation`` or
  ``s2:mean_solar_azimuth``/``s2:mean_solar_zenith``; else computed from the sensing time and the scene
  centre (NOAA solar position; a time at which the sun would be below 5 degrees elevation is taken as a
  date only, at 10:30 local mean solar time, Sentinel-2's descending node); else the 10:30 sector.
  Dark open water looks like shadow to a per-pixel model; off a cloud's projection it is not shadow
  (issue 27: the previous any-direction 12 km x tan(zenith) reach licensed 45 % of a chip's water from a
  0.2 % cloud). On the projection, a **water-like** shadow pixel (:func:`water_like`: NIR not above green)
  in a shadow region that is mostly water-like (``WATER_REGION_MIN``) is shadow only where a cloud object's
  own shadow is matched (:func:`matched_shadow`, Fmask's per-object height matching: the object is shifted
  along the azimuth over the 200 m..12 km height range and the height whose footprint lands on the most dark
  *non-water* pixels is taken, if that share reaches ``MATCH_SIMILARITY_MIN``): a water body is dark with or
  without a cloud above it, so it is never evidence for a shadow by itself. Last, a **water body in sunlit
  surroundings** is not shadow (:func:`terrawatch.ml.shadow_water.sunlit_water`): an object of NDWI > 0 pixels whose land within 60 m is
  mostly not shadow-dark in NIR (a shadow darkens the shore too; a pond is dark on its own), less its pixels within
  30 m of shadow-dark land (issue 27: the CNN calls small ponds shadow together with the sunlit land around them);
- **not cloud where obviously water**: a cloud pixel whose SWIR-1 (B11) TOA reflectance is below
  ``WATER_B11_MAX`` (0.05) with MNDWI above ``WATER_MNDWI_MIN`` (0.3) and no cirrus signal (B10 <=
  ``CIRRUS_B10``) is water, not cloud: thick cloud is bright in SWIR-1 (Fmask's tests), open water is the
  darkest surface there (issue 27: 67 % of a 98 %-water chip had been called cloud);
- **thin** (cirrus) = TOA B10 reflectance > ``CIRRUS_B10`` (0.01, the cirrus-band test of Fmask,
  Zhu, Wang & Woodcock 2015) outside the cloud mask. Not masked from S2 by :func:`cloud_mask`,
  but the fused S1+S2 product (:mod:`terrawatch.ml.fusion`) leaves water there to S1.

``method="csmask"`` is the previous mask (ukis-csmask cloud and shadow, no proximity test).

Why both models: s2cloudless detects clouds only (no shadows) and needs 10 L1C bands;
ukis-csmask (Wieland, Li & Martinis 2019, Remote Sens. Environ. 230, Apache-2.0) ships U-Nets for
6 bands (B2, B3, B4, B8, B11, B12), exactly the bands of the hand-labelled check scene
``cloud/ukis_sentinel2.npz``, segments cloud *and* shadow, and has an L2A variant. Both ship their
weights inside the PyPI wheels (``s2cloudless``, ``ukis-csmask[cpu]``), so they run offline
(s2cloudless imports ``sentinelhub`` only for its download helpers, which are not used).

The ukis model was trained on ~30 m imagery; run at 10 m it mistakes dark water for cloud shadow
(measured on the Sen1Floods11 Spain chip: 22 % of pixels called shadow at 10 m, 3 % at 30 m), so
inputs are block-averaged to ~30 m first (``gsd_m`` = input pixel size) and the classes are
repeated back to the input grid. s2cloudless runs on a 160 m grid like Sentinel Hub's own CLM layer
(its averaging and dilation disks are in 160 m pixels; also ~30x cheaper than at 30 m). The library's own tiling (256 px,
20 % overlap, smooth blending) and normalisation are reused; the ONNX session is cached per process.
"""

from __future__ import annotations

import json
import os
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import softmax

from terrawatch.ml.shadow_water import sunlit_water

CLEAR, CLOUD, SHADOW = 0, 1, 2
CSMASK_BANDS = ("B2", "B3", "B4", "B8", "B11", "B12")  # model band order blue..swir22
_S2_INDEX = {"B2": 1, "B3": 2, "B4": 3, "B8": 7, "B11": 11, "B12": 12}  # in the 13-band L1C order
MODEL_GSD_M = 30.0

# s2cloudless (published settings: package README / Sentinel Hub cloud-mask documentation)
S2CLOUDLESS_BANDS = ("B1", "B2", "B4", "B5", "B8", "B8A", "B9", "B10", "B11", "B12")
_L1C_INDEX = {b: i for i, b in enumerate(("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10",
                                          "B11", "B12"))}
S2CLOUDLESS_THRESHOLD = 0.4
S2CLOUDLESS_AVERAGE_OVER = 4
S2CLOUDLESS_DILATION = 2
S2CLOUDLESS_GSD_M = 160.0  # Sentinel Hub computes its s2cloudless masks (CLP/CLM) at 160 m with these settings
CIRRUS_B10 = 0.01  # TOA reflectance of the cirrus band above which a pixel is thin cirrus
CLOUD_TOP_MAX_M = 12000.0  # highest cloud considered when projecting a cloud onto its shadow (Fmask)
CLOUD_BASE_MIN_M = 200.0  # lowest (Fmask)
SHADOW_BUFFER_M = 300.0  # the projection is buffered by this: ~2 cells of the 160 m s2cloudless grid (cloud edges)
AZIMUTH_TOLERANCE_DEG = 20.0  # directions searched around a known sun azimuth
AZIMUTH_STEP_DEG = 5.0
WATER_B11_MAX = 0.05  # a "cloud" pixel darker than this in SWIR-1, with MNDWI above WATER_MNDWI_MIN, is water
WATER_MNDWI_MIN = 0.3
# A shadow-class pixel is "water-like" when its NDWI (B3-B8)/(B3+B8) exceeds this (NIR below green): open water,
# not shadowed land (shadowed vegetation keeps NIR above green). Such a pixel stays shadow only on the projection
# of a cloud object whose own shadow is matched on the land around it (:func:`matched_shadow`).
WATER_LIKE_NDWI_MIN = -0.15
WATER_REGION_MIN = 0.6  # a shadow region with at least this share of water-like pixels is treated as water
MATCH_SIMILARITY_MIN = 0.3  # Fmask's cloud-shadow matching: share of the projected object on dark (non-water) pixels
MATCH_MIN_OBJECT_PX = 3  # cloud objects smaller than this (on the matching grid) are not matched
MATCH_SLACK_PX = 2  # the matched projection is the object shifted by its best distance +- this, dilated by this
MATCH_GRID_PX = 512  # matching runs on a grid of at most this many pixels a side
MATCH_SAMPLE_PX = 256  # an object's similarity is computed on at most about this many of its pixels (strided)
DEFAULT_SUN_ZENITH_DEG = 60.0  # when the caller does not know the scene's sun zenith (conservative: far reach)
S2_LOCAL_SOLAR_HOUR = 10.5  # Sentinel-2's descending-node mean local solar time
# Sun azimuths possible at a 10:30 overpass anywhere between 60 S and 84 N, any season (sun_angles sampled
# at 10:30 local mean solar time: azimuth 20-162, zenith 18-85 degrees): the sun is east of the meridian.
UNKNOWN_SUN_AZIMUTH_DEG = (20.0, 165.0)
UNKNOWN_SUN_ZENITH_DEG = (15.0, 80.0)
METHODS = ("hybrid", "csmask")


@lru_cache(maxsize=2)
def _session(product_level: str):
    import onnxruntime
    import ukis_csmask

    if product_level not in ("l1c", "l2a"):
        raise ValueError(f"product_level must be 'l1c' or 'l2a', got {product_level!r}")
    model = Path(ukis_csmask.__file__).parent / f"model_6b_{product_level}.onnx"
    meta = json.loads(model.with_suffix(".json").read_text())["data"]
    if meta["dataset_statistics"]["band_names"] != ["blue", "green", "red", "nir", "swir16", "swir22"]:
        raise RuntimeError(f"unexpected band order in {model}")
    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads = _threads()
    so.inter_op_num_threads = 1
    sess = onnxruntime.InferenceSession(str(model), sess_options=so, providers=["CPUExecutionProvider"])
    mean = np.asarray(meta["dataset_statistics"]["img"][0], dtype=np.float32)
    std = np.asarray(meta["dataset_statistics"]["img"][1], dtype=np.float32)
    return sess, mean, std, tuple(meta["target_size"])


def _block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """(H,W,C) -> (ceil(H/f), ceil(W/f), C) block means, edge-padded; NaN-aware."""
    h, w, c = x.shape
    ph, pw = (-h) % f, (-w) % f
    x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="edge")
    blocks = x.reshape((h + ph) // f, f, (w + pw) // f, f, c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmean(blocks, axis=(1, 3)).astype(np.float32)


def cloud_shadow_classes(
    bands6: np.ndarray,
    *,
    product_level: str = "l1c",
    gsd_m: float = MODEL_GSD_M,
    batch_size: int = 4,
) -> np.ndarray:
    """Classify (H,W,6) reflectance in [0,1] (B2,B3,B4,B8,B11,B12) -> (H,W) uint8.

    0 clear, 1 cloud, 2 cloud shadow. NaN inputs are filled with the band's training mean
    (the caller masks no data separately). ``gsd_m``: input pixel size; the model runs at ~30 m.
    """
    from ukis_csmask.utils import tile_array, untile_array

    x = np.asarray(bands6, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != 6:
        raise ValueError(f"expected (H, W, 6) reflectance, got shape {x.shape}")
    sess, mean, std, (ts, _) = _session(product_level)
    h, w, _ = x.shape
    f = max(1, int(round(MODEL_GSD_M / gsd_m)))
    if f > 1:
        x = _block_mean(x, f)
    x = _fill_nearest(x, mean)
    x = (x - mean) / std
    name = sess.get_inputs()[0].name
    if x.shape[0] <= ts and x.shape[1] <= ts:
        # one model tile: mirror-pad instead of the library's 4+ overlapping tiles (pipeline tiles)
        pad = ((0, ts - x.shape[0]), (0, ts - x.shape[1]), (0, 0))
        tile = np.pad(x, pad, mode="symmetric")[None].transpose(0, 3, 1, 2)
        logits = sess.run(None, {name: np.ascontiguousarray(tile, dtype=np.float32)})[0]
        cls = np.argmax(logits[0], axis=0)[: x.shape[0], : x.shape[1]].astype(np.uint8)
    else:
        tiles = np.moveaxis(tile_array(x, xsize=ts, ysize=ts, overlap=0.2), -1, 1)
        probs = np.concatenate(
            [softmax(sess.run(None, {name: tiles[i : i + batch_size]})[0], axis=1)
             for i in range(0, len(tiles), batch_size)]
        )
        probs = untile_array(np.moveaxis(probs, 1, -1), (x.shape[0], x.shape[1], probs.shape[1]), overlap=0.2,
                             smooth_blending=True)
        cls = np.argmax(probs, axis=2).astype(np.uint8)
    if f > 1:
        cls = np.repeat(np.repeat(cls, f, axis=0), f, axis=1)[:h, :w]
    return cls


def _fill_nearest(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(H,W,C) with NaN -> NaN pixels take the nearest valid pixel's values (the band's training mean when none
    is valid). A flat mean-filled no-data area (a scene cut off at a swath or tile edge) was read as cloud along
    its border, and then licensed shadows within reach: 5.6 % of the Spain chip with its east 40 % cut off."""
    bad = ~np.isfinite(x).all(axis=2)
    if not bad.any():
        return x
    if bad.all():
        return np.broadcast_to(mean, x.shape).astype(np.float32)
    idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return x[idx[0], idx[1]]


@lru_cache(maxsize=1)
def _s2cloudless_detector():
    from s2cloudless import S2PixelCloudDetector

    return S2PixelCloudDetector(threshold=S2CLOUDLESS_THRESHOLD, average_over=S2CLOUDLESS_AVERAGE_OVER,
                                dilation_size=S2CLOUDLESS_DILATION, all_bands=False)


def _threads() -> int:
    return int(os.environ.get("TERRAWATCH_ORT_THREADS", "2"))


def _upsample(a: np.ndarray, f: int, h: int, w: int) -> np.ndarray:
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1)[:h, :w] if f > 1 else a


def s2cloudless_cloud(refl13: np.ndarray, *, gsd_m: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """s2cloudless on (13,H,W) L1C TOA reflectance in [0,1] (NaN no data) -> (probability, mask).

    probability: (H,W) float32 0..1, NaN where one of :data:`S2CLOUDLESS_BANDS` has no data;
    mask: (H,W) bool, probability >= 0.4 after the published 4 px averaging and 2 px dilation
    (pixels of the 160 m processing grid, as Sentinel Hub computes its CLM layer), False where the
    probability is NaN. Bands are block-averaged to ~160 m first (``gsd_m`` = input pixel size):
    the LightGBM classifier costs ~50 us per pixel on one core, i.e. minutes per 10 m scene.
    """
    x = np.asarray(refl13, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] != 13:
        raise ValueError(f"expected (13, H, W) reflectance, got shape {x.shape}")
    _, h, w = x.shape
    ten = np.stack([x[_L1C_INDEX[b]] for b in S2CLOUDLESS_BANDS], axis=-1)
    f = max(1, int(round(S2CLOUDLESS_GSD_M / gsd_m)))
    if f > 1:
        ten = _block_mean(ten, f)
    bad = np.any(~np.isfinite(ten) | (ten <= 0), axis=-1)
    det = _s2cloudless_detector()
    prob = np.zeros(bad.shape, np.float32)
    if (~bad).any():
        prob = det.get_cloud_probability_maps(np.where(bad[..., None], 0.0, ten)[None], num_threads=_threads())[0]
    prob = np.where(bad, 0.0, prob).astype(np.float32)
    mask = det.get_mask_from_prob(prob[None])[0].astype(bool) & ~bad
    prob = np.where(bad, np.nan, prob)
    return _upsample(prob, f, h, w), _upsample(mask, f, h, w)


@dataclass(frozen=True)
class SunAngles:
    """Solar azimuth (degrees clockwise from north) and zenith (degrees) of a scene; ``source``: "metadata",
    "computed" (sensing time + scene centre), "computed-10:30" (date + centre, 10:30 local mean solar time)."""

    azimuth_deg: float
    zenith_deg: float
    source: str


def solar_position(when, lon: float, lat: float) -> tuple[float, float]:
    """(azimuth, zenith) in degrees of the sun at UTC datetime ``when`` seen from (lon, lat): NOAA's
    general solar position equations (fractional-year series; ~0.5 degree, plenty for shadow matching)."""
    from datetime import timezone
    t = when.astimezone(timezone.utc) if when.tzinfo else when
    doy = t.timetuple().tm_yday
    hour = t.hour + t.minute / 60 + t.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g) - 0.014615 * math.cos(2 * g)
                       - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    tst = hour * 60 + eqtime + 4 * lon  # true solar time, minutes
    ha = math.radians(tst / 4 - 180)
    phi = math.radians(lat)
    cos_z = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cos_z)))
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi))) + 180
    return az % 360.0, math.degrees(zen)


def sun_angles(properties: dict | None = None, when=None, lon: float | None = None,
               lat: float | None = None) -> SunAngles | None:
    """The scene's sun: STAC metadata first, else computed from ``when`` (UTC) at (``lon``, ``lat``); a time at
    which the sun would be below 5 degrees (e.g. a date stored as midnight) is used as a date at 10:30 local
    mean solar time. None when neither is known (the caller then searches the 10:30 sector)."""
    p = properties or {}
    for az_k, el_k, zen_k in (("view:sun_azimuth", "view:sun_elevation", None),
                              ("s2:mean_solar_azimuth", None, "s2:mean_solar_zenith"),
                              ("sun_azimuth", "sun_elevation", None)):
        az = p.get(az_k)
        zen = p.get(zen_k) if zen_k else (90.0 - float(p[el_k]) if p.get(el_k) is not None else None)
        if az is not None and zen is not None and 0.0 <= float(zen) < 89.0:
            return SunAngles(float(az) % 360.0, float(zen), "metadata")
    if when is None or lon is None or lat is None:
        return None
    az, zen = solar_position(when, lon, lat)
    if zen < 85.0:
        return SunAngles(az, zen, "computed")
    from datetime import datetime, timedelta, timezone
    day = datetime(when.year, when.month, when.day, tzinfo=timezone.utc)
    t = day + timedelta(hours=S2_LOCAL_SOLAR_HOUR - lon / 15.0)
    az, zen = solar_position(t, lon, lat)
    return SunAngles(az, min(zen, 88.0), "computed-10:30")


def _sweep(cloud: np.ndarray, azimuth_deg: float, d_min_px: float, d_max_px: float) -> np.ndarray:
    """Union of ``cloud`` shifted away from the sun (azimuth clockwise from north; rows grow southwards) by
    every distance in [d_min_px, d_max_px] (1 px steps, clipped to the image diagonal)."""
    h, w = cloud.shape
    a = math.radians(azimuth_deg)
    dr, dc = math.cos(a), -math.sin(a)  # away from the sun: south for a sun in the north, etc.
    out = np.zeros_like(cloud)
    d_max_px = min(d_max_px, math.hypot(h, w))
    seen = set()
    for d in np.arange(max(0.0, d_min_px), d_max_px + 1.0, 1.0):
        r, c = int(round(d * dr)), int(round(d * dc))
        if (r, c) in seen or abs(r) >= h or abs(c) >= w:
            continue
        seen.add((r, c))
        out[max(r, 0):h + min(r, 0), max(c, 0):w + min(c, 0)] |= cloud[max(-r, 0):h - max(r, 0), max(-c, 0):w - max(c, 0)]
    return out


def shadow_projection(cloud: np.ndarray, gsd_m: float, sun: SunAngles | None, dark: np.ndarray | None = None,
                      ) -> tuple[np.ndarray, float | None]:
    """Where the clouds' shadows can fall: (bool (H,W), azimuth used). Each cloud pixel projected away from the
    sun at heights ``CLOUD_BASE_MIN_M``..``CLOUD_TOP_MAX_M`` (distance = height x tan(zenith)), buffered by
    ``SHADOW_BUFFER_M``. The azimuth is the candidate (sun azimuth +- ``AZIMUTH_TOLERANCE_DEG``, or the 10:30
    sector when ``sun`` is None) whose projection covers the largest share of ``dark`` pixels (Fmask-style
    matching); without ``dark`` the sun's azimuth itself."""
    if not cloud.any():
        return np.zeros_like(cloud), None
    if sun is None:
        lo, hi = UNKNOWN_SUN_AZIMUTH_DEG
        zen_lo, zen_hi = UNKNOWN_SUN_ZENITH_DEG
        cands = list(np.arange(lo, hi + 1e-6, AZIMUTH_STEP_DEG))
    else:
        zen_lo = zen_hi = sun.zenith_deg
        k = int(AZIMUTH_TOLERANCE_DEG // AZIMUTH_STEP_DEG)
        cands = [sun.azimuth_deg + i * AZIMUTH_STEP_DEG for i in range(-k, k + 1)] if dark is not None else [sun.azimuth_deg]
    d_min = CLOUD_BASE_MIN_M * math.tan(math.radians(zen_lo)) / gsd_m
    d_max = CLOUD_TOP_MAX_M * math.tan(math.radians(zen_hi)) / gsd_m
    best, best_score = cands[len(cands) // 2], -1.0
    if len(cands) > 1 and dark is not None and dark.any():
        # match on a grid of <= 256 px (max-pooled cloud, any-pooled dark): cheap whatever the scene size
        f = max(1, math.ceil(max(cloud.shape) / 256))
        cc = _pool_any(cloud, f)
        dk = _pool_any(dark, f) & ~cc
        for az in cands:
            pr = _sweep(cc, az, d_min / f, d_max / f) & ~cc
            n = pr.sum()
            score = float((pr & dk).sum() / n) if n else 0.0
            if score > best_score + 1e-9:
                best, best_score = az, score
    proj = _sweep(cloud, best, d_min, d_max)
    buf = int(round(SHADOW_BUFFER_M / gsd_m))
    if buf > 0:
        proj = ndimage.binary_dilation(proj, structure=np.ones((3, 3), bool), iterations=buf)
    return proj, float(best) % 360.0


def _pool_any(a: np.ndarray, f: int) -> np.ndarray:
    if f <= 1:
        return a.copy()
    h, w = a.shape
    p = np.pad(a, ((0, (-h) % f), (0, (-w) % f)))
    return p.reshape(p.shape[0] // f, f, p.shape[1] // f, f).any(axis=(1, 3))


def obvious_water(refl: np.ndarray) -> np.ndarray:
    """(13,H,W) TOA reflectance -> bool (H,W): dark in SWIR-1, high MNDWI, no cirrus signal: water, not cloud."""
    b3, b11 = refl[_L1C_INDEX["B3"]], refl[_L1C_INDEX["B11"]]
    b10 = refl[_L1C_INDEX["B10"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        mndwi = (b3 - b11) / (b3 + b11)
        ok = (b11 < WATER_B11_MAX) & (mndwi > WATER_MNDWI_MIN)
        ok &= ~(np.isfinite(b10) & (b10 > CIRRUS_B10))
    return ok & np.isfinite(b3) & np.isfinite(b11)


def water_like(refl: np.ndarray) -> np.ndarray:
    """(13,H,W) TOA reflectance -> bool (H,W): NDWI above ``WATER_LIKE_NDWI_MIN`` (NIR not above green), or
    :func:`obvious_water`: a dark pixel that may be open water rather than shadowed land."""
    b3, b8 = refl[_L1C_INDEX["B3"]], refl[_L1C_INDEX["B8"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        ndwi = (b3 - b8) / (b3 + b8)
    return (np.isfinite(ndwi) & (ndwi > WATER_LIKE_NDWI_MIN)) | obvious_water(refl)


def matched_shadow(cloud: np.ndarray, evidence: np.ndarray, azimuth_deg: float, d_min_px: float,
                   d_max_px: float) -> np.ndarray:
    """Fmask-style cloud-shadow matching per cloud object -> bool (H,W): where matched shadows fall.

    Each 8-connected cloud object (>= ``MATCH_MIN_OBJECT_PX``) is shifted away from the sun (``azimuth_deg``) by
    every distance in [d_min_px, d_max_px] (1 px steps: cloud heights 200 m..12 km); its similarity at a distance
    is the share of the shifted pixels that land on ``evidence`` (dark, non-water pixels), counting only pixels
    inside the image and off any cloud. The object is matched when its best similarity reaches
    ``MATCH_SIMILARITY_MIN``; its shadow is then the object shifted by the best distance +- ``MATCH_SLACK_PX``,
    dilated by ``MATCH_SLACK_PX``. Inputs on one grid (pixels); ``evidence`` excludes cloud."""
    h, w = cloud.shape
    out = np.zeros_like(cloud)
    if not cloud.any():
        return out
    a = math.radians(azimuth_deg)
    dr, dc = math.cos(a), -math.sin(a)
    d_max_px = min(d_max_px, math.hypot(h, w))
    dists = np.arange(max(0.0, d_min_px), d_max_px + 1.0, 1.0)
    lab, n = ndimage.label(cloud, structure=np.ones((3, 3), bool))
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        rr, cc = np.nonzero(lab[sl] == i)
        if rr.size < MATCH_MIN_OBJECT_PX:
            continue
        rr, cc = rr + sl[0].start, cc + sl[1].start
        # all distances at once: (n_dist, n_px) shifted coordinates, on <= MATCH_SAMPLE_PX of the object's pixels
        step = max(1, rr.size // MATCH_SAMPLE_PX)
        sr, sc = rr[::step], cc[::step]
        r = sr[None, :] + np.rint(dists * dr).astype(np.int64)[:, None]
        c = sc[None, :] + np.rint(dists * dc).astype(np.int64)[:, None]
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        flat = np.where(ok, r * w + c, 0)
        free = ok & ~cloud.ravel()[flat]
        nf = free.sum(axis=1)
        hits = (free & evidence.ravel()[flat]).sum(axis=1)
        # under a third of the object visible off cloud and inside the image: no evidence either way
        sim = np.where(nf * 3 >= sr.size, hits / np.maximum(nf, 1), -1.0)
        j = int(np.argmax(sim))
        best_d, best_s = float(dists[j]), float(sim[j])
        if best_s < MATCH_SIMILARITY_MIN:
            continue
        obj = np.zeros_like(cloud)
        for d in np.arange(best_d - MATCH_SLACK_PX, best_d + MATCH_SLACK_PX + 1.0, 1.0):
            r, c = rr + int(round(d * dr)), cc + int(round(d * dc))
            ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            obj[r[ok], c[ok]] = True
        out |= obj
    if MATCH_SLACK_PX > 0 and out.any():
        out = ndimage.binary_dilation(out, structure=np.ones((3, 3), bool), iterations=MATCH_SLACK_PX)
    return out


@dataclass(frozen=True)
class CloudLayers:
    """Per-pixel optical quality layers, bool (H,W) on the input grid (see module docstring).

    ``cloud`` and ``shadow`` make S2 unusable; ``thin`` (cirrus, outside ``cloud``) keeps S2 for
    dry land but water there is left to S1 in the fused product; ``nodata`` is the S2 no-data mask
    (never part of the other layers). ``cloud_source``: "s2cloudless+csmask" or "csmask".
    """

    cloud: np.ndarray
    shadow: np.ndarray
    thin: np.ndarray
    nodata: np.ndarray
    cloud_source: str

    @property
    def mask(self) -> np.ndarray:
        return self.cloud | self.shadow


def shadow_reach_px(gsd_m: float, sun_zenith_deg: float | None = None) -> float:
    """Largest cloud-to-shadow distance in input pixels: 12 km x tan(sun zenith) / pixel size."""
    z = DEFAULT_SUN_ZENITH_DEG if sun_zenith_deg is None else float(sun_zenith_deg)
    if not 0.0 <= z < 89.0:
        raise ValueError(f"sun zenith must be in [0, 89) degrees, got {z}")
    return CLOUD_TOP_MAX_M * math.tan(math.radians(z)) / gsd_m


def cloud_layers(
    s2: np.ndarray,
    *,
    gsd_m: float = 10.0,
    product_level: str = "l1c",
    dn_offset: float = 0.0,
    sun_zenith_deg: float | None = None,
    method: str = "hybrid",
    sun: SunAngles | None = None,
    water_guard: bool = True,
    sunlit_water_guard: bool = True,
) -> CloudLayers:
    """Cloud, shadow and thin-cirrus layers of a Sentinel-2 array (13,H,W), reflectance x 10000.

    Band order B1..B12 as in :mod:`terrawatch.ml.water_s2`. ``dn_offset`` = -1000 for processing
    baseline >= 04.00 DNs. ``sun``: the scene's sun (:func:`sun_angles`); shadows are kept only on the clouds'
    projection away from it (:func:`shadow_projection`); None -> the 10:30 sector is searched.
    ``sun_zenith_deg`` (older callers, no azimuth): used with the sector search. ``method``: "hybrid" (default)
    or "csmask" (ukis-csmask cloud and shadow only, no geometry, no water guard: the mask before issue 14).
    ``water_guard``: "cloud" pixels that are obviously water (:func:`obvious_water`) are not cloud.
    ``sunlit_water_guard``: water bodies in sunlit surroundings (:mod:`terrawatch.ml.shadow_water`) are not shadow.
    Run it on whole scenes or large windows: shadows need their clouds in view.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    s = np.asarray(s2, dtype=np.float32)
    if s.ndim != 3 or s.shape[0] != 13:
        raise ValueError(f"expected S2 array (13, H, W), got shape {s.shape}")
    refl = (s + np.float32(dn_offset)) / np.float32(10000.0)
    refl = np.where(np.isfinite(s) & (s != 0), refl, np.nan)
    six = np.stack([refl[_S2_INDEX[b]] for b in CSMASK_BANDS], axis=-1)
    nodata = np.any(~np.isfinite(six) | (six <= 0), axis=-1)
    six[nodata] = np.nan
    cls = cloud_shadow_classes(six, product_level=product_level, gsd_m=gsd_m)
    cloud = (cls == CLOUD) & ~nodata
    shadow = (cls == SHADOW) & ~nodata
    shadow_class = shadow.copy()
    thin = np.zeros_like(cloud)
    source = "csmask"
    if method == "hybrid":
        if product_level == "l1c":
            _, s2c = s2cloudless_cloud(refl, gsd_m=gsd_m)
            if s2c.shape == cloud.shape and np.isfinite(refl[_L1C_INDEX["B10"]]).any():
                source = "s2cloudless+csmask"
                cloud |= s2c & ~nodata
            b10 = refl[_L1C_INDEX["B10"]]
            with np.errstate(invalid="ignore"):
                thin = (b10 > CIRRUS_B10) & ~cloud & ~nodata
        if water_guard:
            cloud &= ~obvious_water(refl)
        if shadow.any():
            if cloud.any():
                if sun is None and sun_zenith_deg is not None:
                    lo, hi = UNKNOWN_SUN_AZIMUTH_DEG
                    sun_sector = True
                else:
                    sun_sector = False
                f = max(1, int(round(MODEL_GSD_M / gsd_m)))  # project on the ~30 m grid: cheaper
                coarse, dark = _pool_any(cloud, f), _pool_any(shadow, f)
                if sun_sector:  # zenith known, azimuth not: search the 10:30 sector at that zenith
                    proj = np.zeros_like(coarse)
                    best, score = None, -1.0
                    for az in np.arange(lo, hi + 1e-6, AZIMUTH_STEP_DEG):
                        p, _ = shadow_projection(coarse, gsd_m * f, SunAngles(float(az), float(sun_zenith_deg), "given"))
                        n = (p & ~coarse).sum()
                        sc = float((p & dark & ~coarse).sum() / n) if n else 0.0
                        if sc > score:
                            best, score, proj = az, sc, p
                else:
                    proj, best = shadow_projection(coarse, gsd_m * f, sun, dark)
                wl = water_like(refl)
                if (shadow & wl).any():  # water-like shadow only on a matched cloud object's projection
                    zl, zh = ((sun.zenith_deg,) * 2 if sun is not None else
                              (float(sun_zenith_deg),) * 2 if sun_zenith_deg is not None else UNKNOWN_SUN_ZENITH_DEG)
                    g = max(1, math.ceil(max(coarse.shape) / MATCH_GRID_PX))
                    px = gsd_m * f * g
                    ev = _pool_any(shadow & ~wl, f * g) & ~_pool_any(coarse, g)
                    matched = matched_shadow(_pool_any(coarse, g), ev, float(best),
                                             CLOUD_BASE_MIN_M * math.tan(math.radians(zl)) / px,
                                             CLOUD_TOP_MAX_M * math.tan(math.radians(zh)) / px)
                    shadow &= _upsample(proj, f, *cloud.shape)
                    # regions (8-connected) mostly of water-like pixels are water bodies: only their matched part
                    # is shadow; in a region mostly of shadowed land the water-like pixels are shadow too
                    reg, k = ndimage.label(shadow, structure=np.ones((3, 3), bool))
                    share = ndimage.mean(wl, reg, index=np.arange(1, k + 1)) if k else np.zeros(0)
                    watery = np.concatenate([[False], np.asarray(share) >= WATER_REGION_MIN])[reg]
                    shadow &= ~(wl & watery) | _upsample(_upsample(matched, g, *coarse.shape), f, *cloud.shape)
                else:
                    shadow &= _upsample(proj, f, *cloud.shape)
            else:
                shadow[:] = False
        if shadow.any() and sunlit_water_guard:
            shadow &= ~sunlit_water(refl[_L1C_INDEX["B3"]], refl[_L1C_INDEX["B8"]], water_like(refl), cloud,
                                    shadow_class, gsd_m)
        shadow &= ~cloud
    return CloudLayers(cloud=cloud, shadow=shadow, thin=thin, nodata=nodata, cloud_source=source)


def cloud_mask(
    s2: np.ndarray,
    *,
    gsd_m: float = 10.0,
    product_level: str = "l1c",
    include_shadow: bool = True,
    dilate_px: int = 0,
    dn_offset: float = 0.0,
    sun_zenith_deg: float | None = None,
    method: str = "hybrid",
    sun: SunAngles | None = None,
) -> np.ndarray:
    """Cloud (and shadow) mask of a Sentinel-2 array (13,H,W), reflectance x 10000 -> bool (H,W).

    :func:`cloud_layers` ``cloud | shadow`` (``cloud`` only without ``include_shadow``).
    ``dilate_px`` buffers the mask (ukis-csmask itself uses 4 px). No-data pixels (NaN or 0) are
    returned False: they belong to the no-data mask, not here.
    """
    cl = cloud_layers(s2, gsd_m=gsd_m, product_level=product_level, dn_offset=dn_offset,
                      sun_zenith_deg=sun_zenith_deg, method=method, sun=sun)
    m = cl.cloud | cl.shadow if include_shadow else cl.cloud.copy()
    if dilate_px > 0:
        m = ndimage.binary_dilation(m, iterations=dilate_px)
    return m & ~cl.nodata
