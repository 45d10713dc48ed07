"""The mining legality rule evaluated in PostGIS against layers loaded with `terrawatch layers load`."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import box

from terrawatch.service.layers import load_layer
from terrawatch.store.uow import UnitOfWork, engine_for

pytestmark = pytest.mark.integration


def _write(path, feats):
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": n}, "geometry": g.__geo_interface__} for n, g in feats]}))
    return path


def test_legality_rules_in_postgis(stack, tmp_path):
    engine = engine_for(stack.settings.db_url)
    # Somewhere in Madre de Dios, Peru (lon/lat)
    assert load_layer(engine, _write(tmp_path / "lic.geojson", [("Concession A", box(-70.5, -13.0, -70.4, -12.9))]),
                      "mining_concession") == 1
    assert load_layer(engine, _write(tmp_path / "pa.geojson", [("Reserva Tambopata", box(-70.3, -13.0, -70.2, -12.9))]),
                      "protected_area") == 1
    inside_licence = box(-70.48, -12.98, -70.47, -12.97)
    straddling = box(-70.41, -12.98, -70.39, -12.97)
    protected = box(-70.28, -12.98, -70.27, -12.97)
    with UnitOfWork(engine, "test") as uow:
        a, b, c = (uow.legality(g) for g in (inside_licence, straddling, protected))
    assert a["status"] == "licensed" and a["concession"]["feature_name"] == "Concession A"
    assert b["status"] == "illegal" and b["rules"][0]["rule"] == "outside_licensed_concession"
    assert c["status"] == "illegal"
    assert {r["rule"] for r in c["rules"]} == {"inside_protected_area", "outside_licensed_concession"}
    assert next(r for r in c["rules"] if r["rule"] == "inside_protected_area")["feature_name"] == "Reserva Tambopata"
    # reload replaces, never duplicates
    load_layer(engine, _write(tmp_path / "pa2.geojson", []), "protected_area")
    with UnitOfWork(engine, "test") as uow:
        assert uow.legality(protected)["rules"] == [
            {"rule": "outside_licensed_concession", "layer": "mining_concession", "feature_id": None,
             "feature_name": None}]
