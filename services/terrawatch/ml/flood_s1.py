"""The Sentinel-1 water network ``flood_s1``: build, load, predict (shared by in-process and Triton).

Input (N, 2, H, W) float32 sigma0 dB, band order VV, VH, NaN = no data (a whole band may be NaN,
e.g. VH missing). Output (N, H, W) float32 water probability 0..1, NaN where both bands are NaN.
Normalisation: :func:`terrawatch.ml.transforms.normalize_s1_db`. Any H, W: inputs are padded
(edge replicate) to a multiple of 16; large images are processed in overlapping windows.
Network: :class:`terrawatch.ml.nets.unet.UNet` (2 in-channels, base 16, depth 4, ~1.9 M params).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from terrawatch.ml.nets.unet import UNet
from terrawatch.ml.transforms import normalize_s1_db, s1_norm_constants

NAME = "flood_s1"
NET_KWARGS = {"in_channels": 2, "base": 16, "depth": 4}
MULTIPLE = 2 ** NET_KWARGS["depth"]
WINDOW = 512  # max window side for inference; memory ~ 0.3 GB per 512x512 window
OVERLAP = 32


def build_net() -> UNet:
    return UNet(**NET_KWARGS)


def load_net(weights: str | Path) -> UNet:
    """State dict at ``weights`` -> UNet in eval mode (CPU)."""
    net = build_net()
    state = torch.load(Path(weights), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


def save_net(net: UNet, weights: str | Path, meta: dict | None = None) -> None:
    """Write the state dict and a ``model.json`` (normalisation constants, net kwargs, meta) beside it."""
    weights = Path(weights)
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, weights)
    info = {"name": NAME, "net": "terrawatch.ml.nets.unet.UNet", "net_kwargs": NET_KWARGS,
            "input": {"shape": "(N, 2, H, W)", **s1_norm_constants()},
            "output": "(N, 1, H, W) water probability 0..1", **(meta or {})}
    weights.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


def _pad(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % MULTIPLE, (-w) % MULTIPLE
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w


@torch.inference_mode()
def _forward(net: UNet, x: torch.Tensor) -> torch.Tensor:
    x, h, w = _pad(x)
    return torch.sigmoid(net(x))[:, 0, :h, :w]


def _windows(n: int, size: int, overlap: int) -> list[int]:
    if n <= size:
        return [0]
    step = size - 2 * overlap
    starts = list(range(0, n - size, step)) + [n - size]
    return sorted(set(starts))


def predict_batch(net: UNet, s1_db: np.ndarray) -> np.ndarray:
    """(N,2,H,W) dB -> (N,H,W) float32 probability (NaN where both bands are NaN)."""
    s1 = np.asarray(s1_db, dtype=np.float32)
    if s1.ndim != 4 or s1.shape[1] != 2:
        raise ValueError(f"expected (N, 2, H, W) VV, VH dB, got {s1.shape}")
    n, _, h, w = s1.shape
    x = torch.from_numpy(normalize_s1_db(s1))
    if h <= WINDOW and w <= WINDOW:
        prob = _forward(net, x).numpy()
    else:
        prob = np.zeros((n, h, w), dtype=np.float32)
        for r in _windows(h, WINDOW, OVERLAP):
            for c in _windows(w, WINDOW, OVERLAP):
                p = _forward(net, x[:, :, r : r + WINDOW, c : c + WINDOW]).numpy()
                # keep each window's centre; its outer OVERLAP px only at the image border
                r0 = 0 if r == 0 else OVERLAP
                c0 = 0 if c == 0 else OVERLAP
                prob[:, r + r0 : r + p.shape[1], c + c0 : c + p.shape[2]] = p[:, r0:, c0:]
    nodata = np.isnan(s1).all(axis=1)
    prob[nodata] = np.nan
    return prob
