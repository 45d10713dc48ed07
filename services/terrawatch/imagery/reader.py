"""Windowed raster reading for scene bands (GeoTIFF/COG via rasterio).

Only windows are read, never whole rasters. Output arrays are float32
(bands, size, size) on the grid of the scene's finest band; pixels outside the
raster or equal to its nodata are NaN. S1 is returned in dB (linear sigma0 is
converted), S2 as reflectance x 10000 (DN with the baseline offset removed),
always in the 13-band L1C order: an L2A scene has no B10, which stays NaN
(``SceneReader.present`` says which bands exist). An L2A ``SCL`` band is read
with nearest-neighbour resampling as a mask (``SceneReader.read_mask``); so is the per-scene L1C
cloud/shadow mask (``products/cloud_mask.py``) given as ``cloud_mask``. ``read_decimated`` reads a
whole scene coarsened (area average through a WarpedVRT) for per-scene models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds
from shapely.geometry import box

from terrawatch.domain.errors import UnreadableAsset
from terrawatch.domain.scene import S1_BANDS, S2_BANDS, SCL_CLOUD, SCL_NODATA, BandRef, Scene, Sensor
from terrawatch.domain.tiles import EXCLUDED_CLOUD, EXCLUDED_NODATA

MAX_PIXELS = 60_000 * 60_000  # larger headers are refused as hostile or corrupt


def rasterio_path(href: str) -> str:
    """Map an asset href (file://, https://, s3://) to a path GDAL can open."""
    u = urlparse(href)
    if u.scheme == "file":
        return u.path
    if u.scheme in ("http", "https"):
        return f"/vsicurl/{href}"
    if u.scheme == "s3":
        return f"/vsis3/{u.netloc}{u.path}"
    raise UnreadableAsset(f"unsupported href scheme {u.scheme!r} in {href}")


@dataclass(frozen=True)
class Grid:
    """The pixel grid a scene is processed on."""

    width: int
    height: int
    transform: Affine
    crs: CRS

    @property
    def pixel_size(self) -> float:
        return abs(self.transform.a)


class SceneReader:
    """Opens a scene's band assets once and reads tile windows from them."""

    def __init__(self, scene: Scene, grid: Grid | None = None, cloud_mask: str | None = None) -> None:
        """Open ``scene``'s bands; read them on ``grid`` (e.g. another scene's) or on the finest band's.
        ``cloud_mask``: path of the scene's uint8 cloud-mask GeoTIFF (EXCLUDED_CLOUD flags, any grid in
        the scene's CRS), merged into :meth:`read_mask`."""
        self.scene = scene
        self._ds: dict[str, rasterio.io.DatasetReader] = {}
        self._cloud = None
        try:
            for band in (*scene.bands, *scene.mask_bands):
                ds = self._open(band.href)
                if band.index > ds.count:
                    raise UnreadableAsset(f"wrong band count: {band.href} has {ds.count} bands, "
                                          f"band {band.name} expects index {band.index}")
                if ds.crs is None:
                    raise UnreadableAsset(f"asset {band.href} has no CRS")
                _check_overlap(ds, band.href, scene.footprint)
        except UnreadableAsset:
            self.close()
            raise
        # The processing grid is the finest band's (10 m for S2, whatever S1 has).
        ref = min(self._ds.values(), key=lambda d: abs(d.transform.a))
        self.grid = grid or Grid(ref.width, ref.height, ref.transform, ref.crs)
        if cloud_mask is not None:  # written by this service (products/cloud_mask.py), not an event's asset
            try:
                self._cloud = rasterio.open(cloud_mask)
            except (RasterioError, OSError) as exc:
                self.close()
                raise UnreadableAsset(f"cannot open the scene cloud mask {cloud_mask}: {exc}") from exc
        names = S1_BANDS if scene.sensor is Sensor.S1 else S2_BANDS
        by_name = {b.name: b for b in scene.bands}
        self._order: tuple[BandRef | None, ...] = tuple(by_name.get(n) for n in names)
        self.present = np.array([b is not None for b in self._order])  # (bands,) bool: band exists in the scene
        self.mask_band = scene.mask_band

    def _open(self, href: str) -> rasterio.io.DatasetReader:
        if href not in self._ds:
            try:
                ds = rasterio.open(rasterio_path(href))
            except (RasterioError, OSError) as exc:
                raise UnreadableAsset(f"cannot open asset {href}: {exc}") from exc
            if ds.width * ds.height > MAX_PIXELS:
                ds.close()
                raise UnreadableAsset(f"asset {href} declares {ds.width}x{ds.height} px, over the limit")
            self._ds[href] = ds
        return self._ds[href]

    def close(self) -> None:
        for ds in self._ds.values():
            ds.close()
        self._ds.clear()
        if self._cloud is not None:
            self._cloud.close()
            self._cloud = None

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, row: int, col: int, size: int) -> np.ndarray:
        """Bands (B, size, size) float32 for the window at (row, col) of the scene grid.

        B = 2 (VV, VH) for S1, 13 (L1C order) for S2; bands the scene lacks (L2A: B10) are NaN."""
        out = np.full((len(self._order), size, size), np.nan, dtype=np.float32)
        for i, band in enumerate(self._order):
            if band is not None:
                out[i] = _to_physical(self._read_band(band, row, col, size), band.units, self.scene)
        return out

    def read_mask(self, row: int, col: int, size: int) -> np.ndarray | None:
        """(size, size) uint8 exclusion flags from the L2A ``SCL`` band (domain.tiles EXCLUDED_NODATA for SCL
        0/1, EXCLUDED_CLOUD for cloud shadow, medium/high-probability cloud, thin cirrus) and/or the scene's
        cloud-mask raster (its EXCLUDED_CLOUD flags, nearest resampling; outside it: no flag), or None
        without either. Outside the SCL raster: EXCLUDED_NODATA."""
        if self.mask_band is None and self._cloud is None:
            return None
        out = np.zeros((size, size), dtype=np.uint8)
        if self.mask_band is not None:
            scl = self._read_band(self.mask_band, row, col, size, Resampling.nearest)
            out[np.isnan(scl) | np.isin(scl, SCL_NODATA)] = EXCLUDED_NODATA
            out[np.isin(scl, SCL_CLOUD)] = EXCLUDED_CLOUD
        if self._cloud is not None:
            try:
                m = self._read_resampled(self._cloud, 1, row, col, size, Resampling.nearest)
            except RasterioError as exc:
                raise UnreadableAsset(f"cannot read the scene cloud mask {self._cloud.name}: {exc}") from exc
            out[(np.nan_to_num(m, nan=0.0).astype(np.uint8) & EXCLUDED_CLOUD) != 0] |= EXCLUDED_CLOUD
        return out

    def _read_band(self, band: BandRef, row: int, col: int, size: int,
                   resampling: Resampling = Resampling.bilinear) -> np.ndarray:
        ds = self._open(band.href)
        try:
            if (ds.transform == self.grid.transform and ds.crs == self.grid.crs
                    and (ds.width, ds.height) == (self.grid.width, self.grid.height)):
                return _read_same_grid(ds, band.index, row, col, size)
            return self._read_resampled(ds, band.index, row, col, size, resampling)
        except RasterioError as exc:
            raise UnreadableAsset(f"cannot read {band.name} from {band.href}: {exc}") from exc

    def _read_resampled(self, ds, index: int, row: int, col: int, size: int,
                        resampling: Resampling = Resampling.bilinear) -> np.ndarray:
        if ds.crs != self.grid.crs:  # e.g. a pre-event scene in a neighbouring UTM zone
            ds = WarpedVRT(ds, crs=self.grid.crs, resampling=resampling)
        t = self.grid.transform
        x0, y0 = t * (col, row)
        x1, y1 = t * (col + size, row + size)
        win = from_bounds(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), ds.transform)
        return _read_resampled_window(ds, index, win, size, resampling)


