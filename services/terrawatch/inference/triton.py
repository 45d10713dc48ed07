"""Triton Inference Server client (gRPC) for the hazard models in ``models/``."""

from __future__ import annotations

import time

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from terrawatch.domain.errors import DependencyUnavailable, TransientError, UnprocessableInput
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
            status = str(exc.status())
            if "UNAVAILABLE" in status:
                self._reconnect()
            raise inference_error(self.spec.name, status, exc.message()) from exc
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
            raise DependencyUnavailable("triton", f"triton unreachable: {exc.message()}") from exc
        versions = [m.get("version", "") for m in idx if m.get("name") == self.spec.name and m.get("state") == "READY"]
        if not versions:
            raise DependencyUnavailable("triton", f"triton model {self.spec.name} is not ready")
        return max(versions, key=lambda v: int(v) if v.isdigit() else -1)


class ModelVersions:
    """``versions(name)``: the READY version Triton serves for model ``name`` (a key of ``MODELS``), asked
    at most every ``ttl_s`` s per model (the ``ModelVersionLookup`` port of the scene pipeline)."""

    def __init__(self, url: str, ttl_s: float = 30.0) -> None:
        self.url, self.ttl_s = url, ttl_s
        self._cache: dict[str, tuple[float, str]] = {}

    def __call__(self, name: str) -> str:
        cached = self._cache.get(name)
        if cached and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        v = TritonModel(self.url, MODELS[name]).model_version()
        self._cache[name] = (time.monotonic(), v)
        return v


# gRPC statuses that mean "Triton is down, restarting or still loading the model": not the scene's fault.
_OUTAGE_STATUSES = ("UNAVAILABLE", "NOT_FOUND", "CANCELLED")


def inference_error(model: str, status: str, message: str) -> TransientError:
    """Classify a failed inference request by its gRPC status (``StatusCode.X``): Triton unavailable or the
    model not loaded -> DependencyUnavailable; the request's tensors rejected (INVALID_ARGUMENT) ->
    UnprocessableInput (the scene's content); anything else -> TransientError (retried a few times)."""
    text = f"triton inference on {model} failed ({status.removeprefix('StatusCode.')}): {message}"
    if any(s in status for s in _OUTAGE_STATUSES):
        return DependencyUnavailable("triton", text)
    if "INVALID_ARGUMENT" in status:
        return UnprocessableInput(text)
    return TransientError(text)


def server_ready(url: str, timeout_s: float = 3.0) -> str:
    """Readiness of the Triton server itself (models not checked): a detail string; raises otherwise."""
    client = grpcclient.InferenceServerClient(url)
    try:
        if not client.is_server_ready(client_timeout=timeout_s):
            raise RuntimeError("server not ready")
        return f"ready at {url}"
    finally:
        client.close()


def model_index(url: str, timeout_s: float = 5.0) -> list[dict]:
    """Every model version in Triton's repository index with its state (READY, UNAVAILABLE, ...);
    raises :class:`~terrawatch.domain.errors.Unavailable` when Triton does not answer."""
    from terrawatch.domain.errors import Unavailable

    client = grpcclient.InferenceServerClient(url)
    try:
        index = client.get_model_repository_index(as_json=True, client_timeout=timeout_s)
    except InferenceServerException as exc:
        raise Unavailable(f"Triton at {url}: {exc.message()}") from exc
    finally:
        client.close()
    return [{"name": m.get("name"), "version": m.get("version"), "state": m.get("state"),
             "reason": m.get("reason") or None} for m in index.get("models", [])]


def triton_ready(url: str, models: list[str] | None = None, timeout_s: float = 3.0) -> str:
    """Readiness probe: the server is live and ready and every model of ``models`` (default all of
    ``MODELS``) has a READY version. Returns a detail string; raises DependencyUnavailable."""
    client = grpcclient.InferenceServerClient(url=url)
    try:
        try:
            if not client.is_server_ready(client_timeout=timeout_s):
                raise DependencyUnavailable("triton", f"triton at {url} is not ready")
            idx = client.get_model_repository_index(as_json=True, client_timeout=timeout_s).get("models", [])
        except InferenceServerException as exc:
            raise DependencyUnavailable("triton", f"triton at {url} unreachable: {exc.message()}") from exc
        ready = {m.get("name") for m in idx if m.get("state") == "READY"}
        missing = sorted(set(models or MODELS) - ready)
        if missing:
            raise DependencyUnavailable("triton", f"triton model(s) not ready: {', '.join(missing)}")
        return f"ready at {url}"
    finally:
        client.close()
