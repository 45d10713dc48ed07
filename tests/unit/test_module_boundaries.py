"""The package's shape, checked from the source: which clients each layer may import, and file sizes.

- ``confluent_kafka`` only inside ``ingest/`` (the Kafka adapters);
- ``api/`` and ``service/`` import no Kafka, Ray or Triton client (they reach them through ``ingest/``,
  ``tiling/`` and ``inference/``; ``service/bootstrap.py`` wires them for the worker);
- no ``.py`` file under ``services/`` is longer than 600 lines (a ceiling against god-modules; the former 400-line
  cap forced splits that cut cohesive code apart, such as the former InFlightMixin; the worker now owns an
  ``inflight.OffsetKeeper``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from terrawatch.settings import REPO_ROOT
from tests.import_graph import parse

SERVICES = REPO_ROOT / "services"
PACKAGE = SERVICES / "terrawatch"
CLIENTS = ("confluent_kafka", "ray", "tritonclient")
MAX_LINES = 600


def imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module.split(".")[0])
    return out


def modules() -> list[Path]:
    found = sorted(p for p in PACKAGE.rglob("*.py") if "node_modules" not in p.parts)
    assert len(found) > 50, f"only {len(found)} modules under {PACKAGE}"
    return found


def _rel(p: Path) -> str:
    return p.relative_to(PACKAGE).as_posix()


def test_confluent_kafka_only_in_ingest():
    offenders = [_rel(p) for p in modules() if "confluent_kafka" in imports(p) and _rel(p).split("/")[0] != "ingest"]
    assert offenders == [], f"confluent_kafka imported outside ingest/: {offenders}"


@pytest.mark.parametrize("layer", ["api", "service"])
def test_no_kafka_ray_or_triton_client_in(layer):
    offenders = {_rel(p): sorted(imports(p) & set(CLIENTS)) for p in modules() if _rel(p).startswith(layer + "/")}
    assert {k: v for k, v in offenders.items() if v} == {}, f"{layer}/ imports a Kafka, Ray or Triton client"


def test_no_python_file_over_600_lines():
    sizes = {p.relative_to(SERVICES).as_posix(): len(p.read_text().splitlines())
             for p in SERVICES.rglob("*.py") if "node_modules" not in p.parts}
    assert len(sizes) > 50
    assert {k: n for k, n in sizes.items() if n > MAX_LINES} == {}


def test_the_checks_see_what_they_look_for(tmp_path):
    """The import scan finds module-level, function-level and from-imports (so the checks above can fail)."""
    f = tmp_path / "m.py"
    f.write_text("import ray.exceptions\nfrom confluent_kafka.admin import AdminClient\n"
                 "def g():\n    import tritonclient.grpc as g\n    from . import sibling\n")
    assert imports(f) == {"ray", "confluent_kafka", "tritonclient"}
