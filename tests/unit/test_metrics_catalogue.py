"""docs/metrics.md and terrawatch.observability.metrics must describe the same metrics."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from terrawatch.observability import metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\|\s*`(?P<name>[a-z_:][a-z0-9_:]*)`\s*\|\s*(?P<type>\w+)\s*\|(?P<labels>[^|]*)\|")


def catalogue() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Exposed name -> (type, sorted label names) for every metric object in the module."""
    out = {}
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            desc = obj.describe()[0]
            name = desc.name + ("_total" if desc.type == "counter" else "")
            out[name] = (desc.type, tuple(sorted(obj._labelnames)))
    return out


def documented(prefix: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    out = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m and m["name"].startswith(prefix):
            assert m["name"] not in out, f"{m['name']} documented twice"
            labels = tuple(sorted(re.findall(r"`([a-z_]+)`", m["labels"])))
            out[m["name"]] = (m["type"], labels)
    return out


def test_catalogue_is_not_empty_and_registered():
    cat = catalogue()
    assert len(cat) >= 15
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            assert obj in REGISTRY._collector_to_names, f"{obj} not in the default registry"


def test_every_metric_is_documented_and_every_documented_metric_exists():
    cat, doc = catalogue(), documented("terrawatch_")
    assert sorted(set(cat) - set(doc)) == [], "in metrics.py but missing from docs/metrics.md"
    assert sorted(set(doc) - set(cat)) == [], "in docs/metrics.md but not defined in metrics.py"


def test_documented_types_and_labels_match():
    cat, doc = catalogue(), documented("terrawatch_")
    wrong = {n: (doc[n], cat[n]) for n in cat if n in doc and doc[n] != cat[n]}
    assert wrong == {}, "docs (type, labels) != code (type, labels)"


def test_names_follow_prometheus_conventions():
    for name, (kind, _) in catalogue().items():
        assert name.startswith("terrawatch_")
        if kind == "counter":
            assert name.endswith("_total")
        if kind == "histogram":
            assert name.endswith(("_seconds", "_bytes")), name


def test_triton_section_lists_nv_metrics():
    nv = documented("nv_")
    assert "nv_inference_request_success" in nv and "nv_gpu_utilization" in nv


def test_slo_bucket_exists_for_alert_rules():
    """alerts/prometheus/ reads the le="21600.0" (6 h) bucket of the sensing-to-alert histogram."""
    assert 21600.0 in metrics.SENSING_TO_ALERT_SECONDS._upper_bounds
    rules = (DOC.parents[1] / "alerts" / "prometheus" / "terrawatch-rules.yaml").read_text()
    assert 'le="21600.0"' in rules


def test_stage_label_values_are_the_documented_ones():
    """metrics.STAGES (the values of terrawatch_stage_duration_seconds' label) are each named in docs/metrics.md,
    and the pipeline and the worker observe no other stage."""
    row = next(line for line in DOC.read_text().splitlines() if "`terrawatch_stage_duration_seconds`" in line)
    for stage in metrics.STAGES:
        assert f"`{stage}`" in row, stage
    services = Path(metrics.__file__).resolve().parents[1] / "service"
    code = (services / "pipeline.py").read_text() + (services / "inflight.py").read_text()
    used = set(re.findall(r'"(\w+)": (?:check_s|t_open - t0|tiled\.read_s|tiled\.infer_s|t_tiled|t1 - t_tiled|'
                          r't2 - t1|t3 - t2)', code))
    used |= set(re.findall(r'STAGE_SECONDS\.labels\("(\w+)"\)', code)) | set(re.findall(r'out\.stages\["(\w+)"\]', code))
    assert used and used <= set(metrics.STAGES), used - set(metrics.STAGES)


def test_exported_by_column_matches_the_owners():
    """docs/metrics.md's *exported by* column is metrics.OWNERS, and every metric has an owner."""
    owned = {}
    for proc, objs in metrics.OWNERS.items():
        for obj in objs:
            desc = obj.describe()[0]
            owned.setdefault(desc.name + ("_total" if desc.type == "counter" else ""), set()).add(proc)
    assert set(owned) == set(catalogue()), "a metric without an owning process (metrics.OWNERS)"
    doc = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m and m["name"].startswith("terrawatch_"):
            doc[m["name"]] = set(re.findall(r"`([a-z]+)`", line.rstrip().rstrip("|").rsplit("|", 1)[1]))
    assert doc == owned


def test_owned_registry_serves_only_its_families():
    from prometheus_client import generate_latest

    api = generate_latest(metrics.OwnedRegistry("api")).decode()
    assert "terrawatch_outage_window_seconds" not in api and "terrawatch_dlq_depth" not in api
    assert 'terrawatch_build_info{process="api"' in api and ("process_" in api or "python_" in api)
    consumer = generate_latest(metrics.OwnedRegistry("consumer")).decode()
    assert "terrawatch_outage_window_seconds" in consumer and "terrawatch_http_requests" not in consumer


def test_db_write_operations_are_the_unit_of_work_operations():
    """Every UnitOfWork(engine, "op") and unit_of_work("op") (the pipeline's factory) in the package is a
    documented write operation or "read" (not measured)."""
    pkg = Path(metrics.__file__).resolve().parents[1]
    used = {m for py in pkg.rglob("*.py") for m in re.findall(
        r'(?:UnitOfWork\([^,()]+(?:\([^)]*\))?, |unit_of_work\()"(\w+)"\)', py.read_text())}
    assert {"scene", "check", "read"} <= used, used
    assert used - {"read"} <= set(metrics.DB_WRITE_OPERATIONS), used - set(metrics.DB_WRITE_OPERATIONS)
    row = next(line for line in DOC.read_text().splitlines() if "`terrawatch_db_write_duration_seconds`" in line)
    for op in metrics.DB_WRITE_OPERATIONS:
        assert f"`{op}`" in row, op
