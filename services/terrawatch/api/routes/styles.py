"""Ready-made styles of the alert and detection layers: MapLibre ``style.json`` and QGIS QML, served at
``/styles/{layer}.json`` and ``/styles/{layer}.qml`` and linked (rel ``stylesheet``) from the OGC collections.

They draw what the map page draws: hazard colours from the map legend (``/map/legend.json``, built by
``api/routes/map.py``'s ``legend()``: the one source; nothing here names a colour), fill opacity and outline
width by confidence (low / high / highest, the page's ``FILL_OPACITY`` and ``LINE_WIDTH``). The style.json
is an overlay (no basemap) on the vector tiles ``/tiles/{layer}.json`` (source-layer = the layer name); the
QML is a rule-based renderer (a rule per hazard, a child rule per confidence) for the OGC API layer in QGIS.
No data: readable without a key, as the legend.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Path, Request, Response

from terrawatch.api.errors import BadRequest, NotFound

LAYERS = ("alerts", "detections")
MAPBOX_STYLE = "application/vnd.mapbox.style+json"  # OGC API - Styles' media type of a Mapbox/MapLibre style
QML = "application/vnd.qgis.qml"  # OGC API - Styles' media type of a QGIS layer style
CONFIDENCES = ("highest", "high", "low")  # low = anything else, as on the map
# (fill opacity, outline width px) per confidence: the map page's FILL_OPACITY and LINE_WIDTH (api/web/src/map.js)
FILL_OPACITY = {"highest": 0.8, "high": 0.55, "low": 0.3}
LINE_WIDTH = {"highest": 2.5, "high": 1.5, "low": 0.75}
ALERT_FILL_OPACITY = 0.15  # alerts: a light fill, the outline carries the confidence
OTHER_HAZARD = "#777777"  # a hazard the legend does not know (none today): grey, as on the map
Layer = Annotated[str, Path(description="alerts or detections", max_length=64)]


def hazard_colours() -> dict[str, str]:
    """hazard -> ``#rrggbb``, read from the map legend (the colours the map draws)."""
    from terrawatch.api.routes.map import legend

    return dict(legend()["hazards"])


def _by_confidence(values: dict[str, float]) -> list:
    return ["match", ["coalesce", ["get", "confidence"], "low"], "highest", values["highest"], "high",
            values["high"], values["low"]]


def maplibre_style(layer: str, base: str) -> dict:
    """The MapLibre style (spec v8) of ``layer`` over the vector tiles of the API at ``base``."""
    if layer not in LAYERS:
        raise NotFound(f"no style for {layer[:64]!r}; styles: {', '.join(LAYERS)}")
    colour = ["match", ["get", "hazard"]]
    for hazard, hex_ in hazard_colours().items():
        colour += [hazard, hex_]
    colour.append(OTHER_HAZARD)
    is_point = ["==", ["geometry-type"], "Point"]
    src = {"source": layer, "source-layer": layer}
    if layer == "alerts":
        layers = [
            {"id": "alerts-fill", "type": "fill", **src, "paint": {"fill-color": colour,
                                                                    "fill-opacity": ALERT_FILL_OPACITY}},
            {"id": "alerts-line", "type": "line", **src, "paint": {"line-color": colour,
                                                                    "line-width": _by_confidence(LINE_WIDTH)}},
            {"id": "alerts-point", "type": "circle", **src, "filter": is_point,
             "paint": {"circle-color": colour, "circle-radius": 5, "circle-stroke-color": "#000000",
                       "circle-stroke-width": _by_confidence(LINE_WIDTH),
                       "circle-opacity": _by_confidence(FILL_OPACITY)}},
        ]
    else:
        layers = [
            {"id": "detections-fill", "type": "fill", **src,
             "paint": {"fill-color": colour, "fill-opacity": _by_confidence(FILL_OPACITY)}},
            {"id": "detections-point", "type": "circle", **src, "filter": is_point,
             "paint": {"circle-color": colour, "circle-radius": 3, "circle-opacity": _by_confidence(FILL_OPACITY)}},
        ]
    return {"version": 8, "name": f"terrawatch {layer}",
            "metadata": {"terrawatch:legend": f"{base}/map/legend.json",
                         "terrawatch:note": "an overlay: add its layers over a basemap style"},
            "sources": {layer: {"type": "vector", "url": f"{base}/tiles/{layer}.json",
                                "attribution": "terrawatch; contains modified Copernicus Sentinel data"}},
            "layers": layers}


def _rgba(hex_: str, alpha: float) -> str:
    h = hex_.lstrip("#")
    return f"{int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{round(alpha * 255)}"


def _key(*parts: str) -> str:
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "terrawatch:" + ":".join(parts))) + "}"


