"""Sentinel Hub (Process API + Catalog API) as an imagery source, via the ``sentinelhub`` package.

Works against Sentinel Hub (``services.sentinel-hub.com``) and the Copernicus Data
Space Ecosystem (``sh.dataspace.copernicus.eu``, the default), which speak the same
API. OAuth client credentials and URLs come from ``TERRAWATCH_SH_*`` settings.

Per scene the Catalog API (STAC ``/search``) lists acquisitions; the Process API
renders the bands on a UTM grid (default 10 m) as GeoTIFF, at most ``sh_max_px``
pixels a side per request, mosaicked into one local tiled GeoTIFF. The
resulting STAC Item points at that file (``file://``; on a Ray cluster put
``cache_dir`` on storage all nodes see).

Units and bands:

- S2 L1C: 13 bands B01..B12 incl. B8A and B10, ``DN`` as UINT16 = reflectance x 10000
  with ``harmonizeValues`` on (Sentinel Hub removes the baseline >= 04.00 offset,
  so the Item carries no ``s2:processing_baseline``); 0 = no data (``dataMask``).
- S2 L2A: 12 bands (no B10): flood and deforestation run on it, mining (L1C-only) is skipped.
- S1 GRD IW: VV, VH sigma0 (ellipsoid, orthorectified) as FLOAT32 in dB
  (``10 log10``) or linear power; NaN = no data (swath edges).

Retries: HTTP 5xx and connection errors up to ``sh_max_attempts`` with exponential
backoff (from ``sh_retry_base_s``); 429 waits for ``Retry-After`` (ms) and counts
against the same budget.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from sentinelhub import (
    CRS, BBox, DataCollection, MimeType, MosaickingOrder, SentinelHubCatalog, SentinelHubDownloadClient,
    SentinelHubRequest, SHConfig,
)
from sentinelhub.exceptions import DownloadFailedException, OutOfRequestsException
from shapely.geometry import box, mapping, shape

from terrawatch.domain.errors import InvalidEvent, TransientError
from terrawatch.settings import Settings

S2_L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
S2_L2A_BANDS = tuple(b for b in S2_L1C_BANDS if b != "B10")
S1_BANDS = ("VV", "VH")


@dataclass(frozen=True)
class Product:
    """One Sentinel Hub data product as terrawatch reads it."""

    key: str
    collection: DataCollection
    bands: tuple[str, ...]  # Sentinel Hub band names, in output order
    platform_prefix: str

    @property
    def terrawatch_bands(self) -> list[str]:
        """Band names as in ``domain.scene`` (B01 -> B1, VV stays VV)."""
        return [b if not b.startswith("B") else "B" + b[1:].lstrip("0") for b in self.bands]


PRODUCTS = {
    "sentinel-2-l1c": Product("sentinel-2-l1c", DataCollection.SENTINEL2_L1C, S2_L1C_BANDS, "sentinel-2"),
    "sentinel-2-l2a": Product("sentinel-2-l2a", DataCollection.SENTINEL2_L2A, S2_L2A_BANDS, "sentinel-2"),
    "sentinel-1-grd": Product("sentinel-1-grd", DataCollection.SENTINEL1_IW, S1_BANDS, "sentinel-1"),
}


def evalscript_s2(bands: tuple[str, ...]) -> str:
    """Evalscript: S2 bands as DN (UINT16, reflectance x 10000), 0 where ``dataMask`` is 0."""
    listed = ", ".join(f'"{b}"' for b in bands)
    values = ", ".join(f"s.{b}" for b in bands)
    zeros = ", ".join("0" for _ in bands)
    return f"""//VERSION=3
