"""Scene event contract: STAC Items validated against the JSON Schema, with specific reasons."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from terrawatch.domain.errors import InvalidEvent
from terrawatch.domain.scene import Sensor, parse_event, scene_from_item


def s1_item(**over) -> dict:
    item = {
        "type": "Feature", "stac_version": "1.1.0", "id": "S1A_IW_GRDH_TEST",
        "geometry": {"type": "Polygon", "coordinates": [[[-1, 40], [-0.9, 40], [-0.9, 40.1], [-1, 40.1], [-1, 40]]]},
        "properties": {"datetime": "2024-05-01T06:00:00Z", "platform": "sentinel-1a", "constellation": "sentinel-1"},
        "assets": {"vv": {"href": "file:///data/vv.tif"}, "vh": {"href": "https://example.org/vh.tif"}},
    }
    for k, v in over.items():
        item[k] = v
    return item


def test_valid_s1_item_with_per_band_assets():
    scene = scene_from_item(s1_item())
    assert scene.sensor is Sensor.S1
    assert scene.band_names() == ("VV", "VH")
    assert scene.bands[1].href == "https://example.org/vh.tif"
    assert scene.hazards == ("flood",)
    assert scene.sensing_time == datetime(2024, 5, 1, 6, tzinfo=timezone.utc)


def test_multiband_asset_maps_band_indices():
    item = s1_item(assets={"data": {"href": "s3://bucket/scene.tif", "roles": ["data"],
                                    "terrawatch:bands": ["VH", "VV"], "terrawatch:units": "linear"}})
    scene = scene_from_item(item)
    assert [(b.name, b.index, b.units) for b in scene.bands] == [("VV", 2, "linear"), ("VH", 1, "linear")]


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({"type": "Feature"}).encode(), "schema violation"),
])
def test_undecodable_events(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(raw)


@pytest.mark.parametrize("scene_id", [".", "..", "...", "a/b", "../x", ""])
def test_ids_that_are_not_a_folder_name_are_refused(scene_id):
    """The id names the scene's products folder (products_dir/<id>/): "." and ".." would write beside it."""
    with pytest.raises(InvalidEvent, match="schema violation|id"):
        scene_from_item(s1_item(id=scene_id))


def test_ids_with_dots_inside_are_fine():
    assert scene_from_item(s1_item(id="S1A_IW..GRDH.v2")).id == "S1A_IW..GRDH.v2"


def test_unknown_platform_is_rejected_with_the_field():
    item = s1_item()
    item["properties"]["platform"] = "landsat-9"
    with pytest.raises(InvalidEvent, match="properties/platform"):
        scene_from_item(item)


def test_platform_must_match_constellation():
    item = s1_item()
    item["properties"]["platform"] = "sentinel-2a"
    with pytest.raises(InvalidEvent, match="does not belong"):
        scene_from_item(item)


def test_missing_band_asset():
    with pytest.raises(InvalidEvent, match="missing asset"):
        scene_from_item(s1_item(assets={"vv": {"href": "file:///vv.tif"}}))


def test_future_scene_rejected():
    future = (datetime.now(timezone.utc) + timedelta(days=3)).isoformat()
    item = s1_item()
    item["properties"]["datetime"] = future
    with pytest.raises(InvalidEvent, match="in the future"):
        scene_from_item(item)


def test_zero_area_footprint_rejected():
    item = s1_item(geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0], [0, 0]]]})
    with pytest.raises(InvalidEvent, match="zero area|invalid"):
        scene_from_item(item)


def test_bad_href_scheme_rejected():
    with pytest.raises(InvalidEvent, match="href"):
        scene_from_item(s1_item(assets={"vv": {"href": "ftp://x/vv.tif"}, "vh": {"href": "file:///vh.tif"}}))


def test_relative_orbit_and_pre_event_scene_are_read():
    props = {**s1_item()["properties"], "sat:relative_orbit": 8, "terrawatch:pre_event_scene": "S1A_IW_GRDH_EARLIER"}
    scene = scene_from_item(s1_item(properties=props))
    assert scene.relative_orbit == 8 and scene.pre_event_scene == "S1A_IW_GRDH_EARLIER"
    assert scene_from_item(s1_item()).relative_orbit is None
    assert scene_from_item(s1_item()).pre_event_scene is None


@pytest.mark.parametrize("extra", [
    {"sat:relative_orbit": 0}, {"sat:relative_orbit": 176}, {"sat:relative_orbit": "8"},
    {"sat:relative_orbit": 8.5}, {"terrawatch:pre_event_scene": ".."}, {"terrawatch:pre_event_scene": "a/b"},
    {"terrawatch:pre_event_scene": ""}, {"terrawatch:pre_event_scene": "x" * 257},
])
def test_bad_orbit_or_pre_event_reference_is_refused(extra):
    """The pre-event id is looked up in PostGIS and names a products folder: only a valid scene id passes."""
    with pytest.raises(InvalidEvent, match="schema violation"):
        scene_from_item(s1_item(properties={**s1_item()["properties"], **extra}))
