"""Triton Inference Server client (gRPC) for the hazard models in ``models/``."""

from __future__ import annotations

import time

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2
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
        self._open_infer_channel()

    def _open_infer_channel(self) -> None:
        """The channel ``infer`` sends pre-serialized requests on (``infer_request_bytes``), with the
        message-size limits tritonclient's own channel has."""
        self._channel = grpc.insecure_channel(self.url, options=[
            ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE)])
        self._model_infer = self._channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer", request_serializer=None,
            response_deserializer=service_pb2.ModelInferResponse.FromString)

    def _reconnect(self) -> None:
        """Fresh gRPC channels: after Triton was unreachable, the old channel waits out its reconnect
        backoff (up to minutes) and fails every call meanwhile, although Triton may be back."""
        for close in (self.client.close, self._channel.close):
            try:
                close()
            except Exception:  # noqa: BLE001 - the old channel is discarded either way
                pass
        self.client = grpcclient.InferenceServerClient(url=self.url)
        self._open_infer_channel()

    def infer(self, *arrays: np.ndarray) -> np.ndarray:
        """Batched inputs in the spec's order -> the output with its channel axis dropped: (N, ...)."""
        body = infer_request_bytes(self.spec, [np.ascontiguousarray(a, dtype=np.float32) for a in arrays])
        start = time.perf_counter()
        try:
            res = self._model_infer(body, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            status = str(exc.code())
            if "UNAVAILABLE" in status:
                self._reconnect()
            raise inference_error(self.spec.name, status, exc.details() or "") from exc
        finally:
            del body
            if self.observe:
                TRITON_REQUEST_SECONDS.labels(self.spec.name).observe(time.perf_counter() - start)
            else:
                self.request_seconds.append(time.perf_counter() - start)
        return grpcclient.InferResult(res).as_numpy(self.spec.output_name)[:, 0]

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


_RAW_INPUT_TAG = b"\x3a"  # ModelInferRequest field 7 (raw_input_contents), wire type 2 (length-delimited)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def infer_request_bytes(spec: ModelSpec, arrays: list[np.ndarray]) -> bytes:
    """A serialized ``ModelInferRequest`` for ``spec``'s inputs (C-contiguous float32 ``arrays``, in the spec's
    order) asking for its output: the same message tritonclient builds, with one copy of the tensors instead
    of four (``tobytes``, the protobuf field, its encoding buffer, the serialized bytes; gRPC copies once
    more to send). The tensor-less message is serialized by protobuf and each tensor appended as a
    ``raw_input_contents`` field (repeated fields concatenate in the wire format). With the preallocated
    read of ``tiling/ray_tiler.py``: a TileWorker's peak RSS 308 -> 270 MB with 4 S2 tiles (4 x 13 x 256 x
    256 float32, 13 MiB) per request (bench/bench_scale.py, docs/imagery.md)."""
    req = service_pb2.ModelInferRequest(model_name=spec.name)
    for name, arr in zip(spec.input_names, arrays, strict=True):
        if arr.dtype != np.float32 or not arr.flags.c_contiguous:
            raise ValueError(f"{spec.name} input {name}: C-contiguous float32 expected, got {arr.dtype}")
        req.inputs.add(name=name, datatype="FP32", shape=arr.shape)
    req.outputs.add(name=spec.output_name)
    parts: list = [req.SerializeToString()]
    for arr in arrays:
        parts += [_RAW_INPUT_TAG, _varint(arr.nbytes), memoryview(arr).cast("B")]
    return b"".join(parts)


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