function setup() {{
  return {{
    input: [{{bands: [{listed}, "dataMask"], units: "DN"}}],
    output: {{bands: {len(bands)}, sampleType: "UINT16"}}
  }};
}}
function evaluatePixel(s) {{
  if (s.dataMask == 0) {{ return [{zeros}]; }}
  return [{values}];
}}
"""


def evalscript_s1(db: bool = True) -> str:
    """Evalscript: S1 VV, VH sigma0 as FLOAT32 dB (or linear power); NaN where ``dataMask`` is 0 or sigma0 <= 0."""
    conv = "(v > 0 ? 10 * Math.log(v) / Math.LN10 : NaN)" if db else "v"
    return f"""//VERSION=3
function setup() {{
  return {{
    input: [{{bands: ["VV", "VH", "dataMask"], units: "LINEAR_POWER"}}],
    output: {{bands: 2, sampleType: "FLOAT32"}}
  }};
}}
function conv(v) {{ return {conv}; }}
function evaluatePixel(s) {{
  if (s.dataMask == 0) {{ return [NaN, NaN]; }}
  return [conv(s.VV), conv(s.VH)];
}}
"""


def sh_config(settings: Settings) -> SHConfig:
    """``SHConfig`` from ``TERRAWATCH_SH_*`` settings (never from ~/.config/sentinelhub)."""
    cfg = SHConfig(use_defaults=True)
    cfg.sh_client_id = settings.sh_client_id
    cfg.sh_client_secret = settings.sh_client_secret
    cfg.sh_base_url = settings.sh_base_url.rstrip("/")
    cfg.sh_token_url = settings.sh_token_url
    cfg.max_download_attempts = settings.sh_max_attempts
    cfg.max_retries = settings.sh_max_attempts  # 429 responses also stop after this many tries
    cfg.download_sleep_time = settings.sh_retry_base_s
    cfg.download_timeout_seconds = settings.sh_timeout_s
    return cfg


def _collection(product: Product, base_url: str) -> DataCollection:
    """The product's collection bound to ``base_url`` (Sentinel Hub binds collections to a deployment)."""
    if product.collection.service_url and product.collection.service_url.rstrip("/") == base_url:
        return product.collection
    tag = hashlib.sha1(base_url.encode()).hexdigest()[:10]
    return product.collection.define_from(f"TW_{product.collection.name}_{tag}", service_url=base_url)


def pixel_windows(width: int, height: int, max_px: int) -> Iterator[Window]:
    """Windows of at most ``max_px`` x ``max_px`` covering a ``width`` x ``height`` raster, row-major."""
    for r in range(0, height, max_px):
        for c in range(0, width, max_px):
            yield Window(c, r, min(max_px, width - c), min(max_px, height - r))


