"""STAC Items shaped like the public catalogues' (Earth Search v1, Planetary Computer), written for tests.

Field names and nesting follow those catalogues' Sentinel items; ids, hrefs and
values are made up. ``hrefs`` maps terrawatch band names (B1..B12, B8A, VV, VH)
to asset hrefs.
"""

from __future__ import annotations

S2_KEYS = {  # terrawatch band -> (Earth Search asset key, eo common name, centre um, gsd m)
    "B1": ("coastal", "coastal", 0.443, 60), "B2": ("blue", "blue", 0.49, 10), "B3": ("green", "green", 0.56, 10),
    "B4": ("red", "red", 0.665, 10), "B5": ("rededge1", "rededge", 0.704, 20),
    "B6": ("rededge2", "rededge", 0.74, 20), "B7": ("rededge3", "rededge", 0.783, 20),
    "B8": ("nir", "nir", 0.842, 10), "B8A": ("nir08", "nir08", 0.865, 20), "B9": ("nir09", "nir09", 0.945, 60),
    "B10": ("cirrus", "cirrus", 1.3735, 60), "B11": ("swir16", "swir16", 1.61, 20),
    "B12": ("swir22", "swir22", 2.19, 20),
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
FOOTPRINT = {"type": "Polygon", "coordinates": [[[14.0, 45.0], [14.06, 45.0], [14.06, 45.04], [14.0, 45.04],
                                                 [14.0, 45.0]]]}


def earth_search_s2(item_id: str, hrefs: dict[str, str], *, level: str = "L1C", baseline: str = "05.10",
                    datetime: str = "2024-05-01T10:05:59.024000Z", jp2_twins: bool = True,
                    offset_applied: bool | None = None, geometry: dict | None = None) -> dict:
    """A sentinel-2-l1c / -l2a Item as Earth Search v1 publishes it (common-name asset keys, eo:bands)."""
    assets: dict[str, dict] = {}
    for band, href in hrefs.items():
        if band == "SCL":
            continue
        key, common, centre, gsd = S2_KEYS[band]
        eo = [{"name": key, "common_name": common, "description": f"{key} ({band})",
               "center_wavelength": centre, "full_width_half_max": 0.02}]
        raster = [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": gsd,
                   "scale": 0.0001, "offset": 0 if offset_applied else -0.1}]
        assets[key] = {"href": href, "type": COG, "title": f"{key} - {gsd}m", "eo:bands": eo, "gsd": gsd,
                       "raster:bands": raster, "roles": ["data", "reflectance"]}
        if jp2_twins:
            assets[f"{key}-jp2"] = {"href": href.rsplit(".", 1)[0] + ".jp2", "type": "image/jp2",
                                    "eo:bands": eo, "roles": ["data", "reflectance"]}
    if level == "L2A":  # Earth Search v1 sentinel-2-l2a extras: aot, wvp, scl (uint8, 20 m, no eo:bands), visual
        for key, title, dtype in (("aot", "Aerosol optical thickness (AOT)", "uint16"),
                                  ("wvp", "Water vapour (WVP)", "uint16"), ("scl", "Scene classification map (SCL)",
                                                                           "uint8")):
            href = hrefs.get("SCL") if key == "scl" else f"https://example.invalid/{key.upper()}.tif"
            if href is None:
                continue
            rb = {"nodata": 0, "data_type": dtype, "spatial_resolution": 20}
            if key != "scl":
                rb.update({"scale": 0.001})
            assets[key] = {"href": href, "type": COG, "title": title, "raster:bands": [rb],
                           "roles": ["data", "reflectance"]}
            if jp2_twins:
                assets[f"{key}-jp2"] = {"href": href.rsplit(".", 1)[0] + ".jp2", "type": "image/jp2",
                                        "title": title, "raster:bands": [rb], "roles": ["data", "reflectance"]}
        assets["visual"] = {"href": "https://example.invalid/TCI.tif", "type": COG, "title": "True color image",
                            "eo:bands": [{"name": "red", "common_name": "red"}, {"name": "green", "common_name":
                                         "green"}, {"name": "blue", "common_name": "blue"}], "roles": ["visual"]}
    assets["thumbnail"] = {"href": "https://example.invalid/preview.jpg", "type": "image/jpeg",
                           "roles": ["thumbnail"]}
    assets["granule_metadata"] = {"href": "https://example.invalid/metadata.xml", "type": "application/xml",
                                  "roles": ["metadata"]}
    props = {
        "created": "2024-05-01T14:00:00Z", "platform": "sentinel-2b", "constellation": "sentinel-2",
        "instruments": ["msi"], "eo:cloud_cover": 3.2, "proj:epsg": 32633, "mgrs:utm_zone": 33,
        "mgrs:latitude_band": "T", "mgrs:grid_square": "VL", "grid:code": "MGRS-33TVL",
        "s2:product_type": "S2MSI1C" if level == "L1C" else "S2MSI2A", "s2:processing_baseline": baseline,
        "datetime": datetime,
    }
    if offset_applied is not None:
        props["earthsearch:boa_offset_applied"] = offset_applied
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
        "id": item_id, "collection": f"sentinel-2-{level.lower()}", "geometry": geometry or FOOTPRINT,
        "bbox": [14.0, 45.0, 14.06, 45.04], "properties": props, "assets": assets, "links": [],
    }


