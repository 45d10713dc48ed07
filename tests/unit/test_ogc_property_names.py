"""OGC items: ``properties`` and ``sortby`` name the collection's properties; an unknown name is a 400 naming it."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from terrawatch.api import errors
from terrawatch.api.routes.ogc import _check_query
from terrawatch.settings import Settings

COLUMNS = {"id": "integer", "hazard": "text", "area_ha": "double precision", "sensing_time": "timestamptz",
           "geom": "geometry"}


@pytest.mark.parametrize("query,name", [
    ("properties=secret", "secret"), ("properties=hazard,secret", "secret"), ("properties=geom", "geom"),
    ("sortby=secret", "secret"), ("sortby=-secret", "secret"), ("sortby=hazard,%2Bnope", "nope"),
])
def test_unknown_property_names_are_refused_naming_them(query, name):
    with pytest.raises(errors.BadRequest) as exc:
        _check_query(QueryParams(query), Settings(), COLUMNS, items=True)
    assert f"'{name}'" in str(exc.value) and "hazard" in str(exc.value)  # names it and lists the properties


@pytest.mark.parametrize("query", ["properties=hazard,area_ha", "properties=", "properties=%20hazard",
                                   "sortby=-sensing_time,id", "sortby=%2Bhazard"])
def test_known_property_names_pass(query):
    assert _check_query(QueryParams(query), Settings(), COLUMNS, items=True) == list(QueryParams(query).multi_items())
