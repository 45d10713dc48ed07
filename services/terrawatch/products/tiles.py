"""XYZ raster tiles (WebMercatorQuad) of scene products with rio-tiler.

Why rio-tiler (and not TiTiler's factories): the API already owns auth, error mapping and routing; the
tile endpoints need a path-safe lookup of a product by (scene id, product) rather than a ``?url=`` any
client could point at any file, which TiTiler's factories take. rio-tiler does the part worth not
hand-writing: a windowed read through a WarpedVRT that picks the COG overview matching the zoom, so one
tile reads a bounded number of blocks whatever the scene size, plus masks and PNG encoding.

Bounded cost per tile (issue 25): rio-tiler warps the tile's whole extent at the resolution of the level it
reads, so a zoomed-out tile of a product read at full resolution warps millions of pixels however small
the product (a 512 px product at z7: a 23,000 px square). Here the level is chosen explicitly
(:func:`read_plan`: the coarsest overview no coarser than the tile), its cost counted before anything is
read (``pixels``: the tile's extent at that level's resolution), and a tile over the cap
(``TERRAWATCH_RASTER_MAX_SOURCE_PIXELS``) is refused (:class:`TileTooCostly`, HTTP 400). The TileJSON's
``minzoom`` is the lowest zoom under the cap, so a map never asks for a refused tile. Products written
with overviews down to 1-2 px (``products/cog.py``) are served from about zoom 2 up; products written
before overviews went that deep are served only from the zooms their own levels allow.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import calculate_default_transform
from rio_tiler.colormap import cmap
from rio_tiler.errors import TileOutsideBounds
from morecantile import Tile
from rio_tiler.io import Reader

from terrawatch.domain.errors import BadRequest, NotFound
from terrawatch.domain.hazards import HAZARDS, STYLES
from terrawatch.domain.products import FILES, FLOOD_FUSED, PRODUCTS, QUICKLOOK, SCENE_ID  # noqa: F401 - used here and by callers
from terrawatch.domain.scene import Sensor

TILE_SIZE = 256
MAX_ZOOM = 22
WEB_MERCATOR = "EPSG:3857"
WORLD_M = 2 * math.pi * 6378137.0  # WebMercatorQuad: the zoom-0 tile's side in metres
# Default cap on pixels read for one tile (Settings.raster_max_source_pixels): 4x the most a tile reads from
# a product with overviews at every power of two (a level up to 2x finer than the tile: 512 x 512 px).
MAX_SOURCE_PIXELS = 1024 * 1024
RENDER_VERSION = "2"  # part of each tile's ETag: bump when the rendering of the same file changes
RAMPS = {h: style.ramp for h, style in STYLES.items()} | {FLOOD_FUSED: STYLES["flood"].ramp}
COMPOSITES = {"truecolor": (1, 2, 3), "falsecolor": (4, 1, 2), "vvvh": (1, 2, 3)}


class ProductNotFound(NotFound, LookupError):
    """No such product (unknown name, unsafe id or no file); the API answers 404."""


class TileNotFound(NotFound, LookupError):
    """The tile lies outside the product or the tile matrix; the API answers 404."""


class CompositeNotApplicable(BadRequest, ValueError):
    """A ``composite`` asked of a product it does not apply to; the API answers 400 naming the ones that do."""


# Which composites a quicklook has, by its band count (products/quicklook.py): S1 VV/VH/ratio, S2 B4/B3/B2/B8.
QUICKLOOK_COMPOSITES = {3: ("vvvh",), 4: ("truecolor", "falsecolor")}


def quicklook_bands(product: str, band_count: int, composite: str | None) -> tuple[int, ...] | None:
    """The band indexes to render for ``composite`` (None for a likelihood product without one). A composite on
    a likelihood product, or one the quicklook does not have (falsecolor of an S1 scene, vvvh of S2), is a
    :class:`CompositeNotApplicable` - never silently another composite."""
    if product != QUICKLOOK:
        if composite:
            raise CompositeNotApplicable(f"composite applies to the quicklook only, not to {product}")
        return None
    have = QUICKLOOK_COMPOSITES.get(band_count, ())
    if composite is None:
        if not have:
            raise CompositeNotApplicable(f"this quicklook has {band_count} bands; no composite applies")
        return COMPOSITES[have[0]]
    if composite not in have:
        raise CompositeNotApplicable(f"composite {composite} does not apply to this quicklook; it has: "
                                     f"{', '.join(have) or 'none'}")
    return COMPOSITES[composite]


class TileTooCostly(BadRequest, ValueError):
    """The tile would read more pixels than the cap (a zoom below the layer's minzoom); the API answers 400."""


@dataclass(frozen=True)
class Level:
    """One resolution level of a product COG: the full resolution (``overview`` -1) or an overview."""

    overview: int  # -1 = full resolution, k = k-th internal overview (rasterio's ``overview_level``)
    factor: int  # decimation factor (1 = full resolution)
    width: int
    height: int
    res_m: float  # pixel size in EPSG:3857 metres, as rio-tiler computes it for its warped read


@dataclass(frozen=True)
class ReadPlan:
    """What one tile at zoom ``z`` reads: ``level``, and ``pixels`` = the tile's extent at that level's
    resolution (the warp's working size; it bounds both the CPU and the memory of the read)."""

    z: int
    level: Level
    pixels: int


@lru_cache(maxsize=256)
def _levels(path: str, _mtime_ns: int, _size: int) -> tuple[Level, ...]:
    out = []
    with rasterio.open(path) as ds:
        crs, bounds, factors = ds.crs, ds.bounds, [1, *ds.overviews(1)]
    for k, f in enumerate(factors):
        with rasterio.open(path, **({"overview_level": k - 1} if k else {})) as lv:  # its true size
            w, h = lv.width, lv.height
        t, _, _ = calculate_default_transform(crs, WEB_MERCATOR, w, h, *bounds)
        out.append(Level(k - 1, f, w, h, float(abs(t.a))))
    return tuple(out)


def levels(path: Path) -> tuple[Level, ...]:
    """The product's levels, full resolution first (cached per file version)."""
    st = Path(path).stat()
    return _levels(str(path), st.st_mtime_ns, st.st_size)


def read_plan(path: Path, z: int) -> ReadPlan:
    """The level a tile at zoom ``z`` reads and how many pixels that costs, computed before any read.

    The level is the coarsest one whose pixels are no larger than the tile's (a tile never upsamples a
    coarse overview while a finer level exists); below the coarsest level the tile's extent at that level
    grows 4x per zoom out, which is what the cap bounds."""
    tile_res = WORLD_M / (TILE_SIZE * 2 ** z)
    lv = levels(path)
    fine_enough = [lvl for lvl in lv if lvl.res_m <= tile_res * (1 + 1e-9)]
    level = fine_enough[-1] if fine_enough else lv[0]
    side = max(TILE_SIZE, round(WORLD_M / 2 ** z / level.res_m))
    return ReadPlan(z, level, side * side)


def min_zoom(path: Path, max_pixels: int = MAX_SOURCE_PIXELS, maxzoom: int = MAX_ZOOM) -> int:
    """The lowest zoom whose tile reads at most ``max_pixels`` (``maxzoom`` if none does)."""
    for z in range(0, maxzoom + 1):
        if read_plan(path, z).pixels <= max_pixels:
            return z
    return maxzoom


def check_tile(path: Path, z: int, x: int, y: int, max_pixels: int = MAX_SOURCE_PIXELS) -> ReadPlan:
    """The :class:`ReadPlan` of tile ``z/x/y``: :class:`TileNotFound` outside the tile matrix,
    :class:`TileTooCostly` when it reads over ``max_pixels``; nothing is read (arithmetic on the cached
    levels)."""
    n = 2 ** z if 0 <= z <= MAX_ZOOM else 0
    if not (0 <= x < n and 0 <= y < n):
        raise TileNotFound(f"tile {z}/{x}/{y} does not exist in WebMercatorQuad")
    plan = read_plan(path, z)
    if plan.pixels > max_pixels:
        coarsest = levels(path)[-1]
        raise TileTooCostly(
            f"z: a tile at zoom {z} of this product would read {plan.pixels} pixels (its coarsest level has "
            f"{coarsest.width} x {coarsest.height} px), over the cap of {max_pixels} "
            f"(TERRAWATCH_RASTER_MAX_SOURCE_PIXELS); this layer starts at zoom {min_zoom(path, max_pixels)} "
            "(the TileJSON's minzoom)")
    return plan


def tile_key(path: Path, *params: object) -> tuple:
    """The cache key of a tile of ``path``: ``("raster", renderer version, path, inode, size, mtime_ns,
    *params)`` - the file's version plus every request parameter that changes the bytes (the caller passes
    product, z, x, y, format, composite, cap). A rewritten product (new inode/size/mtime) is a new key."""
    st = Path(path).stat()
    return ("raster", RENDER_VERSION, str(path), st.st_ino, st.st_size, st.st_mtime_ns, *params)


def etag(path: Path, *params: object) -> str:
    """A strong ETag for a tile of ``path``: a hash of :func:`tile_key` (the file's version, the request's
    parameters and the renderer's version), so a rewritten product or another cap gives a new tag."""
    return '"' + hashlib.sha256(repr(tile_key(path, *params)).encode()).hexdigest()[:32] + '"'


@lru_cache(maxsize=4)
def empty_tile(img_format: str = "PNG") -> bytes:
    """A fully transparent ``TILE_SIZE`` px tile (PNG or WEBP): the answer for a tile inside the TileJSON
    ``bounds`` that misses the product's footprint (a corner of a tilted UTM raster's lon/lat box)."""
    from rio_tiler.utils import render as encode

    return encode(np.zeros((1, TILE_SIZE, TILE_SIZE), np.uint8), mask=np.zeros((TILE_SIZE, TILE_SIZE), np.uint8),
                  img_format=img_format)


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


def info(path: Path, max_pixels: int = MAX_SOURCE_PIXELS) -> TileSetInfo:
    """Bounds (lon/lat) and the zoom range: ``maxzoom`` from the product's resolution (rio-tiler),
    ``minzoom`` the lowest zoom whose tile stays under ``max_pixels`` given the product's overviews."""
    with Reader(str(path)) as r:
        maxzoom = int(r.maxzoom)
        return TileSetInfo(tuple(float(v) for v in r.get_geographic_bounds("epsg:4326")),
                           min_zoom(path, max_pixels, maxzoom), maxzoom, int(r.dataset.count))


def render(path: Path, product: str, z: int, x: int, y: int, composite: str | None = None,
           sensor: Sensor | None = None, img_format: str = "PNG",
           max_pixels: int = MAX_SOURCE_PIXELS) -> bytes:
    """One ``TILE_SIZE`` px PNG/WEBP tile. Likelihood: band 1 through the hazard's colour ramp, excluded
    pixels transparent. Quicklook: the composite's 3 bands, no-data transparent. Reads only the level of
    :func:`read_plan`. Raises :class:`TileNotFound`, or :class:`TileTooCostly` over ``max_pixels``."""
    return render_planned(path, product, z, x, y, composite, img_format=img_format, max_pixels=max_pixels)[0]


def render_planned(path: Path, product: str, z: int, x: int, y: int, composite: str | None = None,
                   img_format: str = "PNG", max_pixels: int = MAX_SOURCE_PIXELS) -> tuple[bytes, ReadPlan]:
    """:func:`render` and the :class:`ReadPlan` it followed (which level, how many pixels). A tile inside the
    product's lon/lat bounds (the TileJSON's) that misses its footprint is :func:`empty_tile` with
    ``pixels`` 0 (nothing read); one outside the bounds is :class:`TileNotFound`."""
    plan = check_tile(path, z, x, y, max_pixels)
    try:
        opts = {"overview_level": plan.level.overview} if plan.level.overview >= 0 else {}
        with rasterio.open(path, **opts) as ds, Reader(str(path), dataset=ds) as r:
            bands = quicklook_bands(product, r.dataset.count, composite)  # a wrong composite is 400 anywhere
            if not r.tile_exists(x, y, z):
                # Inside the TileJSON bounds (the footprint's lon/lat box) a map asks for it: empty, not 404.
                w, s, e, n = r.get_geographic_bounds("epsg:4326")
                tw, ts, te, tn = r.tms.bounds(Tile(x, y, z))
                if tw < e and te > w and ts < n and tn > s:
                    return empty_tile(img_format), ReadPlan(z, plan.level, 0)
                raise TileNotFound(f"tile {z}/{x}/{y} is outside the product's bounds")
            if bands is not None:
                img = r.tile(x, y, z, tilesize=TILE_SIZE, indexes=bands)
                return img.render(img_format=img_format), plan
            img = r.tile(x, y, z, tilesize=TILE_SIZE, indexes=1)
            img.array = np.ma.masked_where(np.ma.getmaskarray(img.array) | (img.array.data > 100), img.array)
            return img.render(img_format=img_format, colormap=likelihood_colormap(product)), plan
    except TileOutsideBounds as exc:
        raise TileNotFound(str(exc)) from exc
