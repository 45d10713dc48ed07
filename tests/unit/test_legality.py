"""Mining legality rules: protected/indigenous areas and licensed concessions."""

from terrawatch.domain.legality import assess


def test_no_concession_is_illegal():
    out = assess([])
    assert out["status"] == "illegal"
    assert [r["rule"] for r in out["rules"]] == ["outside_licensed_concession"]


def test_covered_by_concession_is_licensed():
    out = assess([{"id": 7, "layer": "mining_concession", "name": "Lic 7", "covers": True}])
    assert out == {"status": "licensed", "rules": [], "concession": {"feature_id": 7, "feature_name": "Lic 7"}}


def test_partly_outside_concession_is_illegal():
    out = assess([{"id": 7, "layer": "mining_concession", "name": "Lic 7", "covers": False}])
    assert out["status"] == "illegal"


def test_protected_area_wins_over_licence():
    out = assess([{"id": 7, "layer": "mining_concession", "name": "Lic 7", "covers": True},
                  {"id": 9, "layer": "protected_area", "name": "Reserva", "covers": False}])
    assert out["status"] == "illegal"
    assert out["rules"] == [{"rule": "inside_protected_area", "layer": "protected_area", "feature_id": 9,
                             "feature_name": "Reserva"}]
