"""The ready-made styles (api/routes/styles.py): colours equal the map legend's, the style.json passes MapLibre's
own validator (@maplibre/maplibre-gl-style-spec, installed by `make web`), the QML is QGIS XML with a rule per
hazard and per confidence, and the routes answer without a key and refuse what they do not take."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from terrawatch.api.app import create_app
from terrawatch.api.routes import styles
from terrawatch.api.routes.map import WEB_DIST, legend
from terrawatch.domain.hazards import HAZARDS
from terrawatch.settings import Settings

VALIDATOR = WEB_DIST.parent / "node_modules" / ".bin" / "gl-style-validate"


@pytest.fixture(scope="module")
def client():
    # no lifespan (no database): the style routes need none
    return TestClient(create_app(Settings(api_public_url="https://tw.example/api")))


def _match_pairs(expr: list) -> dict[str, str]:
    assert expr[:2] == ["match", ["get", "hazard"]], expr
    return dict(zip(expr[2:-1:2], expr[3:-1:2]))


@pytest.mark.parametrize("layer", styles.LAYERS)
def test_style_json_colours_are_the_legend_colours(client, layer):
    r = client.get(f"/styles/{layer}.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith(styles.MAPBOX_STYLE)
    style = r.json()
    legend_hazards = client.get("/map/legend.json").json()["hazards"]
    assert set(HAZARDS) <= set(legend_hazards)  # every hazard has its colour
    colours = [v for lyr in style["layers"] for k, v in lyr["paint"].items() if k.endswith("-color") and
               isinstance(v, list)]
    assert colours and all(_match_pairs(c) == legend_hazards for c in colours)
    assert style["sources"][layer]["url"] == f"https://tw.example/api/tiles/{layer}.json"
    assert {lyr["source-layer"] for lyr in style["layers"]} == {layer}


@pytest.mark.parametrize("layer", styles.LAYERS)
def test_style_json_passes_maplibre_style_spec_validator(client, layer, tmp_path):
    assert VALIDATOR.exists(), "run `make web` (installs @maplibre/maplibre-gl-style-spec with maplibre-gl)"
    path = tmp_path / f"{layer}.json"
    path.write_text(client.get(f"/styles/{layer}.json").text)
    res = subprocess.run([str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "", res.stdout + res.stderr
    # the validator does fail a broken style (so the check above can fail)
    bad = json.loads(path.read_text())
    bad["layers"][0]["paint"]["fill-opacity"] = "very"
    path.write_text(json.dumps(bad))
    assert subprocess.run([str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=60).returncode != 0


@pytest.mark.parametrize("layer", styles.LAYERS)
def test_qml_is_qgis_xml_with_rules_per_hazard_in_the_legend_colours(client, layer):
    r = client.get(f"/styles/{layer}.qml")
    assert r.status_code == 200 and r.headers["content-type"].startswith(styles.QML)
    assert r.text.startswith("<!DOCTYPE qgis")
    root = ET.fromstring(r.text)
    assert root.tag == "qgis"
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "RuleRenderer"
    symbols = {s.get("name"): s for s in renderer.find("symbols")}
    hazards = legend()["hazards"]
    rules = renderer.find("rules").findall("rule")
    assert [r_.get("filter") for r_ in rules] == [f"\"hazard\" = '{h}'" for h in hazards]
    for rule in rules:
        hazard = rule.get("label")
        rgb = ",".join(str(int(hazards[hazard][i:i + 2], 16)) for i in (1, 3, 5))
        children = rule.findall("rule")
        assert [c.get("filter") for c in children] == ["\"confidence\" = 'highest'", "\"confidence\" = 'high'", "ELSE"]
        for child in children:
            layer_el = symbols[child.get("symbol")].find("layer")
            assert layer_el.get("class") == "SimpleFill"
            props = {o.get("name"): o.get("value") for o in layer_el.find("Option").findall("Option")}
            assert props == {p.get("k"): p.get("v") for p in layer_el.findall("prop")}
            assert props["color"].startswith(rgb + ",") and props["outline_color"].startswith(rgb + ",")
    assert len(symbols) == 3 * len(hazards)


def test_unknown_layers_and_parameters_are_refused(client):
    assert client.get("/styles/scenes.json").status_code == 404
    assert client.get("/styles/alerts.qml?hazard=flood").status_code == 400
    assert "hazard" in client.get("/styles/alerts.json?hazard=flood").json()["description"]


def test_ogc_links_name_both_styles_with_their_media_types():
    links = styles.style_links("https://h", "alerts")
    assert {(lk["type"], lk["href"]) for lk in links} == {
        ("application/vnd.mapbox.style+json", "https://h/styles/alerts.json"),
        ("application/vnd.qgis.qml", "https://h/styles/alerts.qml")}
    assert all(lk["rel"] == "stylesheet" for lk in links)
    assert styles.style_links("https://h", "scenes") == []
