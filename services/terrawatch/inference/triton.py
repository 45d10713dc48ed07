"""Triton Inference Server client (gRPC) for the segmentation models in ``models/``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from terrawatch.domain.errors import TransientError
from terrawatch.observability.metrics import TRITON_REQUEST_SECONDS


@dataclass(frozen=True)
class ModelSpec:
    """A Triton model's tensor names. Input (N, C, H, W) float32; output (N, 1, H, W) float32 0..1."""

    name: str
    input: str
    output: str
    channels: int


MODELS = {
    "flood_s1": ModelSpec("flood_s1", "S1_DB", "WATER_PROB", 2),
    "flood_s2": ModelSpec("flood_s2", "S2_TOA", "WATER_PROB", 13),
}


class TritonSegmenter:
    def __init__(self, url: str, spec: ModelSpec, timeout_s: float = 60.0) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.client = grpcclient.InferenceServerClient(url=url)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 -> (N, H, W) float32 probabilities."""
        inp = grpcclient.InferInput(self.spec.input, list(batch.shape), "FP32")
        inp.set_data_from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        out = grpcclient.InferRequestedOutput(self.spec.output)
        start = time.perf_counter()
        try:
            res = self.client.infer(self.spec.name, [inp], outputs=[out], client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise TransientError(f"triton inference on {self.spec.name} failed: {exc.message()}") from exc
        finally:
            TRITON_REQUEST_SECONDS.labels(self.spec.name).observe(time.perf_counter() - start)
        return res.as_numpy(self.spec.output)[:, 0]

    def model_version(self) -> str:
        """The version Triton serves now (highest ready version)."""
        try:
            idx = self.client.get_model_repository_index(as_json=True).get("models", [])
        except InferenceServerException as exc:
            raise TransientError(f"triton unreachable: {exc.message()}") from exc
        versions = [m.get("version", "") for m in idx if m.get("name") == self.spec.name and m.get("state") == "READY"]
        if not versions:
            raise TransientError(f"triton model {self.spec.name} is not ready")
        return max(versions, key=lambda v: int(v) if v.isdigit() else -1)
