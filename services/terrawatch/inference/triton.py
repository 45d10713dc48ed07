"""Triton Inference Server client (gRPC) for the hazard models in ``models/``."""

from __future__ import annotations

import time

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from terrawatch.domain.errors import TransientError
from terrawatch.domain.hazards import MODELS as HAZARD_MODEL_SPECS
from terrawatch.domain.hazards import ModelSpec
from terrawatch.observability.metrics import TRITON_REQUEST_SECONDS

# Tensor names and shapes come from the hazard registry (terrawatch.domain.hazards.MODELS).
MODELS = HAZARD_MODEL_SPECS
__all__ = ["MODELS", "ModelSpec", "TritonModel"]


class TritonModel:
    def __init__(self, url: str, spec: ModelSpec, timeout_s: float = 120.0, observe: bool = True) -> None:
        """``observe=False`` (Ray actors, whose metrics no one scrapes): request durations are kept in
        ``request_seconds`` for the caller to hand to the process that exports them."""
        self.observe = observe
        self.request_seconds: list[float] = []
        self.spec = spec
        self.timeout_s = timeout_s
        self.url = url
        self.client = grpcclient.InferenceServerClient(url=url)

    def _reconnect(self) -> None:
        """A fresh gRPC channel: after Triton was unreachable, the old channel waits out its reconnect
        backoff (up to minutes) and fails every call meanwhile, although Triton may be back."""
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - the old channel is discarded either way
            pass
        self.client = grpcclient.InferenceServerClient(url=self.url)

    def infer(self, *arrays: np.ndarray) -> np.ndarray:
        """Batched inputs in the spec's order -> the output with its channel axis dropped: (N, ...)."""
        inputs = []
        for name, arr in zip(self.spec.input_names, arrays, strict=True):
            inp = grpcclient.InferInput(name, list(arr.shape), "FP32")
            inp.set_data_from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
            inputs.append(inp)
        out = grpcclient.InferRequestedOutput(self.spec.output_name)
        start = time.perf_counter()
        try:
            res = self.client.infer(self.spec.name, inputs, outputs=[out], client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            if "UNAVAILABLE" in str(exc.status()):
                self._reconnect()
            raise TransientError(f"triton inference on {self.spec.name} failed: {exc.message()}") from exc
        finally:
            if self.observe:
                TRITON_REQUEST_SECONDS.labels(self.spec.name).observe(time.perf_counter() - start)
            else:
                self.request_seconds.append(time.perf_counter() - start)
        return res.as_numpy(self.spec.output_name)[:, 0]

    def model_version(self) -> str:
        """The highest version of this model Triton has READY."""
        try:
            idx = self.client.get_model_repository_index(as_json=True).get("models", [])
        except InferenceServerException as exc:
            raise TransientError(f"triton unreachable: {exc.message()}") from exc
        versions = [m.get("version", "") for m in idx if m.get("name") == self.spec.name and m.get("state") == "READY"]
        if not versions:
            raise TransientError(f"triton model {self.spec.name} is not ready")
        return max(versions, key=lambda v: int(v) if v.isdigit() else -1)
