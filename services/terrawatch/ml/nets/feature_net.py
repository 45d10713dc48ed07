"""A small fully convolutional water classifier over :mod:`terrawatch.ml.s1_features` features.

``arch="pix"``: per-pixel MLP (1x1 convolutions, ``hidden`` units, 2 layers); the spatial context
comes only from the multilook / texture features (11x11 px). ``arch="cnn"``: 3x3 conv, 3x3 conv
with dilation 2, 1x1 head (receptive field 7x7 px on top of the features). ``use`` selects feature
channels. A few hundred to a few thousand parameters: with a handful of labelled real-dB chips a
model this small is what the data can constrain. Input (N, F, H, W) -> logits (N, 1, H, W).
"""

from __future__ import annotations

import torch
from torch import nn


class FeatureNet(nn.Module):
    def __init__(self, n_features: int = 9, use: list[int] | None = None, arch: str = "cnn", hidden: int = 16) -> None:
        super().__init__()
        self.use = list(range(n_features)) if use is None else list(use)
        self.register_buffer("idx", torch.tensor(self.use, dtype=torch.long), persistent=False)
        f = len(self.use)
        if arch == "pix":
            self.body = nn.Sequential(nn.Conv2d(f, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                      nn.Conv2d(hidden, 1, 1))
        elif arch == "cnn":
            self.body = nn.Sequential(nn.Conv2d(f, hidden, 3, padding=1, padding_mode="replicate"), nn.ReLU(),
                                      nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2, padding_mode="replicate"),
                                      nn.ReLU(), nn.Conv2d(hidden, 1, 1))
        else:
            raise ValueError(f"arch must be pix or cnn, got {arch!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.index_select(1, self.idx))
