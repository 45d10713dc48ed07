"""A corpus of hostile and broken scene events, generated into a folder (no binary fixtures in git).

Each :class:`Case` is one Kafka message (its key is the case name) and what the pipeline must do
with it: a DLQ entry with ``code`` and a reason containing every string of ``reason``. Rasters are
small GeoTIFFs written by :func:`build`; the 404 case needs the base URL of a local HTTP server.

All-NaN and all-nodata scenes are dead-lettered as ``no_valid_pixels``: as in GFM, pixels without
data are "no data", never "no flood"; a run with zero detections would claim an observation
that was not made.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch_dev.samples import synthetic_s1

UTM = "EPSG:32630"


@dataclass(frozen=True)
class Case:
    name: str
    payload: bytes
    code: str  # expected DLQ error_code
    reason: tuple[str, ...]  # substrings the DLQ reason must contain


def _s1_tif(path: Path, data: np.ndarray, origin: tuple[float, float], crs: str | None = UTM, nodata=np.nan,
            transform=None) -> Path:
    bands, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=bands, dtype="float32", crs=crs,
                       transform=transform or from_origin(origin[0], origin[1], 10, 10), nodata=nodata) as ds:
        ds.write(data.astype(np.float32))
    return path


def _with(item: dict, *, href: str | None = None, **changes) -> dict:
    out = copy.deepcopy(item)
    out["id"] = f"{item['id']}-{uuid.uuid4().hex[:4]}"
    if href is not None:
        out["assets"]["data"]["href"] = href
    for dotted, value in changes.items():
        node = out
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node[k]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return out


_DELETE = object()


def _json(item: dict) -> bytes:
    return json.dumps(item).encode()


def valid_item(folder: Path, origin: tuple[float, float], name: str = "valid") -> dict:
    """A valid S1 scene event (the project's synthetic river + lake scene, 256 px) at ``origin`` (UTM 30N)."""
    path = folder / f"{name}.tif"
    synthetic_s1(path, size=256, origin=origin)
    return item_from_geotiff(path, scene_id=f"hostile-{name}-{uuid.uuid4().hex[:6]}",
                             sensing_time=datetime.now(timezone.utc) - timedelta(minutes=5))


def build(folder: Path, http_base: str, origin: tuple[float, float],
          state: Path | None = None) -> tuple[list[Case], dict]:
    """Write the corpus rasters under ``folder``; return the hostile cases and the valid template item.

    ``state``: the stack's state dir; its internals (PostgreSQL data, logs) are never assets (issue 25).

    ``http_base``: URL of a local HTTP server (e.g. http://127.0.0.1:PORT) that answers 404 for
    ``/missing.tif``. ``origin``: UTM 30N top-left (m) of the scenes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = valid_item(folder, origin, "template")
    x0, y0 = origin
    size = 64
    ok = np.stack([np.full((size, size), -8.0), np.full((size, size), -15.0)])

    cases = [
        Case("malformed-json", b'{"type": "Feature", "id": "x", "properties": {', "invalid_event", ("malformed JSON",)),
        Case("binary-garbage", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "invalid_event", ("malformed JSON",)),
        Case("deeply-nested-json", b"[" * 100_000, "invalid_event", ("RecursionError",)),
        Case("5000-digit-number", b'{"id": ' + b"9" * 5000 + b"}", "invalid_event", ("4300",)),
        Case("json-array", b"[1, 2, 3]", "invalid_event", ("not a JSON object",)),
        Case("empty-payload", b"", "invalid_event", ("malformed JSON",)),
        Case("wrong-schema", _json(_with(base, properties__datetime=_DELETE)), "invalid_event",
             ("schema violation", "datetime")),
        Case("not-a-date", _json(_with(base, properties__datetime="yesterday at noon")), "invalid_event",
             ("date-time",)),
        Case("unknown-platform", _json(_with(base, properties__platform="landsat-8")), "invalid_event",
             ("schema violation at properties/platform", "landsat-8")),
        Case("platform-of-other-constellation", _json(_with(base, properties__platform="sentinel-2a")),
             "invalid_event", ("does not belong to constellation",)),
        Case("missing-asset", _json(_with(base, assets={"thumbnail": {"href": "file:///x.png", "roles": ["thumbnail"]}})),
             "invalid_event", ("missing asset", "VV, VH")),
        Case("ftp-href", _json(_with(base, href="ftp://example.org/scene.tif")), "invalid_event",
             ("schema violation at assets/data/href",)),
        # the pre-event scene id names a products folder and is looked up in PostGIS: only a scene id passes
        Case("pre-event-scene-traversal", _json(_with(base, **{"properties__terrawatch:pre_event_scene": "../../etc"})),
             "invalid_event", ("schema violation at properties/terrawatch:pre_event_scene",)),
        Case("relative-orbit-out-of-range", _json(_with(base, **{"properties__sat:relative_orbit": 99999})),
             "invalid_event", ("schema violation at properties/sat:relative_orbit",)),
        Case("asset-file-not-found", _json(_with(base, href=(folder / "does-not-exist.tif").as_uri())),
             "unreadable_asset", ("cannot open asset",)),
        Case("asset-http-404", _json(_with(base, href=f"{http_base}/missing.tif")), "unreadable_asset",
             ("cannot open asset", "/missing.tif", "404")),
        # Outside the file roots: one reason whether the file exists or not (no existence oracle).
        Case("asset-outside-roots-existing", _json(_with(base, href="file:///etc/hostname")), "unreadable_asset",
             ("outside the allowed file roots",)),
        Case("asset-outside-roots-missing", _json(_with(base, href="file:///etc/terrawatch-no-such-file.tif")),
             "unreadable_asset", ("outside the allowed file roots",)),
        Case("asset-metadata-service", _json(_with(base, href="http://169.254.169.254/latest/meta-data/a.tif")),
             "unreadable_asset", ("non-public address", "169.254.169.254")),
        # The metadata service behind NAT64 (IPv4 carried in IPv6), issue 25 finding 6.
        Case("asset-metadata-service-nat64", _json(_with(base, href="http://[64:ff9b::a9fe:a9fe]/latest/a.tif")),
             "unreadable_asset", ("non-public address", "embedded 169.254.169.254")),
        Case("asset-private-6to4", _json(_with(base, href="http://[2002:a00:1::1]/a.tif")),
             "unreadable_asset", ("non-public address", "embedded 10.0.0.1")),
        # Markup as the host name: the reason (DLQ, scenes.status_reason, the OGC HTML) carries it defused
        # (issue 25 finding 4).
        Case("asset-host-markup", _json(_with(base, href="http://<img src=x onerror=alert(1)>/a.tif")),
             "unreadable_asset", ("cannot resolve asset host", "'?img src?x onerror?alert(1)?'")),
        Case("zero-area-footprint", _json(_with(base, geometry={
            "type": "Polygon", "coordinates": [[[-3.0, 42.0], [-2.9, 42.1], [-2.8, 42.2], [-3.0, 42.0]]]})),
             "invalid_event", ("zero area",)),
        Case("footprint-in-metres", _json(_with(base, geometry={
            "type": "Polygon", "coordinates": [[[x0, y0 - 640], [x0 + 640, y0 - 640], [x0 + 640, y0], [x0, y0],
                                                [x0, y0 - 640]]]})),
             "invalid_event", ("outside lon/lat bounds",)),
        Case("far-future-scene", _json(_with(base, properties__datetime=(
            datetime.now(timezone.utc) + timedelta(days=400)).isoformat().replace("+00:00", "Z"))),
             "invalid_event", ("in the future",)),
    ]
    if state is not None:  # the stack's own state: never an asset, although the test roots contain it
        for name, rel in (("asset-state-pg-data", "pg/data/PG_VERSION"), ("asset-state-log", "logs/worker.log")):
            cases.append(Case(name, _json(_with(base, href=(state / rel).as_uri())), "unreadable_asset",
                              ("outside the allowed file roots",)))

    # Rasters that open but are wrong.
    src = folder / "cog-src.tif"
    synthetic_s1(src, size=512, origin=origin)
    with rasterio.open(src) as ds:
        profile, data = ds.profile, ds.read()
    for k in ("blockxsize", "blockysize", "tiled", "interleave"):
        profile.pop(k, None)
    cog = folder / "scene-cog.tif"
    with rasterio.open(cog, "w", **{**profile, "driver": "COG", "compress": "deflate"}) as ds:
        ds.write(data)
    raw = cog.read_bytes()
    truncated = folder / "truncated.tif"
    truncated.write_bytes(raw[: len(raw) // 2])  # header and overviews intact, half the tiles missing
    cases.append(Case("truncated-geotiff", _json(_with(base, href=truncated.as_uri())), "unreadable_asset",
                      ("cannot read", "truncated.tif")))

    no_crs = _s1_tif(folder / "no-crs.tif", ok, origin, crs=None)
    cases.append(Case("no-crs", _json(_with(base, href=no_crs.as_uri())), "unreadable_asset", ("has no CRS",)))

    # UTM metres written with a lon/lat CRS tag: the raster claims to lie at "lon 500000".
    wrong_crs = _s1_tif(folder / "wrong-crs.tif", ok, origin, crs="EPSG:4326")
    cases.append(Case("wrong-crs", _json(_with(base, href=wrong_crs.as_uri())), "unreadable_asset",
                      ("outside the scene footprint", "EPSG:4326")))
    # Right CRS, but georeferenced 500 km away from the event's footprint.
    elsewhere = _s1_tif(folder / "elsewhere.tif", ok, (x0 + 300_000, y0 - 500_000))
    cases.append(Case("raster-elsewhere", _json(_with(base, href=elsewhere.as_uri())), "unreadable_asset",
                      ("outside the scene footprint",)))

    nan = _s1_tif(folder / "all-nan.tif", np.full((2, 256, 256), np.nan), origin)
    cases.append(Case("all-nan", _json(_with(base, href=nan.as_uri())), "no_valid_pixels", ("no valid pixels",)))
    nodata = _s1_tif(folder / "all-nodata.tif", np.full((2, 256, 256), -9999.0), origin, nodata=-9999.0)
    cases.append(Case("all-nodata", _json(_with(base, href=nodata.as_uri())), "no_valid_pixels",
                      ("no valid pixels",)))

    huge = folder / "huge-header.tif"
    with rasterio.open(huge, "w", driver="GTiff", width=200_000, height=200_000, count=2, dtype="float32",
                       crs=UTM, transform=from_origin(x0, y0, 10, 10), tiled=True, blockxsize=4096,
                       blockysize=4096, sparse_ok=True, compress="deflate", BIGTIFF="YES"):
        pass  # nothing written: a ~30 kB file whose header claims 200000 x 200000 px
    cases.append(Case("huge-dimensions-header", _json(_with(base, href=huge.as_uri())), "unreadable_asset",
                      ("200000x200000 px", "over the limit")))

    one_band = _s1_tif(folder / "one-band.tif", ok[:1], origin)
    cases.append(Case("wrong-band-count", _json(_with(base, href=one_band.as_uri())), "unreadable_asset",
                      ("wrong band count", "has 1 bands")))
    return cases, base
