"""Catalogue STAC Items -> terrawatch scene events: band mapping by asset keys / eo:bands, units, offsets."""

from __future__ import annotations

import json

import pytest

from terrawatch.domain.errors import InvalidEvent
from terrawatch.domain.scene import S2_BANDS, Sensor, parse_event, scene_from_item
from terrawatch.imagery.stac import normalize_item, resolve_event
from tests.stac_shapes import S2_KEYS, earth_search_s2, planetary_computer_s2, s1_item

HREFS = {b: f"https://cogs.example.org/T33TVL/{b}.tif" for b in S2_KEYS}


def test_earth_search_common_name_keys_map_to_sentinel_band_names():
    item = normalize_item(earth_search_s2("S2B_33TVL_20240501_0_L1C", HREFS))
    scene = scene_from_item(item)
    assert scene.sensor is Sensor.S2 and scene.band_names() == S2_BANDS
    # each band from its own COG (not the JP2 twin, not the thumbnail), DN offset kept for the reader
    assert {b.name: b.href for b in scene.bands} == HREFS
    assert {b.units for b in scene.bands} == {"reflectance_x10000"}
    assert scene.processing_baseline == "05.10" and scene.processing_level == "L1C"


def test_planetary_computer_b0x_keys_and_capitalised_platform():
    scene = scene_from_item(normalize_item(planetary_computer_s2("S2A_MSIL1C_X", HREFS)))
    assert scene.platform == "sentinel-2a"
    assert {b.name: b.href for b in scene.bands} == HREFS


def test_rededge_common_name_resolved_by_centre_wavelength():
    item = earth_search_s2("S2B_X", HREFS, jp2_twins=False)
    assets = item["assets"]
    # anonymous keys: only eo:bands' common name "rededge" + wavelength tells B5/B6/B7 apart
    for key in ("rededge1", "rededge2", "rededge3"):
        a = assets.pop(key)
        a["eo:bands"][0]["name"] = "rededge"
        assets[f"band-{a['eo:bands'][0]['center_wavelength']}"] = a
    out = normalize_item(item)
    assert out["assets"]["B5"]["href"].endswith("/B5.tif")
    assert out["assets"]["B6"]["href"].endswith("/B6.tif")
    assert out["assets"]["B7"]["href"].endswith("/B7.tif")


def test_offset_already_applied_is_not_subtracted_again():
    out = normalize_item(earth_search_s2("S2B_X", HREFS, offset_applied=True))
    assert "s2:processing_baseline" not in out["properties"]
    assert out["properties"]["terrawatch:source_processing_baseline"] == "05.10"
    assert scene_from_item(out).processing_baseline is None


def test_l2a_without_b10_is_accepted_with_its_scl_mask():
    hrefs = {b: h for b, h in HREFS.items() if b != "B10"} | {"SCL": "https://cogs.example.org/T33TVL/SCL.tif"}
    out = normalize_item(earth_search_s2("S2B_X_L2A", hrefs, level="L2A", offset_applied=True))
    scene = scene_from_item(out)
    assert scene.is_l2a and "B10" not in scene.band_names() and len(scene.bands) == 12
    assert scene.mask_band is not None and scene.mask_band.href.endswith("/SCL.tif")
    assert out["assets"]["SCL"]["terrawatch:units"] == "class"


def test_missing_band_is_named():
    hrefs = {b: h for b, h in HREFS.items() if b != "B8A"}
    with pytest.raises(InvalidEvent, match=r"no asset for band\(s\) B8A"):
        normalize_item(earth_search_s2("S2B_X", hrefs))


def test_s1_rtc_is_linear_and_uncalibrated_grd_dn_is_refused():
    rtc = normalize_item(s1_item("S1A_IW_RTC_X", "https://x.org/vv.tif", "https://x.org/vh.tif"))
    scene = scene_from_item(rtc)
    assert scene.platform == "sentinel-1a" and scene.processing_level == "RTC"
    assert [(b.name, b.units) for b in scene.bands] == [("VV", "linear"), ("VH", "linear")]
    with pytest.raises(InvalidEvent, match="uncalibrated"):
        normalize_item(s1_item("S1A_IW_GRDH_X", "s3://b/vv.tif", "s3://b/vh.tif", collection="sentinel-1-grd",
                               data_type="uint16"))


def test_s1_relative_orbit_is_kept_for_change_detection():
    """Planetary Computer / CDSE S1 Items carry sat:relative_orbit: the pre-event scene is matched on it."""
    item = s1_item("S1A_IW_RTC_Y", "https://x.org/vv.tif", "https://x.org/vh.tif")
    item["properties"]["sat:relative_orbit"] = 117
    scene = scene_from_item(normalize_item(item))
    assert scene.relative_orbit == 117 and scene.pre_event_scene is None


def test_resolve_event_passes_terrawatch_items_through_and_converts_catalogue_items():
    own = {"type": "Feature", "stac_version": "1.1.0", "id": "S1A_OWN",
           "geometry": {"type": "Polygon", "coordinates": [[[-1, 40], [-0.9, 40], [-0.9, 40.1], [-1, 40]]]},
           "properties": {"datetime": "2024-05-01T06:00:00Z", "platform": "sentinel-1a",
                          "constellation": "sentinel-1"},
           "assets": {"data": {"href": "file:///x.tif", "roles": ["data"], "terrawatch:bands": ["VV", "VH"]}}}
    raw = json.dumps(own).encode()
    assert resolve_event(raw) is raw
    assert resolve_event(b"{not json") == b"{not json"
    converted = resolve_event(json.dumps(earth_search_s2("S2B_33TVL_X", HREFS)))
    assert parse_event(converted).bands[1].href == HREFS["B2"]


def test_resolve_event_explains_both_readings_when_nothing_fits():
    item = earth_search_s2("S2B_X", {b: h for b, h in HREFS.items() if b != "B3"})
    with pytest.raises(InvalidEvent, match="missing asset.*read as a catalogue STAC Item: .*B3"):
        resolve_event(json.dumps(item))
