"""STAC access: fetch Items and search STAC APIs, and turn foreign Items into terrawatch scene events.

A scene event on Kafka is a STAC Item in terrawatch's form (``domain/scene.py``:
per-band assets keyed B1..B12/B8A or VV/VH, or one multi-band asset listing
``terrawatch:bands``). Items from public catalogues (Earth Search, Planetary
Computer, Sentinel Hub Catalog, a CDSE STAC) name their bands differently:
asset keys such as ``blue``/``nir08``/``B02`` and ``eo:bands`` common names.
:func:`normalize_item` maps them onto the Sentinel band names; the reader
resamples 20/60 m bands onto the finest (10 m) grid per tile.

An event may also *refer* to an Item instead of carrying it (resolved by the
worker before validation, see :func:`resolve_event`)::

    {"terrawatch:resolve": {"item": "https://stac.example/collections/c/items/ID"}}
    {"terrawatch:resolve": {"search": "https://stac.example/api", "collections": ["sentinel-2-l1c"],
                            "ids": ["ID"]}, "terrawatch:hazards": ["flood"]}

A search must match exactly one Item; ``bbox``, ``datetime`` and ``query`` are passed on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pystac
import requests
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3 import Retry

from terrawatch.domain.errors import InvalidEvent, TransientError
from terrawatch.domain.scene import S1_BANDS, S2_BANDS, S2_L2A_BANDS, SCL, scene_from_item

RESOLVE_KEY = "terrawatch:resolve"
RETRY_STATUS = (429, 500, 502, 503, 504)

# Sentinel-2 MSI band centre wavelengths (um, S2A) for disambiguating common names like "rededge".
S2_CENTRE_UM = {"B1": 0.443, "B2": 0.490, "B3": 0.560, "B4": 0.665, "B5": 0.705, "B6": 0.740, "B7": 0.783,
                "B8": 0.842, "B8A": 0.865, "B9": 0.945, "B10": 1.375, "B11": 1.610, "B12": 2.190}
# STAC eo common names and the asset keys public catalogues use for them.
S2_COMMON = {"coastal": "B1", "blue": "B2", "green": "B3", "red": "B4", "rededge1": "B5", "rededge2": "B6",
             "rededge3": "B7", "rededge071": "B5", "rededge075": "B6", "rededge078": "B7", "nir": "B8",
             "nir08": "B8A", "nir09": "B9", "cirrus": "B10", "swir16": "B11", "swir22": "B12"}
_AMBIGUOUS = {"rededge": ("B5", "B6", "B7"), "nir": ("B8", "B8A")}
_S2_NAME = re.compile(r"^B0?(1[0-2]|[1-9]|8A)$", re.IGNORECASE)
_INT_TYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}


def stac_io(timeout_s: float = 30.0, retries: int = 4) -> StacApiIO:
    """A requests-based STAC IO that retries connection errors and HTTP 429/5xx with backoff (also POST)."""
    retry = Retry(total=retries, backoff_factor=0.5, status_forcelist=RETRY_STATUS, allowed_methods=None,
                  respect_retry_after_header=True, raise_on_status=False)
    return StacApiIO(timeout=timeout_s, max_retries=retry)


def fetch_item(url: str, io: StacApiIO | None = None) -> dict[str, Any]:
    """GET one STAC Item; asset hrefs are made absolute against the Item's URL."""
    io = io or stac_io()
    try:
        item = pystac.Item.from_dict(io.read_json(url), href=url, preserve_dict=True)
    except (APIError, requests.RequestException) as exc:
        raise _fetch_error(exc, f"STAC Item {url}", "not retrievable", with_reason=False) from exc
    except (ValueError, KeyError, pystac.STACError) as exc:
        raise InvalidEvent(f"{url} is not a STAC Item: {exc}") from exc
    return _absolute(item)


def search_items(api_url: str, *, collections: list[str] | None = None, bbox: list[float] | None = None,
                 datetime: str | None = None, ids: list[str] | None = None, query: dict | None = None,
                 max_items: int | None = None, limit: int = 100, io: StacApiIO | None = None,
                 ) -> Iterator[dict[str, Any]]:
    """Items of a STAC API ``/search`` (pages followed), hrefs made absolute. ``datetime`` is RFC 3339 or a range."""
    try:
        client = Client.open(api_url, stac_io=io or stac_io())
        search = client.search(collections=collections, bbox=bbox, datetime=datetime, ids=ids, query=query,
                               max_items=max_items, limit=limit)
        for item in search.items():
            yield _absolute(item)
    except (APIError, requests.RequestException) as exc:
        raise _fetch_error(exc, f"STAC search at {api_url}", "rejected", with_reason=True) from exc


