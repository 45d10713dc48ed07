"""Vector tile cache and tile filter parsing (pure)."""

from __future__ import annotations

from datetime import timezone

import pytest
from starlette.datastructures import QueryParams

from terrawatch.api.errors import BadRequest
from terrawatch.api.routes.tiles import tile_filters
from terrawatch.api.tile_cache import TileCache
from terrawatch.store import vector_tiles


def test_cache_is_bounded_in_bytes_and_keyed_exactly():
    c = TileCache(1000)
    c.put((1, "alerts", 0, 0, 0, ()), b"a" * 200)
    assert c.get((1, "alerts", 0, 0, 0, ())) == b"a" * 200
    assert c.get((2, "alerts", 0, 0, 0, ())) is None  # another data version is another entry
    for i in range(10):
        c.put((1, "alerts", 1, i, 0, ()), b"b" * 200)
    assert sum(len(v) for v in c._lru.values()) <= 1000
    c.put((1, "big", 0, 0, 0, ()), b"c" * 600)  # larger than a quarter of the cache: not kept
    assert c.get((1, "big", 0, 0, 0, ())) is None
    assert TileCache(0).get(("k",)) is None
    assert c.etag((1, "a")) == c.etag((1, "a")) != c.etag((2, "a"))


def test_tile_filters_are_honoured_or_refused():
    f = tile_filters("alerts", QueryParams("hazard=mining,flood&since=2024-05-01T00:00:00Z&updated_since=2024-05-02"))
    assert f["hazard"] == ["flood", "mining"]
    assert f["since"].tzinfo is not None and f["updated_since"].tzinfo == timezone.utc
    for q in ("hazard=tsunami", "hazrd=flood", "hazard=flood&hazard=mining", "since=soon", "confidence=",
              "sensor=S1"):
        with pytest.raises(BadRequest):
            tile_filters("alerts", QueryParams(q))
    assert tile_filters("scenes", QueryParams("sensor=S1&status=failed")) == {"sensor": ["S1"], "status": ["failed"]}
    with pytest.raises(BadRequest):
        tile_filters("reference_layers", QueryParams("hazard=flood"))


def test_filter_sql_binds_values_and_uses_only_known_columns():
    where = vector_tiles._where("detections", {"hazard": ["flood"], "since": None, "until": None})
    assert where == " and v.hazard = any(:f_hazard) and v.sensing_time >= :f_since and v.sensing_time < :f_until"
    sql = vector_tiles._tile_sql("detections", where)
    assert ":f_hazard" in sql and "flood" not in sql