class SentinelHub:
    """Catalog search and Process API rendering for one Sentinel Hub deployment."""

    def __init__(self, settings: Settings) -> None:
        if not (settings.sh_client_id and settings.sh_client_secret):
            raise ValueError("Sentinel Hub needs TERRAWATCH_SH_CLIENT_ID and TERRAWATCH_SH_CLIENT_SECRET")
        self.s = settings
        self.config = sh_config(settings)

    # Catalog ---------------------------------------------------------------------------------------------------
    def search(self, product: str, bbox_wgs84: tuple[float, float, float, float], start: datetime, end: datetime,
               max_cloud: float | None = None) -> list[dict[str, Any]]:
        """Catalog API STAC search: features (dicts) of ``product`` over a lon/lat bbox in [start, end]."""
        p = PRODUCTS[product]
        catalog = SentinelHubCatalog(config=self.config)
        flt = f"eo:cloud_cover < {max_cloud}" if max_cloud is not None and p.platform_prefix == "sentinel-2" else None
        try:
            return list(catalog.search(p.collection.catalog_id, bbox=BBox(bbox_wgs84, CRS.WGS84),
                                       time=(start, end), filter=flt, limit=100))
        except (DownloadFailedException, OutOfRequestsException, OAuth2Error) as exc:
            raise _classify(exc, "Sentinel Hub Catalog search") from exc

    # Process ---------------------------------------------------------------------------------------------------
    def process_request(self, product: str, bounds: tuple[float, float, float, float], epsg: int,
                        size: tuple[int, int], time_interval: tuple[datetime, datetime], db: bool = True,
                        ) -> SentinelHubRequest:
        """A Process API request for ``bounds`` (in EPSG:``epsg``) rendered at ``size`` = (width, height) px."""
        p = PRODUCTS[product]
        if p.platform_prefix == "sentinel-1":
            evalscript = evalscript_s1(db)
            other = {"processing": {"backCoeff": "SIGMA0_ELLIPSOID", "orthorectify": True,
                                    "demInstance": "COPERNICUS"},
                     "dataFilter": {"acquisitionMode": "IW", "polarization": "DV", "resolution": "HIGH"}}
        else:
            evalscript = evalscript_s2(p.bands)
            other = {"processing": {"harmonizeValues": True}}
        return SentinelHubRequest(
            evalscript=evalscript,
            input_data=[SentinelHubRequest.input_data(
                data_collection=_collection(p, self.config.sh_base_url), time_interval=time_interval,
                mosaicking_order=MosaickingOrder.MOST_RECENT, other_args=other)],
            responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
            bbox=BBox(bounds, CRS(epsg)), size=size, config=self.config,
        )

    def fetch_geotiff(self, product: str, bounds: tuple[float, float, float, float], epsg: int,
                      time_interval: tuple[datetime, datetime], out_path: Path, resolution_m: float = 10.0,
                      db: bool = True) -> Path:
        """Render ``bounds`` (metres, EPSG:``epsg``) at ``resolution_m`` into a tiled GeoTIFF, request by request.

        Memory: one sub-request (``sh_max_px``^2 x bands) at a time.
        """
        p = PRODUCTS[product]
        minx, miny, maxx, maxy = bounds
        width, height = round((maxx - minx) / resolution_m), round((maxy - miny) / resolution_m)
        if width <= 0 or height <= 0:
            raise ValueError(f"empty bounds {bounds}")
        s1 = p.platform_prefix == "sentinel-1"
        dtype, nodata = ("float32", float("nan")) if s1 else ("uint16", 0)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_suffix(".part.tif")
        client = SentinelHubDownloadClient(config=self.config)
        profile = dict(driver="GTiff", width=width, height=height, count=len(p.bands), dtype=dtype, nodata=nodata,
                       crs=f"EPSG:{epsg}", transform=from_origin(minx, maxy, resolution_m, resolution_m),
                       tiled=True, blockxsize=512, blockysize=512, compress="deflate", BIGTIFF="IF_SAFER")
        with rasterio.open(tmp, "w", **profile) as dst:
            for win in pixel_windows(width, height, self.s.sh_max_px):
                sub = (minx + win.col_off * resolution_m, maxy - (win.row_off + win.height) * resolution_m,
                       minx + (win.col_off + win.width) * resolution_m, maxy - win.row_off * resolution_m)
                req = self.process_request(product, sub, epsg, (int(win.width), int(win.height)), time_interval, db)
                try:
                    data = client.download(req.download_list, decode_data=True)[0]
                except (DownloadFailedException, OutOfRequestsException, OAuth2Error) as exc:
                    raise _classify(exc, "Sentinel Hub Process API") from exc
                data = np.asarray(data)
                if data.ndim == 2:
                    data = data[..., None]
                if data.shape != (win.height, win.width, len(p.bands)):
                    raise InvalidEvent(f"Process API returned shape {data.shape}, expected "
                                       f"{(win.height, win.width, len(p.bands))}")
                dst.write(np.moveaxis(data, -1, 0).astype(dtype), window=win)
            for i, name in enumerate(p.terrawatch_bands, start=1):
                dst.set_band_description(i, name)
        tmp.replace(out_path)
        return out_path

    # Items -----------------------------------------------------------------------------------------------------
    def scene_item(self, feature: dict[str, Any], product: str, path: Path, db: bool = True) -> dict[str, Any]:
        """A terrawatch scene event for a fetched GeoTIFF; id, time, platform and footprint from the Catalog."""
        p = PRODUCTS[product]
        props = feature.get("properties") or {}
        with rasterio.open(path) as ds:
            from rasterio.warp import transform_geom

            footprint = shape(transform_geom(ds.crs, "EPSG:4326", mapping(box(*ds.bounds))))
        if feature.get("geometry"):
            footprint = footprint.intersection(shape(feature["geometry"]))
        level = {"sentinel-2-l1c": "L1C", "sentinel-2-l2a": "L2A", "sentinel-1-grd": "GRD"}[product]
        units = ("dB" if db else "linear") if p.platform_prefix == "sentinel-1" else "reflectance_x10000"
        out_props = {"datetime": props["datetime"], "platform": str(props.get("platform", "")).lower(),
                     "constellation": p.platform_prefix, "processing:level": level,
                     "terrawatch:source": "sentinelhub"}
        if "eo:cloud_cover" in props:
            out_props["eo:cloud_cover"] = props["eo:cloud_cover"]
        return {
            "type": "Feature", "stac_version": "1.0.0", "id": feature["id"], "geometry": mapping(footprint),
            "bbox": list(footprint.bounds), "properties": out_props,
            "assets": {"data": {"href": path.resolve().as_uri(), "type": "image/tiff; application=geotiff",
                                "roles": ["data"], "terrawatch:bands": p.terrawatch_bands,
                                "terrawatch:units": units}},
            "links": [],
        }

    def items(self, product: str, bbox_wgs84: tuple[float, float, float, float], start: datetime, end: datetime,
              out_dir: Path, resolution_m: float = 10.0, db: bool = True, max_cloud: float | None = None,
              ) -> Iterator[dict[str, Any]]:
        """Search, render each acquisition over ``bbox_wgs84`` (in its UTM zone) and yield scene events."""
        for feature in self.search(product, bbox_wgs84, start, end, max_cloud):
            epsg = _utm_epsg(feature, bbox_wgs84)
            bounds = _utm_bounds(bbox_wgs84, epsg, resolution_m)
            t = datetime.fromisoformat(feature["properties"]["datetime"].replace("Z", "+00:00"))
            path = out_dir / f"{feature['id']}.tif"
            if not path.exists():
                self.fetch_geotiff(product, bounds, epsg, (t - timedelta(minutes=1), t + timedelta(minutes=1)),
                                   path, resolution_m, db)
            yield self.scene_item(feature, product, path, db)


