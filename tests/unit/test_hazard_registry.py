"""The hazard registry is the one definition: Triton configs, alert rules, settings and clients agree with it."""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from terrawatch.domain import hazards
from terrawatch.domain.alerts import load_rules
from terrawatch.domain.scene import Sensor, default_hazards
from terrawatch.settings import REPO_ROOT, Settings

MODELS_DIR = REPO_ROOT / "models"


def _config(name: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse((MODELS_DIR / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


@pytest.mark.parametrize("name", sorted(hazards.MODELS))
def test_triton_config_matches_registry(name):
    spec, cfg = hazards.MODELS[name], _config(name)
    assert cfg.name == name
    assert cfg.max_batch_size == spec.max_batch_size
    assert [(i.name, tuple(i.dims), i.data_type) for i in cfg.input] == [
        (t.name, t.dims, model_config_pb2.TYPE_FP32) for t in spec.inputs]
    assert [(o.name, tuple(o.dims)) for o in cfg.output] == [(spec.output.name, spec.output.dims)]


def test_every_served_model_is_registered_and_every_registered_model_served():
    served = {p.parent.name for p in MODELS_DIR.glob("*/config.pbtxt")}
    assert served == set(hazards.MODELS) == {h.model for h in hazards.REGISTRY}


def test_alert_rules_cover_exactly_the_registered_hazards():
    assert set(load_rules(REPO_ROOT / "alerts" / "rules")) == set(hazards.HAZARDS)


def test_registry_entries_are_consistent():
    fields = Settings.model_fields
    for h in hazards.REGISTRY:
        assert h.kind in ("segment", "patches", "bitemporal")
        assert h.threshold_setting in fields and 0 < fields[h.threshold_setting].default < 1
        assert h.excluded_flag in (2, 4)
    assert len({(h.sensor, h.hazard) for h in hazards.REGISTRY}) == len(hazards.REGISTRY)
    assert default_hazards(Sensor.S1) == ("flood",)
    assert default_hazards(Sensor.S2) == ("flood", "deforestation", "mining")
    assert hazards.model_for(Sensor.S1, "mining") is None


def test_clients_and_backends_read_the_registry():
    from terrawatch.inference import triton, triton_backend

    assert triton.MODELS is hazards.MODELS
    for cls, name in ((triton_backend.MiningModel, "mining_s2"), (triton_backend.DeforestationModel, "deforestation_s2"),
                      (triton_backend.FloodS1Model, "flood_s1"), (triton_backend.FloodS2Model, "flood_s2")):
        assert (cls.inputs, cls.output) == (hazards.MODELS[name].input_names, hazards.MODELS[name].output_name)
