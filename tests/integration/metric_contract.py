"""The metric contract, checked against real ``/metrics`` scrapes of a run that exercised every stage.

1. Every metric of the catalogue (``docs/metrics.md``, terrawatch table) is exported by some process,
   with exactly the documented labels (histograms: ``le`` on ``_bucket`` besides them).
2. Every metric read by ``alerts/prometheus/*.yaml`` and the Grafana dashboard is in the catalogue.
3. ``promtool test rules`` on the series recorded from those scrapes (each with its Prometheus ``job``
   label, plus ``up``): every vector selector of every alert and recording rule must match at least
   one recorded series. A rule whose selectors match nothing that the processes export (a metric set
   nowhere, a label value never produced, a misspelt ``le``) can never fire, and fails here.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from terrawatch.settings import REPO_ROOT

DOC = REPO_ROOT / "docs" / "metrics.md"
RULES = sorted((REPO_ROOT / "alerts" / "prometheus").glob("*.yaml"))
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "terrawatch.json"
ROW = re.compile(r"^\|\s*`(?P<name>[a-z_:][a-z0-9_:]*)`\s*\|\s*(?P<type>\w+)\s*\|(?P<labels>[^|]*)\|")
HIST = ("_bucket", "_sum", "_count")
# Series every Prometheus has about its targets (not exported by terrawatch): allowed in rules.
SCRAPE_SERIES = {"up", "process_start_time_seconds"}


def catalogue(prefix: str = "terrawatch_") -> dict[str, tuple[str, frozenset[str]]]:
    """Documented metric name -> (type, label names)."""
    out = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m and m["name"].startswith(prefix):
            out[m["name"]] = (m["type"], frozenset(re.findall(r"`([a-z_]+)`", m["labels"])))
    return out


def documented_names() -> set[str]:
    return {m["name"] for line in DOC.read_text().splitlines() if (m := ROW.match(line))}


def parse(body: str) -> list[tuple[str, dict[str, str], float]]:
    """(sample name, labels, value) of every sample in a Prometheus text exposition."""
    return [(s.name, dict(s.labels), s.value) for fam in text_string_to_metric_families(body) for s in fam.samples]


def check_catalogue(scrapes: dict[str, str]) -> list[str]:
    """Problems with (1): catalogue metrics not exported with their documented labels by any process."""
    seen: dict[str, set[frozenset[str]]] = {}
    for body in scrapes.values():
        for name, labels, _ in parse(body):
            seen.setdefault(name, set()).add(frozenset(k for k in labels if k != "le"))
    problems = []
    for name, (kind, labels) in catalogue().items():
        sample = {"counter": name, "gauge": name, "histogram": name + "_count"}.get(kind, name)
        got = seen.get(sample)
        if not got:
            problems.append(f"{name} ({kind}) is never exported by {', '.join(scrapes)}")
        elif labels not in got:
            problems.append(f"{name}: documented labels {sorted(labels)}, exported {sorted(map(sorted, got))}")
    return problems


def _dashboard_tool():
    spec = importlib.util.spec_from_file_location("check_dashboard", REPO_ROOT / "deploy/tools/check_dashboard.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rule_exprs() -> list[tuple[str, str]]:
    """(rule name, PromQL) of every alert and recording rule."""
    out = []
    for f in RULES:
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("alert") or rule.get("record"), rule["expr"]))
    return out


def dashboard_exprs() -> list[str]:
    import json

    def walk(panels):
        for p in panels:
            yield from (t["expr"] for t in p.get("targets", []) if t.get("expr"))
            yield from walk(p.get("panels", []))

    return list(walk(json.loads(DASHBOARD.read_text()).get("panels", [])))


def check_used_metrics() -> list[str]:
    """Problems with (2): metrics read by rules or the dashboard that the catalogue does not list."""
    tool = _dashboard_tool()
    known = documented_names() | SCRAPE_SERIES
    problems = []
    for where, exprs in (("rules", [e for _, e in rule_exprs()]), ("dashboard", dashboard_exprs())):
        for expr in exprs:
            for name in tool.metric_names(expr):
                base = next((name[: -len(sfx)] for sfx in HIST if name.endswith(sfx) and name[: -len(sfx)] in known),
                            name)
                if ":" in name:  # a recording rule's output
                    continue
                if base not in known:
                    problems.append(f"{where}: {name} is not in docs/metrics.md")
    return sorted(set(problems))


_SELECTOR = re.compile(r"(?<![\w:\"'])([a-zA-Z_][a-zA-Z0-9_]*)\s*(\{[^}]*\})?")
_NOT_METRIC = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
               "offset", "inf", "nan"}


def selectors(expr: str) -> list[str]:
    """Vector selectors (``name{matchers}``) of raw metrics in a PromQL expression."""
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    out = []
    for m in _SELECTOR.finditer(e):
        name = m.group(1)
        rest = e[m.end():].lstrip()
        if name in _NOT_METRIC or (m.group(2) is None and rest.startswith("(")):
            continue
        if e[m.start() - 1: m.start()] == ":" or e[m.end(): m.end() + 1] == ":":
            continue  # part of a recording rule name
        if re.fullmatch(r"\d+[smhdwy]", name):
            continue
        out.append(name + (m.group(2) or ""))
    return out


def series_file(scrapes: dict[str, str], path: Path) -> Path:
    """A promtool test file: the scraped series as constant input (with ``job``; ``up`` = 1 per job) and, for
    every selector of every rule, ``count(selector) > bool 0`` expected to be 1."""
    series, seen = [], set()
    for job, body in scrapes.items():
        series.append({"series": f'up{{job="{job}",instance="contract"}}', "values": "1x30"})
        for name, labels, value in parse(body):
            if value != value or value in (float("inf"), float("-inf")):
                continue
            lab = {**labels, "job": job, "instance": "contract"}
            text = ",".join(f'{k}="{v}"' for k, v in sorted(lab.items()) if "\n" not in v and '"' not in v)
            key = (name, text)
            if key in seen:
                continue
            seen.add(key)
            series.append({"series": f"{name}{{{text}}}", "values": f"{value:f}x30"})
    tests = []
    for rule, expr in rule_exprs():
        for sel in dict.fromkeys(selectors(expr)):
            tests.append({"expr": f"count({sel}) > bool 0", "eval_time": "10m",
                          "exp_samples": [{"labels": "{}", "value": 1}]})
    doc = {"rule_files": [str(f) for f in RULES], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def promtool_on_real_series(scrapes: dict[str, str], tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "test", "rules", str(series_file(scrapes, tmp / "real-series.test.yaml"))],
                          capture_output=True, text=True, timeout=120)


# The processes behind each scraped job (the worker scraped here runs the dispatcher in-process).
JOB_PROCESSES = {"terrawatch-consumer": {"consumer", "dispatcher"}, "terrawatch-dispatcher": {"dispatcher"},
                 "terrawatch-api": {"api"}}
# (metric, label) whose values form a closed vocabulary: each exported value must be named (`value`) in the
# metric's row of docs/metrics.md.
CLOSED_LABELS = [("terrawatch_scenes_total", "outcome"), ("terrawatch_db_write_duration_seconds", "operation"),
                 ("terrawatch_stage_duration_seconds", "stage"), ("terrawatch_http_requests_total", "method"),
                 ("terrawatch_http_requests_total", "status_class"), ("terrawatch_alerts_total", "action"),
                 ("terrawatch_webhook_deliveries_total", "outcome"), ("terrawatch_consumption_paused", "dependency"),
                 ("terrawatch_build_info", "process")]


def owners() -> dict[str, set[str]]:
    """Documented metric name -> the processes of its *exported by* column."""
    out = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m and m["name"].startswith("terrawatch_"):
            out[m["name"]] = set(re.findall(r"`([a-z]+)`", line.rstrip().rstrip("|").rsplit("|", 1)[1]))
    return out


def _family(sample: str) -> str:
    cat = catalogue()
    for sfx in ("_bucket", "_sum", "_count", "_created"):
        if sample.endswith(sfx) and sample[: -len(sfx)] in cat:
            return sample[: -len(sfx)]
    if sample.endswith("_created") and sample[: -len("_created")] + "_total" in cat:
        return sample[: -len("_created")] + "_total"
    return sample


def check_ownership(scrapes: dict[str, str]) -> list[str]:
    """Each terrawatch process exports only the families documented as its own (and its build_info)."""
    own, problems = owners(), []
    for job, procs in JOB_PROCESSES.items():
        body = scrapes.get(job)
        if body is None:
            problems.append(f"{job} was not scraped")
            continue
        samples = parse(body)
        for fam in sorted({_family(n) for n, _, _ in samples if n.startswith("terrawatch_")}):
            if fam not in own:
                problems.append(f"{job} exports {fam}, which docs/metrics.md does not list")
            elif not own[fam] & procs:
                problems.append(f"{job} exports {fam}, documented as exported by {sorted(own[fam])} only")
        built = {lab.get("process") for n, lab, v in samples if n == "terrawatch_build_info" and v == 1}
        if built != procs:
            problems.append(f"{job}: terrawatch_build_info processes {sorted(p for p in built if p)}, expected "
                            f"{sorted(procs)}")
    return problems


def check_label_values(scrapes: dict[str, str]) -> list[str]:
    """Every exported value of a closed-vocabulary label is named in its metric's row of docs/metrics.md."""
    rows = {m["name"]: line for line in DOC.read_text().splitlines() if (m := ROW.match(line))}
    problems = []
    for metric, label in CLOSED_LABELS:
        row = rows.get(metric, "")
        for body in scrapes.values():
            for name, labels, _ in parse(body):
                if _family(name) == metric and label in labels and f"`{labels[label]}`" not in row:
                    problems.append(f"{metric}{{{label}=\"{labels[label]}\"}} is exported but not documented")
    return sorted(set(problems))
