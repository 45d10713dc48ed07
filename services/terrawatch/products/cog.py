"""Rewrite a tiled GeoTIFF as a Cloud-Optimized GeoTIFF with internal overviews (GDAL's COG driver).

Why GDAL's COG driver (through rasterio) and not rio-cogeo: it is already in the rasterio wheel, streams
block by block (memory does not grow with the raster), builds the overviews itself and writes the
layout COG readers expect (IFDs first, overviews before full resolution); one call, no extra dependency.

Overviews go down to a raster of 1-2 px (:func:`overview_factors`), whatever the size: GDAL's default
stops once the image fits in one block, so a 512 px product had none and a zoomed-out raster tile read
(and warped) the full resolution over the whole tile (issue 25: 17 s and +586 MB for one z7 tile).
With a level at every power of two, a tile at any zoom reads a level at most 2x finer than the tile.

Resampling per band (issue 25): a likelihood band is averaged (GDAL's AVERAGE skips no-data, so an
excluded pixel never drags a mean down and a block excluded throughout stays excluded), class or flag
bands take NEAREST (a real pixel's value: no invented class, no OR of bits); imagery is averaged. GDAL's COG driver takes one
resampling for all bands, so mixed bands are overviewed one band at a time and stacked in a VRT whose
overviews the COG driver copies as they are (``OVERVIEWS=FORCE_USE_EXISTING``).
"""

from __future__ import annotations

import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio.dtypes import _gdal_typename
from rasterio.enums import Resampling
from rasterio.windows import Window

from terrawatch.domain.products import CLOUD_MASK_FILE, FLOOD_FUSED_FILE, LIKELIHOOD_SUFFIX, QUICKLOOK_FILE

# Intermediate GeoTIFFs that to_cog rewrites at once (the likelihood written while tiling, the quicklook):
# compressed only to bound their disk size, so with the fastest codec; the COG gets DEFLATE. Measured in
# docs/performance.md (issue 17): DEFLATE here cost a second compression pass per product.
INTERMEDIATE_COMPRESSION = {"compress": "zstd", "zstd_level": 1}

# A likelihood product (hazard likelihood, fused flood): band 1 likelihood 0-100 averaged, band 2 flags or
# source codes by nearest (a real pixel's value: no invented class, no OR of bits). MODE would be the
# majority, but on a full 10980 px product it took ~3x as long as AVERAGE + NEAREST (8.5 s vs 2.0 s on 2 cores).
LIKELIHOOD_RESAMPLING = ("AVERAGE", "NEAREST")
# GDAL's block cache while writing a COG (rasterio restores the process's own afterwards): the default (5 %
# of RAM) filled with the whole product; 64 MiB kept a full 10980 px 2-band product's rewrite at 214 MB peak
# RSS instead of 672 MB (421 MB before per-band overviews), in the same time within noise.
CACHE_BYTES = 64 * 2**20


def overview_factors(width: int, height: int) -> list[int]:
    """Decimation factors 2, 4, ... until the longer side is 1-2 px (none for a 1 px raster)."""
    n = math.ceil(math.log2(max(width, height, 1)))
    return [2 ** k for k in range(1, n + 1)]


