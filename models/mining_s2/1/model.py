"""Triton Python backend for ``mining_s2``: PATCHES (N, 12, 48, 48) -> MINE_PROB (N, 1).

Weights: ``model.pt`` beside this file, a torch state_dict converted from Earth Genome's
``48px_v3.2_2024-01-07.h5`` (MIT) by ``python -m terrawatch.ml.mining convert``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
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

        from terrawatch.ml.nets.mining import load_mining_cnn

        params = json.loads(args["model_config"]).get("parameters", {})
        torch.set_num_threads(int(params.get("torch_threads", {}).get("string_value", "2")))
        self.torch = torch
        self.model = load_mining_cnn(HERE / "model.pt")

    def execute(self, requests):
        try:
            arrays = [pb_utils.get_input_tensor_by_name(r, "PATCHES").as_numpy() for r in requests]
            x = np.ascontiguousarray(np.concatenate(arrays), dtype=np.float32)
            with self.torch.inference_mode():  # all requests of the dynamic batch in one forward pass
                prob = self.model(self.torch.from_numpy(x)).numpy().astype(np.float32)
        except Exception as exc:  # noqa: BLE001  report any failure to every request of the batch
            return [pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))
                    for _ in requests]
        out, start = [], 0
        for a in arrays:
            t = pb_utils.Tensor("MINE_PROB", prob[start : start + len(a)])
            out.append(pb_utils.InferenceResponse(output_tensors=[t]))
            start += len(a)
        return out