def _fill_symbol(parent: ET.Element, name: str, props: dict[str, str]) -> None:
    sym = ET.SubElement(parent, "symbol", {"type": "fill", "name": name, "alpha": "1", "clip_to_extent": "1",
                                           "force_rhr": "0"})
    lyr = ET.SubElement(sym, "layer", {"class": "SimpleFill", "enabled": "1", "pass": "0", "locked": "0"})
    opts = ET.SubElement(lyr, "Option", {"type": "Map"})  # QGIS >= 3.26 reads these,
    for k, v in props.items():
        ET.SubElement(opts, "Option", {"name": k, "value": v, "type": "QString"})
    for k, v in props.items():  # older QGIS (Debian 12's 3.22) the <prop> form
        ET.SubElement(lyr, "prop", {"k": k, "v": v})


def qml_style(layer: str) -> str:
    """The QGIS QML (rule-based renderer) of ``layer``: a rule per hazard, a child rule per confidence."""
    if layer not in LAYERS:
        raise NotFound(f"no style for {layer[:64]!r}; styles: {', '.join(LAYERS)}")
    root = ET.Element("qgis", {"version": "3.22.0", "styleCategories": "Symbology"})
    renderer = ET.SubElement(root, "renderer-v2", {"type": "RuleRenderer", "symbollevels": "0", "forceraster": "0",
                                                   "enableorderby": "0", "referencescale": "-1"})
    rules = ET.SubElement(renderer, "rules", {"key": _key(layer, "root")})
    symbols = ET.SubElement(renderer, "symbols")
    n = 0
    for hazard, hex_ in hazard_colours().items():
        parent = ET.SubElement(rules, "rule", {"key": _key(layer, hazard), "label": hazard,
                                               "filter": f"\"hazard\" = '{hazard}'"})
        for conf in CONFIDENCES:
            flt = "ELSE" if conf == "low" else f"\"confidence\" = '{conf}'"
            ET.SubElement(parent, "rule", {"key": _key(layer, hazard, conf), "label": f"{hazard}, {conf} confidence",
                                           "filter": flt, "symbol": str(n)})
            if layer == "alerts":
                props = {"color": _rgba(hex_, ALERT_FILL_OPACITY), "style": "solid",
                         "outline_color": _rgba(hex_, 1.0), "outline_style": "solid",
                         "outline_width": str(LINE_WIDTH[conf]), "outline_width_unit": "Pixel",
                         "joinstyle": "round"}
            else:
                props = {"color": _rgba(hex_, FILL_OPACITY[conf]), "style": "solid", "outline_style": "no",
                         "outline_color": _rgba(hex_, 1.0), "outline_width": "0", "outline_width_unit": "Pixel",
                         "joinstyle": "round"}
            _fill_symbol(symbols, str(n), props)
            n += 1
    ET.SubElement(root, "layerGeometryType").text = "2"  # polygons
    ET.indent(root)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode") + "\n"


def style_links(base: str, collection_id: str) -> list[dict]:
    """``stylesheet`` links of an OGC collection (``alerts``, ``detections``; none for the others)."""
    if collection_id not in LAYERS:
        return []
    return [{"href": f"{base}/styles/{collection_id}.json", "rel": "stylesheet", "type": MAPBOX_STYLE,
             "title": f"MapLibre style of {collection_id} (over the vector tiles)"},
            {"href": f"{base}/styles/{collection_id}.qml", "rel": "stylesheet", "type": QML,
             "title": f"QGIS style (QML) of {collection_id}"}]


def styles_router() -> APIRouter:
    router = APIRouter(prefix="/styles", tags=["styles"])

    def no_parameters(request: Request) -> None:
        for k in request.query_params:
            raise BadRequest(f"unknown query parameter {k[:64]!r}; styles take no parameters")

    @router.get("/{layer}.json", summary="MapLibre style.json of a layer (alerts, detections).",
                response_class=Response, responses={200: {"content": {MAPBOX_STYLE: {}}}})
    def style_json(layer: Layer, request: Request) -> Response:
        no_parameters(request)
        base = str(request.base_url).rstrip("/")
        return Response(json.dumps(maplibre_style(layer, base), indent=1), media_type=MAPBOX_STYLE,
                        headers={"Cache-Control": "public, max-age=300"})

    @router.get("/{layer}.qml", summary="QGIS style (QML) of a layer (alerts, detections).",
                response_class=Response, responses={200: {"content": {QML: {}}}})
    def style_qml(layer: Layer, request: Request) -> Response:
        no_parameters(request)
        return Response(qml_style(layer), media_type=QML, headers={"Cache-Control": "public, max-age=300"})

    return router
