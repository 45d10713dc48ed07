"""The per-scene cloud/shadow mask of a Sentinel-2 L1C scene (L2A scenes carry theirs: the SCL band).

Computed once per scene by the worker before tiling, with :func:`terrawatch.ml.cloud.cloud_layers`
(hybrid: s2cloudless + ukis-csmask cloud less obvious water, ukis-csmask shadow only on the clouds'
projection away from the sun, whose angles come from the STAC Item or the sensing time and footprint:
:func:`scene_sun`): a 256 px tile
lacks the context (a shadow's cloud may lie outside it), hence not per tile. The scene is read
decimated (:func:`terrawatch.imagery.reader.read_decimated`) to ~30 m, ukis-csmask's training
resolution (s2cloudless then averages further to ~160 m itself), coarser where the scene is larger
than ``MAX_PX`` x 30 m: a full 10980 px tile is read at 60 m (1830 px, 13 bands x 13 MB = 174 MB).

Written as a uint8 COG ``<products_dir>/<scene id>/cloud_mask.tif`` on that coarse grid (scene CRS):
``domain.tiles.EXCLUDED_CLOUD`` (2) where cloud or cloud shadow, 0 clear or no data. The tile actors
read it per tile window with nearest resampling (``SceneReader(cloud_mask=...)``), exactly where an
L2A scene's SCL is read. Thin cirrus (``CloudLayers.thin``) is not masked, as in
:func:`terrawatch.ml.cloud.cloud_mask` with which flood_s2 was measured: the surface is seen through
it; its share is logged.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from terrawatch.domain.products import CLOUD_MASK_FILE
from terrawatch.domain.scene import Scene
from terrawatch.domain.tiles import EXCLUDED_CLOUD
from terrawatch.imagery.reader import Grid, grid_gsd_m, read_decimated
from terrawatch.products.cog import INTERMEDIATE_COMPRESSION, to_cog

FILENAME = CLOUD_MASK_FILE  # domain/products.py
TARGET_GSD_M = 30.0  # ukis-csmask's training resolution (terrawatch.ml.cloud.MODEL_GSD_M)
MAX_PX = 2048  # longest side of the decimated read: bounds memory whatever the scene size
# One mask at a time per process: the worker runs scenes in flight on threads, and a full tile's mask peaks
# at ~1.6 GB RSS (models/flood_s2/README.md); concurrent masks would multiply that.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class SceneCloudMask:
    """A written scene mask. ``share``: masked (cloud or shadow) fraction of the pixels with data;
    ``thin_share``: thin-cirrus fraction (not masked); ``gsd_m``: the mask's pixel size (m)."""

    path: Path
    factor: int
    gsd_m: float
    share: float
    thin_share: float
    cloud_source: str
    seconds: float
    sun: str = ""  # where the sun angles for the shadow geometry came from (metadata / computed / sector)


def decimation(grid: Grid, max_px: int = MAX_PX) -> int:
    """Integer factor f for the mask grid (grid x f): ~30 m, more where the scene exceeds ``max_px``."""
    f = max(1, round(TARGET_GSD_M / grid_gsd_m(grid)))
    return max(f, math.ceil(max(grid.width, grid.height) / max_px))


def mask_flags(cloud_or_shadow: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """bool (H,W) mask and no-data -> uint8 (H,W): EXCLUDED_CLOUD where masked and with data, else 0."""
    return np.where(cloud_or_shadow & ~nodata, EXCLUDED_CLOUD, 0).astype(np.uint8)


def scene_sun(scene: Scene):
    """The scene's sun for the shadow geometry (:func:`terrawatch.ml.cloud.sun_angles`): STAC
    ``view:sun_azimuth``/``view:sun_elevation`` (or ``s2:mean_solar_*``), else computed from the sensing time
    at the footprint's centre."""
    from terrawatch.ml.cloud import sun_angles

    c = scene.footprint.centroid
    return sun_angles((scene.item or {}).get("properties"), scene.sensing_time, c.x, c.y)


def write_cloud_mask(scene: Scene, grid: Grid, path: str | Path, *, max_px: int = MAX_PX) -> SceneCloudMask:
    """Compute ``scene``'s cloud/shadow mask (L1C, 13 bands) and write it to ``path`` (uint8 COG). One
    computation at a time per process (others wait: bounded memory)."""
    from terrawatch.ml.cloud import cloud_layers

    t0 = time.perf_counter()
    f = decimation(grid, max_px)
    gsd = grid_gsd_m(grid) * f
    with _ONE_AT_A_TIME:
        bands, transform = read_decimated(scene, grid, f)  # reflectance x 10000, baseline offset removed
        layers = cloud_layers(bands, gsd_m=gsd, product_level="l1c", sun=scene_sun(scene))
        del bands
    flags = mask_flags(layers.mask, layers.nodata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    h, w = flags.shape
    with rasterio.open(tmp, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=grid.crs,
                       transform=transform, tiled=True, blockxsize=256, blockysize=256,
                       **INTERMEDIATE_COMPRESSION) as dst:
        dst.write(flags, 1)
        dst.set_band_description(1, f"{EXCLUDED_CLOUD} = cloud or cloud shadow ({layers.cloud_source}), 0 = clear "
                                    "or no data")
    to_cog(tmp, resampling="NEAREST")
    tmp.replace(path)
    valid = ~layers.nodata
    n = int(valid.sum())
    share = float((flags[valid] != 0).sum() / n) if n else 0.0
    thin = float((layers.thin & valid).sum() / n) if n else 0.0
    sun = scene_sun(scene)
    sun_txt = f"{sun.source} az {sun.azimuth_deg:.1f} zen {sun.zenith_deg:.1f}" if sun else "unknown (10:30 sector)"
    return SceneCloudMask(path, f, gsd, share, thin, layers.cloud_source, time.perf_counter() - t0, sun_txt)
