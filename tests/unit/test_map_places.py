"""Place labels of the map: the offline GeoNames lookup by bbox and ``/map/places.geojson``'s parameter checks."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from terrawatch.alerting.places import nearest_place, places_in_bbox
from terrawatch.api.errors import BadRequest
from terrawatch.api.routes.map import places


def _request(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/map/places.geojson", "headers": [],
                    "query_string": query.encode()})


def test_places_in_a_bbox_are_inside_most_populous_first_and_bounded():
    got = places_in_bbox(-1.2, 37.9, -0.6, 38.3, 30)  # Vega Baja del Segura and Murcia
    assert 0 < len(got) <= 30
    assert all(-1.2 <= p["lon"] <= -0.6 and 37.9 <= p["lat"] <= 38.3 for p in got)
    pops = [p["population"] for p in got]
    assert pops == sorted(pops, reverse=True)
    assert got[0]["name"] == "Murcia" and got[0]["country"] == "Spain"  # the region's largest city
    # the place nearest the demo's Spain chip is among the places of a small box around it
    near = nearest_place(-0.759, 38.106)["place"]
    assert near in {p["name"] for p in places_in_bbox(-0.8, 38.08, -0.72, 38.13, 200)}


def test_a_bbox_across_the_antimeridian_takes_both_sides():
    got = places_in_bbox(178.0, -19.0, -178.0, -15.0, 200)  # Fiji (Viti Levu east coast .. Lau)
    assert got and all(p["lon"] >= 178.0 or p["lon"] <= -178.0 for p in got)
    assert {p["country_code"] for p in got} == {"FJ"}


@pytest.mark.parametrize("query, word", [
    ("", "bbox"), ("bbox=1,2,3", "bbox"), ("bbox=a,b,c,d", "bbox"), ("bbox=0,10,1,5", "bbox"),
    ("bbox=0,0,31,1", "bbox"), ("bbox=170,0,-150,1", "bbox"), ("bbox=nan,0,1,1", "bbox"), ("bbox=0,0,1,91", "bbox"),
    ("bbox=0,0,1,1&limit=0", "limit"), ("bbox=0,0,1,1&limit=201", "limit"), ("bbox=0,0,1,1&limit=x", "limit"),
    ("bbox=0,0,1,1&bbox=0,0,1,1", "bbox"), ("bbox=0,0,1,1&zoom=5", "zoom"),
])
def test_every_bad_parameter_is_a_400_naming_it(query, word):
    with pytest.raises(BadRequest, match=word):
        places(_request(query))


def test_limit_is_honoured_and_points_are_geojson():
    body = places(_request("bbox=-1.2,37.9,-0.6,38.3&limit=3"))
    assert body["numberReturned"] == len(body["features"]) == 3
    f = body["features"][0]
    assert f["geometry"]["type"] == "Point" and f["properties"]["name"] == "Murcia" and "GeoNames" in body["attribution"]
