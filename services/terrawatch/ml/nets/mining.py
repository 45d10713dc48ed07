"""Gold-mining patch classifier: a plain-torch port of Earth Genome's Keras CNN.

Original: earthrise-media/mining-detector, ``48px_v3.2_2024-01-07.h5`` (MIT, Copyright (c) 2022
Earth Genome). Keras ``Sequential``: 3 x [3 x Conv3x3(32, same, relu) + MaxPool] (pools 2, 2, 3),
Flatten, Dense 64-64-32 (relu, dropout 0.3 at training only), Dense 1 (sigmoid).

Input: float32 (N, 12, 48, 48), Sentinel-2 L1C TOA reflectance scaled to [0, 1]
(``clip(dn / 10000, 0, 1)``) in the band order of ``MINING_BANDS`` in ``terrawatch.ml.mining``.
Output: (N, 1) mine probability in [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

PATCH = 48
IN_BANDS = 12


class MiningCNN(nn.Module):
    """Port of the 2024 v3 mining CNN (116,577 parameters)."""

    def __init__(self, in_channels: int = IN_BANDS, patch: int = PATCH) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for pool in (2, 2, 3):
            for _ in range(3):
                layers += [nn.Conv2d(cin, 32, 3, padding=1), nn.ReLU()]
                cin = 32
            layers.append(nn.MaxPool2d(pool))
        self.features = nn.Sequential(*layers)
        side = patch // 2 // 2 // 3
        self.head = nn.Sequential(
            nn.Linear(32 * side * side, 64),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(32, 1),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 12, 48, 48) scaled reflectance -> (N, 1) pre-sigmoid logits."""
        f = self.features(x)
        # Keras flattens channels-last (N, H, W, C); match its element order.
        f = f.permute(0, 2, 3, 1).flatten(1)
        return self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


def _conv_and_linear(model: MiningCNN) -> tuple[list[nn.Conv2d], list[nn.Linear]]:
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    dense = [m for m in model.head if isinstance(m, nn.Linear)]
    return convs, dense


def state_dict_from_keras_h5(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the Keras 2 h5 (``model_config`` + ``model_weights``) into a ``MiningCNN`` state_dict.

    Checks that the stored architecture is the one ``MiningCNN`` implements and fails loudly
    otherwise. Needs only h5py (no TensorFlow).
    """
    import h5py

    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        layers = cfg["config"]["layers"]
        kinds = [layer["class_name"] for layer in layers if layer["class_name"] != "InputLayer"]
        expected = (["Conv2D"] * 3 + ["MaxPooling2D"]) * 3 + ["Flatten"] + ["Dense", "Dropout"] * 3 + ["Dense"]
        if kinds != expected:
            raise ValueError(f"unexpected Keras architecture in {path}: {kinds}")
        shape = layers[0]["config"]["batch_input_shape"]
        if shape[1:] != [PATCH, PATCH, IN_BANDS]:
            raise ValueError(f"unexpected input shape {shape} in {path}")
        for layer in layers:
            c = layer["config"]
            if layer["class_name"] == "Conv2D":
                ok = (c["filters"], c["kernel_size"], c["strides"], c["padding"], c["activation"]) == (
                    32, [3, 3], [1, 1], "same", "relu")
                if not ok:
                    raise ValueError(f"unexpected Conv2D config {c['name']}")
        conv_names = [l["config"]["name"] for l in layers if l["class_name"] == "Conv2D"]
        dense_names = [l["config"]["name"] for l in layers if l["class_name"] == "Dense"]
        acts = [l["config"]["activation"] for l in layers if l["class_name"] == "Dense"]
        if acts != ["relu", "relu", "relu", "sigmoid"]:
            raise ValueError(f"unexpected Dense activations {acts}")
        w = f["model_weights"]

        def get(name: str, kind: str) -> np.ndarray:
            return np.asarray(w[name][name][f"{kind}:0"], dtype=np.float32)

        model = MiningCNN()
        convs, dense = _conv_and_linear(model)
        sd: dict[str, torch.Tensor] = {}
        names = {id(m): n for n, m in model.named_modules()}
        for mod, kname in zip(convs, conv_names):
            # Keras kernel (kh, kw, cin, cout) -> torch (cout, cin, kh, kw)
            sd[f"{names[id(mod)]}.weight"] = torch.from_numpy(get(kname, "kernel").transpose(3, 2, 0, 1).copy())
            sd[f"{names[id(mod)]}.bias"] = torch.from_numpy(get(kname, "bias"))
        for mod, kname in zip(dense, dense_names):
            # Keras Dense kernel (in, out) -> torch Linear weight (out, in)
            sd[f"{names[id(mod)]}.weight"] = torch.from_numpy(get(kname, "kernel").T.copy())
            sd[f"{names[id(mod)]}.bias"] = torch.from_numpy(get(kname, "bias"))
    missing = set(model.state_dict()) - set(sd)
    if missing:
        raise ValueError(f"weights missing for {sorted(missing)}")
    return sd


def load_mining_cnn(weights: str | Path) -> MiningCNN:
    """Build ``MiningCNN`` in eval mode from a torch state_dict (``.pt``) or the original ``.h5``."""
    model = MiningCNN()
    p = Path(weights)
    if p.suffix.lower() in (".h5", ".hdf5"):
        sd = state_dict_from_keras_h5(p)
    else:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    model.load_state_dict(sd)
    return model.eval()
