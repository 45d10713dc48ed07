"""Triton serving by configuration (issue 17): config.pbtxt rendered from the serving settings, and the
Python backend's device choice. No GPU here: the GPU case is checked on the generated configuration and on
the device the backend picks, not run."""

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from terrawatch.inference import triton_backend
from terrawatch.inference.serving import Serving, render_config, render_repository
from terrawatch.settings import REPO_ROOT, Settings

MODELS = REPO_ROOT / "models"


def parse(text: str) -> model_config_pb2.ModelConfig:
    """Triton's own ModelConfig message: the rendered text must be a valid config."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.mark.parametrize("model", ["flood_s1", "mining_s2", "deforestation_s2", "flood_s2"])
def test_default_serving_keeps_the_shipped_configs(model):
    text = (MODELS / model / "config.pbtxt").read_text()
    assert parse(render_config(text, Serving(), model)) == parse(text)


def test_gpu_instances_batcher_and_threads_from_settings(monkeypatch):
    for key, value in {"INSTANCE_KIND": "gpu", "INSTANCE_COUNT": "2", "GPUS": "0, 1", "TORCH_THREADS": "1",
                       "PREFERRED_BATCH": "4,8,16", "QUEUE_DELAY_US": "500"}.items():
        monkeypatch.setenv(f"TERRAWATCH_TRITON_{key}", value)
    serving = Serving.from_settings(Settings())
    cfg = parse(render_config((MODELS / "flood_s1" / "config.pbtxt").read_text(), serving, "flood_s1"))
    (group,) = cfg.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert group.count == 2 and list(group.gpus) == [0, 1]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]  # 16 > max_batch_size 8: dropped
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    assert cfg.parameters["torch_threads"].string_value == "1"
    assert cfg.max_batch_size == 8 and [i.name for i in cfg.input] == ["S1_DB"]  # the rest untouched


def test_instance_count_kept_unless_set():
    text = (MODELS / "flood_s1" / "config.pbtxt").read_text()
    shipped = parse(text).instance_group[0].count
    assert parse(render_config(text, Serving(torch_threads=2), "flood_s1")).instance_group[0].count == shipped
    cfg = parse(render_config(text, Serving(count=3), "flood_s1"))
    assert cfg.instance_group[0].count == 3 and cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    gpu = parse(render_config(text, Serving(kind="gpu"), "flood_s1")).instance_group[0]
    assert gpu.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU and gpu.count == 1


def test_models_without_a_torch_net_stay_on_cpu():
    text = (MODELS / "flood_s2" / "config.pbtxt").read_text()
    cfg = parse(render_config(text, Serving(kind="gpu", count=3, torch_threads=4), "flood_s2"))
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert cfg.instance_group[0].count == 3 and "torch_threads" not in cfg.parameters


@pytest.mark.parametrize("bad", [dict(kind="tpu"), dict(count=0), dict(gpus=(-1,)), dict(preferred_batch=(0,)),
                                 dict(torch_threads=0), dict(queue_delay_us=-5)])
def test_invalid_serving_is_refused(bad):
    with pytest.raises(ValueError):
        Serving(**bad)


def test_settings_refuse_an_unknown_instance_kind(monkeypatch):
    monkeypatch.setenv("TERRAWATCH_TRITON_INSTANCE_KIND", "tpu")
    with pytest.raises(ValueError):
        Settings()


def test_rendered_repository_links_everything_but_the_config(tmp_path):
    out = tmp_path / "rendered"
    models = render_repository(MODELS, out, Serving(kind="gpu"))
    assert set(models) == {"flood_s1", "flood_s2", "mining_s2", "deforestation_s2"}
    assert (out / "flood_s1" / "1").is_symlink() and (out / "flood_s1" / "1" / "model.py").is_file()
    assert not (out / "flood_s1" / "config.pbtxt").is_symlink()
    assert "KIND_GPU" in (out / "flood_s1" / "config.pbtxt").read_text()
    assert "KIND_GPU" not in (MODELS / "flood_s1" / "config.pbtxt").read_text()  # the source is not touched


def test_backend_device_follows_the_instance_kind(monkeypatch):
    import torch

    assert triton_backend.instance_device({"model_instance_kind": "CPU", "model_instance_device_id": "0"}) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA"):
        triton_backend.instance_device({"model_instance_kind": "GPU", "model_instance_device_id": "1"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert triton_backend.instance_device({"model_instance_kind": "GPU", "model_instance_device_id": "1"}) == "cuda:1"
