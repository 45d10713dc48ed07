"""ONNX Runtime serving (issue 29): the ONNX-exported nets agree with the torch reference, the Triton
backend picks its runtime from config.pbtxt parameters, and the serving settings render them.

Tolerance: the exported U-Net's water probability is within ``ATOL`` = 1e-4 of torch eager on every
pixel (measured max difference ~6e-7 on random input, see models/flood_s1/README.md), and the
thresholded water mask of the real Spain chip is identical but for pixels within 1e-4 of a threshold.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from terrawatch.inference import triton_backend
from terrawatch.inference.serving import Serving, render_config
from terrawatch.ml import flood_s1
from terrawatch.ml.nets.onnx_runtime import OrtModule, ort_module, resolve_providers
from terrawatch.settings import REPO_ROOT, Settings
from tests.conftest import shared_path

MODELS = REPO_ROOT / "models"
ATOL = 1e-4


@pytest.fixture(autouse=True)
def _onnx_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TERRAWATCH_ONNX_CACHE", str(tmp_path_factory.getbasetemp() / "onnx-cache"))


@pytest.fixture(scope="module")
def unet():
    return flood_s1.load_net(MODELS / "flood_s1" / "1" / "model.pt")


def _ort(net, examples, names=("x",), **kw):
    return ort_module(net, examples, names, threads=1, **kw)


def test_flood_s1_onnx_matches_torch_on_the_real_spain_chip(unet):
    from terrawatch.ml.datasets import Sen1Floods11

    chip = Sen1Floods11(shared_path("sen1floods11", "Spain_7370579_S1Hand.tif").parent)[0]
    s1 = chip["s1"][None].astype(np.float32)  # (1, 2, 512, 512) real sigma0 dB with no-data
    ort_net = _ort(unet, [torch.zeros(1, 2, 256, 256)])
    ref = flood_s1.predict_batch(unet, s1)
    got = flood_s1.predict_batch(ort_net, s1)
    assert np.array_equal(np.isnan(ref), np.isnan(got))
    assert np.nanmax(np.abs(ref - got)) < ATOL
    near = (np.abs(np.nan_to_num(ref) - 0.5) < ATOL) | (np.abs(np.nan_to_num(ref) - 0.2) < ATOL)
    assert ((np.nan_to_num(ref) >= 0.5) != (np.nan_to_num(got) >= 0.5))[~near].sum() == 0


def test_flood_s1_onnx_any_shape_batch_and_windows(unet):
    rng = np.random.default_rng(1)
    x = rng.normal(-14, 5, (3, 2, 200, 600)).astype(np.float32)  # pads to 16, windows beyond 512 px
    x[0, 1] = np.nan  # a missing VH band
    x[2, :, :20, :30] = np.nan
    ort_net = _ort(unet, [torch.zeros(1, 2, 256, 256)])
    ref, got = flood_s1.predict_batch(unet, x), flood_s1.predict_batch(ort_net, x)
    assert np.array_equal(np.isnan(ref), np.isnan(got)) and np.nanmax(np.abs(ref - got)) < ATOL


def test_mining_and_deforestation_onnx_match_torch():
    from terrawatch.ml.deforestation import load_model
    from terrawatch.ml.nets.mining import load_mining_cnn

    mining = load_mining_cnn(MODELS / "mining_s2" / "1" / "model.pt")
    om = _ort(mining, [torch.zeros(1, 12, 48, 48)], dynamic_spatial=False)
    x = torch.rand(5, 12, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert np.abs(mining(x).numpy() - om(x).numpy()).max() < ATOL
    defo = load_model(MODELS / "deforestation_s2" / "1" / "model.pt")
    ex = torch.full((1, 13, 32, 32), 1000.0)
    od = _ort(defo, [ex, ex], ("pre", "post"))
    g = torch.Generator().manual_seed(1)
    pre, post = torch.rand(2, 13, 40, 70, generator=g) * 4000, torch.rand(2, 13, 40, 70, generator=g) * 4000
    pre[0, :, :4] = 0  # no data
    with torch.inference_mode():
        ref = defo(pre, post).numpy()
    got = od(pre, post).numpy()
    assert got.shape == ref.shape and np.array_equal(np.isnan(ref), np.isnan(got))
    assert np.nanmax(np.abs(ref - got)) < ATOL


def test_export_is_cached_per_weights(unet, tmp_path, monkeypatch):
    monkeypatch.setenv("TERRAWATCH_ONNX_CACHE", str(tmp_path))
    a = _ort(unet, [torch.zeros(1, 2, 64, 64)])
    mtime = a.path.stat().st_mtime_ns
    b = _ort(unet, [torch.zeros(1, 2, 64, 64)])
    assert a.path == b.path and b.path.stat().st_mtime_ns == mtime and a.path.parent == tmp_path
    other = flood_s1.build_net().eval()
    assert _ort(other, [torch.zeros(1, 2, 64, 64)]).path != a.path


def test_providers():
    assert resolve_providers("auto", gpu=False) == ["CPUExecutionProvider"]
    assert resolve_providers("TensorrtExecutionProvider,CPUExecutionProvider") == ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
            resolve_providers("auto", gpu=True)


def _init(model_cls, model: str, **params) -> triton_backend.BatchedModel:
    cfg = text_format.Parse((MODELS / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    for k, v in params.items():
        cfg.parameters[k].string_value = v
    from google.protobuf.json_format import MessageToDict

    m = model_cls()
    m.initialize({"model_config": json.dumps(MessageToDict(cfg, preserving_proto_field_name=True)),
                  "model_repository": str(MODELS / model), "model_version": "1", "model_instance_kind": "CPU"})
    return m


def test_backend_runtime_follows_the_config(tmp_path):
    shipped = _init(triton_backend.FloodS1Model, "flood_s1")
    assert isinstance(shipped.net, OrtModule)  # models/flood_s1/config.pbtxt ships onnxruntime
    assert shipped.net.providers() == ["CPUExecutionProvider"]
    ref = _init(triton_backend.FloodS1Model, "flood_s1", runtime="torch")
    assert isinstance(ref.net, flood_s1.UNet)
    x = np.random.default_rng(2).normal(-15, 4, (2, 2, 256, 256)).astype(np.float32)
    a, b = shipped.predict(x), ref.predict(x)
    assert a.shape == b.shape == (2, 1, 256, 256) and np.nanmax(np.abs(a - b)) < ATOL
    with pytest.raises(ValueError, match="runtime"):
        _init(triton_backend.FloodS1Model, "flood_s1", runtime="tensorflow")


def test_serving_renders_runtime_and_providers(monkeypatch):
    parse = lambda t: text_format.Parse(t, model_config_pb2.ModelConfig())  # noqa: E731
    text = (MODELS / "flood_s1" / "config.pbtxt").read_text()
    assert parse(text).parameters["runtime"].string_value == "onnxruntime"
    cfg = parse(render_config(text, Serving(runtime="torch"), "flood_s1"))
    assert cfg.parameters["runtime"].string_value == "torch" and cfg.parameters["torch_threads"].string_value == "1"
    monkeypatch.setenv("TERRAWATCH_TRITON_RUNTIME", "onnxruntime")
    monkeypatch.setenv("TERRAWATCH_TRITON_ORT_PROVIDERS", "TensorrtExecutionProvider,CUDAExecutionProvider")
    s = Serving.from_settings(Settings())
    mining = parse(render_config((MODELS / "mining_s2" / "config.pbtxt").read_text(), s, "mining_s2"))
    assert mining.parameters["runtime"].string_value == "onnxruntime"
    assert mining.parameters["ort_providers"].string_value == "TensorrtExecutionProvider,CUDAExecutionProvider"
    flood_s2 = parse(render_config((MODELS / "flood_s2" / "config.pbtxt").read_text(), s, "flood_s2"))
    assert "runtime" not in flood_s2.parameters  # no torch net
    with pytest.raises(ValueError):
        Serving(runtime="tensorflow")


def test_local_runner_runtime_switch(monkeypatch):
    from terrawatch.inference import local

    x = np.random.default_rng(3).normal(-14, 5, (2, 96, 80)).astype(np.float32)
    try:
        local._flood_s1_net.cache_clear()
        ref = local.predict_water_s1(x)
        monkeypatch.setenv("TERRAWATCH_FLOOD_S1_RUNTIME", "onnxruntime")
        local._flood_s1_net.cache_clear()
        assert isinstance(local._flood_s1_net(), OrtModule)
        assert np.nanmax(np.abs(local.predict_water_s1(x) - ref)) < ATOL
        monkeypatch.setenv("TERRAWATCH_FLOOD_S1_RUNTIME", "tensorrt")
        local._flood_s1_net.cache_clear()
        with pytest.raises(ValueError, match="FLOOD_S1_RUNTIME"):
            local._flood_s1_net()
    finally:
        local._flood_s1_net.cache_clear()
