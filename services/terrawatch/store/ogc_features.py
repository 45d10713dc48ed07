"""The OGC API - Features collections' SQL: tipg's ``PgCollection`` with GeoJSON geometries written once.

tipg selects ``CAST(ST_AsGeoJSON(geom) AS json)`` (9 decimals), its asyncpg codec parses every geometry
into Python lists (``orjson.loads``) and the response serialises them again (``orjson.dumps``): on a
100-feature page of full-resolution polygons that round trip, and the 9th decimal, were most of the
page's cost. Here PostGIS writes the geometry text with ``GEOJSON_DECIMALS`` decimals and it goes into
the response as it is (``orjson.Fragment``): same features, properties and links. Coordinates are
longitude/latitude degrees (CRS84, RFC 7946); 7 decimals = 1.1 cm or less on the ground, where the
stored 10 m pixel edges need no more. WKT outputs (CSV, JSON, NDJSON) and the vector tiles are tipg's.
"""

from __future__ import annotations

from typing import AsyncIterator

import orjson
from tipg.collections import Column, Feature, PgCollection

# Decimals of longitude/latitude degrees in GeoJSON geometries: 1e-7 deg <= 1.1 cm (RFC 7946 s. 11.2: 6 ~ 10 cm).
GEOJSON_DECIMALS = 7


class FeatureCollection(PgCollection):
    """A tipg collection whose GeoJSON geometries are PostGIS's text, passed through unparsed."""

    def _select(self, properties: list[str] | None, geometry_column: Column | None, bbox_only: bool | None,
                simplify: float | None, geom_as_wkt: bool = False) -> str:
        if geom_as_wkt:
            return super()._select(properties, geometry_column, bbox_only, simplify, geom_as_wkt)
        cols = [*self._select_property_columns(properties), self._select_id()]
        geom = self._geom_expr(geometry_column, bbox_only, simplify)
        cols.append(f"ST_AsGeoJSON({geom}, {GEOJSON_DECIMALS}) AS tipg_geom" if geom
                    else "CAST(NULL AS text) AS tipg_geom")
        return "SELECT " + ", ".join(cols)

    async def _features_query(self, conn, **kwargs) -> AsyncIterator[Feature]:
        async for feature in super()._features_query(conn, **kwargs):
            geometry = feature.get("geometry")
            if isinstance(geometry, str) and not kwargs.get("geom_as_wkt"):
                feature["geometry"] = orjson.Fragment(geometry)  # GeoJSON text, written as it is
            yield feature


def feature_collection(collection: PgCollection, **update) -> FeatureCollection:
    """``collection`` (as tipg's catalog found it) as a :class:`FeatureCollection`, with ``update`` applied."""
    return FeatureCollection.model_validate({**collection.model_dump(by_alias=True), **update})