def _fetch_error(exc: Exception, what: str, refused: str, with_reason: bool) -> Exception:
    """A STAC API failure as the pipeline's error: HTTP 4xx other than 429 (raised by pystac-client
    after its retries) is the event's fault; 5xx, 429 and network errors are transient."""
    if isinstance(exc, APIError):
        status = getattr(exc, "status_code", None)
        if status is not None and status < 500 and status != 429:
            return InvalidEvent(f"{what} {refused}: HTTP {status}" + (f": {exc}" if with_reason else ""))
        return TransientError(f"{what}: {exc}")
    return TransientError(f"{what}: {type(exc).__name__}: {exc}")


def _absolute(item: pystac.Item) -> dict[str, Any]:
    d = item.to_dict(include_self_link=True, transform_hrefs=False)
    for key, asset in item.assets.items():
        d["assets"][key]["href"] = asset.get_absolute_href() or asset.href
    return d


# --- events --------------------------------------------------------------------------------------------------

def resolve_event(raw: bytes | str, check_url=None) -> bytes | str:
    """Turn a reference event or a foreign STAC Item into a terrawatch scene event; pass others on unchanged.

    Undecodable input is returned as is, so ``parse_event`` reports it. Raises
    :class:`InvalidEvent` (bad reference, unmappable bands) or
    :class:`TransientError` (catalogue unreachable or 5xx after retries).
    """
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):  # parse_event then reports it as malformed
        return raw
    if not isinstance(obj, dict):
        return raw
    if RESOLVE_KEY in obj:
        item = resolve_reference(obj[RESOLVE_KEY], check_url)
        if obj.get("terrawatch:hazards"):
            item.setdefault("properties", {})["terrawatch:hazards"] = obj["terrawatch:hazards"]
        return json.dumps(normalize_item(item))
    try:
        scene_from_item(obj)
        accepted, reason = True, ""
    except InvalidEvent as exc:
        accepted, reason = False, exc.reason
    if accepted and not _has_foreign_bands(obj):
        return raw
    try:
        return json.dumps(normalize_item(obj))
    except InvalidEvent as exc:
        if accepted:
            raise
        raise InvalidEvent(f"{reason}; read as a catalogue STAC Item: {exc.reason}") from exc


def resolve_reference(ref: Any, check_url=None) -> dict[str, Any]:
    """Fetch the Item a ``terrawatch:resolve`` object names (``item`` URL or a ``search`` matching one Item).

    ``check_url(url)`` (the worker's :class:`~terrawatch.imagery.asset_policy.AssetPolicy`) vets each
    URL before it is fetched and raises :class:`InvalidEvent` for a refused one.
    """
    if not isinstance(ref, dict):
        raise InvalidEvent(f"{RESOLVE_KEY} must be an object with 'item' or 'search'")
    for key in ("item", "search"):
        if isinstance(ref.get(key), str) and check_url is not None:
            check_url(_http_url(ref[key]))
    if isinstance(ref.get("item"), str):
        return fetch_item(_http_url(ref["item"]))
    if isinstance(ref.get("search"), str):
        params = {k: ref[k] for k in ("collections", "bbox", "datetime", "ids", "query") if ref.get(k) is not None}
        if not params:
            raise InvalidEvent(f"{RESOLVE_KEY}.search needs ids, bbox, datetime, collections or query")
        found = list(search_items(_http_url(ref["search"]), max_items=2, **params))
        if len(found) != 1:
            raise InvalidEvent(f"STAC search {params} at {ref['search']} matched "
                               f"{'no' if not found else 'more than one'} Item (exactly one needed)")
        return found[0]
    raise InvalidEvent(f"{RESOLVE_KEY} must have an 'item' URL or a 'search' API URL")


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise InvalidEvent(f"STAC reference {url!r} is not an http(s) URL")
    return url


def _has_foreign_bands(item: dict) -> bool:
    return any(isinstance(a, dict) and "terrawatch:units" not in a and "terrawatch:bands" not in a
               and ({"eo:bands", "raster:bands", "bands"} & a.keys()) for a in (item.get("assets") or {}).values())


# --- normalization -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Candidate:
    band: str
    key: str
    index: int  # 1-based band in the asset
    tiff: bool


