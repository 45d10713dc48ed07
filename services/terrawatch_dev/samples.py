"""Sample scenes bundled with the demo and tests: a generated S1 scene and the Sen1Floods11 Spain chip."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from terrawatch.settings import REPO_ROOT

SHARED_DATA = Path(__import__("os").environ.get("TERRAWATCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
SPAIN_S1 = SHARED_DATA / "sen1floods11" / "Spain_7370579_S1Hand.tif"
SPAIN_S2 = SHARED_DATA / "sen1floods11" / "Spain_7370579_S2Hand.tif"
SPAIN_LABEL = SHARED_DATA / "sen1floods11" / "Spain_7370579_LabelHand.tif"


def spain_sensing_time(sensor: str = "s1") -> datetime:
    """Acquisition date (``s1`` or ``s2``) of the Spain chip from the Sen1Floods11 metadata (00:00 UTC)."""
    meta = json.loads((SHARED_DATA / "sen1floods11" / "Sen1Floods11_Metadata.geojson").read_text())
    for f in meta["features"]:
        if f["properties"].get("location") == "Spain":
            return datetime.strptime(f["properties"][f"{sensor}_date"], "%Y/%m/%d").replace(tzinfo=timezone.utc)
    raise LookupError("Spain not in Sen1Floods11 metadata")


def synthetic_water_mask(size: int = 512) -> np.ndarray:
    """The synthetic scene's permanent water (bool, ``size`` x ``size``): a meandering river and a lake, the
    same in every scene :func:`synthetic_s1` writes of that size, whatever its seed or sensing time."""
    yy, xx = np.mgrid[0:size, 0:size]
    centre = size * 0.5 + size * 0.12 * np.sin(yy / size * 2 * np.pi * 1.5)
    water = np.abs(xx - centre) < size * 0.03
    water |= (xx - size * 0.22) ** 2 + (yy - size * 0.25) ** 2 < (size * 0.09) ** 2
    return water


def synthetic_s1(path: Path, size: int = 512, seed: int = 0, origin=(500_000.0, 4_650_000.0)) -> np.ndarray:
    """Write a synthetic S1 GRD scene (VV, VH sigma0 in dB, EPSG:32630, 10 m) and return its water mask.

    Land backscatter ~ -8/-15 dB (VV/VH) with gamma speckle; open water ~ -22/-28 dB.
    Water: a meandering river and a lake (the known answer tests compare against).
    """
    rng = np.random.default_rng(seed)
    water = synthetic_water_mask(size)
    look = 4.4  # equivalent number of looks of GRD-HR
    speckle = rng.gamma(look, 1 / look, size=(2, size, size))
    vv_lin = np.where(water, 10 ** (-22 / 10), 10 ** (-8 / 10)) * speckle[0]
    vh_lin = np.where(water, 10 ** (-28 / 10), 10 ** (-15 / 10)) * speckle[1]
    data = (10 * np.log10(np.stack([vv_lin, vh_lin]))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=2, dtype="float32",
                       crs="EPSG:32630", transform=from_origin(origin[0], origin[1], 10, 10), nodata=np.nan,
                       tiled=True, blockxsize=256, blockysize=256, compress="deflate") as ds:
        ds.write(data)
        ds.set_band_description(1, "VV")
        ds.set_band_description(2, "VH")
    return water


def synthetic_clearing(src: Path, dst: Path, block: int = 40, seed: int = 0) -> tuple[int, int, int]:
    """Write a "post-event" copy of a 13-band S2 L1C scene with one block of forest cleared.

    The ``block`` x ``block`` px window with the highest mean NDVI is replaced by the median spectrum
    of the scene's own bare pixels (0.05 < NDVI < 0.2) plus 2 % multiplicative noise: a known answer
    for forest-loss detection built from real spectra. Returns (row, col, block) of the clearing.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    with rasterio.open(src) as ds:
        data = ds.read().astype(np.float32)
        profile = ds.profile
    b4, b8 = data[3], data[7]
    ndvi = (b8 - b4) / np.maximum(b8 + b4, 1)
    mean = ndimage.uniform_filter(ndvi, block)
    half = block // 2
    inner = mean[half:-half, half:-half]
    r, c = np.unravel_index(np.argmax(inner), inner.shape)
    bare = data[:, (ndvi > 0.05) & (ndvi < 0.2)]
    spectrum = np.median(bare, axis=1)
    patch = spectrum[:, None, None] * rng.normal(1.0, 0.02, size=(data.shape[0], block, block))
    data[:, r : r + block, c : c + block] = patch
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(np.round(data).astype(profile["dtype"]))
    return int(r), int(c), block


def synthetic_water_lonlat(path: Path, water: np.ndarray):
    """The synthetic scene's permanent water (``water``, the mask :func:`synthetic_s1` returned for ``path``)
    as a lon/lat (EPSG:4326) MultiPolygon: the known answer for "no flood alert over permanent water"."""
    from rasterio.features import shapes
    from rasterio.warp import transform_geom
    from shapely.geometry import shape

    from terrawatch.domain.polygons import as_multipolygon

    with rasterio.open(path) as ds:
        transform, crs = ds.transform, ds.crs
    parts = [shape(transform_geom(crs, "EPSG:4326", g)) for g, v in
             shapes(water.astype(np.uint8), mask=water, transform=transform) if v == 1]
    import shapely

    return as_multipolygon(shapely.union_all(parts))