def planetary_computer_s2(item_id: str, hrefs: dict[str, str], *, level: str = "L1C",
                          baseline: str = "04.00") -> dict:
    """An Item with Planetary Computer's conventions: asset keys B01..B12, platform 'Sentinel-2A'.

    ``level="L2A"``: PC's sentinel-2-l2a shape (AOT, WVP, SCL, visual, preview and metadata assets;
    ``s2:*`` properties; no ``raster:bands`` and no offset flag: DN keep the +1000 BOA offset)."""
    assets = {}
    for band, href in hrefs.items():
        if band == "SCL":
            assets["SCL"] = {"href": href, "type": COG, "title": "Scene classfication map (SCL)", "gsd": 20.0,
                             "proj:shape": [5490, 5490], "roles": ["data"],
                             "proj:transform": [20.0, 0.0, 399960.0, 0.0, -20.0, 5000040.0]}
            continue
        key = "B" + band[1:].zfill(2) if band != "B8A" else "B8A"
        _, common, centre, gsd = S2_KEYS[band]
        assets[key] = {"href": href, "type": COG, "gsd": gsd, "roles": ["data"],
                       "eo:bands": [{"name": key, "common_name": common, "center_wavelength": centre}]}
    props = {"datetime": "2024-05-02T10:05:59Z", "platform": "Sentinel-2A", "constellation": "Sentinel 2",
             "s2:processing_baseline": baseline, "s2:product_type": "S2MSI1C" if level == "L1C" else "S2MSI2A"}
    if level == "L2A":
        for key, title in (("AOT", "Aerosol optical thickness (AOT)"), ("WVP", "Water vapour (WVP)")):
            assets[key] = {"href": f"https://example.invalid/{key}_10m.tif", "type": COG, "title": title,
                           "gsd": 10.0, "roles": ["data"]}
        assets["visual"] = {"href": "https://example.invalid/TCI_10m.tif", "type": COG, "title": "True color image",
                            "gsd": 10.0, "roles": ["data"],
                            "eo:bands": [{"name": "B04", "common_name": "red"}, {"name": "B03", "common_name":
                                         "green"}, {"name": "B02", "common_name": "blue"}]}
        assets["preview"] = {"href": "https://example.invalid/preview.png", "type": "image/png",
                             "roles": ["overview"]}
        assets["granule-metadata"] = {"href": "https://example.invalid/MTD_TL.xml", "type": "application/xml",
                                      "roles": ["metadata"]}
        props.update({"instruments": ["msi"], "s2:mgrs_tile": "33TVL", "eo:cloud_cover": 12.5,
                      "proj:epsg": 32633, "sat:orbit_state": "descending", "s2:datatake_type": "INS-NOBS",
                      "s2:water_percentage": 1.2, "s2:high_proba_clouds_percentage": 3.4,
                      "s2:product_uri": f"{item_id}.SAFE"})
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": f"sentinel-2-{level.lower()}",
        "geometry": FOOTPRINT, "bbox": [14.0, 45.0, 14.06, 45.04], "properties": props,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.0.0/schema.json",
                            "https://stac-extensions.github.io/projection/v1.0.0/schema.json"],
        "assets": assets, "links": [],
    }


def s1_item(item_id: str, vv: str, vh: str, *, collection: str = "sentinel-1-rtc", data_type: str = "float32") -> dict:
    """S1 IW Item: 'sentinel-1-rtc' as on Planetary Computer (linear gamma0, float32) or GRD (uint16 DN)."""
    def asset(href, pol):
        return {"href": href, "type": COG, "roles": ["data"], "sar:polarizations": [pol],
                "raster:bands": [{"nodata": -32768 if data_type == "float32" else 0, "data_type": data_type}]}

    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
        "geometry": FOOTPRINT, "bbox": [14.0, 45.0, 14.06, 45.04],
        "properties": {"datetime": "2024-05-03T05:01:00Z", "platform": "SENTINEL-1A", "constellation": "Sentinel-1",
                       "sar:instrument_mode": "IW", "sar:polarizations": ["VV", "VH"],
                       "sar:product_type": "GRD" if "grd" in collection else "RTC"},
        "assets": {"vv": asset(vv, "VV"), "vh": asset(vh, "VH")}, "links": [],
    }