def normalize_item(item: dict[str, Any]) -> dict[str, Any]:
    """A terrawatch scene event (STAC Item dict) for a Sentinel-1/-2 Item from any catalogue.

    Bands: asset keys (``B02``, ``blue``, ``nir08``, ``vv``), ``eo:bands`` names and
    common names (``rededge``/``nir`` disambiguated by centre wavelength). COG
    (``image/tiff``) assets win over JP2. S2 DNs keep their baseline >= 04.00
    offset unless the catalogue says it was removed (``earthsearch:boa_offset_applied``
    or ``raster:bands`` offset 0); then ``s2:processing_baseline`` is dropped so the
    reader does not subtract it twice (kept as ``terrawatch:source_processing_baseline``).
    Sentinel-2 L2A (``processing:level``, ``s2:product_type`` S2MSI2A or an ``*l2a*`` collection):
    the 12 L2A bands (no B10) and, when the Item has it, the ``SCL`` asset (scene classification,
    used as the cloud/shadow mask); the same BOA offset rule applies.
    """
    props = dict(item.get("properties") or {})
    assets = item.get("assets") or {}
    if not isinstance(assets, dict) or not assets:
        raise InvalidEvent("Item has no assets")
    platform = _platform(props, item.get("id", ""))
    constellation = "sentinel-1" if platform.startswith("sentinel-1") else "sentinel-2"
    level = _level(props, item.get("collection"), constellation)
    l2a = constellation == "sentinel-2" and level == "L2A"
    wanted = S1_BANDS if constellation == "sentinel-1" else S2_L2A_BANDS if l2a else S2_BANDS
    chosen: dict[str, _Candidate] = {}
    for key, asset in assets.items():
        if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
            continue
        roles = set(asset.get("roles") or [])
        if roles & {"thumbnail", "overview", "metadata", "visual"} and "data" not in roles:
            continue
        for cand in _candidates(key, asset, constellation):
            best = chosen.get(cand.band)
            if best is None or (cand.tiff and not best.tiff):
                chosen[cand.band] = cand
    missing = [b for b in wanted if b not in chosen]
    if missing:
        raise InvalidEvent(f"Item {item.get('id')}: no asset for band(s) {', '.join(missing)} "
                           f"(found {', '.join(sorted(chosen)) or 'none'})")
    out_assets = _assets(assets, [chosen[b] for b in wanted], constellation, props)
    if l2a and SCL in chosen and chosen[SCL].key not in {chosen[b].key for b in wanted}:
        scl = assets[chosen[SCL].key]  # the scene classification layer: the cloud/shadow mask
        out_assets[SCL] = {"href": scl["href"], "type": scl.get("type", pystac.MediaType.COG),
                           "roles": ["data"], "terrawatch:units": "class"}
    out_props: dict[str, Any] = {
        "datetime": props.get("datetime") or props.get("start_datetime"),
        "platform": platform, "constellation": constellation,
    }
    if level:
        out_props["processing:level"] = level
    for k in ("terrawatch:hazards", "eo:cloud_cover", "proj:epsg", "proj:code", "sar:polarizations",
              "sar:instrument_mode", "sat:orbit_state", "sat:relative_orbit", "terrawatch:pre_event_scene"):
        if k in props:
            out_props[k] = props[k]
    baseline = props.get("s2:processing_baseline")
    if baseline:
        if _offset_removed(props, [assets[c.key] for c in chosen.values()]):
            out_props["terrawatch:source_processing_baseline"] = baseline
        else:
            out_props["s2:processing_baseline"] = baseline
    source = next((lk.get("href") for lk in item.get("links") or [] if lk.get("rel") == "self"), None)
    out = {
        "type": "Feature", "stac_version": item.get("stac_version") or "1.0.0", "id": item.get("id"),
        "geometry": item.get("geometry"), "properties": out_props, "assets": out_assets,
        "links": [{"rel": "derived_from", "href": source, "type": "application/geo+json"}] if source else [],
    }
    if item.get("bbox"):
        out["bbox"] = item["bbox"]
    if item.get("collection"):
        out["collection"] = item["collection"]
    return out


def _platform(props: dict, item_id: str) -> str:
    raw = str(props.get("platform") or "").strip().lower().replace(" ", "-").replace("_", "-")
    m = re.match(r"^(?:sentinel-?)?([12])([a-d])$", raw) or re.match(r"^s([12])([a-d])[_-]", item_id.lower())
    if not m:
        raise InvalidEvent(f"platform {props.get('platform')!r} is not a Sentinel-1/-2 satellite")
    return f"sentinel-{m.group(1)}{m.group(2)}"


def _level(props: dict, collection: str | None, constellation: str) -> str | None:
    level = props.get("processing:level")
    if level in ("L1C", "L2A", "GRD", "RTC"):
        return level
    product = str(props.get("s2:product_type") or props.get("sar:product_type") or "").upper()
    text = f"{product} {collection or ''}".upper()
    for token, lv in (("1C", "L1C"), ("2A", "L2A"), ("RTC", "RTC"), ("GRD", "GRD")):
        if token in text:
            return lv
    return None


