"""XYZ raster tiles (WebMercatorQuad) of scene products with rio-tiler.

Why rio-tiler (and not TiTiler's factories): the API already owns auth, error mapping and routing; the
tile endpoints need a path-safe lookup of a product by (scene id, product) rather than a ``?url=`` any
client could point at any file, which TiTiler's factories take. rio-tiler does the part worth not
hand-writing: a windowed read through a WarpedVRT that picks the COG overview matching the zoom, so one
tile reads a bounded number of blocks whatever the scene size, plus masks and PNG encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from rio_tiler.colormap import cmap
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

from terrawatch.domain.errors import NotFound
from terrawatch.domain.hazards import HAZARDS
from terrawatch.domain.scene import Sensor

TILE_SIZE = 256
MAX_ZOOM = 22
QUICKLOOK = "quicklook"
FLOOD_FUSED = "flood_fused"  # fused S1 + S2 flood (products/fused.py): band 1 likelihood, band 2 source code
PRODUCTS = (*HAZARDS, FLOOD_FUSED, QUICKLOOK)
FILES = {p: "quicklook.tif" if p == QUICKLOOK else "flood_fused.tif" if p == FLOOD_FUSED else f"{p}_likelihood.tif"
         for p in PRODUCTS}
SCENE_ID = re.compile(r"^(?!\.+$)[A-Za-z0-9._:-]{1,256}$")  # the scene-event schema's id pattern
RAMPS = {"flood": "blues", FLOOD_FUSED: "blues", "deforestation": "ylorrd", "mining": "rdpu"}
COMPOSITES = {"truecolor": (1, 2, 3), "falsecolor": (4, 1, 2), "vvvh": (1, 2, 3)}


class ProductNotFound(NotFound, LookupError):
    """No such product (unknown name, unsafe id or no file); the API answers 404."""


class TileNotFound(NotFound, LookupError):
    """The tile lies outside the product or the tile matrix; the API answers 404."""


def product_file(root: Path, scene_id: str, product: str) -> Path:
    """The COG of ``product`` (a hazard or ``quicklook``) of ``scene_id`` under ``root``.

    The scene id must match the scene-event id pattern and not be ``.``/``..``; the resolved path must
    stay inside ``root`` (no path traversal, no symlink out). Raises :class:`ProductNotFound`."""
    if product not in PRODUCTS:
        raise ProductNotFound(f"no product {product!r}; products: {', '.join(PRODUCTS)}")
    if not SCENE_ID.match(scene_id) or set(scene_id) <= {"."}:
        raise ProductNotFound(f"no scene {scene_id[:64]!r}")
    name = FILES[product]
    base = root.resolve()
    path = (base / scene_id / name).resolve()
    if base not in path.parents or not path.is_file():
        raise ProductNotFound(f"scene {scene_id} has no {product} product")
    return path


@lru_cache(maxsize=8)
def likelihood_colormap(hazard: str) -> dict[int, tuple[int, int, int, int]]:
    """0-100 -> RGBA on the hazard's ramp; opacity rises from 0 at likelihood 0 to 220 at >= 50, so low
    likelihood leaves the basemap visible. 255 (excluded) is the nodata value: transparent."""
    ramp = cmap.get(RAMPS.get(hazard, "viridis"))
    out = {}
    for v in range(101):
        r, g, b, _ = ramp[min(255, round(v * 2.55))]
        out[v] = (r, g, b, int(min(220, v * 4.4)))
    return out


@dataclass(frozen=True)
class TileSetInfo:
    bounds: tuple[float, float, float, float]  # EPSG:4326 west, south, east, north
    minzoom: int
    maxzoom: int
    bands: int


def info(path: Path) -> TileSetInfo:
    """Bounds (lon/lat) and the zoom range that makes sense for the product's resolution."""
    with Reader(str(path)) as r:
        return TileSetInfo(tuple(float(v) for v in r.get_geographic_bounds("epsg:4326")), int(r.minzoom),
                           int(r.maxzoom), int(r.dataset.count))


def render(path: Path, product: str, z: int, x: int, y: int, composite: str | None = None,
           sensor: Sensor | None = None, img_format: str = "PNG") -> bytes:
    """One ``TILE_SIZE`` px PNG/WEBP tile. Likelihood: band 1 through the hazard's colour ramp, excluded
    pixels transparent. Quicklook: the composite's 3 bands, no-data transparent. Raises :class:`TileNotFound`."""
    n = 2 ** z
    if not (0 <= z <= MAX_ZOOM and 0 <= x < n and 0 <= y < n):
        raise TileNotFound(f"tile {z}/{x}/{y} does not exist in WebMercatorQuad")
    try:
        with Reader(str(path)) as r:
            if not r.tile_exists(x, y, z):
                raise TileNotFound(f"tile {z}/{x}/{y} is outside the product")
            if product == QUICKLOOK:
                bands = COMPOSITES[composite or ("vvvh" if r.dataset.count == 3 else "truecolor")]
                if max(bands) > r.dataset.count:
                    raise TileNotFound(f"composite {composite} needs {max(bands)} bands; this quicklook has "
                                       f"{r.dataset.count}")
                img = r.tile(x, y, z, tilesize=TILE_SIZE, indexes=bands)
                return img.render(img_format=img_format)
            img = r.tile(x, y, z, tilesize=TILE_SIZE, indexes=1)
            img.array = np.ma.masked_where(np.ma.getmaskarray(img.array) | (img.array.data > 100), img.array)
            return img.render(img_format=img_format, colormap=likelihood_colormap(product))
    except TileOutsideBounds as exc:
        raise TileNotFound(str(exc)) from exc
