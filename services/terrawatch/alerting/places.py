"""Place names for alerts, offline: the nearest GeoNames populated place (reverse-geocode's bundled table of
places with at least 1,000 inhabitants, LGPL) with its first-level region and country.

It is a *nearest place*, not a point-in-polygon lookup: near a border the region or country can be the
neighbour's, so texts say "near <place>". Coordinates are WGS 84 lon/lat.
"""

from __future__ import annotations

import functools
import math
import threading

_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _geocoder():
    import reverse_geocode  # loads ~3 MB of places into a k-d tree once per process (~1 s)

    return reverse_geocode


def nearest_place(lon: float, lat: float) -> dict[str, str] | None:
    """``{"place", "region", "country", "country_code", "distance_km"}`` of the nearest populated place, or
    None for a coordinate that is not finite."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None
    with _lock:
        hit = _geocoder().search([(lat, lon)])[0]
    d = _haversine_km(lon, lat, float(hit["longitude"]), float(hit["latitude"]))
    return {"place": hit.get("city") or "", "region": hit.get("state") or "", "country": hit.get("country") or "",
            "country_code": hit.get("country_code") or "", "distance_km": f"{d:.0f}"}


@functools.lru_cache(maxsize=1)
def _table():
    """The same places as numpy columns: lon, lat, population (float64, float64, int64) and the rows."""
    import numpy as np

    data = _geocoder().GeocodeData(0)  # the instance search() uses (the singleton is keyed by its arguments)
    rows = data._locations
    lon = np.fromiter((r["longitude"] for r in rows), float, len(rows))
    lat = np.fromiter((r["latitude"] for r in rows), float, len(rows))
    pop = np.fromiter((r.get("population") or 0 for r in rows), np.int64, len(rows))
    return lon, lat, pop, rows, data._countries


def places_in_bbox(west: float, south: float, east: float, north: float, limit: int) -> list[dict]:
    """The ``limit`` most populous places inside the lon/lat box (WGS 84; ``west > east`` crosses the
    antimeridian), most populous first: ``{"name", "region", "country", "country_code", "population", "lon",
    "lat"}``."""
    import numpy as np

    with _lock:
        lon, lat, pop, rows, countries = _table()
    inside = (lat >= south) & (lat <= north)
    inside &= ((lon >= west) & (lon <= east)) if west <= east else ((lon >= west) | (lon <= east))
    idx = np.flatnonzero(inside)
    idx = idx[np.lexsort((idx, -pop[idx]))][:limit]  # population desc, then table order (stable)
    return [{"name": rows[i]["city"], "region": rows[i].get("state") or "",
             "country": countries.get(rows[i]["country_code"], ""), "country_code": rows[i]["country_code"],
             "population": int(pop[i]), "lon": float(lon[i]), "lat": float(lat[i])} for i in idx]


@functools.lru_cache(maxsize=1024)  # one alert's CAP is built once per subscriber, inside the store transaction
def describe(lon: float, lat: float) -> str:
    """A short human place description: ``near Beniel (Murcia, Spain)``; '' when unknown."""
    p = nearest_place(lon, lat)
    if not p or not p["place"]:
        return ""
    where = ", ".join(x for x in (p["region"], p["country"]) if x)
    return f"near {p['place']}" + (f" ({where})" if where else "")


def _haversine_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, a)))
