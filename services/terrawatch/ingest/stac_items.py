"""Build scene-event STAC Items from local GeoTIFFs (pystac)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pystac
import rasterio
import rasterio.errors
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape


def assert_readable(path: Path) -> None:
    """Raise UnreadableAsset unless ``path`` opens as a raster and its last row of pixels can be read
    (a truncated GeoTIFF often has an intact header and missing tail blocks)."""
    from rasterio.windows import Window

    from terrawatch.domain.errors import UnreadableAsset

    try:
        with rasterio.open(path) as ds:
            ds.read(window=Window(0, ds.height - 1, ds.width, 1))
    except rasterio.errors.RasterioError as exc:
        detail = " ".join(str(exc.__cause__ or exc).split())[:300]
        raise UnreadableAsset(f"{path.name} is not a readable GeoTIFF: {detail}") from exc


def item_from_geotiff(path: Path, *, scene_id: str | None = None, sensing_time: datetime | None = None,
                      platform: str | None = None, units: str | None = None, scl: Path | None = None,
                      processing_baseline: str | None = None) -> dict:
    """A STAC Item for one multi-band GeoTIFF: 2 bands = S1 (VV, VH dB), 13 bands = S2 L1C (x10000),
    12 bands = S2 L2A (x10000, no B10; ``scl``: an optional 1-band scene classification GeoTIFF, the
    cloud/shadow mask). ``processing_baseline`` (e.g. "05.10"): the DN carry the +1000 offset.

    The footprint is the raster's bounds reprojected to EPSG:4326.
    """
    path = path.resolve()
    with rasterio.open(path) as ds:
        bounds, crs, count = ds.bounds, ds.crs, ds.count
        tag_time = ds.tags().get("TIFFTAG_DATETIME")
    if crs is None:
        raise ValueError(f"{path} has no CRS")
    geom = transform_geom(crs, "EPSG:4326", mapping(box(*bounds)))
    if count == 2:
        constellation, platform = "sentinel-1", platform or "sentinel-1a"
        bands, units = ["VV", "VH"], units or "dB"
        extra = {"sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD"}
    elif count == 13:
        constellation, platform = "sentinel-2", platform or "sentinel-2a"
        bands = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
        units = units or "reflectance_x10000"
        extra = {"processing:level": "L1C"}
    elif count == 12:
        constellation, platform = "sentinel-2", platform or "sentinel-2a"
        bands = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
        units = units or "reflectance_x10000"
        extra = {"processing:level": "L2A"}
    else:
        raise ValueError(f"{path} has {count} bands: expected 2 (S1 VV,VH), 13 (S2 L1C) or 12 (S2 L2A)")
    if processing_baseline and constellation == "sentinel-2":
        extra["s2:processing_baseline"] = processing_baseline
    if sensing_time is None:
        sensing_time = (datetime.strptime(tag_time, "%Y:%m:%d %H:%M:%S").replace(tzinfo=timezone.utc)
                        if tag_time else datetime.now(timezone.utc))
    item = pystac.Item(
        id=scene_id or path.stem, geometry=geom, bbox=list(shape(geom).bounds), datetime=sensing_time,
        properties={"platform": platform, "constellation": constellation, **extra},
    )
    item.add_asset("data", pystac.Asset(
        href=path.as_uri(), media_type=pystac.MediaType.GEOTIFF, roles=["data"],
        extra_fields={"terrawatch:bands": bands, "terrawatch:units": units},
    ))
    if scl is not None and count == 12:
        item.add_asset("SCL", pystac.Asset(
            href=Path(scl).resolve().as_uri(), media_type=pystac.MediaType.GEOTIFF, roles=["data"],
            title="Scene classification map (SCL)", extra_fields={"terrawatch:units": "class"}))
    d = item.to_dict(include_self_link=False)
    d.pop("links", None)
    return d
