"""Point and area questions on the likelihood products (TiTiler's ``/point`` and ``/statistics`` as models).

- ``GET /raster/scenes/{scene_id}/{product}/point?lon=&lat=``: the likelihood of one scene's product at a
  lon/lat; a point outside the product is 404.
- ``GET /raster/{product}/point?lon=&lat=[&datetime=][&limit=]``: the same for every scene with that product
  whose footprint contains the point (newest first); none is an empty ``values`` list (a search, like STAC's).
- ``POST /raster/scenes/{scene_id}/{product}/statistics`` and ``POST /raster/{product}/statistics
  [?datetime=][&limit=]`` with a GeoJSON Feature or Polygon/MultiPolygon (EPSG:4326) body: pixel counts,
  hectares over the hazard's threshold, mean likelihood, per scene (``products/analysis.py``).

``product``: a hazard (``flood``, ``deforestation``, ``mining``) or ``flood_fused``. Threshold: the hazard's
(``TERRAWATCH_<HAZARD>_THRESHOLD`` x 100, the setting the hazard registry names; a pixel is over it when its
likelihood is >= it, the pipeline's comparison). Cost: a polygon whose bounding box covers more than
``TERRAWATCH_RASTER_MAX_SOURCE_PIXELS`` pixels of a product at full resolution is refused with 400 before
anything is read; a period question reads at most ``limit`` (<= 10) scenes. Any other query parameter is 400.
Read access = the map layers' (a POST here changes nothing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from terrawatch.api.deps import ApiDeps
from terrawatch.domain.products import SCENE_ID_CHARS
from terrawatch.api.errors import BadRequest, InvalidInput, NotFound
from terrawatch.api.routes.stac import _interval, _only
from terrawatch.api.security import Principal
from terrawatch.domain.hazards import REGISTRY
from terrawatch.products import analysis as an
from terrawatch.products import tiles as pt
from terrawatch.store.product_scenes import scenes

LIKELIHOOD_PRODUCTS = tuple(p for p in pt.PRODUCTS if p != pt.QUICKLOOK)
MAX_SCENES = 10  # scenes one period question reads at most
SEARCH_SCENES = 200  # scenes looked up (newest first) to find those that have the product
SceneId = Annotated[str, Path(description="Scene id (scene-event id pattern).", pattern=SCENE_ID_CHARS)]
Product = Annotated[str, Path(description="A likelihood product: " + ", ".join(LIKELIHOOD_PRODUCTS) + ".",
                              pattern=r"^[a-z_]{1,32}$")]
Lon = Annotated[float, Query(description="Longitude, degrees (EPSG:4326), -180..180.")]
Lat = Annotated[float, Query(description="Latitude, degrees (EPSG:4326), -90..90.")]
Datetime = Annotated[str | None, Query(alias="datetime", max_length=100, description=(
    "Sensing time: an RFC 3339 instant or an interval start/end ('..' open), as in STAC search."))]
Limit = Annotated[int, Query(ge=1, le=MAX_SCENES, description=f"Scenes answered at most (1-{MAX_SCENES}), newest "
                                                                "first.")]
POLYGON_EXAMPLE = {"type": "Feature", "properties": {"name": "district"}, "geometry": {
    "type": "Polygon", "coordinates": [[[-0.77, 38.10], [-0.75, 38.10], [-0.75, 38.12], [-0.77, 38.12],
                                        [-0.77, 38.10]]]}}
PolygonBody = Annotated[dict[str, Any], Body(
    description="A GeoJSON Feature or a Polygon/MultiPolygon geometry, EPSG:4326 lon/lat, at most "
                f"{an.MAX_VERTICES} vertices, valid (no self-intersection).", examples=[POLYGON_EXAMPLE])]


class PointValue(BaseModel):
    """The likelihood of one scene's product at a point."""

    scene_id: str
    product: str
    sensing_time: datetime | None = Field(description="Sensing time of the scene (null if the scene is not "
                                                      "recorded).")
    lon: float
    lat: float
    likelihood: int | None = Field(description="0-100 (percent); null where the pixel is excluded.")
    unit: Literal["percent"] = "percent"
    excluded: bool = Field(description="No estimate here (band 1 = 255); `exclusion` says why.")
    exclusion_flags: int = Field(description="Band 2 bit flags: 1 no data, 2 cloud/shadow, 4 radar shadow/layover, "
                                             "8 outside the model's area of applicability.")
    exclusion: list[str]
    threshold: float = Field(description="The hazard's threshold, percent (the registry's setting x 100).")
    threshold_setting: str
    over_threshold: bool | None = Field(description="likelihood >= threshold; null where excluded.")
    row: int = Field(description="Pixel row of the product (full resolution).")
    col: int
    crs: str = Field(description="The product's CRS.")


class PointValues(BaseModel):
    """Values at a point of every scene with the product whose footprint contains it (newest first)."""

    product: str
    lon: float
    lat: float
    datetime: str | None
    values: list[PointValue]
    numberMatched: int = Field(description="Scenes with the product whose footprint contains the point.")


