"""Fused S1 + S2 flood product from a pair of GeoTIFFs (``terrawatch fuse``): one COG, two bands.

Inputs: an S1 GeoTIFF with 2 bands VV, VH sigma0 in dB (float, NaN = no data; the Sen1Floods11
``S1Hand`` layout) and an S2 L1C GeoTIFF with the 13 bands B1..B12 as reflectance x 10000
(``S2Hand`` layout; 0 = no data; ``dn_offset`` -1000 for processing baseline >= 04.00). The S2
scene is reprojected onto the S1 grid (bilinear) when the grids differ. Estimates: ``flood-s1``
(the served network + growing, in process) and ``flood-s2`` without its own cloud mask; the cloud,
shadow and thin-cirrus layers of :func:`terrawatch.ml.cloud.cloud_layers` on the whole S2 scene;
:func:`terrawatch.ml.fusion.fuse_s1_s2` combines them (S2 is used only when the acquisition times,
if given, lie within ``window``).

Output (S1 grid and CRS, DEFLATE COG, NEAREST overviews), uint8:
band 1 ``likelihood`` water likelihood 0-100 (>= 50 = water), 255 = no estimate;
band 2 ``source`` the per-pixel source code of :mod:`terrawatch.ml.fusion` (0 none, 1 S2, 2 S1,
3 S1 under S2 cloud/shadow, 4 S1 under thin cloud, 5 S2 under thin cloud, 6 S2 water S1 calls dry,
7 not observable by S1: S1 decides and says dry where the reference water (``reference_water``,
lon/lat polygons) or S2 under thin cirrus says water; no estimate there). The codes, the
acquisition times and the window are written as dataset tags. The whole scene is held in memory
(about 60 bytes per pixel): meant for chips and AOI subsets, not full 10980 px tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject

from terrawatch.domain.products import FLOOD_FUSED_FILE
from terrawatch.ml.fusion import DEFAULT_WINDOW, SOURCE_NAMES, fuse_s1_s2, source_shares

MAX_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class FusedProduct:
    path: Path
    shares: dict[str, float]  # share of pixels per source
    water_share: float  # water pixels / pixels with an estimate
    s2_used: bool


def _read_s2_on(s2_path: Path, ref) -> np.ndarray:
    with rasterio.open(s2_path) as src:
        if src.count != 13:
            raise ValueError(f"{s2_path}: expected 13 S2 bands B1..B12, found {src.count}")
        if src.width * src.height > MAX_PIXELS:
            raise ValueError(f"{s2_path}: {src.width}x{src.height} px is over the fused product's limit")
        if src.crs == ref.crs and src.transform == ref.transform and src.shape == ref.shape:
            return src.read().astype(np.float32)
        out = np.full((13, ref.height, ref.width), np.nan, np.float32)
        for i in range(13):
            band = src.read(i + 1).astype(np.float32)
            band[band == 0] = np.nan
            reproject(band, out[i], src_transform=src.transform, src_crs=src.crs, src_nodata=np.nan,
                      dst_transform=ref.transform, dst_crs=ref.crs, dst_nodata=np.nan, resampling=Resampling.bilinear)
        return np.where(np.isfinite(out), out, 0.0).astype(np.float32)


def fused_flood_product(
    s1_path: str | Path,
    s2_path: str | Path,
    out_path: str | Path,
    *,
    s1_time: datetime | None = None,
    s2_time: datetime | None = None,
    window: timedelta = DEFAULT_WINDOW,
    dn_offset: float = 0.0,
    sun_zenith_deg: float | None = None,
    reference_water: list | None = None,
) -> FusedProduct:
    """Write the fused product of one S1 and one S2 GeoTIFF to ``out_path`` (see module)."""
    from terrawatch.inference.local import predict_water_s1
    from terrawatch.ml.cloud import cloud_layers
    from terrawatch.ml.water_s2 import predict_water_s2
    from terrawatch.products.cog import LIKELIHOOD_RESAMPLING, to_cog

    s1_path, s2_path, out_path = Path(s1_path), Path(s2_path), Path(out_path)
    with rasterio.open(s1_path) as ref:
        if ref.count != 2:
            raise ValueError(f"{s1_path}: expected 2 S1 bands (VV, VH dB), found {ref.count}")
        if ref.width * ref.height > MAX_PIXELS:
            raise ValueError(f"{s1_path}: {ref.width}x{ref.height} px is over the fused product's limit")
        s1 = ref.read().astype(np.float32)
        profile = ref.profile
        gsd = abs(ref.res[0]) if ref.crs and ref.crs.is_projected else 10.0
        s2 = _read_s2_on(s2_path, ref)
    p1 = predict_water_s1(s1)
    p2 = predict_water_s2(s2, dn_offset=dn_offset, mask_clouds=False, gsd_m=gsd)
    cl = cloud_layers(s2, gsd_m=gsd, dn_offset=dn_offset, sun_zenith_deg=sun_zenith_deg)
    ref = reference_mask(reference_shapes(reference_water, profile["crs"]), profile["transform"], s1.shape[1:])
    f = fuse_s1_s2(p1, p2, s2_cloud=cl.mask, s2_thin=cl.thin, s1_time=s1_time, s2_time=s2_time, window=window,
                   reference_water=ref)
    profile.update(driver="GTiff", count=2, dtype="uint8", nodata=255, tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(out_path, "w", **profile) as dst:
        dst.write(f.likelihood, 1)
        dst.write(f.source, 2)
        dst.set_band_description(1, "likelihood")
        dst.set_band_description(2, "source")
        dst.update_tags(source_codes=";".join(f"{k}={v}" for k, v in SOURCE_NAMES.items()),
                        s1=s1_path.name, s2=s2_path.name, s2_used=str(f.s2_used),
                        s1_time=s1_time.isoformat() if s1_time else "", s2_time=s2_time.isoformat() if s2_time else "",
                        window_h=str(window.total_seconds() / 3600), cloud_source=cl.cloud_source)
    to_cog(out_path, resampling=LIKELIHOOD_RESAMPLING)  # likelihood averaged, source code by majority
    est = int((f.likelihood != 255).sum())
    return FusedProduct(out_path, source_shares(f.source), round(int(f.water.sum()) / max(est, 1), 5), f.s2_used)


FUSED_FILENAME = FLOOD_FUSED_FILE  # the name service/pairing.py writes it under (domain/products.py)


def reference_shapes(geoms: list | None, crs) -> list:
    """Reference-water polygons (shapely, lon/lat EPSG:4326) -> GeoJSON shapes in ``crs`` for :func:`reference_mask`."""
    if not geoms or crs is None:
        return []
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping

    return [(transform_geom("EPSG:4326", crs, mapping(g)), 1) for g in geoms if not g.is_empty]


def reference_mask(shapes: list, transform, shape: tuple[int, int]) -> np.ndarray | None:
    """:func:`reference_shapes` -> bool (H,W) on the grid ``transform``: pixels whose centre lies inside;
    None when there are none."""
    if not shapes:
        return None
    from rasterio.features import rasterize

    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8").astype(bool)


def fuse_flood_products(s1_product: str | Path, s2_product: str | Path, out_path: str | Path, *, grid: str,
                        s1_time: datetime | None = None, s2_time: datetime | None = None,
                        window: timedelta = DEFAULT_WINDOW, block: int = 2048,
                        reference_water: list | None = None) -> FusedProduct:
    """The pipeline's fused flood product from two stored flood likelihood products of the same place.

    ``s1_product`` / ``s2_product``: ``<scene>/flood_likelihood.tif`` of an S1 and an S2 scene (band 1
    likelihood 0-100, 255 = excluded; band 2 ``domain.tiles`` exclusion flags, 2 = S2 cloud/shadow).
    ``grid`` (``"s1"`` or ``"s2"``): whose grid (CRS, transform, size) the output takes; the other product
    is read onto it with nearest resampling. Output as :func:`fused_flood_product` (band 1 likelihood
    0-100 / 255, band 2 source code), DEFLATE COG. Processed in ``block`` x ``block`` px windows, so memory
    does not grow with the scene (a full 10980 px S2 tile included). Thin cirrus is not in the stored S2
    flags, so no pixel gets the thin-cloud codes here. ``reference_water`` (lon/lat polygons, e.g.
    ``uow.reference.water(footprint)``): where S1 decides and says dry on it, code 7 "not observable by
    S1" (no estimate) instead of dry."""
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from terrawatch.domain.tiles import EXCLUDED_CLOUD
    from terrawatch.products.cog import INTERMEDIATE_COMPRESSION, LIKELIHOOD_RESAMPLING, to_cog

    if grid not in ("s1", "s2"):
        raise ValueError(f"grid must be 's1' or 's2', got {grid!r}")
    ref_path, other_path = (s1_product, s2_product) if grid == "s1" else (s2_product, s1_product)
    out_path = Path(out_path)
    from terrawatch.ml.fusion import within_window

    use2 = s1_time is None or s2_time is None or within_window(s1_time, s2_time, window)  # else S2's cloud is moot
    counts = np.zeros(len(SOURCE_NAMES), np.int64)
    water = estimated = 0
    s2_used = False
    with rasterio.open(ref_path) as ref, rasterio.open(other_path) as src, \
            WarpedVRT(src, crs=ref.crs, transform=ref.transform, width=ref.width, height=ref.height,
                      resampling=Resampling.nearest, nodata=255) as other:
        profile = dict(driver="GTiff", width=ref.width, height=ref.height, count=2, dtype="uint8", crs=ref.crs,
                       transform=ref.transform, nodata=255, tiled=True, blockxsize=256, blockysize=256,
                       **INTERMEDIATE_COMPRESSION)
        shapes = reference_shapes(reference_water, ref.crs)
        with rasterio.open(out_path, "w", **profile) as dst:
            for row in range(0, ref.height, block):
                for col in range(0, ref.width, block):
                    win = Window(col, row, min(block, ref.width - col), min(block, ref.height - row))
                    a, b = ref.read(window=win), other.read(window=win)  # (2, h, w) each
                    (lk1, fl1), (lk2, fl2) = (a, b) if grid == "s1" else (b, a)
                    p1 = np.where(lk1 == 255, np.nan, lk1 / 100.0).astype(np.float32)
                    p2 = np.where(lk2 == 255, np.nan, lk2 / 100.0).astype(np.float32)
                    ref_w = reference_mask(shapes, window_transform(win, ref.transform),
                                           (int(win.height), int(win.width)))
                    f = fuse_s1_s2(p1, p2, s2_cloud=((fl2 & EXCLUDED_CLOUD) != 0) if use2 else None,
                                   s1_time=s1_time, s2_time=s2_time, window=window, reference_water=ref_w)
                    s2_used = f.s2_used
                    dst.write(f.likelihood, 1, window=win)
                    dst.write(f.source, 2, window=win)
                    counts += np.bincount(f.source.ravel(), minlength=len(SOURCE_NAMES))[:len(SOURCE_NAMES)]
                    water += int(f.water.sum())
                    estimated += int((f.likelihood != 255).sum())
            dst.set_band_description(1, "flood likelihood 0-100 (255 = no estimate)")
            dst.set_band_description(2, "source: " + ", ".join(f"{k} {v}" for k, v in SOURCE_NAMES.items()))
            dst.update_tags(source_codes=";".join(f"{k}={v}" for k, v in SOURCE_NAMES.items()),
                            s1=Path(s1_product).parent.name, s2=Path(s2_product).parent.name, s2_used=str(s2_used),
                            s1_time=s1_time.isoformat() if s1_time else "",
                            s2_time=s2_time.isoformat() if s2_time else "",
                            window_h=str(window.total_seconds() / 3600))
    to_cog(out_path, resampling=LIKELIHOOD_RESAMPLING)  # likelihood averaged, source code by majority
    total = max(int(counts.sum()), 1)
    shares = {SOURCE_NAMES[k]: round(int(n) / total, 5) for k, n in enumerate(counts)}
    return FusedProduct(out_path, shares, round(water / max(estimated, 1), 5), s2_used)