def grid_gsd_m(grid: Grid) -> float:
    """Pixel size of ``grid`` in metres (projected CRS: its unit, metres for UTM; geographic: degrees x 111.32 km,
    the metres of a degree of latitude)."""
    return grid.pixel_size * (111_320.0 if grid.crs.is_geographic else 1.0)


def read_decimated(scene: Scene, grid: Grid, factor: int) -> tuple[np.ndarray, Affine]:
    """The whole scene on ``grid`` coarsened ``factor`` times: (B, ceil(H/f), ceil(W/f)) float32 in the units of
    :meth:`SceneReader.read` (same band order, missing bands NaN), and its affine transform (grid CRS).

    Area-average resampling through a GDAL WarpedVRT, one band at a time (like the quicklook), so memory is
    the output array, B x (H/f) x (W/f) x 4 bytes (13 bands of a 10980 px S2 tile at f=6: 174 MB)."""
    f = max(1, int(factor))
    width, height = math.ceil(grid.width / f), math.ceil(grid.height / f)
    transform = grid.transform @ Affine.scale(f)
    names = S1_BANDS if scene.sensor is Sensor.S1 else S2_BANDS
    by_name = {b.name: b for b in scene.bands}
    out = np.full((len(names), height, width), np.nan, dtype=np.float32)
    vrts: dict[str, WarpedVRT] = {}
    srcs: list = []
    try:
        for i, name in enumerate(names):
            band = by_name.get(name)
            if band is None:
                continue
            if band.href not in vrts:
                try:
                    src = rasterio.open(rasterio_path(band.href))
                except (RasterioError, OSError) as exc:
                    raise UnreadableAsset(f"cannot open asset {band.href}: {exc}") from exc
                srcs.append(src)
                vrts[band.href] = WarpedVRT(src, crs=grid.crs, transform=transform, width=width, height=height,
                                            resampling=Resampling.average, src_nodata=src.nodata, nodata=src.nodata)
            try:
                arr = vrts[band.href].read(band.index, masked=True).astype(np.float32)
            except RasterioError as exc:
                raise UnreadableAsset(f"cannot read {name} from {band.href}: {exc}") from exc
            out[i] = _to_physical(np.where(np.ma.getmaskarray(arr), np.nan, arr.data), band.units, scene)
    finally:
        for v in vrts.values():
            v.close()
        for s in srcs:
            s.close()
    return out, transform


