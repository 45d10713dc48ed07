"""The scene quicklook: display bands of the scene itself as a uint8 COG, to check a detection against.

Sentinel-2: B4, B3, B2, B8 (true colour = bands 1,2,3; false colour NIR/red/green = 4,1,2), reflectance
0-0.3 stretched to 1-255. Sentinel-1: VV (-25..0 dB), VH (-30..-5 dB), VV-VH (0..15 dB) stretched to
1-255 (composite = 1,2,3). 0 = no data. Written on the scene's grid (EPSG of the scene), decimated so the
longer side is at most ``max_px`` (4096: 27 m pixels for a full 10980 px S2 tile), read through a
GDAL WarpedVRT strip by strip, so memory stays bounded whatever the scene size.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from terrawatch.domain.scene import Scene, Sensor
from terrawatch.imagery.reader import Grid, _to_physical, rasterio_path
from terrawatch.products.cog import INTERMEDIATE_COMPRESSION, to_cog

S2_DISPLAY = ("B4", "B3", "B2", "B8")
S2_RANGE = (0.0, 3000.0)  # reflectance x 10000
S1_RANGES = {"VV": (-25.0, 0.0), "VH": (-30.0, -5.0), "RATIO": (0.0, 15.0)}  # dB
COMPOSITES = {  # name -> 1-based quicklook bands shown as R, G, B
    Sensor.S2: {"truecolor": (1, 2, 3), "falsecolor": (4, 1, 2)},
    Sensor.S1: {"vvvh": (1, 2, 3)},
}
STRIP_ROWS = 256


def _stretch(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """float (NaN = no data) -> uint8 1..255, 0 where NaN."""
    with np.errstate(invalid="ignore"):
        v = np.rint(np.clip((x - lo) / (hi - lo), 0, 1) * 254 + 1)
    return np.where(np.isfinite(x), v, 0).astype(np.uint8)


def write_quicklook(scene: Scene, grid: Grid, path: str | Path, max_px: int = 4096) -> Path:
    """Write ``path`` (uint8 COG, 4 bands for S2, 3 for S1, nodata 0) from ``scene``'s bands on ``grid``."""
    f = max(1, math.ceil(max(grid.width, grid.height) / max_px))
    width, height = math.ceil(grid.width / f), math.ceil(grid.height / f)
    transform = grid.transform * Affine.scale(f)
    by_name = {b.name: b for b in scene.bands}
    names = S2_DISPLAY if scene.sensor is Sensor.S2 else ("VV", "VH")
    count = 4 if scene.sensor is Sensor.S2 else 3
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    srcs: dict[str, rasterio.io.DatasetReader] = {}
    vrts: dict[str, WarpedVRT] = {}
    try:
        for n in names:
            b = by_name[n]
            srcs[n] = rasterio.open(rasterio_path(b.href))
            if (f == 1 and srcs[n].crs == grid.crs and srcs[n].transform.almost_equals(transform)
                    and (srcs[n].width, srcs[n].height) == (width, height)):
                vrts[n] = srcs[n]  # already on the quicklook's grid: read it as it is, no warp
            else:
                vrts[n] = WarpedVRT(srcs[n], crs=grid.crs, transform=transform, width=width, height=height,
                                    resampling=Resampling.average, src_nodata=srcs[n].nodata,
                                    nodata=srcs[n].nodata)
        with rasterio.open(tmp, "w", driver="GTiff", width=width, height=height, count=count, dtype="uint8",
                           crs=grid.crs, transform=transform, nodata=0, tiled=True, blockxsize=256,
                           blockysize=256, **INTERMEDIATE_COMPRESSION) as dst:
            for r0 in range(0, height, STRIP_ROWS):
                win = Window(0, r0, width, min(STRIP_ROWS, height - r0))
                bands = {}
                for n in names:
                    b = by_name[n]
                    arr = vrts[n].read(b.index, window=win, masked=True).astype(np.float32)
                    bands[n] = _to_physical(np.where(np.ma.getmaskarray(arr), np.nan, arr.data), b.units, scene)
                if scene.sensor is Sensor.S2:
                    out = [_stretch(bands[n], *S2_RANGE) for n in S2_DISPLAY]
                else:
                    out = [_stretch(bands["VV"], *S1_RANGES["VV"]), _stretch(bands["VH"], *S1_RANGES["VH"]),
                           _stretch(bands["VV"] - bands["VH"], *S1_RANGES["RATIO"])]
                nodata = np.any([o == 0 for o in out], axis=0)  # a pixel is shown only where every band has data
                dst.write(np.stack([np.where(nodata, 0, o) for o in out]), window=win)
            desc = (["B4 red", "B3 green", "B2 blue", "B8 NIR"] if scene.sensor is Sensor.S2
                    else ["VV dB", "VH dB", "VV-VH dB"])
            for i, d in enumerate(desc, start=1):
                dst.set_band_description(i, f"{d} (display stretch, 0 = no data)")
    finally:
        for n, v in vrts.items():
            if v is not srcs[n]:
                v.close()
        for s in srcs.values():
            s.close()
    to_cog(tmp, resampling="AVERAGE")
    tmp.replace(path)
    return path
