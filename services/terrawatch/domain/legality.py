"""Mining legality in three states, only with evidence (pure).

- ``illegal`` needs positive evidence: the detection intersects a protected area or an indigenous
  territory feature (rule ``inside_protected_area`` / ``inside_indigenous_territory``, that feature
  named), or it lies outside every licensed concession **where the concession layer's declared
  coverage covers it** (rule ``outside_licensed_concession``, the coverage named).
- ``licensed``: a concession covers the whole detection (``inside_licensed_concession``, the concession
  named).
- ``unknown`` otherwise: no concession layer loaded (``no_concession_layer``), the detection outside the
  layer's coverage (``outside_concession_coverage``, the coverage named) or straddling a concession
  boundary (``partly_inside_concession``, the concession named: mining maps are blocky at the 160 m
  stride, so a boundary overlap is no evidence).

Every verdict names its ``rule`` and the ``feature`` or ``coverage`` used; ``rules`` lists all
evidence found (e.g. a concession inside a protected area).
"""

from __future__ import annotations

CONCESSION = "mining_concession"
PROTECTED = "protected_area"
INDIGENOUS = "indigenous_territory"
REFERENCE_KINDS = (CONCESSION, PROTECTED, INDIGENOUS)
STATUSES = ("illegal", "licensed", "unknown")


def _feature(f: dict) -> dict:
    return {"layer": f["layer"], "feature_id": f["id"], "feature_name": f.get("name")}


def assess(features: list[dict], coverage: dict | None = None) -> dict:
    """Legality of one detection.

    ``features``: reference features intersecting it, each ``{id, layer, name, covers}`` (``covers``:
    the feature covers the whole detection). ``coverage``: the concession layer's coverage record
    ``{source, loaded_at, features, covers}`` (``covers``: the coverage covers the detection), or None
    when no concession layer was loaded.

    Returns ``{"status", "rule", "feature", "coverage", "rules": [{rule, layer, feature_id,
    feature_name}]}`` (+ ``concession`` when one covers it).
    """
    cov = None if coverage is None else {"layer": CONCESSION, "source": coverage.get("source"),
                                         "loaded_at": coverage.get("loaded_at"),
                                         "features": coverage.get("features")}
    rules = [{"rule": f"inside_{f['layer']}", **_feature(f)} for f in features if f["layer"] in (PROTECTED, INDIGENOUS)]
    concessions = [f for f in features if f["layer"] == CONCESSION]
    licence = next((f for f in concessions if f.get("covers")), None)
    out: dict = {}
    if licence is not None:
        out["concession"] = {"feature_id": licence["id"], "feature_name": licence.get("name")}
    if rules:
        first = next(f for f in features if f["layer"] in (PROTECTED, INDIGENOUS))
        return {"status": "illegal", "rule": rules[0]["rule"], "feature": _feature(first), "coverage": None,
                "rules": rules, **out}
    if licence is not None:
        ev = {"rule": "inside_licensed_concession", **_feature(licence)}
        return {"status": "licensed", "rule": ev["rule"], "feature": _feature(licence), "coverage": cov,
                "rules": [ev], **out}
    if concessions:
        ev = {"rule": "partly_inside_concession", **_feature(concessions[0])}
        return {"status": "unknown", "rule": ev["rule"], "feature": _feature(concessions[0]), "coverage": cov,
                "rules": [ev]}
    if coverage is None:
        return {"status": "unknown", "rule": "no_concession_layer", "feature": None, "coverage": None, "rules": []}
    if coverage.get("covers"):
        return {"status": "illegal", "rule": "outside_licensed_concession", "feature": None, "coverage": cov,
                "rules": [{"rule": "outside_licensed_concession", "layer": CONCESSION, "feature_id": None,
                           "feature_name": None}]}
    return {"status": "unknown", "rule": "outside_concession_coverage", "feature": None, "coverage": cov,
            "rules": []}


def has_evidence(verdict: dict) -> bool:
    """An ``illegal`` verdict must name a feature or a coverage (checked by tests and the demo)."""
    if verdict.get("status") != "illegal":
        return True
    named_feature = (verdict.get("feature") or {}).get("feature_id") is not None
    named_coverage = bool((verdict.get("coverage") or {}).get("source"))
    return named_feature or named_coverage
