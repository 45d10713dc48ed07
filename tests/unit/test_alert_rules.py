"""Alert rules: the YAML files in alerts/rules validate against schema.json and drive tiers, severity, lifecycle."""

from __future__ import annotations

import shutil

import pytest
import yaml

from terrawatch.domain.alerts import (
    AlertStatus, Confidence, InvalidAlertRules, admits, can_transition, confidence, load_rules, severity,
)
from terrawatch.settings import REPO_ROOT

RULES = REPO_ROOT / "alerts" / "rules"


@pytest.fixture(scope="module")
def policies():
    return load_rules(RULES)


def test_repository_rules_load_for_every_hazard(policies):
    assert set(policies) == {"flood", "deforestation", "mining"}
    flood = policies["flood"]
    doc = yaml.safe_load((RULES / "flood.yaml").read_text())
    assert flood.min_area_ha == doc["min_area_ha"] and flood.min_likelihood == doc["min_likelihood"]
    assert flood.merge_distance_m == doc["merge"]["distance_m"]
    assert flood.merge_window_days == doc["merge"]["window_days"]
    assert flood.cap.category == "Met" and flood.cap.certainty["highest"] == "Observed"


def test_confidence_tiers_follow_the_rule(policies):
    p = policies["flood"]
    big = p.highest[0].min_area_ha
    assert confidence(p, {"S1"}, 1, 5.0, 90) is Confidence.LOW
    assert confidence(p, {"S1"}, 2, 5.0, 90) is Confidence.HIGH          # repeated observation
    assert confidence(p, {"S1", "S2"}, 1, 5.0, 90) is Confidence.HIGH    # two sensors
    assert confidence(p, {"S1", "S2"}, 2, big - 1, 90) is Confidence.HIGH
    assert confidence(p, {"S1", "S2"}, 2, big, 90) is Confidence.HIGHEST


def test_severity_ladder_and_admission(policies):
    p = policies["flood"]
    assert [severity(a, p) for a in (0.1, 10, 100, 5000)] == ["minor", "moderate", "severe", "extreme"]
    assert admits(p.min_area_ha, p.min_likelihood, p)
    assert not admits(p.min_area_ha * 0.99, 99, p)
    assert not admits(1000, p.min_likelihood - 1, p)


def _rules_dir(tmp_path, doc: dict, name: str = "flood.yaml"):
    shutil.copy(RULES / "schema.json", tmp_path / "schema.json")
    (tmp_path / name).write_text(yaml.safe_dump(doc))
    return tmp_path


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d.pop("merge"), "(root)"),
    (lambda d: d["confidence"]["high"].update(when=[{"min_obsevations": 2}]), "confidence/high/when/0"),
    (lambda d: d["severity"].append({"min_area_ha": 1, "level": "catastrophic"}), "severity/4/level"),
    (lambda d: d["cap"]["urgency"].update(low="Soon"), "cap/urgency/low"),
    (lambda d: d.update(min_likelihood=150), "min_likelihood"),
])
def test_invalid_rules_are_refused_with_file_and_path(tmp_path, mutate, where):
    doc = yaml.safe_load((RULES / "flood.yaml").read_text())
    mutate(doc)
    with pytest.raises(InvalidAlertRules) as err:
        load_rules(_rules_dir(tmp_path, doc))
    assert "flood.yaml" in str(err.value) and where in str(err.value)


def test_severity_ladder_needs_a_zero_step_and_hazards_are_unique(tmp_path):
    doc = yaml.safe_load((RULES / "flood.yaml").read_text())
    doc["severity"] = [s for s in doc["severity"] if s["min_area_ha"] > 0]
    with pytest.raises(InvalidAlertRules, match="min_area_ha: 0"):
        load_rules(_rules_dir(tmp_path, doc))
    ok = yaml.safe_load((RULES / "flood.yaml").read_text())
    d = _rules_dir(tmp_path, ok)
    (d / "flood-copy.yaml").write_text(yaml.safe_dump(ok))
    with pytest.raises(InvalidAlertRules, match="already defined"):
        load_rules(d)


def test_lifecycle_transitions():
    S = AlertStatus
    assert can_transition(S.NEW, S.CONFIRMED) and can_transition("confirmed", "acknowledged")
    assert can_transition(S.ACKNOWLEDGED, S.RESOLVED) and can_transition(S.ACKNOWLEDGED, S.FALSE_POSITIVE)
    assert not can_transition(S.RESOLVED, S.NEW) and not can_transition(S.FALSE_POSITIVE, S.ACKNOWLEDGED)
    assert not can_transition(S.ACKNOWLEDGED, S.NEW)
