"""The metric-contract checker itself (tests/integration/metric_contract.py) fails on what it must catch."""

from __future__ import annotations

import shutil

import pytest

from tests.integration import metric_contract as mc


def test_selectors_are_the_raw_metric_selectors_of_a_rule():
    expr = ('sum by (endpoint) (rate(terrawatch_webhook_deliveries_total{outcome=~"retry|failed"}[30m]))\n'
            '  / sum by (endpoint) (rate(terrawatch_webhook_deliveries_total[30m])) > 0.2 '
            'and on () (min(time() - process_start_time_seconds{job="terrawatch-consumer"}) > 6 * 3600) '
            'or terrawatch:sensing_to_alert_slo_errors:ratio_rate1h > (14.4 * 0.05)')
    assert mc.selectors(expr) == ['terrawatch_webhook_deliveries_total{outcome=~"retry|failed"}',
                                  "terrawatch_webhook_deliveries_total",
                                  'process_start_time_seconds{job="terrawatch-consumer"}']


def test_a_metric_never_exported_or_with_other_labels_is_reported():
    scrape = ('# TYPE terrawatch_dlq_depth gauge\nterrawatch_dlq_depth 1.0\n'
              '# TYPE terrawatch_tiles_total counter\nterrawatch_tiles_total{model="x"} 3.0\n')
    problems = mc.check_catalogue({"terrawatch-consumer": scrape})
    assert not any(p.startswith("terrawatch_dlq_depth") for p in problems)
    assert any(p.startswith("terrawatch_tiles_total: documented labels ['hazard']") for p in problems)
    assert any(p.startswith("terrawatch_outbox_depth (gauge) is never exported") for p in problems)


def test_rules_and_dashboard_read_only_catalogued_metrics():
    assert mc.check_used_metrics() == []


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make check-deploy)")
def test_promtool_fails_when_a_rule_selector_matches_no_recorded_series(tmp_path):
    scrape = "# TYPE terrawatch_dlq_depth gauge\nterrawatch_dlq_depth 1.0\n"
    res = mc.promtool_on_real_series({"terrawatch-consumer": scrape}, tmp_path)
    assert res.returncode != 0 and "terrawatch_outbox_depth" in res.stdout + res.stderr
