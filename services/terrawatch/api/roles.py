"""Every route's required role, in one place (shown as ``x-required-role`` in the OpenAPI document).

``terrawatch.api.guard.AccessGuard`` enforces this table before a request body is read; the
routes' own ``deps.viewer|operator|admin`` dependencies check again (defence in depth) and give
the handler its :class:`~terrawatch.api.security.Principal`.
``tests/integration/test_route_roles.py`` walks the OpenAPI document and calls every operation
anonymously and with each role against this table, and fails on a route the table does not list.

Roles: ``none`` (anyone), ``layers`` (viewer, or anyone when ``TERRAWATCH_API_PUBLIC_READ`` is on:
the map layers only), ``viewer`` < ``operator`` < ``admin``.

The map layers are exactly what the map page loads: ``/ogc`` and ``/tiles`` (vector), ``/raster``
(the products' raster tiles) and ``/stac`` with ``/stac/assets`` (the page finds the rasters by a STAC
search; the COGs are the same pixels as the tiles). :data:`PUBLIC_READ_PREFIXES` names them;
``tests/unit/test_public_read_scope.py`` checks this table, docs/security.md and docs/api.md against it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from starlette.routing import compile_path

NONE, LAYERS, VIEWER, OPERATOR, ADMIN = "none", "layers", "viewer", "operator", "admin"

# (method, path template) -> role. HEAD is looked up as GET.
ROUTE_ROLES: dict[tuple[str, str], str] = {
    ("GET", "/"): NONE,
    ("GET", "/openapi.json"): NONE,
    ("GET", "/docs"): NONE,
    ("GET", "/redoc"): NONE,
    ("GET", "/metrics"): NONE,
    ("GET", "/map"): NONE,  # the page asks the API with the key it is given
    ("GET", "/map/static/{path:path}"): NONE,
    ("GET", "/map/config.json"): NONE,  # basemap configuration of the map page
    ("GET", "/map/legend.json"): NONE,  # the colours the map draws (no data)
    ("GET", "/styles/{layer}.json"): NONE,  # MapLibre style of alerts/detections (no data, as the legend)
    ("GET", "/styles/{layer}.qml"): NONE,  # QGIS style of alerts/detections
    ("GET", "/map/places.geojson"): NONE,  # place labels from the bundled GeoNames table (no terrawatch data)
    ("GET", "/ops/livez"): NONE,
    ("GET", "/ops/readyz"): NONE,
    # OGC API - Features (tipg) and vector tiles: the map layers.
    ("GET", "/ogc"): LAYERS,
    ("GET", "/ogc/{path:path}"): LAYERS,
    ("GET", "/tiles"): LAYERS,
    ("GET", "/tiles/{layer}.json"): LAYERS,
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.pbf"): LAYERS,
    # Scene products: raster tiles and the STAC API of the likelihood products (issue 18).
    ("GET", "/raster/scenes/{scene_id}/{product}/{z}/{x}/{y}.{fmt}"): LAYERS,
    ("GET", "/raster/scenes/{scene_id}/{product}.json"): LAYERS,
    # Point and area questions on the likelihood products (issue 26; a POST here reads only).
    ("GET", "/raster/scenes/{scene_id}/{product}/point"): LAYERS,
    ("POST", "/raster/scenes/{scene_id}/{product}/statistics"): LAYERS,
    ("GET", "/raster/{product}/point"): LAYERS,
    ("POST", "/raster/{product}/statistics"): LAYERS,
    ("GET", "/stac"): LAYERS,
    ("GET", "/stac/conformance"): LAYERS,
    ("GET", "/stac/collections"): LAYERS,
    ("GET", "/stac/collections/{collection_id}"): LAYERS,
    ("GET", "/stac/collections/{collection_id}/items"): LAYERS,
    ("GET", "/stac/collections/{collection_id}/items/{item_id}"): LAYERS,
    ("GET", "/stac/search"): LAYERS,
    ("POST", "/stac/search"): LAYERS,
    ("GET", "/stac/assets/{scene_id}/{product}"): LAYERS,
    # Pipeline state: a key is needed (docs/api.md), even with public layers.
    ("GET", "/ops/status"): VIEWER,
    ("GET", "/ops/consumption"): VIEWER,
    ("GET", "/ops/models"): VIEWER,
    ("GET", "/alerts"): VIEWER,  # the triage list (same role as one alert)
    ("GET", "/alerts/{alert_id}"): VIEWER,
    ("GET", "/alerts/{alert_id}/events"): VIEWER,
    # Runbook actions and what reveals pipeline internals.
    ("GET", "/ops/dlq"): OPERATOR,
    ("POST", "/ops/dlq/redrive"): OPERATOR,
    ("GET", "/ops/dlq/{partition}/{offset}"): OPERATOR,
    ("POST", "/ops/dlq/purge"): OPERATOR,
    ("GET", "/ops/audit"): OPERATOR,
    ("POST", "/ops/scenes/{scene_id}/replay"): OPERATOR,
    ("POST", "/ops/reprocess"): OPERATOR,
    ("POST", "/ops/consumption/pause"): OPERATOR,
    ("POST", "/ops/consumption/resume"): OPERATOR,
    ("POST", "/ops/backfill"): OPERATOR,
    ("GET", "/ops/reference-layers"): VIEWER,
    ("PUT", "/ops/reference-layers/{layer}"): OPERATOR,
    ("DELETE", "/ops/reference-layers/{layer}"): OPERATOR,
    ("POST", "/alerts/{alert_id}/transitions"): OPERATOR,
    ("POST", "/alerts/{alert_id}/acknowledge"): OPERATOR,
    ("POST", "/alerts/{alert_id}/resolve"): OPERATOR,
    ("POST", "/alerts/{alert_id}/false-positive"): OPERATOR,
    ("POST", "/alerts/{alert_id}/confirm"): OPERATOR,
    ("GET", "/alerts/{alert_id}/deliveries"): OPERATOR,
    ("GET", "/deliveries"): OPERATOR,
    ("GET", "/deliveries/{delivery_id}"): OPERATOR,
    ("POST", "/deliveries/{delivery_id}/redeliver"): OPERATOR,
    # Keys and subscriptions (webhook secrets).
    ("GET", "/ops/keys"): ADMIN,
    ("POST", "/ops/keys"): ADMIN,
    ("DELETE", "/ops/keys/{key_id}"): ADMIN,
    ("GET", "/subscriptions"): ADMIN,
    ("POST", "/subscriptions"): ADMIN,
    ("GET", "/subscriptions/{subscription_id}"): ADMIN,
    ("POST", "/subscriptions/{subscription_id}/rotate-secret"): ADMIN,
    ("POST", "/subscriptions/{subscription_id}/test"): ADMIN,
    ("DELETE", "/subscriptions/{subscription_id}"): ADMIN,
}

# What TERRAWATCH_API_PUBLIC_READ opens: every LAYERS route lies under one of these, and nothing else does.
PUBLIC_READ_PREFIXES = ("/ogc", "/tiles", "/raster", "/stac")

# Non-GET operations that change nothing (a query in a body, as STAC API search); all others need operator+.
READ_ONLY = {("POST", "/stac/search"), ("POST", "/raster/scenes/{scene_id}/{product}/statistics"),
             ("POST", "/raster/{product}/statistics")}

# Routes whose bodies may be larger than TERRAWATCH_API_MAX_BODY_BYTES (up to ..._MAX_UPLOAD_BYTES).
UPLOAD_ROUTES = {("PUT", "/ops/reference-layers/{layer}")}


@lru_cache(maxsize=1)
def _compiled() -> list[tuple[str, str, re.Pattern]]:
    out = []
    for (method, template), _role in ROUTE_ROLES.items():
        regex, _, _ = compile_path(template)
        out.append((method, template, regex))
    # Specific templates before catch-alls ({path:path}).
    return sorted(out, key=lambda x: ":path}" in x[1])


def lookup(method: str, path: str) -> tuple[str, str] | None:
    """``(template, role)`` for a request, or None when no route of the table matches."""
    method = "GET" if method == "HEAD" else method
    for m, template, regex in _compiled():
        if m == method and regex.match(path):
            return template, ROUTE_ROLES[(m, template)]
    return None


def role_for_operation(method: str, template: str) -> str | None:
    """The role the table gives an OpenAPI operation (``template`` as in the document)."""
    method = method.upper()
    if (method, template) in ROUTE_ROLES:
        return ROUTE_ROLES[(method, template)]
    found = lookup(method, template)
    return found[1] if found else None


def effective(role: str, public_read: bool) -> str:
    """``layers`` resolved: ``none`` when the layers are public, else ``viewer``."""
    if role == LAYERS:
        return NONE if public_read else VIEWER
    return role
