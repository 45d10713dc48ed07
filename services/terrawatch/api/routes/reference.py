"""``/ops/reference-layers``: load or drop a reference layer (areas of interest, protected areas, ...).

Features are stored in ``reference_features`` (EPSG:4326) and published by the
OGC API collection ``reference_layers`` and the ``reference_layers`` tiles.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import shapely
import shapely.errors
from fastapi import APIRouter, Depends, Path, Request
from geojson_pydantic import FeatureCollection
from pydantic import BaseModel, Field
from shapely.geometry import shape

from terrawatch.api.deps import ApiDeps
from terrawatch.api.errors import InvalidInput
from terrawatch.api.security import Principal
from terrawatch.service import layers

Layer = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Layer name.")]
MAX_FEATURES = 10_000


class LayerLoaded(BaseModel):
    layer: str
    features: int
    replaced: int
    used_by: list[str] = Field(description="Rules that read this layer (mining legality, flood reference "
                                           "water); empty for a display-only layer such as an area of interest.")


def _geometry(feature, i: int):
    if feature.geometry is None:
        raise InvalidInput(f"feature {i} has no geometry")
    try:
        g = shapely.force_2d(shape(feature.geometry.model_dump(exclude_none=True)))
        if g.is_empty:
            raise ValueError("empty geometry")
        minx, miny, maxx, maxy = g.bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise ValueError("outside lon/lat bounds (EPSG:4326 expected)")
        if not g.is_valid:
            g = shapely.make_valid(g)
        return g
    except (ValueError, TypeError, shapely.errors.ShapelyError) as exc:
        raise InvalidInput(f"feature {i}: unusable geometry ({str(exc)[:200]})") from None


class LayerSummary(BaseModel):
    layer: str
    features: int
    loaded_at: datetime | None
    bbox: list[float] | None = Field(description="[west, south, east, north], EPSG:4326.")
    coverage_source: str | None = Field(description="What declared the layer's coverage (mining legality).")
    used_by: list[str] = Field(description="Rules that read the layer; [] = display only.")


def reference_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/ops/reference-layers", tags=["reference layers"])

    @router.put("/{layer}", response_model=LayerLoaded, summary="Replace a layer with a GeoJSON FeatureCollection.")
    def put_layer(layer: Layer, body: FeatureCollection, request: Request,
                  who: Principal = Depends(deps.operator)) -> dict:
        if len(body.features) > MAX_FEATURES:
            raise InvalidInput(f"at most {MAX_FEATURES} features per layer")
        feats = [(_geometry(f, i), dict(f.properties or {})) for i, f in enumerate(body.features)]
        n, replaced = deps.runbook.layers.replace(layer, feats, audit=deps.auditor(who, request, "reference_layer.put"))
        return {"layer": layer, "features": n, "replaced": replaced, "used_by": layers.used_by(layer)}

    @router.delete("/{layer}", status_code=204, summary="Drop a layer.")
    def delete_layer(layer: Layer, request: Request, who: Principal = Depends(deps.operator)) -> None:
        deps.runbook.layers.drop(layer, audit=deps.auditor(who, request, "reference_layer.delete"))

    @router.get("", response_model=list[LayerSummary],
                summary="Stored layers: features, load time, extent, coverage and the rules that read each.")
    def list_layers(_: Principal = Depends(deps.viewer)) -> list[dict]:
        return deps.runbook.layers.list()

    return router
