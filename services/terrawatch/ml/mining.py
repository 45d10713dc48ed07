"""Illegal-mining detection: sliding-window mine probability maps from Sentinel-2 L1C.

Model: torch port (``terrawatch.ml.nets.mining``) of Earth Genome's 48 px gold-mining patch
classifier (earthrise-media/mining-detector, MIT). Served by Triton as ``models/mining_s2``.

Scene input everywhere here: ``s2`` float/int array (13, H, W), Sentinel-2 L1C TOA reflectance x 10000
in the band order ``S2_L1C_BANDS`` (B1..B12 incl. B10, as Sen1Floods11 ``*_S2Hand.tif``).

CLI::

    python -m terrawatch.ml.mining convert --h5 ../shared/data/mining-detector/48px_v3.2_2024-01-07.h5 \
        --out models/mining_s2/1/model.pt
    python -m terrawatch.ml.mining map --s2 ../shared/data/sen1floods11/Spain_7370579_S2Hand.tif \
        --stride 16 [--out prob.tif]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from terrawatch.ml.nets.mining import PATCH, MiningCNN, load_mining_cnn, state_dict_from_keras_h5

S2_L1C_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
# Band order the Keras model was trained with (mining-detector gee/gee.py `bandIds`): B10 dropped
# and B8A *before* B8.
MINING_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B8", "B9", "B11", "B12")
MINING_BAND_INDEX = tuple(S2_L1C_BANDS.index(b) for b in MINING_BANDS)
DN_SCALE = 10000.0
DEFAULT_THRESHOLD = 0.8  # threshold of the upstream validation report (precision 0.99 / recall 0.97)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_WEIGHTS = REPO_ROOT / "models" / "mining_s2" / "1" / "model.pt"
DEFAULT_H5 = REPO_ROOT.parent / "shared" / "data" / "mining-detector" / "48px_v3.2_2024-01-07.h5"


def to_model_input(s2: np.ndarray, dn_offset: float = 0.0) -> np.ndarray:
    """(13, H, W) L1C x 10000 -> (12, H, W) float32 in [0, 1], model band order; NaN -> 0.

    ``dn_offset``: radiometric offset to remove first (1000 for products of processing baseline
    04.00+, i.e. acquired from 2022-01-25, unless already harmonised; the model was trained on
    Earth Engine's offset-free ``COPERNICUS/S2_HARMONIZED``).
    """
    s2 = np.asarray(s2)
    if s2.ndim != 3 or s2.shape[0] != len(S2_L1C_BANDS):
        raise ValueError(f"expected (13, H, W) Sentinel-2 L1C bands, got {s2.shape}")
    x = (s2[list(MINING_BAND_INDEX)].astype(np.float32) - np.float32(dn_offset)) / DN_SCALE
    return np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0)


def load_model(weights: str | Path | None = None) -> MiningCNN:
    """The ported CNN in eval mode; default weights ``models/mining_s2/1/model.pt``."""
    return load_mining_cnn(weights or DEFAULT_WEIGHTS)


def predict_patches(model: MiningCNN, patches: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, 12, 48, 48) scaled patches -> (N,) float32 mine probabilities."""
    out = np.empty(len(patches), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(patches), batch):
            x = torch.from_numpy(np.ascontiguousarray(patches[i : i + batch], dtype=np.float32))
            out[i : i + batch] = model(x)[:, 0].numpy()
    return out


def mining_probability_map(
    s2: np.ndarray,
    stride: int = 16,
    batch: int = 64,
    model: MiningCNN | None = None,
    threads: int = 2,
    dn_offset: float = 0.0,
    predict=None,
) -> np.ndarray:
    """Slide the 48 px classifier over a scene: (13, H, W) L1C x 10000 -> (H, W) float32 probability.

    Windows are placed every ``stride`` px; each window's probability is written to its central
    ``stride x stride`` cell, so every pixel gets the score of the window centred on it (within
    stride/2 px). The scene is reflect-padded by (48 - stride) / 2 px so border pixels are centred
    too. Cost: ceil(H/stride) * ceil(W/stride) windows. ``1 <= stride <= 48``; ``dn_offset`` as in
    ``to_model_input``. ``predict`` maps (n, 12, 48, 48) patches to (n,) probabilities (default: the
    in-process torch port; the pipeline passes its Triton client).
    """
    if not 1 <= stride <= PATCH:
        raise ValueError(f"stride must be in [1, {PATCH}], got {stride}")
    if predict is None:
        if threads:
            torch.set_num_threads(min(threads, torch.get_num_threads()) or 1)
        model = model or load_model()

        def predict(patches: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(patches))[:, 0].numpy()
    x = to_model_input(s2, dn_offset)
    _, h, w = x.shape
    ny, nx = -(-h // stride), -(-w // stride)
    before = (PATCH - stride) // 2
    after_y = ny * stride + PATCH - stride - before - h
    after_x = nx * stride + PATCH - stride - before - w
    mode = "reflect" if min(h, w) > max(before, after_y, after_x) else "edge"
    xp = np.pad(x, ((0, 0), (before, after_y), (before, after_x)), mode=mode)
    # (12, ny, nx, 48, 48) view of all windows, no copy until batched
    win = np.lib.stride_tricks.sliding_window_view(xp, (PATCH, PATCH), axis=(1, 2))[:, ::stride, ::stride]
    win = win[:, :ny, :nx]
    cells = np.empty(ny * nx, dtype=np.float32)
    for i in range(0, ny * nx, batch):
        idx = np.arange(i, min(i + batch, ny * nx))
        chunk = win[:, idx // nx, idx % nx]  # (12, n, 48, 48) copy of just this batch
        cells[idx] = predict(np.ascontiguousarray(chunk.transpose(1, 0, 2, 3)))
    grid = cells.reshape(ny, nx)
    prob = np.repeat(np.repeat(grid, stride, axis=0), stride, axis=1)[:h, :w]
    return np.ascontiguousarray(prob, dtype=np.float32)


def convert(h5: str | Path, out: str | Path) -> dict:
    """Convert the Keras h5 to a torch state_dict file; returns a small summary."""
    sd = state_dict_from_keras_h5(h5)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, out)
    return {
        "h5": str(h5),
        "out": str(out),
        "parameters": int(sum(v.numel() for v in sd.values())),
        "bytes": out.stat().st_size,
    }


def _read_s2(path: str | Path) -> tuple[np.ndarray, dict]:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(), ds.profile


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m terrawatch.ml.mining", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="Keras h5 -> torch state_dict (.pt)")
    c.add_argument("--h5", default=str(DEFAULT_H5))
    c.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    m = sub.add_parser("map", help="mine probability map of a 13-band L1C GeoTIFF")
    m.add_argument("--s2", required=True)
    m.add_argument("--stride", type=int, default=16)
    m.add_argument("--batch", type=int, default=64)
    m.add_argument("--weights", default=None)
    m.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    m.add_argument("--dn-offset", type=float, default=0.0, help="1000 for un-harmonised baseline >= 04.00")
    m.add_argument("--out", default=None, help="optional float32 GeoTIFF of the probability map")
    a = p.parse_args(argv)
    if a.cmd == "convert":
        print(json.dumps(convert(a.h5, a.out)))
        return 0
    s2, profile = _read_s2(a.s2)
    prob = mining_probability_map(s2, stride=a.stride, batch=a.batch, model=load_model(a.weights),
                                  dn_offset=a.dn_offset)
    if a.out:
        import rasterio

        profile.update(count=1, dtype="float32", nodata=None, compress="deflate")
        with rasterio.open(a.out, "w", **profile) as dst:
            dst.write(prob, 1)
    print(json.dumps({
        "s2": a.s2, "stride": a.stride, "threshold": a.threshold,
        "flagged_fraction": float((prob >= a.threshold).mean()),
        "max_prob": float(prob.max()), "mean_prob": float(prob.mean()),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