def to_cog(path: str | Path, *, resampling: str | Sequence[str] = "NEAREST", blocksize: int = 512) -> Path:
    """Rewrite ``path`` in place as a COG (DEFLATE, ``blocksize`` px blocks, overviews down to 1-2 px).

    ``resampling`` for the overviews, one name for every band or one per band: AVERAGE for likelihoods
    and imagery, NEAREST (or MODE) for classes and flags (:data:`LIKELIHOOD_RESAMPLING` for the 2-band
    likelihood products). The replacement is atomic (``os.replace``), so a reader never sees half a file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.cog.tmp")
    with rasterio.Env(GDAL_NUM_THREADS="1", GDAL_CACHEMAX=CACHE_BYTES), rasterio.open(path) as src:  # band descriptions are carried over
        per_band = [resampling] * src.count if isinstance(resampling, str) else list(resampling)
        if len(per_band) != src.count:
            raise ValueError(f"{path}: {len(per_band)} resamplings for {src.count} bands")
        per_band = [r.upper() for r in per_band]
        factors = overview_factors(src.width, src.height)
        options = dict(driver="COG", compress="DEFLATE", blocksize=blocksize, bigtiff="IF_SAFER")
        if len(set(per_band)) == 1 or not factors:
            rasterio.shutil.copy(src, tmp, overview_resampling=per_band[0], overview_count=len(factors),
                                 overviews="IGNORE_EXISTING", **options)  # an older COG's few levels: rebuilt
        else:
            with tempfile.TemporaryDirectory(prefix=".cog-", dir=path.parent) as work:
                vrt = _per_band_overviews(src, per_band, factors, Path(work))
                rasterio.shutil.copy(vrt, tmp, overviews="FORCE_USE_EXISTING", **options)
    os.replace(tmp, path)
    return path


def _per_band_overviews(src, per_band: list[str], factors: list[int], work: Path) -> Path:
    """Each band of ``src`` as a single-band GeoTIFF with overviews by its own resampling, stacked in a
    VRT (``work/stack.vrt``) that names those overviews explicitly. Copied strip by strip (bounded memory)."""
    strip = 512
    root = ET.Element("VRTDataset", rasterXSize=str(src.width), rasterYSize=str(src.height))
    if src.crs:
        ET.SubElement(root, "SRS").text = src.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in src.transform.to_gdal())
    _metadata(root, src.tags())
    for b in range(1, src.count + 1):
        band_path = work / f"band{b}.tif"
        with rasterio.open(band_path, "w", driver="GTiff", width=src.width, height=src.height, count=1,
                           dtype=src.dtypes[b - 1], crs=src.crs, transform=src.transform,
                           nodata=src.nodatavals[b - 1], tiled=True, blockxsize=256, blockysize=256,
                           **INTERMEDIATE_COMPRESSION) as dst:
            for r0 in range(0, src.height, strip):
                win = Window(0, r0, src.width, min(strip, src.height - r0))
                dst.write(src.read(b, window=win), 1, window=win)
        with rasterio.open(band_path, "r+") as dst:
            dst.build_overviews(factors, Resampling[per_band[b - 1].lower()])
        el = ET.SubElement(root, "VRTRasterBand", dataType=_gdal_typename(src.dtypes[b - 1]), band=str(b))
        if src.nodatavals[b - 1] is not None:
            ET.SubElement(el, "NoDataValue").text = repr(float(src.nodatavals[b - 1]))
        if src.descriptions[b - 1]:
            ET.SubElement(el, "Description").text = src.descriptions[b - 1]
        ET.SubElement(el, "ColorInterp").text = src.colorinterp[b - 1].name.capitalize()
        _metadata(el, src.tags(b))
        source = ET.SubElement(el, "SimpleSource")
        ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = str(band_path)
        ET.SubElement(source, "SourceBand").text = "1"
        for k in range(len(factors)):  # GTIFF_DIR:2 is the first internal overview (1 is the full resolution)
            ov = ET.SubElement(el, "Overview")
            ET.SubElement(ov, "SourceFilename", relativeToVRT="0").text = f"GTIFF_DIR:{k + 2}:{band_path}"
            ET.SubElement(ov, "SourceBand").text = "1"
    vrt = work / "stack.vrt"
    ET.ElementTree(root).write(vrt, encoding="utf-8")
    return vrt


def _metadata(parent: ET.Element, tags: dict[str, str]) -> None:
    if tags:
        md = ET.SubElement(parent, "Metadata")
        for k, v in tags.items():
            ET.SubElement(md, "MDI", key=k).text = v


def overview_levels(path: str | Path) -> list[int]:
    """The decimation factors of ``path``'s internal overviews (band 1), finest first."""
    with rasterio.open(path) as ds:
        return list(ds.overviews(1))


def is_cog(path: str | Path) -> bool:
    """True when GDAL reports the COG layout and the raster has internal overviews, or fits in one block."""
    with rasterio.open(path) as ds:
        layout = ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT", "")
        bh, bw = ds.block_shapes[0]
        one_block = bh >= ds.height and bw >= ds.width
        return layout.upper() == "COG" and bool(ds.overviews(1) or one_block)


# What upgrade() rewrites under a products folder, and with which overview resampling.
PRODUCT_RESAMPLING = {QUICKLOOK_FILE: "AVERAGE", CLOUD_MASK_FILE: "NEAREST"}


def upgrade(root: str | Path) -> list[Path]:
    """Rewrite the products under ``root`` (``<scene>/*_likelihood.tif``, ``flood_fused.tif``,
    ``quicklook.tif``, ``cloud_mask.tif``) whose overviews stop short of 1-2 px (written before issue 25),
    so the API serves them from low zooms too. Idempotent; returns the files rewritten."""
    done = []
    for path in sorted(Path(root).glob("*/*.tif")):
        if not (path.name.endswith(LIKELIHOOD_SUFFIX) or path.name == FLOOD_FUSED_FILE
                or path.name in PRODUCT_RESAMPLING):
            continue
        with rasterio.open(path) as ds:
            n, count, small = len(ds.overviews(1)), ds.count, max(ds.width, ds.height) <= 2
        if small:
            continue
        if n:
            with rasterio.open(path, overview_level=n - 1) as coarsest:
                if max(coarsest.width, coarsest.height) <= 2:
                    continue  # written with deep overviews already
        rs = PRODUCT_RESAMPLING.get(path.name, LIKELIHOOD_RESAMPLING if count == 2 else "NEAREST")
        to_cog(path, resampling=rs)
        done.append(path)
    return done


if __name__ == "__main__":  # python -m terrawatch.products.cog [PRODUCTS_ROOT]
    import sys

    from terrawatch.settings import Settings

    for p in upgrade(Path(sys.argv[1]) if len(sys.argv) > 1 else Settings().products_dir):
        print(f"rewrote {p} with overviews down to 1-2 px")