def _asset_bands(asset: dict) -> list[dict]:
    bands = asset.get("eo:bands") or asset.get("bands") or []
    return [b for b in bands if isinstance(b, dict)]


def _candidates(key: str, asset: dict, constellation: str) -> list[_Candidate]:
    tiff = "tiff" in str(asset.get("type", "")).lower() or asset["href"].lower().split("?")[0].endswith(
        (".tif", ".tiff"))
    if "terrawatch:bands" in asset:
        return [_Candidate(str(b).upper(), key, i + 1, tiff) for i, b in enumerate(asset["terrawatch:bands"])]
    if constellation == "sentinel-1":
        pols = asset.get("sar:polarizations") or []
        name = key.upper() if key.upper() in S1_BANDS else (pols[0].upper() if len(pols) == 1 else None)
        return [_Candidate(name, key, 1, tiff)] if name in S1_BANDS else []
    bands = _asset_bands(asset)
    if key.split("-")[0].upper() == SCL or (len(bands) == 1 and str(bands[0].get("name", "")).upper() == SCL):
        if key.lower().endswith("-jp2") or "jp2" in str(asset.get("type", "")).lower():
            tiff = False
        return [_Candidate(SCL, key, 1, tiff)]
    if len(bands) > 1:
        out = []
        for i, b in enumerate(bands):
            name = _s2_band(b.get("name"), b.get("common_name"), b.get("center_wavelength"))
            if name:
                out.append(_Candidate(name, key, i + 1, tiff))
        return out
    b = bands[0] if bands else {}
    name = (_s2_band(b.get("name"), b.get("common_name"), b.get("center_wavelength"))
            or _s2_band(key.split("-")[0], None, None))
    if key.lower().endswith("-jp2") or "jp2" in str(asset.get("type", "")).lower():
        tiff = False
    return [_Candidate(name, key, 1, tiff)] if name else []


def _s2_band(name: Any, common: Any, wavelength: Any) -> str | None:
    for text in (name, common):
        if not isinstance(text, str):
            continue
        m = _S2_NAME.match(text.strip())
        if m:
            return f"B{m.group(1).upper()}"
        low = text.strip().lower()
        if low in _AMBIGUOUS and isinstance(wavelength, (int, float)):
            return min(_AMBIGUOUS[low], key=lambda b: abs(S2_CENTRE_UM[b] - wavelength))
        if low in S2_COMMON and low not in _AMBIGUOUS:
            return S2_COMMON[low]
        if low == "nir":
            return "B8"
    return None


def _units(asset: dict, constellation: str, props: dict) -> str:
    if asset.get("terrawatch:units"):
        return asset["terrawatch:units"]
    if constellation == "sentinel-2":
        return "reflectance_x10000"
    rb = (asset.get("raster:bands") or [{}])[0]
    if str(rb.get("data_type", "")).lower() in _INT_TYPES:
        raise InvalidEvent("Sentinel-1 asset holds integer DN amplitudes (uncalibrated GRD); use calibrated "
                           "backscatter (an RTC/sigma0 product, or Sentinel Hub)")
    unit = str(rb.get("unit", "")).lower()
    if unit in ("db", "decibel"):
        return "dB"
    return "linear"


def _assets(assets: dict, chosen: list[_Candidate], constellation: str, props: dict) -> dict[str, Any]:
    keys = {c.key for c in chosen}
    if len(keys) == 1 and len(chosen) > 1:  # one multi-band asset
        key = chosen[0].key
        src = assets[key]
        count = max(len(_asset_bands(src)), len(src.get("terrawatch:bands") or []), max(c.index for c in chosen))
        names = [f"_{i + 1}" for i in range(count)]
        for c in chosen:
            names[c.index - 1] = c.band
        return {"data": {"href": src["href"], "type": src.get("type", pystac.MediaType.COG), "roles": ["data"],
                         "terrawatch:bands": names, "terrawatch:units": _units(src, constellation, props)}}
    if any(c.index != 1 for c in chosen):
        raise InvalidEvent("bands split over several multi-band assets are not supported; "
                           "use one asset per band or one asset with all bands")
    return {c.band: {"href": assets[c.key]["href"], "type": assets[c.key].get("type", pystac.MediaType.COG),
                     "roles": ["data"], "terrawatch:units": _units(assets[c.key], constellation, props)}
            for c in chosen}


def _offset_removed(props: dict, assets: list[dict]) -> bool:
    if props.get("earthsearch:boa_offset_applied") is True or props.get("terrawatch:harmonized") is True:
        return True
    offsets = [rb.get("offset") for a in assets for rb in (a.get("raster:bands") or [])[:1] if "offset" in rb]
    return bool(offsets) and all(o == 0 for o in offsets)