class PixelCounts(BaseModel):
    inside: int = Field(description="Pixels whose centre lies inside the polygon.")
    valid: int = Field(description="... with a likelihood (0-100).")
    excluded: int = Field(description="... excluded (no estimate: band 1 = 255).")
    over_threshold: int = Field(description="... valid with likelihood >= threshold.")
    read: int = Field(description="Pixels read: the polygon's bounding box on the product grid.")


class Hectares(BaseModel):
    inside: float = Field(description="Area of the pixels inside the polygon (ha).")
    valid: float
    excluded: float
    over_threshold: float = Field(description="Flooded / cleared / mined area: pixels over the threshold (ha).")


class SceneStatistics(BaseModel):
    scene_id: str
    sensing_time: datetime | None
    crs: str
    area_method: str = Field(description="How pixel areas were computed (geodesic for a geographic product, "
                                         "the projection's pixel area for a projected one).")
    pixels: PixelCounts
    area_ha: Hectares
    mean_likelihood: float | None = Field(description="Mean of the valid pixels' likelihood (percent); null if "
                                                      "none.")
    excluded_pixels_by_reason: dict[str, int]


class Statistics(BaseModel):
    """Statistics of a polygon over one scene or every scene of a period (never summed across scenes:
    overlapping scenes would count the same ground twice)."""

    product: str
    hazard: str
    threshold: float = Field(description="Percent: the hazard's threshold setting x 100.")
    threshold_setting: str
    polygon_area_ha: float = Field(description="Geodesic area of the polygon (WGS84).")
    datetime: str | None
    scenes: list[SceneStatistics]
    numberMatched: int = Field(description="Scenes with the product whose footprint meets the polygon.")


def _hazard(product: str) -> str:
    return "flood" if product == pt.FLOOD_FUSED else product


def threshold_of(settings, product: str) -> tuple[float, str]:
    """(percent, setting name) of the hazard's threshold (the hazard registry's ``threshold_setting``)."""
    setting = next(h.threshold_setting for h in REGISTRY if h.hazard == _hazard(product))
    return round(float(getattr(settings, setting)) * 100, 6), f"TERRAWATCH_{setting.upper()}"


def _check_product(product: str) -> None:
    if product not in LIKELIHOOD_PRODUCTS:
        raise NotFound(f"no likelihood product {product[:32]!r}; products: {', '.join(LIKELIHOOD_PRODUCTS)}")


def _period(text: str | None):
    try:
        return _interval(text)
    except InvalidInput as exc:
        raise BadRequest(str(exc)) from None


def _area_method(crs) -> str:
    if crs.is_geographic:
        return "geodesic: each pixel's exact area on the WGS84 ellipsoid (the product is in geographic coordinates)"
    return "projected: |pixel width x height| in the product's CRS, in metres"


