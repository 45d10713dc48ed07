"""Per-pixel bi-temporal forest-loss network (a 1x1-convolution MLP), in plain torch.

Input: ``pre`` and ``post`` float32 (N, 13, H, W) Sentinel-2 L1C TOA reflectance x 10000 (band order
B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12), same footprint and grid. Output: (N, 1, H, W) forest-loss
probability in [0, 1]; 0 where the pre scene is not forest (NDVI_pre < ``forest_ndvi``) or either
scene has no data (NaN, or all bands <= 0).

Features per pixel (computed inside the module so Triton and in-process use are identical):
12 bands (B10 cirrus dropped) of pre and post as reflectance, their difference, and NDVI, NBR, NDMI,
MNDWI of pre and post and their differences (48 features), standardised with constants fitted on
the training set and stored as buffers.
"""

from __future__ import annotations

import torch
from torch import nn

S2_L1C_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
FEATURE_BANDS = tuple(i for i, b in enumerate(S2_L1C_BANDS) if b != "B10")
B3, B4, B8, B11, B12 = (S2_L1C_BANDS.index(b) for b in ("B3", "B4", "B8", "B11", "B12"))
N_FEATURES = 3 * len(FEATURE_BANDS) + 3 * 4
DN_SCALE = 10000.0


def _nd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b) / (a + b).clamp_min(1e-6)


def indices(x: torch.Tensor) -> torch.Tensor:
    """(N, 13, H, W) reflectance (any scale) -> (N, 4, H, W): NDVI, NBR, NDMI, MNDWI."""
    return torch.stack([
        _nd(x[:, B8], x[:, B4]),
        _nd(x[:, B8], x[:, B12]),
        _nd(x[:, B8], x[:, B11]),
        _nd(x[:, B3], x[:, B11]),
    ], dim=1)


def valid_pixels(x: torch.Tensor) -> torch.Tensor:
    """(N, 13, H, W) -> (N, H, W) bool: no NaN in the 12 bands used (B10 is not: L2A has none) and not all
    bands <= 0 (L1C no-data is 0)."""
    x = x[:, list(FEATURE_BANDS)]
    return ~torch.isnan(x).any(1) & (torch.nan_to_num(x, nan=0.0) > 0).any(1)


def pixel_features(pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """(N, 13, H, W) x 2 reflectance x 10000 -> (N, 48, H, W) unnormalised features."""
    a = torch.nan_to_num(pre.float(), nan=0.0).clamp(0, 3 * DN_SCALE) / DN_SCALE
    b = torch.nan_to_num(post.float(), nan=0.0).clamp(0, 3 * DN_SCALE) / DN_SCALE
    fb = list(FEATURE_BANDS)
    ia, ib = indices(a), indices(b)
    return torch.cat([a[:, fb], b[:, fb], b[:, fb] - a[:, fb], ia, ib, ib - ia], dim=1)


class DeforestationNet(nn.Module):
    """1x1-conv MLP over ``pixel_features``: 48 -> hidden -> hidden -> 1, gated by a forest mask."""

    def __init__(self, hidden: int = 64, forest_ndvi: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(N_FEATURES))
        self.register_buffer("std", torch.ones(N_FEATURES))
        self.register_buffer("forest_ndvi", torch.tensor(float(forest_ndvi)))
        self.mlp = nn.Sequential(
            nn.Conv2d(N_FEATURES, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, 1, 1),
        )

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """(N, 48, H, W) unnormalised features -> (N, 1, H, W) logits (no gating)."""
        f = (f - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        return self.mlp(f)

    def logits_flat(self, f: torch.Tensor) -> torch.Tensor:
        """(P, 48) unnormalised features -> (P,) logits; same maths as the 1x1 convs, faster to train."""
        h = (f - self.mean) / self.std
        convs = [m for m in self.mlp if isinstance(m, nn.Conv2d)]
        for i, c in enumerate(convs):
            h = nn.functional.linear(h, c.weight.flatten(1), c.bias)
            if i < len(convs) - 1:
                h = torch.relu(h)
        return h[:, 0]

    def forward(self, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(self.logits_from_features(pixel_features(pre, post)))
        a = torch.nan_to_num(pre.float(), nan=0.0)
        forest = _nd(a[:, B8], a[:, B4]) >= self.forest_ndvi
        keep = forest & valid_pixels(pre) & valid_pixels(post)
        return prob * keep.unsqueeze(1).to(prob.dtype)
