"""deploy/grafana/terrawatch.json only queries documented metrics and shows all of ours."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "terrawatch.json"
DOC = ROOT / "docs" / "metrics.md"


@pytest.fixture(scope="module")
def cd():
    spec = importlib.util.spec_from_file_location("check_dashboard", ROOT / "deploy/tools/check_dashboard.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dashboard_is_valid_and_uses_only_catalogue_metrics(cd):
    dashboard = json.loads(DASHBOARD.read_text())
    assert cd.check(dashboard, cd.documented_metrics(DOC)) == []


def test_metric_name_extraction(cd):
    names = cd.metric_names(
        'sum by (model) (rate(nv_inference_request_duration_us{model=~"flood.*"}[$__rate_interval]))'
        " / on (model) group_left sum by (model) (rate(nv_inference_request_success[5m] offset 1h)) / 1e6"
    )
    assert names == {"nv_inference_request_duration_us", "nv_inference_request_success"}
    assert cd.metric_names("histogram_quantile(0.95, sum by (le) (rate(x_seconds_bucket[1h])))") == {
        "x_seconds_bucket"
    }


def test_unknown_metric_and_unused_catalogue_metric_are_reported(cd):
    catalogue = cd.documented_metrics(DOC)
    bad = {
        "uid": "u", "title": "t", "schemaVersion": 39,
        "panels": [{"id": 1, "targets": [
            {"refId": "A", "expr": "rate(terrawatch_scenes_total[5m]) + made_up_metric"},
            {"refId": "B", "expr": "terrawatch_stage_duration_seconds_bucket"},
        ]}],
    }
    errors = cd.check(bad, catalogue)
    assert any("made_up_metric" in e for e in errors)
    assert any("on no panel" in e and "terrawatch_tiles_total" in e for e in errors)
    assert not any("terrawatch_stage_duration_seconds_bucket" in e and "not in" in e for e in errors)


def test_histogram_suffix_only_for_histograms(cd):
    catalogue = cd.documented_metrics(DOC)
    assert cd.resolve("terrawatch_sensing_to_alert_seconds_count", catalogue) == "terrawatch_sensing_to_alert_seconds"
    assert cd.resolve("terrawatch_outbox_depth_count", catalogue) is None
