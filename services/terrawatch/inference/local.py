"""In-process model runners (tests, evaluation, the ensemble): same weights as Triton serves.

``predict_water_s1(s1_db)``: (2, H, W) float32 Sentinel-1 sigma0 in dB, band order VV, VH,
NaN = no data -> (H, W) float32 water probability 0..1 (NaN where both bands are no data).
Any H, W. Weights: the highest version of ``models/flood_s1/<v>/model.pt`` found by
:func:`terrawatch.ml.registry.latest_version_dir` (override the repository with
``TERRAWATCH_MODEL_REPOSITORY``), loaded once per process.

Runtime (issue 29): ``TERRAWATCH_FLOOD_S1_RUNTIME`` = ``torch`` (default, the reference),
``onnxruntime`` (the served runtime: the same net exported to ONNX) or ``onnxruntime-int8`` (static
int8 QDQ quantisation, calibrated on 16 tiles of the ETCI 2021 *train* split, the model's training
data; evaluated and rejected, models/flood_s1/README.md), so that ``terrawatch eval`` scores exactly what
each runtime computes:

    TERRAWATCH_FLOOD_S1_RUNTIME=onnxruntime-int8 terrawatch eval --dataset sen1floods11 --root DIR
"""

from __future__ import annotations

import functools
import os

import numpy as np

from terrawatch.ml import flood_s1
from terrawatch.ml.registry import latest_version_dir

RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8")


def _calibration(n: int = 16, batch: int = 4) -> list[np.ndarray]:
    """Normalised (batch, 2, 256, 256) tiles for int8 calibration: ETCI 2021 train split when the shared
    data is there, else synthetic S1 (river + lake) windows."""
    from terrawatch.ml.transforms import normalize_s1_db

    tiles = []
    try:
        from pathlib import Path

        from terrawatch.ml.datasets import ETCI2021
        from terrawatch.settings import REPO_ROOT

        shared = Path(os.environ.get("TERRAWATCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
        ds = ETCI2021(shared / "etci2021", split="train")
        step = max(1, len(ds) // n)
        tiles = [np.asarray(ds[i]["s1"], np.float32)[:, :256, :256] for i in range(0, len(ds), step)][:n]
    except Exception:  # noqa: BLE001 - no shared data: synthetic windows
        tiles = []
    if len(tiles) < batch:
        rng = np.random.default_rng(0)
        tiles = [rng.normal([[[-10.0]], [[-17.0]]], 3.0, (2, 256, 256)).astype(np.float32) for _ in range(n)]
    return [normalize_s1_db(np.stack(tiles[i:i + batch])) for i in range(0, len(tiles) - batch + 1, batch)]


@functools.lru_cache(maxsize=1)
def _flood_s1_net():
    net = flood_s1.load_net(latest_version_dir(flood_s1.NAME) / "model.pt")
    runtime = os.environ.get("TERRAWATCH_FLOOD_S1_RUNTIME", "torch").strip().lower() or "torch"
    if runtime not in RUNTIMES:
        raise ValueError(f"TERRAWATCH_FLOOD_S1_RUNTIME must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "torch" or not isinstance(net, flood_s1.UNet):
        return net
    import torch

    from terrawatch.ml.nets.onnx_runtime import ort_module

    int8 = runtime == "onnxruntime-int8"
    return ort_module(net, [torch.zeros(1, 2, 256, 256)], threads=int(os.environ.get("TERRAWATCH_ORT_THREADS", "0")),
                      quantize="int8" if int8 else "", calibration=_calibration() if int8 else None)


def predict_water_s1(s1_db: np.ndarray) -> np.ndarray:
    """(2,H,W) dB (VV, VH; NaN no data) -> (H,W) float32 water probability (see module)."""
    s1 = np.asarray(s1_db, dtype=np.float32)
    if s1.ndim != 3 or s1.shape[0] != 2:
        raise ValueError(f"expected (2, H, W) VV, VH dB, got {s1.shape}")
    return flood_s1.predict_batch(_flood_s1_net(), s1[None])[0]
