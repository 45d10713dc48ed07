"""Mining legality evaluated in PostGIS against layers loaded with `terrawatch layers load` (truth table)."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import box

from terrawatch.domain.legality import has_evidence
from terrawatch.service.layers import load_layer
from terrawatch.store.uow import UnitOfWork, drop_reference_layer, engine_for

pytestmark = pytest.mark.integration


def _write(path, feats):
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": n}, "geometry": g.__geo_interface__} for n, g in feats]}))
    return path


def _verdicts(engine, *geoms):
    with UnitOfWork(engine, "test") as uow:
        return [uow.reference.legality(g) for g in geoms]


def test_legality_truth_table_in_postgis(stack, tmp_path):
    engine = engine_for(stack.settings.db_url)
    with engine.begin() as conn:
        for layer in ("mining_concession", "protected_area", "indigenous_territory"):
            drop_reference_layer(conn, layer)
    # Somewhere in Madre de Dios, Peru (lon/lat)
    inside_licence = box(-70.48, -12.98, -70.47, -12.97)
    straddling = box(-70.41, -12.98, -70.39, -12.97)
    protected = box(-70.28, -12.98, -70.27, -12.97)
    far_away = box(-60.0, -5.0, -59.99, -4.99)

    # 1. no layer loaded: unknown, never illegal
    for v in _verdicts(engine, inside_licence, protected):
        assert (v["status"], v["rule"], v["feature"], v["coverage"]) == ("unknown", "no_concession_layer", None, None)

    # 2. a concession layer with a declared coverage but no concession there: illegal, naming the coverage
    region = _write(tmp_path / "madre_de_dios.geojson", [("Madre de Dios", box(-72.0, -14.0, -68.0, -10.0))])
    assert load_layer(engine, _write(tmp_path / "lic.geojson", [("Concession A", box(-70.5, -13.0, -70.4, -12.9))]),
                      "mining_concession", coverage=region) == 1
    out, beyond = _verdicts(engine, protected, far_away)
    assert (out["status"], out["rule"], out["feature"]) == ("illegal", "outside_licensed_concession", None)
    assert out["coverage"]["source"] == "declared: madre_de_dios.geojson" and out["coverage"]["features"] == 1
    assert (beyond["status"], beyond["rule"]) == ("unknown", "outside_concession_coverage")

    # 3. inside a concession: licensed, naming it; straddling its boundary: unknown, naming it
    lic, part = _verdicts(engine, inside_licence, straddling)
    assert (lic["status"], lic["rule"], lic["feature"]["feature_name"]) == ("licensed", "inside_licensed_concession",
                                                                              "Concession A")
    assert (part["status"], part["rule"], part["feature"]["feature_name"]) == ("unknown", "partly_inside_concession",
                                                                               "Concession A")

    # 4. inside a protected area: illegal, naming the area
    assert load_layer(engine, _write(tmp_path / "pa.geojson", [("Reserva Tambopata", box(-70.3, -13.0, -70.2, -12.9))]),
                      "protected_area") == 1
    (pa,) = _verdicts(engine, protected)
    assert (pa["status"], pa["rule"], pa["feature"]["feature_name"]) == ("illegal", "inside_protected_area",
                                                                          "Reserva Tambopata")

    # without --coverage the layer's extent is its coverage (stated in the verdict)
    load_layer(engine, _write(tmp_path / "lic2.geojson", [("Concession A", box(-70.5, -13.0, -70.4, -12.9)),
                                                          ("Concession B", box(-70.2, -12.8, -70.1, -12.7))]),
               "mining_concession")
    between, outside_extent = _verdicts(engine, box(-70.35, -12.85, -70.34, -12.84), box(-70.0, -12.5, -69.99, -12.49))
    assert between["status"] == "illegal" and between["coverage"]["source"].startswith("layer extent")
    assert outside_extent["rule"] == "outside_concession_coverage"
    for v in (out, beyond, lic, part, pa, between, outside_extent):
        assert has_evidence(v)
    with engine.begin() as conn:
        for layer in ("mining_concession", "protected_area"):
            drop_reference_layer(conn, layer)
