"""Run the torch nets with ONNX Runtime: export at load time, cache, and a torch-shaped wrapper.

The torch modules in this package stay the reference (training, tests). For serving,
:func:`ort_module` exports a net to ONNX from its loaded weights (``torch.onnx.export``, TorchScript
exporter, opset 17, dynamic batch and spatial axes), caches the file next to the other temporary
state (``TERRAWATCH_ONNX_CACHE`` or ``<tmp>/terrawatch-onnx``; key = hash of the weights, the
example shapes' rank and this module's export version; no binaries are committed) and returns an
:class:`OrtModule`: a ``torch.nn.Module`` whose ``forward`` hands numpy views of its torch inputs to
an ``onnxruntime.InferenceSession`` and returns torch tensors, so callers such as
``terrawatch.ml.flood_s1.predict_batch`` (padding, windows, no-data, growing) run unchanged.

Runtime options (chosen by measurement on the development CPU, docs/performance.md):
``providers``: ``auto`` = CPU here, CUDA (then CPU) for a GPU instance; or a comma list such as
``TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider``. ``threads``: intra-op
threads (0 = onnxruntime's default, all cores). ``graph_opt``: ``disable|basic|extended|all``.
``quantize``: ``int8`` applies dynamic/static int8 quantisation (evaluated, not shipped: see
models/flood_s1/README.md).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

EXPORT_VERSION = "1"  # bump when the export recipe changes (invalidates cached files)
OPSET = 17
GRAPH_OPT = ("disable", "basic", "extended", "all")
CPU_PROVIDER = "CPUExecutionProvider"
GPU_PROVIDERS = ("CUDAExecutionProvider", CPU_PROVIDER)


def cache_dir() -> Path:
    d = Path(os.environ.get("TERRAWATCH_ONNX_CACHE") or Path(tempfile.gettempdir()) / "terrawatch-onnx")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _state_hash(net: nn.Module) -> str:
    h = hashlib.sha256(f"{type(net).__module__}.{type(net).__qualname__}/{EXPORT_VERSION}/{OPSET}".encode())
    for k, v in net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def export_onnx(net: nn.Module, examples: Sequence[torch.Tensor], path: Path,
                input_names: Sequence[str], dynamic_spatial: bool = True) -> Path:
    """Export ``net`` (eval mode, CPU) to ``path``: inputs ``input_names`` (axis 0 dynamic, and axes 2, 3
    when ``dynamic_spatial``), one output ``out`` (same dynamic axes). Written atomically."""
    import warnings

    net = net.eval().cpu()
    axes = {0: "n", 2: "h", 3: "w"} if dynamic_spatial else {0: "n"}
    dyn = {name: axes for name in input_names}
    dyn["out"] = axes if dynamic_spatial else {0: "n"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, tuple(examples), str(tmp), dynamo=False, input_names=list(input_names),
                          output_names=["out"], dynamic_axes=dyn, opset_version=OPSET)
    os.replace(tmp, path)
    return path


def cached_export(net: nn.Module, examples: Sequence[torch.Tensor], input_names: Sequence[str],
                  dynamic_spatial: bool = True, folder: Path | None = None) -> Path:
    """The ONNX file of ``net``'s current weights, exported once per weights (see module)."""
    path = (folder or cache_dir()) / f"{type(net).__name__.lower()}-{_state_hash(net)}.onnx"
    if not path.is_file():
        export_onnx(net, examples, path, input_names, dynamic_spatial)
    return path


