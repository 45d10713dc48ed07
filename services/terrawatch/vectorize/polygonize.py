"""Turn per-pixel hazard masks into detection polygons in EPSG:4326.

Tiles are polygonized where they are inferred, in *pixel coordinates of the
scene grid* (integers, so polygons of neighbouring tiles share exact edges);
the driver then merges parts that touch across tile borders, applies the
minimum mapping unit and reprojects to lon/lat with geodesic areas in ha.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
import shapely.affinity
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.crs import CRS as RioCRS
from scipy import ndimage
from shapely.geometry import shape

from terrawatch.domain.polygons import Detection, as_multipolygon, geodesic_area_ha

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class PixelPart:
    """A connected region of one tile core, in scene pixel coordinates (x = col, y = row)."""

    geom: shapely.Geometry
    likelihood_sum: float
    pixels: int
    on_border: bool  # touches the core's edge, so it may continue in a neighbouring tile


def tile_parts(mask: np.ndarray, likelihood: np.ndarray, row: int, col: int) -> list[PixelPart]:
    """Connected regions (8-connectivity) of a core ``mask`` (h, w) whose top-left is (row, col)."""
    if not mask.any():
        return []
    labels, n = ndimage.label(mask, structure=_EIGHT)
    labels = labels.astype(np.int32)
    sums = np.bincount(labels.ravel(), weights=likelihood.ravel().astype(np.float64), minlength=n + 1)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    h, w = mask.shape
    edge = np.zeros(n + 1, dtype=bool)
    for strip in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        edge[strip] = True
    polys: dict[int, list] = {}
    for geom, value in rasterio.features.shapes(labels, mask=labels > 0, transform=Affine.translation(col, row),
                                                connectivity=8):
        polys.setdefault(int(value), []).append(shape(geom))
    # 8-connected regions can pinch at a vertex; make_valid splits them there without losing area.
    return [PixelPart(shapely.make_valid(shapely.union_all(p)), float(sums[k]), int(counts[k]), bool(edge[k]))
            for k, p in sorted(polys.items())]


def merge_parts(parts: list[PixelPart]) -> list[PixelPart]:
    """Union border parts that touch across tile borders (edge or corner); interior parts pass through."""
    inner = [p for p in parts if not p.on_border]
    border = [p for p in parts if p.on_border]
    if not border:
        return inner
    tree = shapely.STRtree([p.geom for p in border])
    left, right = tree.query([p.geom for p in border], predicate="intersects")
    parent = list(range(len(border)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(left, right):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[PixelPart]] = {}
    for i, p in enumerate(border):
        groups.setdefault(find(i), []).append(p)
    merged = [PixelPart(shapely.make_valid(shapely.union_all([p.geom for p in g])), sum(p.likelihood_sum for p in g),
                        sum(p.pixels for p in g), True) for g in groups.values()]
    return inner + merged


def to_detections(parts: list[PixelPart], transform: Affine, crs: RioCRS | str, hazard: str,
                  min_area_ha: float, simplify_px: float = 0.5) -> list[Detection]:
    """Pixel-space parts -> EPSG:4326 detections >= ``min_area_ha`` (geodesic), simplified by ``simplify_px``."""
    to_wgs84 = Transformer.from_crs(CRS.from_user_input(str(crs)), "EPSG:4326", always_xy=True)
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    out = []
    for p in parts:
        geom = p.geom.simplify(simplify_px, preserve_topology=True) if simplify_px > 0 else p.geom
        geom = shapely.affinity.affine_transform(geom, [a, b, d, e, c, f])
        geom = as_multipolygon(shapely.transform(geom, to_wgs84.transform, interleaved=False))
        if geom.is_empty:
            continue
        area = geodesic_area_ha(geom)
        if area < min_area_ha:
            continue
        out.append(Detection(hazard=hazard, geometry=geom, area_ha=area,
                             likelihood=p.likelihood_sum / max(p.pixels, 1), pixels=p.pixels))
    out.sort(key=lambda det: -det.area_ha)
    return out


def polygonize(mask: np.ndarray, likelihood: np.ndarray, transform: Affine, crs: RioCRS | str, hazard: str,
               min_area_ha: float, simplify_px: float = 0.5) -> list[Detection]:
    """Whole-raster convenience: ``mask`` (H, W) bool, ``likelihood`` (H, W) 0-100 -> detections."""
    return to_detections(tile_parts(mask.astype(bool), likelihood, 0, 0), transform, crs, hazard, min_area_ha,
                         simplify_px)