def analysis_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/raster", tags=["raster analysis"])
    root = deps.settings.products_dir
    max_pixels = deps.settings.raster_max_source_pixels

    def sensing(ids: list[str]) -> dict[str, datetime]:
        with deps.read_engine.connect() as conn:
            rows, _ = scenes(conn, ids=ids, limit=len(ids))
        return {r.id: r.sensing_time for r in rows}

    def with_product(product: str, geom, start, end) -> tuple[list[tuple[str, datetime]], int]:
        """(scene id, sensing time) of the scenes with the product whose footprint meets ``geom``, newest first."""
        with deps.read_engine.connect() as conn:
            rows, _ = scenes(conn, intersects=geom, start=start, end=end, limit=SEARCH_SCENES)
        out = []
        for r in rows:
            try:
                pt.product_file(root, r.id, product)
            except pt.ProductNotFound:
                continue
            out.append((r.id, r.sensing_time))
        return out, len(out)

    def value(scene_id: str, product: str, lon: float, lat: float, when: datetime | None) -> dict:
        path = pt.product_file(root, scene_id, product)
        v = an.point_value(path, lon, lat)
        thr, setting = threshold_of(deps.settings, product)
        import rasterio

        with rasterio.open(path) as ds:
            crs = ds.crs.to_string()
        return {"scene_id": scene_id, "product": product, "sensing_time": when, "lon": lon, "lat": lat,
                "likelihood": v.likelihood, "excluded": v.likelihood is None, "exclusion_flags": v.flags,
                "exclusion": an.flags(v.flags) if v.likelihood is None else [], "threshold": thr,
                "threshold_setting": setting,
                "over_threshold": None if v.likelihood is None else v.likelihood >= thr,
                "row": v.row, "col": v.col, "crs": crs}

    def stats(scene_id: str, product: str, geom, when: datetime | None) -> dict:
        import rasterio

        path = pt.product_file(root, scene_id, product)
        thr, _ = threshold_of(deps.settings, product)
        s = an.polygon_statistics(path, geom, thr, max_pixels)
        with rasterio.open(path) as ds:
            crs = ds.crs
        ha = an.M2_PER_HA
        return {"scene_id": scene_id, "sensing_time": when, "crs": crs.to_string(), "area_method": _area_method(crs),
                "pixels": {"inside": s.inside, "valid": s.valid, "excluded": s.excluded, "over_threshold": s.over,
                           "read": s.window_pixels},
                "area_ha": {"inside": s.area_inside_m2 / ha, "valid": s.area_valid_m2 / ha,
                            "excluded": (s.area_inside_m2 - s.area_valid_m2) / ha,
                            "over_threshold": s.area_over_m2 / ha},
                "mean_likelihood": s.mean_likelihood, "excluded_pixels_by_reason": s.excluded_by_flag}

    def answer(product: str, geom, datetime_: str | None, rows: list[dict], matched: int) -> dict:
        thr, setting = threshold_of(deps.settings, product)
        return {"product": product, "hazard": _hazard(product), "threshold": thr, "threshold_setting": setting,
                "polygon_area_ha": an.geodesic_area_m2(geom) / an.M2_PER_HA,
                "datetime": datetime_, "scenes": rows, "numberMatched": matched}

    @router.get("/scenes/{scene_id}/{product}/point", response_model=PointValue,
                responses={404: {"description": "Unknown scene or product, or the point is outside the product."}},
                summary="Likelihood of one scene's product at a lon/lat.")
    def raster_point(scene_id: SceneId, product: Product, lon: Lon, lat: Lat, request: Request,
                     _: Principal = Depends(deps.layers)) -> dict:
        _only(request, {"lon", "lat"})
        _check_product(product)
        lon, lat = an.check_lonlat(lon, lat)
        pt.product_file(root, scene_id, product)  # 404 for a missing product before anything else
        try:
            return value(scene_id, product, lon, lat, sensing([scene_id]).get(scene_id))
        except an.OutsideProduct:
            raise NotFound(f"the point ({lon}, {lat}) is outside scene {scene_id}'s {product} product") from None

    @router.get("/{product}/point", response_model=PointValues,
                summary="Likelihood at a lon/lat in every scene with the product (newest first).")
    def raster_point_search(product: Product, lon: Lon, lat: Lat, request: Request, datetime_: Datetime = None,
                            limit: Limit = MAX_SCENES, _: Principal = Depends(deps.layers)) -> dict:
        from shapely.geometry import Point

        _only(request, {"lon", "lat", "datetime", "limit"})
        _check_product(product)
        lon, lat = an.check_lonlat(lon, lat)
        start, end = _period(datetime_)
        found, matched = with_product(product, Point(lon, lat), start, end)
        values = []
        for scene_id, when in found[:limit]:
            try:
                values.append(value(scene_id, product, lon, lat, when))
            except an.OutsideProduct:  # footprint and raster extent differ by a pixel at most
                matched -= 1
        return {"product": product, "lon": lon, "lat": lat, "datetime": datetime_, "values": values,
                "numberMatched": matched}

    @router.post("/scenes/{scene_id}/{product}/statistics", response_model=Statistics,
                 responses={400: {"description": "Not a valid polygon, or its bounding box covers more than "
                                                 "TERRAWATCH_RASTER_MAX_SOURCE_PIXELS pixels."},
                            404: {"description": "Unknown scene or product, or the polygon misses the product."}},
                 summary="Flooded / cleared area, pixel counts and mean likelihood of a polygon in one scene.")
    def raster_statistics(scene_id: SceneId, product: Product, body: PolygonBody, request: Request,
                          _: Principal = Depends(deps.layers)) -> dict:
        _only(request, set())
        _check_product(product)
        geom = an.parse_polygon(body)
        pt.product_file(root, scene_id, product)
        try:
            row = stats(scene_id, product, geom, sensing([scene_id]).get(scene_id))
        except an.OutsideProduct:
            raise NotFound(f"the polygon does not overlap scene {scene_id}'s {product} product") from None
        return answer(product, geom, None, [row], 1)

    @router.post("/{product}/statistics", response_model=Statistics,
                 responses={400: {"description": "Not a valid polygon, or its bounding box covers more than "
                                                 "TERRAWATCH_RASTER_MAX_SOURCE_PIXELS pixels of a product."}},
                 summary="Flooded / cleared area of a polygon in every scene of a period (per scene, newest first).")
    def raster_statistics_search(product: Product, body: PolygonBody, request: Request, datetime_: Datetime = None,
                                 limit: Limit = MAX_SCENES, _: Principal = Depends(deps.layers)) -> dict:
        _only(request, {"datetime", "limit"})
        _check_product(product)
        geom = an.parse_polygon(body)
        start, end = _period(datetime_)
        found, matched = with_product(product, geom, start, end)
        rows = []
        for scene_id, when in found[:limit]:
            try:
                rows.append(stats(scene_id, product, geom, when))
            except an.OutsideProduct:  # the footprint meets the polygon, the raster's extent does not
                matched -= 1
        return answer(product, geom, datetime_, rows, matched)

    return router
