#!/usr/bin/env python3
"""Validate a Grafana dashboard JSON against the metric catalogue in docs/metrics.md.

Checks: the file parses as JSON; uid/title/panels exist; panel ids are unique; every
target has a refId and a PromQL ``expr``; every metric an expression reads is listed in
docs/metrics.md (terrawatch_* with the histogram suffixes _bucket/_sum/_count, or
Triton's nv_*); and every terrawatch metric is shown by at least one panel.

With ``--promtool-rules FILE`` it also writes each expression as a recording rule to
FILE so that ``promtool check rules FILE`` parses them with Prometheus' own PromQL
parser (Grafana's ``$__rate_interval`` etc. are replaced by ``5m``).

Usage: check_dashboard.py DASHBOARD_JSON METRICS_MD [--promtool-rules FILE]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DOC_ROW = re.compile(r"^\|\s*`(?P<name>[a-z_:][a-z0-9_:]*)`\s*\|\s*(?P<type>\w+)\s*\|")
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def documented_metrics(doc: Path) -> dict[str, str]:
    """Metric name -> type from the tables of docs/metrics.md."""
    out = {}
    for line in doc.read_text().splitlines():
        m = DOC_ROW.match(line)
        if m:
            out[m["name"]] = m["type"]
    return out


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's built-in interval/range variables by a fixed duration."""
    return re.sub(r"\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?", "5m", expr)


def metric_names(expr: str) -> set[str]:
    """Metric names read by a PromQL expression (functions, labels and keywords removed)."""
    e = grafana_to_promql(expr)
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', e)  # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range / subquery selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\boffset\s+-?\w+", " ", e)
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)  # numbers, incl. 1e6
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        if word.lower() in KEYWORDS or e[m.end():].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def resolve(name: str, catalogue: dict[str, str]) -> str | None:
    """The documented metric a series name belongs to, or None."""
    if name in catalogue:
        return name
    for suffix in HIST_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and catalogue.get(base) == "histogram":
            return base
    return None


def targets(dashboard: dict):
    """Yield (panel, target) for every panel, including panels nested in rows."""
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            yield panel, target


def check(dashboard: dict, catalogue: dict[str, str]) -> list[str]:
    errors = []
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dashboard:
            errors.append(f"dashboard has no {key!r}")
    ids = [p.get("id") for p in dashboard.get("panels", [])]
    if len(ids) != len(set(ids)) or None in ids:
        errors.append("panel ids must be present and unique")
    used = set()
    n = 0
    for panel, target in targets(dashboard):
        n += 1
        where = f"panel {panel.get('id')} {panel.get('title')!r} target {target.get('refId')}"
        expr = target.get("expr")
        if not target.get("refId") or not expr:
            errors.append(f"{where}: needs refId and expr")
            continue
        names = metric_names(expr)
        if not names:
            errors.append(f"{where}: reads no metric: {expr}")
        for name in names:
            base = resolve(name, catalogue)
            if base is None:
                errors.append(f"{where}: {name!r} is not in docs/metrics.md")
            else:
                used.add(base)
    if n == 0:
        errors.append("dashboard has no queries")
    unused = sorted(m for m in catalogue if m.startswith("terrawatch_") and m not in used)
    if unused:
        errors.append(f"terrawatch metrics on no panel: {unused}")
    return errors


def promtool_rules(dashboard: dict) -> str:
    """A rule file with every dashboard expression as a recording rule (JSON is YAML)."""
    rules = [
        {"record": f"dashboard:panel{p.get('id')}:{t.get('refId')}", "expr": grafana_to_promql(t["expr"])}
        for p, t in targets(dashboard)
        if t.get("expr")
    ]
    return json.dumps({"groups": [{"name": "dashboard-expressions", "rules": rules}]}, indent=1)


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--promtool-rules"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        dashboard = json.loads(Path(argv[1]).read_text())
    except json.JSONDecodeError as exc:
        print(f"{argv[1]}: not JSON: {exc}", file=sys.stderr)
        return 1
    errors = check(dashboard, documented_metrics(Path(argv[2])))
    for err in errors:
        print(f"{argv[1]}: {err}", file=sys.stderr)
    if len(argv) == 5:
        Path(argv[4]).write_text(promtool_rules(dashboard))
    if not errors:
        print(f"{argv[1]}: OK ({sum(1 for _ in targets(dashboard))} queries)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
