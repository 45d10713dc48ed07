"""Scene products as STAC Items of the ``terrawatch-products`` collection (pystac, with the projection,
raster and file extensions), so pystac-client, STAC Browser and QGIS find the likelihood COGs and the
quicklook without custom code.

One Item per scene that has products: id = scene id, datetime = sensing time, geometry = scene
footprint (EPSG:4326). Assets: ``<hazard>_likelihood`` (roles data; band 1 likelihood 0-100 with
nodata 255, band 2 exclusion flags), ``flood_fused`` (the fused S1 + S2 flood product when the scene had
a partner of the other sensor; band 2 the source code) and ``quicklook`` (roles overview, visual). Asset hrefs point at
the API (``/stac/assets/...``); each asset also links its XYZ TileJSON (``terrawatch:tilejson``).
"""

from __future__ import annotations

from pathlib import Path

import pystac
import rasterio
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from terrawatch.products.tiles import FILES, FLOOD_FUSED, QUICKLOOK
from terrawatch.store.product_scenes import SceneRow

COLLECTION_ID = "terrawatch-products"
COG = pystac.MediaType.COG


def collection(base: str, extent_bbox: list[float] | None, interval: list) -> dict:
    """The collection document; ``base`` = the STAC API root URL (no trailing slash)."""
    c = pystac.Collection(
        id=COLLECTION_ID, title="terrawatch scene products",
        description="Per-scene hazard likelihood rasters (band 1: 0-100, 255 = excluded; band 2: exclusion "
                    "flags 1 no data, 2 cloud/shadow, 4 radar shadow/layover) and a quicklook of the scene, "
                    "as Cloud-Optimized GeoTIFFs with overviews.",
        extent=pystac.Extent(pystac.SpatialExtent([extent_bbox or [-180.0, -90.0, 180.0, 90.0]]),
                             pystac.TemporalExtent([interval])),
        license="other", keywords=["flood", "deforestation", "mining", "sentinel-1", "sentinel-2"],
        stac_extensions=[ProjectionExtension.get_schema_uri(), RasterExtension.get_schema_uri(),
                         FileExtension.get_schema_uri()],
    )
    d = c.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = [{"rel": "self", "href": f"{base}/collections/{COLLECTION_ID}", "type": "application/json"},
                  {"rel": "root", "href": base, "type": "application/json"},
                  {"rel": "parent", "href": base, "type": "application/json"},
                  {"rel": "items", "href": f"{base}/collections/{COLLECTION_ID}/items",
                   "type": "application/geo+json"}]
    return d


def _asset(item: pystac.Item, key: str, path: Path, product: str, href: str, tilejson: str) -> pystac.Asset:
    with rasterio.open(path) as ds:
        crs, shape, transform, bounds = ds.crs, [ds.height, ds.width], list(ds.transform)[:6], list(ds.bounds)
        dtypes, nodata, res = ds.dtypes, ds.nodata, abs(ds.transform.a)
    if product == QUICKLOOK:
        a = pystac.Asset(href, title="Quicklook (display stretch, uint8)", media_type=COG,
                         roles=["overview", "visual"])
    elif product == FLOOD_FUSED:
        from terrawatch.ml.fusion import SOURCE_NAMES

        a = pystac.Asset(href, title="fused S1 + S2 flood likelihood", media_type=COG, roles=["data"],
                         description="band 1: flood likelihood 0-100 (255 = no estimate); band 2: source "
                                     + ", ".join(f"{k} {v}" for k, v in SOURCE_NAMES.items()))
    else:
        a = pystac.Asset(href, title=f"{product} likelihood", media_type=COG, roles=["data"],
                         description="band 1: likelihood 0-100 (255 = excluded); band 2: exclusion bit flags")
    a.extra_fields["terrawatch:tilejson"] = tilejson
    item.add_asset(key, a)  # the extensions are declared on the owning Item
    proj = ProjectionExtension.ext(a, add_if_missing=True)
    epsg = crs.to_epsg() if crs else None
    if epsg:
        proj.code = f"EPSG:{epsg}"
        a.extra_fields["proj:epsg"] = epsg  # projection v1.x's field, which GDAL 3.6's STACIT driver reads
    else:
        proj.wkt2 = crs.to_wkt() if crs else None
    proj.shape, proj.transform, proj.bbox = shape, transform, bounds
    if product == QUICKLOOK:
        bands = [RasterBand.create(nodata=0, data_type=DataType(dtypes[i]), spatial_resolution=res)
                 for i in range(len(dtypes))]
    else:
        bands = [RasterBand.create(nodata=nodata, data_type=DataType.UINT8, spatial_resolution=res, unit="percent"),
                 RasterBand.create(data_type=DataType.UINT8, spatial_resolution=res)]
    RasterExtension.ext(a, add_if_missing=True).bands = bands
    FileExtension.ext(a, add_if_missing=True).size = path.stat().st_size
    return a


def item(row: SceneRow, folder: Path, base: str, api_root: str) -> dict | None:
    """The STAC Item of one scene's products, or None when it has none. ``base`` = STAC API root URL,
    ``api_root`` = the API's root URL (for the raster TileJSON links)."""
    present = {p: folder / f for p, f in FILES.items() if (folder / f).is_file()}
    if not present:
        return None
    it = pystac.Item(id=row.id, geometry=row.footprint.__geo_interface__, bbox=list(row.footprint.bounds),
                     datetime=row.sensing_time, collection=COLLECTION_ID, properties={
                         "platform": row.platform, "constellation": row.sensor,
                         "terrawatch:products": sorted(present)})
    if row.level:
        it.properties["processing:level"] = row.level
    if row.skipped:
        it.properties["terrawatch:skipped"] = row.skipped
    for product, path in present.items():
        key = product if product in (QUICKLOOK, FLOOD_FUSED) else f"{product}_likelihood"
        _asset(it, key, path, product, f"{base}/assets/{row.id}/{product}.tif",
               f"{api_root}/raster/scenes/{row.id}/{product}.json")
    d = it.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = [
        {"rel": "self", "href": f"{base}/collections/{COLLECTION_ID}/items/{row.id}", "type": "application/geo+json"},
        {"rel": "collection", "href": f"{base}/collections/{COLLECTION_ID}", "type": "application/json"},
        {"rel": "parent", "href": f"{base}/collections/{COLLECTION_ID}", "type": "application/json"},
        {"rel": "root", "href": base, "type": "application/json"},
    ]
    return d
