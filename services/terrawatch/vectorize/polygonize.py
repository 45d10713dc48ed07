"""Turn a per-pixel hazard mask into detection polygons in EPSG:4326.

Input rasters are in the scene's CRS with an affine ``transform``; output
geometries are lon/lat (EPSG:4326) with geodesic areas in hectares.
"""

from __future__ import annotations

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.crs import CRS as RioCRS
from shapely.geometry import shape
from shapely.ops import transform as shp_transform

from terrawatch.domain.polygons import Detection, as_multipolygon, geodesic_area_ha


def polygonize(
    mask: np.ndarray,
    likelihood: np.ndarray,
    transform: Affine,
    crs: RioCRS | str,
    hazard: str,
    min_area_ha: float,
    simplify_px: float = 0.5,
) -> list[Detection]:
    """Connected regions (8-connectivity) of ``mask`` (H, W bool) as detections.

    ``likelihood`` is (H, W) uint8 0-100; each detection carries its mean inside
    the region. Regions smaller than ``min_area_ha`` (geodesic) are dropped.
    Polygons are simplified by ``simplify_px`` pixels, topology preserved.
    """
    if mask.dtype != np.uint8:
        mask = mask.astype(np.uint8)
    if not mask.any():
        return []
    labels, n = _label(mask)
    to_wgs84 = Transformer.from_crs(CRS.from_user_input(str(crs)), "EPSG:4326", always_xy=True)
    tolerance = simplify_px * abs(transform.a)
    sums = np.bincount(labels.ravel(), weights=likelihood.ravel().astype(np.float64), minlength=n + 1)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    parts: dict[int, list] = {}
    for geom, value in rasterio.features.shapes(labels, mask=labels > 0, transform=transform, connectivity=8):
        parts.setdefault(int(value), []).append(shape(geom))
    out: list[Detection] = []
    for label, polys in sorted(parts.items()):
        geom = shapely.union_all(polys)
        if tolerance > 0:
            geom = geom.simplify(tolerance, preserve_topology=True)
        geom = as_multipolygon(shp_transform(to_wgs84.transform, geom))
        if geom.is_empty:
            continue
        area = geodesic_area_ha(geom)
        if area < min_area_ha:
            continue
        out.append(Detection(hazard=hazard, geometry=geom, area_ha=area,
                             likelihood=float(sums[label] / counts[label]), pixels=int(counts[label])))
    return out


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    return labels.astype(np.int32), int(n)
