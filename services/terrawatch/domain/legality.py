"""Mining legality rules (pure).

A mining detection is **illegal** when it lies inside a protected area or an
indigenous territory, or when no licensed mining concession covers it
entirely. The assessment names the rule and the reference-layer feature that
decided it, so an alert can say why.
"""

from __future__ import annotations

CONCESSION = "mining_concession"
PROTECTED = "protected_area"
INDIGENOUS = "indigenous_territory"
REFERENCE_KINDS = (CONCESSION, PROTECTED, INDIGENOUS)


def assess(features: list[dict]) -> dict:
    """``features``: reference features intersecting the detection, each with id, layer, name, covers.

    Returns ``{"status": "illegal"|"licensed", "rules": [{rule, layer, feature_id, feature_name}]}``.
    """
    rules = []
    for f in features:
        if f["layer"] in (PROTECTED, INDIGENOUS):
            rules.append({"rule": f"inside_{f['layer']}", "layer": f["layer"], "feature_id": f["id"],
                          "feature_name": f.get("name")})
    licence = next((f for f in features if f["layer"] == CONCESSION and f.get("covers")), None)
    if licence is None:
        rules.append({"rule": "outside_licensed_concession", "layer": CONCESSION, "feature_id": None,
                      "feature_name": None})
    status = "illegal" if rules else "licensed"
    out = {"status": status, "rules": rules}
    if licence is not None:
        out["concession"] = {"feature_id": licence["id"], "feature_name": licence.get("name")}
    return out