def _utm_epsg(feature: dict, bbox: tuple[float, float, float, float]) -> int:
    props = feature.get("properties") or {}
    if props.get("proj:epsg"):
        return int(props["proj:epsg"])
    lon, lat = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    return (32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1


def _utm_bounds(bbox: tuple[float, float, float, float], epsg: int, res: float) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    minx, miny, maxx, maxy = transform_bounds("EPSG:4326", f"EPSG:{epsg}", *bbox)
    snap = lambda v, f: f(v / res) * res  # noqa: E731 - align to the pixel grid
    return snap(minx, math.floor), snap(miny, math.floor), snap(maxx, math.ceil), snap(maxy, math.ceil)


def _classify(exc: Exception, what: str) -> Exception:
    if isinstance(exc, OAuth2Error):
        return TransientError(f"{what}: OAuth token request failed ({exc.error}): check TERRAWATCH_SH_CLIENT_ID/"
                              "_SECRET and TERRAWATCH_SH_TOKEN_URL")
    req = getattr(exc, "request_exception", None)
    status = getattr(getattr(req, "response", None), "status_code", None)
    if status is not None and 400 <= status < 500 and status != 429:
        return InvalidEvent(f"{what} rejected the request: HTTP {status}: {exc}")
    return TransientError(f"{what} failed after retries: {exc}")

