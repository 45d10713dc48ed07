"""The Sentinel-1 water model ``flood_s1``: build, load, predict (shared by in-process and Triton).

Input (N, 2, H, W) float32 sigma0 dB, band order VV, VH, NaN = no data (a whole band may be NaN,
e.g. VH missing). Output (N, H, W) float32 water probability 0..1, NaN where both bands are NaN.

Served network: :class:`terrawatch.ml.nets.unet.UNet` (2 in-channels, base 16, depth 4, ~1.9 M
params), normalisation :func:`terrawatch.ml.transforms.normalize_s1_db`. Inputs are padded (edge
replicate) to a multiple of 16; large images are processed in overlapping windows.

Post-processing: **none is served** (``GROW = False``, issue 27). :func:`grow_water` (hysteresis
region growing: pixels >= ``SEED_P`` (0.5) are seeds; pixels >= ``GROW_P`` (0.2) 8-connected to a seed
become water, probability mapped into [0.5, 0.6)) was served from issue 14 to issue 27. It had been
chosen on the cross-validation folds that then reported it; under the nested cross-validation with every
column (``terrawatch cv --nested``, :mod:`terrawatch_research.eval.nested`) it loses the OMBRIA holdout by
0.045 IoU (0.435 -> 0.390) and held-out 8-bit ETCI-style tiles by 0.105 (0.841 -> 0.736, measured outside
the project), so it is off; ``predict_batch(..., grow=True)`` still applies it for comparison.

:class:`terrawatch.ml.nets.feature_net.FeatureNet` (a cross-validation candidate, see
``terrawatch_research.train.flood_s1_featnet``) loads and predicts through the same functions; ``load_net``
tells the two apart by their weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from terrawatch.ml.nets.feature_net import FeatureNet
from terrawatch.ml.nets.unet import UNet
from terrawatch.ml.s1_features import N_FEATURES, feature_constants, s1_features
from terrawatch.ml.transforms import normalize_s1_db, s1_norm_constants

NAME = "flood_s1"
NET_KWARGS = {"in_channels": 2, "base": 16, "depth": 4}
FEATURE_NET_KWARGS = {"n_features": N_FEATURES, "use": None, "arch": "cnn", "hidden": 16}
MULTIPLE = 2 ** NET_KWARGS["depth"]
WINDOW = 512  # max window side for inference; memory ~ 0.3 GB per 512x512 window
OVERLAP = 32
SEED_P = 0.5
GROW_P = 0.2
GROW = False  # the served default of predict_batch (issue 27: growing off, see the module docstring)


def build_net() -> UNet:
    return UNet(**NET_KWARGS)


def build_feature_net(**kwargs) -> FeatureNet:
    return FeatureNet(**{**FEATURE_NET_KWARGS, **kwargs})


def load_net(weights: str | Path) -> torch.nn.Module:
    """State dict at ``weights`` -> UNet or FeatureNet (by its tensors; kwargs from model.json) in eval mode (CPU)."""
    weights = Path(weights)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if "body.0.weight" in state:
        meta_path = weights.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        w0 = state["body.0.weight"]
        kwargs = meta.get("net_kwargs") or {"n_features": N_FEATURES, "use": list(range(w0.shape[1])),
                                            "arch": "cnn" if w0.shape[-1] == 3 else "pix", "hidden": w0.shape[0]}
        net: torch.nn.Module = FeatureNet(**kwargs)
    else:
        net = build_net()
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


def save_feature_net(net: FeatureNet, weights: str | Path, meta: dict | None = None) -> None:
    """Like :func:`save_net` for a FeatureNet (its kwargs and the feature constants in model.json)."""
    weights = Path(weights)
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, weights)
    kwargs = {"n_features": N_FEATURES, "use": net.use, "arch": "cnn" if net.body[0].kernel_size[0] == 3 else "pix",
              "hidden": net.body[0].out_channels}
    info = {"name": NAME, "net": "terrawatch.ml.nets.feature_net.FeatureNet", "net_kwargs": kwargs,
            "input": {"shape": "(N, 2, H, W) VV, VH sigma0 dB", "features": feature_constants()},
            "output": "(N, 1, H, W) water probability 0..1", **(meta or {})}
    weights.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


def _pad(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % MULTIPLE, (-w) % MULTIPLE
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w


@torch.inference_mode()
def _forward(net: torch.nn.Module, s1: np.ndarray) -> np.ndarray:
    """(N,2,h,w) dB window -> (N,h,w) probability, computed on the net's device (CPU or CUDA)."""
    dev = next(net.parameters()).device
    if isinstance(net, FeatureNet):
        x = torch.from_numpy(np.stack([s1_features(img)[0] for img in s1])).to(dev)
        return torch.sigmoid(net(x))[:, 0].cpu().numpy()
    x, h, w = _pad(torch.from_numpy(normalize_s1_db(s1)).to(dev))
    return torch.sigmoid(net(x))[:, 0, :h, :w].cpu().numpy()


def _windows(n: int, size: int, overlap: int) -> list[int]:
    if n <= size:
        return [0]
    step = size - 2 * overlap
    starts = list(range(0, n - size, step)) + [n - size]
    return sorted(set(starts))


def grow_water(prob: np.ndarray, seed_p: float = SEED_P, grow_p: float = GROW_P) -> np.ndarray:
    """Hysteresis region growing on one (H,W) probability (NaN kept): pixels >= ``grow_p`` that are
    8-connected to a pixel >= ``seed_p`` become water, probability mapped linearly from
    [grow_p, seed_p) to [0.5, 0.6). Other pixels are unchanged."""
    p = np.nan_to_num(prob, nan=0.0)
    seed = p >= seed_p
    if not seed.any():
        return prob
    grown = ndi.binary_propagation(seed, structure=np.ones((3, 3), bool), mask=p >= grow_p) & ~seed
    out = prob.copy()
    out[grown] = 0.5 + 0.1 * (p[grown] - grow_p) / (seed_p - grow_p)
    return out


def predict_batch(net: torch.nn.Module, s1_db: np.ndarray, grow: bool | None = None) -> np.ndarray:
    """(N,2,H,W) dB -> (N,H,W) float32 probability (NaN where both bands are NaN); ``grow``: apply
    :func:`grow_water` (``None``: the served default :data:`GROW`, off since issue 27)."""
    s1 = np.asarray(s1_db, dtype=np.float32)
    if s1.ndim != 4 or s1.shape[1] != 2:
        raise ValueError(f"expected (N, 2, H, W) VV, VH dB, got {s1.shape}")
    n, _, h, w = s1.shape
    if h <= WINDOW and w <= WINDOW:
        prob = _forward(net, s1).astype(np.float32)
    else:
        prob = np.zeros((n, h, w), dtype=np.float32)
        for r in _windows(h, WINDOW, OVERLAP):
            for c in _windows(w, WINDOW, OVERLAP):
                p = _forward(net, s1[:, :, r : r + WINDOW, c : c + WINDOW])
                # keep each window's centre; its outer OVERLAP px only at the image border
                r0 = 0 if r == 0 else OVERLAP
                c0 = 0 if c == 0 else OVERLAP
                prob[:, r + r0 : r + p.shape[1], c + c0 : c + p.shape[2]] = p[:, r0:, c0:]
    nodata = np.isnan(s1).all(axis=1)
    prob[nodata] = np.nan
    if GROW if grow is None else grow:
        prob = np.stack([grow_water(p) for p in prob]).astype(np.float32)
    return prob
