"""The layers, as the import graph shows them (tests/import_graph.py: every import, lazy ones included).

- Dev tooling and research are their own packages of the ``terrawatch`` distribution, apart from the runtime
  package ``terrawatch``: ``terrawatch_dev`` (``stack/`` local services, ``demo``, ``samples``, ``api_samples``,
  ``api_launch``, ``cli/bench``) and ``terrawatch_research`` (``train/``, ``eval/``). No runtime module reaches
  one, directly or through others. The CLI is the one entry point that may, for the commands that exist to run
  them, and only along the allow-listed edges below: ``terrawatch stack ...`` (``stack``, ``stack.process``),
  ``terrawatch serve --ray-serve`` (``stack.ray_serve``), ``terrawatch demo`` (``demo``), ``terrawatch bench``
  (``cli.bench``), ``terrawatch cv`` / ``eval`` (``eval.cv``, ``eval.evaluate``). Research imports no dev
  tooling (training and evaluation run without the local stack).
- ``domain/`` imports only ``domain/``; ``service/ports.py`` imports only ``domain/`` (no adapter).
- Nothing imports ``cli/`` but ``cli/`` (and the dev CLI groups, which register on its app); ``cli/`` imports
  nothing of ``api/`` but ``create_app`` for ``terrawatch serve`` (key management is ``service/keys.py``);
  ``service/`` imports neither ``api/`` nor ``cli/``; the adapters (``store``, ``ingest``, ``imagery``,
  ``inference``, ``tiling``, ``vectorize``, ``products``, ``alerting``) import neither ``service/``, ``api/``
  nor ``cli/``.
"""

from __future__ import annotations

import pytest

from tests.import_graph import DEV_PACKAGE, PACKAGE, RESEARCH_PACKAGE, package_graph, reaches

GRAPH = package_graph()
RUNTIME = PACKAGE.name  # terrawatch
DEV = DEV_PACKAGE.name  # terrawatch_dev
RESEARCH = RESEARCH_PACKAGE.name  # terrawatch_research
# What moved out of the runtime package (issue 28): each must exist where it now lives and not where it was.
MOVED = {
    "terrawatch.stack": "terrawatch_dev.stack", "terrawatch.demo": "terrawatch_dev.demo",
    "terrawatch.samples": "terrawatch_dev.samples", "terrawatch.api.samples": "terrawatch_dev.api_samples",
    "terrawatch.api.launch": "terrawatch_dev.api_launch", "terrawatch.cli.bench": "terrawatch_dev.cli.bench",
    "terrawatch.ml.train": "terrawatch_research.train", "terrawatch.ml.eval": "terrawatch_research.eval",
}
CLI_MAY_RUN = {  # (CLI module, dev or research module): the command that runs it
    ("terrawatch.cli", "terrawatch_dev.cli.bench"): "terrawatch bench",
    ("terrawatch.cli.stack", "terrawatch_dev.stack"): "terrawatch stack ...",
    ("terrawatch.cli.stack", "terrawatch_dev.stack.process"): "terrawatch stack ...",
    ("terrawatch.cli.api", "terrawatch_dev.stack.ray_serve"): "terrawatch serve --ray-serve",
    ("terrawatch.cli.pipeline", "terrawatch_dev.demo"): "terrawatch demo",
    ("terrawatch.cli.models", "terrawatch_research.eval.cv"): "terrawatch cv",
    ("terrawatch.cli.models", "terrawatch_research.eval.evaluate"): "terrawatch eval",
}
ADAPTERS = ("store", "ingest", "imagery", "inference", "tiling", "vectorize", "products", "alerting")


def package(m: str) -> str:
    return m.split(".")[0]


def is_dev(m: str) -> bool:
    """A module of dev tooling or research (not of the runtime package)."""
    return package(m) in (DEV, RESEARCH)


def layer(m: str) -> str:
    """The runtime layer of ``terrawatch.<layer>...`` ("" for the package itself and for other packages)."""
    parts = m.split(".")
    return parts[1] if package(m) == RUNTIME and len(parts) > 1 else ""


def test_the_three_packages_are_read_and_nothing_is_left_where_it_was():
    """Renaming one must update this test (else the checks below would pass on nothing)."""
    for p in (RUNTIME, DEV, RESEARCH):
        assert sum(package(m) == p for m in GRAPH) > 5, p
    for old, new in MOVED.items():
        assert new in GRAPH, new
        assert not any(m == old or m.startswith(old + ".") for m in GRAPH), f"{old} is back in the runtime package"
    assert {e for pair in CLI_MAY_RUN for e in pair} <= set(GRAPH)


