"""Shared glue for the Triton Python-backend models in ``models/``.

Each ``models/<name>/<version>/model.py`` only puts terrawatch on ``sys.path`` and
names one of these classes ``TritonPythonModel``. The glue reads the inputs of
every request in a dynamic batch, runs the model once on their concatenation
when their shapes agree (otherwise per request), and reports a failure to the
requests it concerns instead of failing the server. Weights are loaded from
``model.pt`` in the version directory; ``parameters`` of config.pbtxt arrive as
strings. A ``KIND_GPU`` instance runs its torch net on ``cuda:<device id>`` (Triton
says which), a ``KIND_CPU`` one on the CPU (:func:`instance_device`; the kind is set
by configuration, terrawatch.inference.serving).

Runtime (issue 29): the ``runtime`` parameter picks how a net runs: ``torch`` (eager, the reference)
or ``onnxruntime`` (the net exported to ONNX from the same weights at load time, cached in a temp dir,
run by an ONNX Runtime session: :mod:`terrawatch.ml.nets.onnx_runtime`). ``ort_threads`` (intra-op
threads; default = ``torch_threads``), ``ort_graph_opt`` (``all``), ``ort_providers`` (``auto``: the
CPU provider for a CPU instance, CUDA then CPU for a GPU instance; or a comma list such as
``TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider``). Pre- and post-processing
(normalisation, padding, windows, no-data, region growing) are the same code for both runtimes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from terrawatch.domain.hazards import MODELS


def instance_device(args: dict) -> str:
    """The torch device of a Triton model instance: ``cuda:<model_instance_device_id>`` for a GPU
    instance, ``cpu`` otherwise. A GPU instance where torch sees no CUDA device is a configuration error
    (raised, so Triton reports the model as failed to load, not silently slow)."""
    if str(args.get("model_instance_kind", "CPU")).upper() != "GPU":
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("KIND_GPU instance but torch sees no CUDA device (set TERRAWATCH_TRITON_INSTANCE_KIND=cpu)")
    return f"cuda:{int(args.get('model_instance_device_id', 0))}"


class BatchedModel:
    inputs: tuple[str, ...] = ()
    output: str = ""
    device: str = "cpu"
    params: dict[str, str] = {}

    def runtime_net(self, net, examples, input_names=("x",), dynamic_spatial: bool = True):
        """``net`` as configured: on ``self.device`` for ``runtime: torch`` (the default), else an ONNX
        Runtime module with the same call signature (:func:`terrawatch.ml.nets.onnx_runtime.ort_module`)."""
        runtime = self.params.get("runtime", "torch").strip().lower()
        if runtime == "torch":
            return net.to(self.device)
        if runtime != "onnxruntime":
            raise ValueError(f"runtime must be torch or onnxruntime, got {runtime!r}")
        from terrawatch.ml.nets.onnx_runtime import ort_module

        gpu = self.device.startswith("cuda")
        if gpu and self.params.get("ort_providers", "auto").strip().lower() in ("", "auto"):
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                import sys

                print(f"terrawatch: {type(self).__name__}: GPU instance but this onnxruntime has no CUDA provider "
                      "(install onnxruntime-gpu); serving the torch net on the GPU instead", file=sys.stderr)
                return net.to(self.device)
        return ort_module(net, examples, input_names, providers=self.params.get("ort_providers", "auto"), gpu=gpu,
                          device_id=int(self.device.split(":")[1]) if gpu else 0,
                          threads=int(self.params.get("ort_threads", self.params.get("torch_threads", "0"))),
                          graph_opt=self.params.get("ort_graph_opt", "all"), dynamic_spatial=dynamic_spatial)

    def load(self, version_dir: Path, params: dict[str, str]) -> None:
        raise NotImplementedError

    def predict(self, *arrays: np.ndarray) -> np.ndarray:
        """Batched float32 inputs (N, ...) -> (N, 1, ...) float32."""
        raise NotImplementedError

    # Triton entry points ----------------------------------------------------
    def initialize(self, args: dict) -> None:
        cfg = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in cfg.get("parameters", {}).items()}
        import torch

        torch.set_num_threads(int(params.get("torch_threads", "2")))
        self.params = params
        self.device = instance_device(args)
        self.load(Path(args["model_repository"]) / args["model_version"], params)

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        def err(exc: Exception):
            return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))

        def ok(arr: np.ndarray):
            return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, arr.astype(np.float32))])

        batches = []
        for r in requests:
            try:
                batches.append([pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs])
            except Exception as exc:  # noqa: BLE001
                batches.append(exc)
        good = [b for b in batches if not isinstance(b, Exception)]
        if good and len({tuple(a.shape[1:] for a in b) for b in good}) == 1:
            try:
                out = self.predict(*(np.concatenate([b[i] for b in good]) for i in range(len(self.inputs))))
                split = np.split(out, np.cumsum([len(b[0]) for b in good])[:-1])
                it = iter(split)
                return [err(b) if isinstance(b, Exception) else ok(next(it)) for b in batches]
            except Exception:  # noqa: BLE001 - fall back to per-request so one bad request fails alone
                pass
        responses = []
        for b in batches:
            if isinstance(b, Exception):
                responses.append(err(b))
                continue
            try:
                responses.append(ok(self.predict(*b)))
            except Exception as exc:  # noqa: BLE001
                responses.append(err(exc))
        return responses


class MiningModel(BatchedModel):
    """PATCHES (N, 12, 48, 48) scaled S2 -> MINE_PROB (N, 1)."""

    inputs, output = MODELS["mining_s2"].input_names, MODELS["mining_s2"].output_name

    def load(self, version_dir: Path, params: dict[str, str]) -> None:
        from terrawatch.ml.nets.mining import load_mining_cnn

        import torch

        self.model = self.runtime_net(load_mining_cnn(version_dir / "model.pt"), [torch.zeros(1, 12, 48, 48)],
                                      dynamic_spatial=False)

    def predict(self, patches: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)).to(self.device)
            return self.model(x).cpu().numpy()


class DeforestationModel(BatchedModel):
    """PRE_TOA, POST_TOA (N, 13, H, W) L1C x 10000 on one grid -> LOSS_PROB (N, 1, H, W)."""

    inputs, output = MODELS["deforestation_s2"].input_names, MODELS["deforestation_s2"].output_name

    def load(self, version_dir: Path, params: dict[str, str]) -> None:
        from terrawatch.ml.deforestation import load_model

        import torch

        ex = torch.full((1, 13, 32, 32), 1000.0)
        self.model = self.runtime_net(load_model(version_dir / "model.pt"), [ex, ex], ("pre", "post"))

    def predict(self, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
        import torch

        if pre.shape != post.shape:
            raise ValueError(f"PRE_TOA {pre.shape} and POST_TOA {post.shape} differ")
        with torch.inference_mode():
            return self.model(torch.from_numpy(pre).to(self.device), torch.from_numpy(post).to(self.device)).cpu().numpy()


class FloodS2Model(BatchedModel):
    """S2_TOA (N, 13, H, W) L1C x 10000 -> WATER_PROB (N, 1, H, W); each image its own thresholds."""

    inputs, output = MODELS["flood_s2"].input_names, MODELS["flood_s2"].output_name

    def load(self, version_dir: Path, params: dict[str, str]) -> None:
        self.kwargs = dict(
            mask_clouds=params.get("mask_clouds", "false").lower() == "true",  # = models/flood_s2/config.pbtxt
            gsd_m=float(params.get("gsd_m", "10")),
            product_level=params.get("product_level", "l1c"),
            dn_offset=float(params.get("dn_offset", "0")),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        from terrawatch.ml.water_s2 import predict_water_s2

        return np.stack([predict_water_s2(img, **self.kwargs)[None] for img in x])


class FloodS1Model(BatchedModel):
    """S1_DB (N, 2, H, W) VV, VH in dB -> WATER_PROB (N, 1, H, W); NaN where both bands are NaN."""

    inputs, output = MODELS["flood_s1"].input_names, MODELS["flood_s1"].output_name

    def load(self, version_dir: Path, params: dict[str, str]) -> None:
        from terrawatch.ml import flood_s1

        self.flood_s1 = flood_s1
        import torch

        net = flood_s1.load_net(version_dir / "model.pt")
        self.net = self.runtime_net(net, [torch.zeros(1, 2, 256, 256)]) if isinstance(net, flood_s1.UNet) \
            else net.to(self.device)  # a FeatureNet (CV candidate) computes its features in torch: not exported

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.flood_s1.predict_batch(self.net, x.astype(np.float32, copy=False))[:, None]
