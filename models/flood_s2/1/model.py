"""Triton Python backend for flood_s2: S2_TOA (N,13,H,W) reflectance x 10000 -> WATER_PROB (N,1,H,W).

Each image of a batch is processed on its own (its own Otsu thresholds and cloud mask) by
terrawatch.ml.water_s2.predict_water_s2; settings come from config.pbtxt parameters.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# The embedded interpreter ignores PYTHONPATH: the stack passes TERRAWATCH_PYTHONPATH instead;
# a plain source checkout falls back to <repo>/services.
sys.path[:0] = [p for p in os.environ.get("TERRAWATCH_PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
_SERVICES = str(Path(__file__).resolve().parents[3] / "services")
if _SERVICES not in sys.path:
    sys.path.append(_SERVICES)

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from terrawatch.ml.water_s2 import predict_water_s2  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})

        def get(key: str, default: str) -> str:
            return params.get(key, {}).get("string_value", default)

        self.kwargs = dict(
            mask_clouds=get("mask_clouds", "true").lower() == "true",
            gsd_m=float(get("gsd_m", "10")),
            product_level=get("product_level", "l1c"),
            dn_offset=float(get("dn_offset", "0")),
        )

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                x = pb_utils.get_input_tensor_by_name(request, "S2_TOA").as_numpy()
                out = np.stack([predict_water_s2(img, **self.kwargs)[None] for img in x]).astype(np.float32)
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("WATER_PROB", out)]))
            except ValueError as exc:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses
