"""Mining legality in three states: illegal only with positive evidence, always naming rule + feature/coverage."""

from terrawatch.domain.legality import assess, has_evidence

COV_IN = {"source": "declared: peru.geojson", "loaded_at": "2026-12-01T00:00:00+00:00", "features": 3, "covers": True}
COV_OUT = {**COV_IN, "covers": False}
LIC = {"id": 7, "layer": "mining_concession", "name": "Lic 7", "covers": True}
LIC_PART = {**LIC, "covers": False}
PA = {"id": 9, "layer": "protected_area", "name": "Reserva", "covers": False}
IT = {"id": 11, "layer": "indigenous_territory", "name": "Territorio", "covers": True}

# (features, concession coverage) -> (status, rule, named feature id or None, coverage named)
TABLE = [
    ([], None, "unknown", "no_concession_layer", None, False),
    ([], COV_OUT, "unknown", "outside_concession_coverage", None, True),
    ([], COV_IN, "illegal", "outside_licensed_concession", None, True),
    ([LIC], COV_IN, "licensed", "inside_licensed_concession", 7, True),
    ([LIC_PART], COV_IN, "unknown", "partly_inside_concession", 7, True),
    ([PA], None, "illegal", "inside_protected_area", 9, False),
    ([IT], COV_OUT, "illegal", "inside_indigenous_territory", 11, False),
    ([LIC, PA], COV_IN, "illegal", "inside_protected_area", 9, False),
]


def test_truth_table():
    for feats, cov, status, rule, fid, named_cov in TABLE:
        v = assess(feats, cov)
        assert (v["status"], v["rule"]) == (status, rule), (feats, cov, v)
        assert (v["feature"] or {}).get("feature_id") == fid
        assert (v["coverage"] is not None and v["coverage"]["source"] == COV_IN["source"]) == named_cov
        assert has_evidence(v)


def test_licence_inside_protected_area_keeps_both():
    v = assess([LIC, PA], COV_IN)
    assert v["concession"] == {"feature_id": 7, "feature_name": "Lic 7"}
    assert v["feature"] == {"layer": "protected_area", "feature_id": 9, "feature_name": "Reserva"}


def test_illegal_without_evidence_is_detected():
    assert not has_evidence({"status": "illegal", "rule": "outside_licensed_concession", "feature": None,
                             "coverage": None})
    assert not has_evidence({"status": "illegal", "rules": [{"feature_id": None}]})  # the old verdict shape