def resolve_providers(providers: str = "auto", gpu: bool = False) -> list[str]:
    """Execution providers for a session. ``auto``: CPU, or CUDA then CPU for a GPU instance. A GPU
    instance whose onnxruntime has no CUDA/TensorRT provider is a configuration error (raised)."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    if providers.strip().lower() in ("", "auto"):
        wanted = list(GPU_PROVIDERS) if gpu else [CPU_PROVIDER]
    else:
        wanted = [p.strip() for p in providers.split(",") if p.strip()]
    chosen = [p for p in wanted if p in have]
    if gpu and not any(p in have for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")):
        raise RuntimeError(f"GPU instance but onnxruntime offers only {have}: install onnxruntime-gpu "
                           "or serve with runtime torch")
    if not chosen:
        raise RuntimeError(f"none of the execution providers {wanted} is available (have {have})")
    return chosen


def session(model: Path, providers: Sequence[str] = (CPU_PROVIDER,), threads: int = 0,
            graph_opt: str = "all", device_id: int = 0):
    """An ``onnxruntime.InferenceSession`` on ``model`` with ``threads`` intra-op threads (0 = default),
    1 inter-op thread, sequential execution and graph optimisation ``graph_opt``."""
    import onnxruntime as ort

    if graph_opt not in GRAPH_OPT:
        raise ValueError(f"graph_opt must be one of {GRAPH_OPT}, got {graph_opt!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[graph_opt]
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts = [{"device_id": device_id} if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else {}
            for p in providers]
    return ort.InferenceSession(str(model), sess_options=so, providers=list(providers), provider_options=opts)


def quantize_int8(model: Path, calibration: Sequence[np.ndarray] | None = None, input_name: str = "x") -> Path:
    """An int8 copy of ``model`` beside it: static QDQ quantisation (per-channel weights, activations
    calibrated on ``calibration`` batches) when given, else dynamic. For evaluation (not shipped)."""
    from onnxruntime import quantization as q

    out = model.with_name(model.stem + (".int8s" if calibration is not None else ".int8d") + ".onnx")
    if out.is_file():
        return out
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.onnx")  # written aside, renamed: processes may race
    if calibration is None:
        q.quantize_dynamic(str(model), str(tmp), weight_type=q.QuantType.QInt8)
        os.replace(tmp, out)
        return out

    class _Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{input_name: np.ascontiguousarray(b, dtype=np.float32)} for b in calibration])

        def get_next(self):
            return next(self.it, None)

    pre = model.with_name(f".{model.stem}.{os.getpid()}.pre.onnx")
    try:
        q.quant_pre_process(str(model), str(pre))
        src = pre
    except Exception:  # noqa: BLE001 - shape inference helper is optional
        src = model
    q.quantize_static(str(src), str(tmp), _Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
    os.replace(tmp, out)
    pre.unlink(missing_ok=True)
    return out


class OrtModule(nn.Module):
    """A torch-shaped front of an ONNX Runtime session: ``forward(*tensors)`` -> torch tensor (CPU).

    Holds one empty CPU parameter so code that asks ``next(net.parameters()).device`` sends its inputs
    to the CPU; ONNX Runtime moves them to the execution provider's device itself."""

    def __init__(self, sess, path: Path | None = None) -> None:
        super().__init__()
        self.sess = sess
        self.path = path
        self.input_names = [i.name for i in sess.get_inputs()]
        self._device_anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        feed = {n: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
                for n, x in zip(self.input_names, xs)}
        return torch.from_numpy(self.sess.run(None, feed)[0])

    def providers(self) -> list[str]:
        return self.sess.get_providers()


def ort_module(net: nn.Module, examples: Sequence[torch.Tensor], input_names: Sequence[str] = ("x",),
               providers: str = "auto", gpu: bool = False, device_id: int = 0, threads: int = 0,
               graph_opt: str = "all", dynamic_spatial: bool = True, quantize: str = "",
               calibration: Sequence[np.ndarray] | None = None) -> OrtModule:
    """``net`` exported (cached) and wrapped in an :class:`OrtModule` (see module for the options)."""
    path = cached_export(net, examples, input_names, dynamic_spatial)
    if quantize == "int8":
        path = quantize_int8(path, calibration, input_names[0])
    elif quantize:
        raise ValueError(f"quantize must be '' or 'int8', got {quantize!r}")
    provs = resolve_providers(providers, gpu)
    return OrtModule(session(path, provs, threads, graph_opt, device_id), path)
