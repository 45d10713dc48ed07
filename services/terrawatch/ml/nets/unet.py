"""A compact U-Net for per-pixel segmentation, in plain torch.

Input: float32 tensor (N, C, H, W), already normalised by the caller; H and W
multiples of ``2**depth`` (16 for depth 4). Output: logits (N, 1, H, W).
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``depth`` down/up levels and ``base`` channels at full resolution."""

    def __init__(self, in_channels: int, base: int = 16, depth: int = 4) -> None:
        super().__init__()
        chans = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans[:-1]:
            self.down.append(_block(cin, c))
            cin = c
        self.bottom = _block(chans[-2], chans[-1])
        self.up = nn.ModuleList()
        self.upconv = nn.ModuleList()
        for c_hi, c_lo in zip(reversed(chans[1:]), reversed(chans[:-1])):
            self.upconv.append(nn.ConvTranspose2d(c_hi, c_lo, 2, stride=2))
            self.up.append(_block(c_lo * 2, c_lo))
        self.head = nn.Conv2d(chans[0], 1, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for upconv, block, skip in zip(self.upconv, self.up, reversed(skips)):
            x = block(torch.cat([upconv(x), skip], dim=1))
        return self.head(x)
