"""store/ogc_features.py: the features SELECT and the GeoJSON pass-through, without a database."""

from __future__ import annotations

import asyncio

import orjson
from tipg.collections import Column, PgCollection

from terrawatch.store.ogc_features import GEOJSON_DECIMALS, FeatureCollection, feature_collection

GEOM = Column(name="geom", type="geometry", geometry_type="MultiPolygon", srid=4326)


def _tipg_collection() -> PgCollection:
    cols = [Column(name="id", type="int8"), Column(name="hazard", type="text"), GEOM]
    return PgCollection(type="View", id="ogc.detections", table="detections", schema="ogc", table_columns=cols,
                        properties=cols, id_column=cols[0], geometry_column=GEOM)


def test_the_catalog_entry_keeps_its_fields_and_takes_the_update():
    base = _tipg_collection()
    when = Column(name="sensing_time", type="timestamptz")
    coll = feature_collection(base, id="detections", datetime_column=when)
    assert isinstance(coll, FeatureCollection)
    assert (coll.id, coll.dbschema, coll.table, coll.datetime_column.name) == ("detections", "ogc", "detections",
                                                                               "sensing_time")
    assert [c.name for c in coll.properties] == [c.name for c in base.properties]
    assert coll.id_column.name == "id" and coll.geometry_column.srid == 4326


def test_geojson_is_selected_as_text_with_the_stated_decimals_and_wkt_is_tipgs():
    base, coll = _tipg_collection(), feature_collection(_tipg_collection())
    sql = coll._select(None, GEOM, None, None)
    assert f'ST_AsGeoJSON(CAST("geom" AS geometry), {GEOJSON_DECIMALS}) AS tipg_geom' in sql
    assert "AS json" not in sql
    assert "ST_SimplifyPreserveTopology" in coll._select(None, GEOM, None, 0.001)  # simplify still honoured
    assert "ST_Envelope" in coll._select(None, GEOM, True, None)  # bbox-only still honoured
    assert coll._select(None, GEOM, None, None, geom_as_wkt=True) == base._select(None, GEOM, None, None,
                                                                                   geom_as_wkt=True)


class _Conn:
    def __init__(self, rows):
        self.rows, self.sql = rows, []

    async def fetch(self, sql, *params):
        self.sql.append(sql)
        return self.rows


def test_geometry_text_is_written_into_the_response_unparsed():
    text = '{"type":"Polygon","coordinates":[[[1.1234567,2.0],[3.0,4.0],[1.1234567,2.0]]]}'
    conn = _Conn([{"hazard": "flood", "tipg_id": 7, "tipg_geom": text},
                  {"hazard": "flood", "tipg_id": 8, "tipg_geom": None}])
    coll = feature_collection(_tipg_collection())

    async def run():
        return [f async for f in coll._features_query(conn, function_parameters={}, limit=10)]

    feats = asyncio.run(run())
    assert [f["id"] for f in feats] == [7, 8] and feats[0]["properties"] == {"hazard": "flood"}
    body = orjson.dumps({"features": feats})
    assert orjson.loads(body)["features"][0]["geometry"] == orjson.loads(text)
    assert text.encode() in body and orjson.loads(body)["features"][1]["geometry"] is None
