"""The layers, as the import graph shows them (tests/import_graph.py: every import, lazy ones included).

- Dev tooling and research are apart from the runtime: ``stack/`` (local services), ``demo.py``, the two
  ``samples.py``, ``api/launch.py``, ``cli/bench.py`` (tooling) and ``ml/train``, ``ml/eval`` (research). No runtime
  module reaches one, directly or through others. The CLI is the one entry point that may, for the commands that
  exist to run them, and only along the allow-listed edges below: ``terrawatch stack ...`` (``stack``,
  ``stack.process``), ``terrawatch serve --ray-serve`` (``stack.ray_serve``), ``terrawatch demo`` (``demo``),
  ``terrawatch bench`` (``cli.bench``), ``terrawatch models cv`` / ``eval`` (``ml.eval.cv``, ``ml.eval.evaluate``).
- ``domain/`` imports only ``domain/``; ``service/ports.py`` imports only ``domain/`` (no adapter).
- Nothing imports ``cli/`` but ``cli/``; ``cli/`` imports nothing of ``api/`` but ``create_app`` for
  ``terrawatch serve`` (key management is ``service/keys.py``); ``service/`` imports neither ``api/`` nor
  ``cli/``; the adapters (``store``, ``ingest``, ``imagery``, ``inference``, ``tiling``, ``vectorize``,
  ``products``, ``alerting``) import neither ``service/``, ``api/`` nor ``cli/``.
"""

from __future__ import annotations

import pytest

from tests.import_graph import package_graph, reaches

GRAPH = package_graph()
DEV_PACKAGES = ("terrawatch.stack", "terrawatch.ml.train", "terrawatch.ml.eval")
DEV_MODULES = {"terrawatch.demo", "terrawatch.samples", "terrawatch.api.samples", "terrawatch.api.launch"}
CLI_MAY_RUN = {  # (CLI module, dev module): the command that runs it
    ("terrawatch.cli.stack", "terrawatch.stack"): "terrawatch stack ...",
    ("terrawatch.cli.stack", "terrawatch.stack.process"): "terrawatch stack ...",
    ("terrawatch.cli.api", "terrawatch.stack.ray_serve"): "terrawatch serve --ray-serve",
    ("terrawatch.cli.pipeline", "terrawatch.demo"): "terrawatch demo",
    ("terrawatch.cli.models", "terrawatch.ml.eval.cv"): "terrawatch models cv",
    ("terrawatch.cli.models", "terrawatch.ml.eval.evaluate"): "terrawatch models eval",
}
ADAPTERS = ("store", "ingest", "imagery", "inference", "tiling", "vectorize", "products", "alerting")


def is_dev(m: str) -> bool:
    return m in DEV_MODULES or any(m == p or m.startswith(p + ".") for p in DEV_PACKAGES)


def layer(m: str) -> str:
    parts = m.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_dev_and_research_modules_exist():
    """Renaming one must update this test (else the checks below would pass on nothing)."""
    assert DEV_MODULES <= set(GRAPH)
    for p in DEV_PACKAGES:
        assert p in GRAPH and any(m.startswith(p + ".") for m in GRAPH), p
    assert {e for pair in CLI_MAY_RUN for e in pair} <= set(GRAPH)


def test_no_runtime_module_reaches_dev_tooling_or_research():
    runtime = [m for m in GRAPH if not is_dev(m) and layer(m) != "cli"]
    assert len(runtime) > 100
    found = {}
    for m in runtime:
        bad = {d: chain for d, chain in reaches(GRAPH, m, allowed=lambda x: not is_dev(x)).items() if is_dev(d)}
        if bad:
            d, chain = sorted(bad.items())[0]
            found[m] = " -> ".join(chain)
    assert found == {}, "runtime modules importing dev tooling / research:\n" + "\n".join(found.values())


def test_the_cli_runs_dev_tooling_only_along_the_allowed_edges():
    edges = {(m, d) for m in GRAPH if layer(m) == "cli" and not is_dev(m) for d in GRAPH[m] if is_dev(d)}
    assert edges == set(CLI_MAY_RUN), "a CLI module imports dev tooling outside the allow-list (add the command)"


@pytest.mark.parametrize("rule, check", [
    ("domain/ imports only domain/", lambda m, d: layer(m) != "domain" or layer(d) == "domain"),
    ("service/ports.py imports only domain/",
     lambda m, d: m != "terrawatch.service.ports" or layer(d) == "domain"),
    ("only cli/ imports cli/", lambda m, d: layer(d) != "cli" or layer(m) == "cli"),
    ("cli/ imports only create_app of api/",
     lambda m, d: not (layer(m) == "cli" and layer(d) == "api") or (m, d) == ("terrawatch.cli.api", "terrawatch.api")),
    ("service/ imports neither api/ nor cli/", lambda m, d: layer(m) != "service" or layer(d) not in ("api", "cli")),
    ("adapters import neither service/, api/ nor cli/",
     lambda m, d: layer(m) not in ADAPTERS or layer(d) not in ("service", "api", "cli")),
])
def test_layer_rule(rule, check):
    broken = sorted(f"{m} (line {GRAPH[m][d]}) -> {d}" for m in GRAPH if not is_dev(m) for d in GRAPH[m]
                    if not check(m, d))
    assert broken == [], f"{rule}:\n" + "\n".join(broken)


def test_the_rules_can_fail():
    """The same checks on a made-up graph flag each kind of break."""
    g = {"terrawatch.domain.a": {"terrawatch.store.b": 1}, "terrawatch.store.b": {"terrawatch.service.c": 2},
         "terrawatch.service.c": {"terrawatch.stack.x": 3}, "terrawatch.stack.x": {}}
    chain = reaches(g, "terrawatch.domain.a", allowed=lambda x: not is_dev(x))
    assert chain["terrawatch.stack.x"] == ["terrawatch.domain.a", "terrawatch.store.b", "terrawatch.service.c",
                                            "terrawatch.stack.x"]
    assert layer("terrawatch.domain.a") == "domain" and is_dev("terrawatch.stack.x") and is_dev("terrawatch.ml.eval.cv")
    assert not is_dev("terrawatch.ml.evaluation") and not is_dev("terrawatch.stacks")