def test_no_runtime_module_reaches_dev_tooling_or_research():
    runtime = [m for m in GRAPH if package(m) == RUNTIME and layer(m) != "cli"]
    assert len(runtime) > 100
    found = {}
    for m in runtime:
        bad = {d: chain for d, chain in reaches(GRAPH, m, allowed=lambda x: not is_dev(x)).items() if is_dev(d)}
        if bad:
            d, chain = sorted(bad.items())[0]
            found[m] = " -> ".join(chain)
    assert found == {}, "runtime modules importing dev tooling / research:\n" + "\n".join(found.values())


def test_the_cli_runs_dev_tooling_and_research_only_along_the_allowed_edges():
    edges = {(m, d) for m in GRAPH if layer(m) == "cli" for d in GRAPH[m] if is_dev(d)}
    assert edges == set(CLI_MAY_RUN), "a CLI module imports dev tooling outside the allow-list (add the command)"


def test_research_imports_no_dev_tooling():
    broken = sorted(f"{m} (line {GRAPH[m][d]}) -> {d}" for m in GRAPH if package(m) == RESEARCH
                    for d in GRAPH[m] if package(d) == DEV)
    assert broken == []


@pytest.mark.parametrize("rule, check", [
    ("domain/ imports only domain/", lambda m, d: layer(m) != "domain" or layer(d) == "domain"),
    ("service/ports.py imports only domain/",
     lambda m, d: m != "terrawatch.service.ports" or layer(d) == "domain"),
    ("only cli/ imports cli/",
     lambda m, d: layer(d) != "cli" or layer(m) == "cli" or m.startswith(DEV + ".cli.")),
    ("cli/ imports only create_app of api/",
     lambda m, d: not (layer(m) == "cli" and layer(d) == "api") or (m, d) == ("terrawatch.cli.api", "terrawatch.api")),
    ("service/ imports neither api/ nor cli/", lambda m, d: layer(m) != "service" or layer(d) not in ("api", "cli")),
    ("the worker (service/worker.py, inflight.py) imports no adapter: bootstrap injects them",
     lambda m, d: m not in ("terrawatch.service.worker", "terrawatch.service.inflight") or layer(d) not in ADAPTERS),
    ("adapters import neither service/, api/ nor cli/",
     lambda m, d: layer(m) not in ADAPTERS or layer(d) not in ("service", "api", "cli")),
])
def test_layer_rule(rule, check):
    broken = sorted(f"{m} (line {GRAPH[m][d]}) -> {d}" for m in GRAPH for d in GRAPH[m] if not check(m, d))
    assert broken == [], f"{rule}:\n" + "\n".join(broken)


def test_the_rules_can_fail():
    """The same checks on a made-up graph flag each kind of break."""
    g = {"terrawatch.domain.a": {"terrawatch.store.b": 1}, "terrawatch.store.b": {"terrawatch.service.c": 2},
         "terrawatch.service.c": {"terrawatch_dev.stack.x": 3}, "terrawatch_dev.stack.x": {}}
    chain = reaches(g, "terrawatch.domain.a", allowed=lambda x: not is_dev(x))
    assert chain["terrawatch_dev.stack.x"] == ["terrawatch.domain.a", "terrawatch.store.b", "terrawatch.service.c",
                                                "terrawatch_dev.stack.x"]
    assert layer("terrawatch.domain.a") == "domain" and layer("terrawatch_dev.cli.bench") == ""
    assert is_dev("terrawatch_dev.stack.x") and is_dev("terrawatch_research.eval.cv")
    assert not is_dev("terrawatch.ml.flood_s1") and not is_dev("terrawatch.stack")


def test_the_graph_sees_imports_across_the_packages(tmp_path):
    """build_graph over several packages keeps the edges between them (lazy ones too), so the checks above
    can fail: a runtime module's function-level import of a dev module is an edge."""
    from tests.import_graph import build_graph

    for rel, text in {"terrawatch/__init__.py": "", "terrawatch/service/__init__.py": "",
                      "terrawatch/service/w.py": "def f():\n    from terrawatch_dev.samples import s\n",
                      "terrawatch_dev/__init__.py": "", "terrawatch_dev/samples.py": "import terrawatch.service.w\n"
                      }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    g = build_graph(tmp_path / "terrawatch", tmp_path / "terrawatch_dev")
    assert g["terrawatch.service.w"] == {"terrawatch_dev.samples": 2}
    assert g["terrawatch_dev.samples"] == {"terrawatch.service.w": 1}
    assert "terrawatch_dev.samples" in reaches(g, "terrawatch.service.w", allowed=lambda x: not is_dev(x))
