"""Triton Python backend for ``flood_s1``: S1_DB (N, 2, H, W) dB -> WATER_PROB (N, 1, H, W).

Weights: ``model.pt`` beside this file (torch state_dict of terrawatch.ml.nets.unet.UNet,
trained by ``python -m terrawatch.ml.train.flood_s1``). Normalisation, padding to a multiple of
16, windowing of large inputs and NaN handling are in :func:`terrawatch.ml.flood_s1.predict_batch`,
the same code the in-process API uses.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The Python backend's embedded interpreter ignores PYTHONPATH: the stack launcher passes the venv
# site-packages and services/ as TERRAWATCH_PYTHONPATH; a source checkout also works without it.
sys.path[:0] = [p for p in os.environ.get("TERRAWATCH_PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


def _import_terrawatch() -> None:
    try:
        import terrawatch  # noqa: F401
    except ImportError:  # served straight from a source checkout: <repo>/models/<name>/<v>/model.py
        sys.path.insert(0, str(HERE.parents[2] / "services"))


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        _import_terrawatch()
        import torch

        from terrawatch.ml import flood_s1

        params = json.loads(args["model_config"]).get("parameters", {})
        torch.set_num_threads(int(params.get("torch_threads", {}).get("string_value", "2")))
        self.flood_s1 = flood_s1
        self.net = flood_s1.load_net(HERE / "model.pt")

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, "S1_DB").as_numpy() for r in requests]
        results: list = [None] * len(arrays)
        groups: dict[tuple, list[int]] = {}
        for i, a in enumerate(arrays):
            groups.setdefault(a.shape[1:], []).append(i)
        for idx in groups.values():  # one forward pass per input shape
            try:
                x = np.concatenate([arrays[i] for i in idx]).astype(np.float32, copy=False)
                prob = self.flood_s1.predict_batch(self.net, x)[:, None]
                start = 0
                for i in idx:
                    n = len(arrays[i])
                    t = pb_utils.Tensor("WATER_PROB", np.ascontiguousarray(prob[start : start + n]))
                    results[i] = pb_utils.InferenceResponse(output_tensors=[t])
                    start += n
            except Exception as exc:  # report per request instead of failing the whole batch
                for i in idx:
                    results[i] = pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))
        return results
