"""``infer_request_bytes`` (inference/triton.py): the hand-assembled ModelInferRequest is the message
tritonclient builds, for one- and two-input models, and refuses arrays it would send wrongly."""

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import _utils, service_pb2

from terrawatch.inference.triton import MODELS, _varint, infer_request_bytes


def _tritonclient_request(spec, arrays) -> service_pb2.ModelInferRequest:
    inputs = []
    for name, arr in zip(spec.input_names, arrays, strict=True):
        inp = grpcclient.InferInput(name, list(arr.shape), "FP32")
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    return _utils._get_inference_request(spec.name, inputs, "", "", [grpcclient.InferRequestedOutput(
        spec.output_name)], 0, False, False, 0, None, None)


@pytest.mark.parametrize("model", ["flood_s2", "deforestation_s2"])
def test_same_message_as_tritonclient(model):
    spec = MODELS[model]
    rng = np.random.default_rng(0)
    arrays = [rng.random((3, 13, 20, 17), dtype=np.float32) for _ in spec.input_names]
    ours = service_pb2.ModelInferRequest.FromString(infer_request_bytes(spec, arrays))
    assert ours == _tritonclient_request(spec, arrays)
    for raw, arr in zip(ours.raw_input_contents, arrays, strict=True):
        assert np.array_equal(np.frombuffer(raw, np.float32).reshape(arr.shape), arr)


def test_varint_lengths_past_one_byte():
    assert _varint(0) == b"\x00" and _varint(127) == b"\x7f" and _varint(300) == b"\xac\x02"
    big = 13 * 256 * 256 * 4 * 4  # a batch of 4 S2 tiles, bytes
    assert service_pb2.ModelInferRequest.FromString(b"\x3a" + _varint(big) + bytes(big)).raw_input_contents[0] == \
        bytes(big)


def test_refuses_non_float32_or_non_contiguous():
    spec = MODELS["flood_s2"]
    with pytest.raises(ValueError, match="float32"):
        infer_request_bytes(spec, [np.zeros((1, 13, 4, 4), np.float64)])
    with pytest.raises(ValueError, match="C-contiguous"):
        infer_request_bytes(spec, [np.zeros((1, 13, 4, 8), np.float32)[..., ::2]])
