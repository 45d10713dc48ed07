"""Triton Python backend for deforestation_s2: PRE_TOA, POST_TOA (N,13,H,W) -> LOSS_PROB (N,1,H,W).

Weights: ``model.pt`` beside this file, trained by ``python -m terrawatch.ml.train.deforestation train``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import triton_python_backend_utils as pb_utils

HERE = Path(__file__).resolve().parent


def _import_terrawatch() -> None:
    try:
        import terrawatch  # noqa: F401
    except ImportError:  # served straight from a source checkout: <repo>/models/<name>/<v>/model.py
        sys.path.insert(0, str(HERE.parents[2] / "services"))


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        _import_terrawatch()
        import torch

        from terrawatch.ml.deforestation import load_model

        params = json.loads(args["model_config"]).get("parameters", {})
        torch.set_num_threads(int(params.get("torch_threads", {}).get("string_value", "2")))
        self.torch = torch
        self.model = load_model(HERE / "model.pt")

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                pre = pb_utils.get_input_tensor_by_name(request, "PRE_TOA").as_numpy()
                post = pb_utils.get_input_tensor_by_name(request, "POST_TOA").as_numpy()
                if pre.shape != post.shape:
                    raise ValueError(f"PRE_TOA {pre.shape} and POST_TOA {post.shape} differ")
                with self.torch.inference_mode():
                    prob = self.model(self.torch.from_numpy(pre), self.torch.from_numpy(post)).numpy()
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("LOSS_PROB", prob)]))
            except Exception as exc:  # noqa: BLE001  one bad request must not fail the batch
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses
