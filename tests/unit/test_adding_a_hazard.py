"""Adding a hazard (docs/architecture.md, "Adding a hazard"): every piece a registry entry needs exists, so a new
entry without its model folder, Triton backend class or settings row fails here (the schema enum, ramps, map
colours, rules and strategies are checked by test_hazard_kinds, test_map_legend, test_hazard_registry and
test_strategies); and every file the section names exists."""

from __future__ import annotations

import ast
import re

import pytest

from terrawatch.domain import hazards
from terrawatch.settings import REPO_ROOT

MODELS_DIR = REPO_ROOT / "models"
ENTRIES = sorted({h.model: h for h in hazards.REGISTRY}.values(), key=lambda h: h.model)


def _backend_class(model: str) -> str | None:
    """The class ``models/<model>/1/model.py`` serves as ``TritonPythonModel`` from inference.triton_backend."""
    tree = ast.parse((MODELS_DIR / model / "1" / "model.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "terrawatch.inference.triton_backend":
            for a in node.names:
                if a.asname == "TritonPythonModel":
                    return a.name
    return None


@pytest.mark.parametrize("h", ENTRIES, ids=lambda h: h.model)
def test_every_registered_model_has_its_folder_card_and_aoa(h):
    for f in ("config.pbtxt", "1/model.py", "README.md", "aoa.geojson"):
        assert (MODELS_DIR / h.model / f).is_file(), f"models/{h.model}/{f} missing"


@pytest.mark.parametrize("h", ENTRIES, ids=lambda h: h.model)
def test_every_registered_model_is_served_by_a_backend_class_with_the_registry_tensors(h):
    from terrawatch.inference import triton_backend

    name = _backend_class(h.model)
    assert name, f"models/{h.model}/1/model.py does not serve a terrawatch.inference.triton_backend class"
    assert name == h.spec.backend, f"models/{h.model}/1/model.py serves {name}, the registry says {h.spec.backend}"
    cls = getattr(triton_backend, name)
    assert issubclass(cls, triton_backend.BatchedModel)
    assert (cls.inputs, cls.output) == (h.spec.input_names, h.spec.output_name)


@pytest.mark.parametrize("h", ENTRIES, ids=lambda h: h.model)
def test_every_threshold_setting_is_documented(h):
    assert f"`TERRAWATCH_{h.threshold_setting.upper()}`" in (REPO_ROOT / "docs" / "settings.md").read_text()


def _section() -> str:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    return text.split("## Adding a hazard", 1)[1].split("\n## ", 1)[0]


def test_the_files_the_section_names_exist():
    named = set(re.findall(r"`([\w/.-]+\.(?:py|json|js|yaml|md))`", _section()))
    assert len(named) >= 10, "the section lists the files a new hazard touches"
    services, missing = REPO_ROOT / "services" / "terrawatch", []
    for path in sorted(named):
        if "<" in path:
            continue
        if not any((root / path).exists() for root in (REPO_ROOT, services, REPO_ROOT / "tests" / "unit")):
            missing.append(path)
    assert missing == []


def test_the_registry_carries_each_hazards_style_and_each_models_cpu_flag():
    """Colour, ramp and CPU-only flag come from the registry; the API, the raster ramps and serving derive theirs."""
    from terrawatch.api.routes.map import HAZARD_COLOURS
    from terrawatch.inference.serving import CPU_ONLY
    from terrawatch.products.tiles import RAMPS

    assert set(hazards.STYLES) == set(hazards.HAZARDS)
    assert HAZARD_COLOURS == {h: s.colour for h, s in hazards.STYLES.items()}
    assert all(RAMPS[h] == s.ramp for h, s in hazards.STYLES.items())
    assert all(re.fullmatch(r"#[0-9a-f]{6}", s.colour) for s in hazards.STYLES.values())
    assert len({s.colour for s in hazards.STYLES.values()}) == len(hazards.STYLES), "two hazards share a colour"
    assert CPU_ONLY == {m.name for m in hazards.MODELS.values() if m.cpu_only}
    # flood_s2 has no net (index thresholds); every other model runs one
    assert CPU_ONLY == {"flood_s2"}
