"""Rewrite a tiled GeoTIFF as a Cloud-Optimized GeoTIFF with internal overviews (GDAL's COG driver).

Why GDAL's COG driver (through rasterio) and not rio-cogeo: it is already in the rasterio wheel, streams
block by block (memory does not grow with the raster), builds the overviews itself and writes the
layout COG readers expect (IFDs first, overviews before full resolution); one call, no extra dependency.
"""

from __future__ import annotations

import os
from pathlib import Path

import rasterio
import rasterio.shutil

# Intermediate GeoTIFFs that to_cog rewrites at once (the likelihood written while tiling, the quicklook):
# compressed only to bound their disk size, so with the fastest codec; the COG gets DEFLATE. Measured in
# docs/performance.md (issue 17): DEFLATE here cost a second compression pass per product.
INTERMEDIATE_COMPRESSION = {"compress": "zstd", "zstd_level": 1}


def to_cog(path: str | Path, *, resampling: str = "NEAREST", blocksize: int = 512) -> Path:
    """Rewrite ``path`` in place as a COG (DEFLATE, ``blocksize`` px blocks, overviews down to one block).

    ``resampling`` for the overviews: NEAREST for classes/flags and likelihoods (no invented values),
    AVERAGE for imagery. The replacement is atomic (``os.replace``), so a reader never sees half a file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.cog.tmp")
    with rasterio.Env(GDAL_NUM_THREADS="1"), rasterio.open(path) as src:  # band descriptions are carried over
        rasterio.shutil.copy(src, tmp, driver="COG", compress="DEFLATE", blocksize=blocksize,
                             overview_resampling=resampling, bigtiff="IF_SAFER")
    os.replace(tmp, path)
    return path


def is_cog(path: str | Path) -> bool:
    """True when GDAL reports the COG layout and the raster has internal overviews, or fits in one block."""
    with rasterio.open(path) as ds:
        layout = ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT", "")
        bh, bw = ds.block_shapes[0]
        one_block = bh >= ds.height and bw >= ds.width
        return layout.upper() == "COG" and bool(ds.overviews(1) or one_block)