def _read_resampled_window(ds, index: int, win: Window, size: int,
                           resampling: Resampling = Resampling.bilinear) -> np.ndarray:
    """(size, size) float32 from the fractional source window ``win`` (bilinear, nearest for masks); NaN outside.

    Only the part of the output whose footprint lies inside the raster is read, with a bounded
    read: rasterio's ``boundless=True`` builds a VRT per call, and a reader's RSS grew ~3 MB per
    100 such reads (bench/bench_scale.py, full-size S2 tile), i.e. with the scene's size.
    """
    out = np.full((size, size), np.nan, dtype=np.float32)
    sx, sy = win.width / size, win.height / size  # source pixels per output pixel
    eps = 1e-6
    c0, r0 = max(0, math.ceil(-win.col_off / sx - eps)), max(0, math.ceil(-win.row_off / sy - eps))
    c1 = min(size, math.floor((ds.width - win.col_off) / sx + eps))
    r1 = min(size, math.floor((ds.height - win.row_off) / sy + eps))
    if c1 <= c0 or r1 <= r0:
        return out
    sub = Window(win.col_off + c0 * sx, win.row_off + r0 * sy, (c1 - c0) * sx, (r1 - r0) * sy)
    arr = ds.read(index, window=sub, out_shape=(r1 - r0, c1 - c0), masked=True, resampling=resampling)
    out[r0:r1, c0:c1] = np.where(np.ma.getmaskarray(arr), np.nan, arr.data)
    return out


def _check_overlap(ds, href: str, footprint) -> None:
    """Refuse a raster whose extent (in its CRS, taken to lon/lat) misses the event's EPSG:4326 footprint:
    a wrong CRS tag or geotransform, which would otherwise put detections somewhere else on Earth."""
    try:
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    except Exception as exc:  # noqa: BLE001 - PROJ/GDAL raise several types for impossible coordinates
        raise UnreadableAsset(f"asset {href}: extent not locatable from {ds.crs} ({exc}); wrong CRS?") from exc
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise UnreadableAsset(f"asset {href}: extent not locatable from {ds.crs}; wrong CRS?")
    if w <= e and not box(w, s, e, n).intersects(footprint.buffer(0.01)):  # w > e: crosses the antimeridian
        raise UnreadableAsset(
            f"asset {href} ({ds.crs.to_string()}) covers lon {w:.4g}..{e:.4g}, lat {s:.4g}..{n:.4g}, outside "
            "the scene footprint: wrong CRS or geotransform")


def _read_same_grid(ds, index: int, row: int, col: int, size: int) -> np.ndarray:
    out = np.full((size, size), np.nan, dtype=np.float32)
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + size, ds.height), min(col + size, ds.width)
    if r1 <= r0 or c1 <= c0:
        return out
    data = ds.read(index, window=Window(c0, r0, c1 - c0, r1 - r0)).astype(np.float32)
    if ds.nodata is not None and not np.isnan(ds.nodata):
        data[data == ds.nodata] = np.nan
    out[r0 - row : r1 - row, c0 - col : c1 - col] = data
    return out


def _to_physical(arr: np.ndarray, units: str, scene: Scene) -> np.ndarray:
    if units == "linear":
        with np.errstate(divide="ignore", invalid="ignore"):
            arr = np.where(arr > 0, 10.0 * np.log10(arr), np.nan).astype(np.float32)
    elif units == "reflectance_x10000":
        arr = np.where(arr == 0, np.nan, arr)
        if scene.processing_baseline and _baseline(scene.processing_baseline) >= (4, 0):
            arr = arr - 1000.0
    return arr


def _baseline(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return (0, 0)
