"""A cross-validation candidate: the served U-Net fine-tuned on real-dB chips, with the 8-bit renderings replayed.

    python -m terrawatch_research.train.flood_s1_finetune --out /tmp/unet_ft/model.pt \
        [--data <shared data>/sen1floods11-extra] [--steps 150] [--threads 2] [--seed 0]

``terrawatch cv --models unet-ft`` fine-tunes it per leave-one-event-out fold (trained on the other events'
chips) and predicts with the served hysteresis growing, so it compares directly with ``flood-s1``.

Start: the shipped ``flood_s1`` weights (trained on ETCI 2021 + OMBRIA renderings only). Each batch of
``batch`` crops draws a real-dB Sen1Floods11 chip with probability ``p_real`` (chips drawn uniformly, dry
chips included as negatives; every chip of the validation event Spain is excluded, see
:func:`terrawatch_research.train.flood_s1_featnet.load_chips`), else an ETCI / OMBRIA training tile (replay, so
the net keeps what it learnt there). Crops, radiometric and speckle augmentation and the loss are those of
:mod:`terrawatch_research.train.flood_s1` (128 px crops, zoom 0.75-1.33, dB gain, contrast, speckle, VH dropout).
AdamW at ``lr`` with a cosine decay; BatchNorm statistics keep updating. Fixed seed and thread count.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from terrawatch.ml import flood_s1
from terrawatch.settings import REPO_ROOT
from terrawatch_research.train.flood_s1 import augment, load_etci, load_ombria, train_step
from terrawatch_research.train.flood_s1_featnet import candidate_main

REPO = REPO_ROOT
DATA = Path(os.environ.get("TERRAWATCH_SHARED_DATA", REPO.parent / "shared" / "data"))
RECIPE = {"steps": 150, "batch": 16, "lr": 3e-4, "p_real": 0.5}
_REPLAY: dict = {}


def replay_data(data: Path = DATA) -> list[tuple[np.ndarray, np.ndarray]]:
    """ETCI 2021 train + OMBRIA train tiles as (2,H,W) dB, label (loaded once per process)."""
    if "tiles" not in _REPLAY:
        ex, ey, _ = load_etci(data / "etci2021")
        ox, oy = load_ombria(data / "ombria" / "OmbriaS1" / "train")
        _REPLAY["tiles"] = list(zip(ex + ox, ey + oy))
    return _REPLAY["tiles"]


def finetune(chips: list[dict], *, steps: int = 150, batch: int = 16, lr: float = 3e-4, p_real: float = 0.5,
             seed: int = 0, threads: int = 2, base: Path | None = None, log=None) -> torch.nn.Module:
    """Fine-tune the served U-Net on ``chips`` ({s1 (2,H,W) dB, mask (H,W)}) with replay; returns it in eval mode."""
    from terrawatch.ml.registry import latest_version_dir

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = flood_s1.load_net(base or latest_version_dir(flood_s1.NAME) / "model.pt")
    replay = replay_data()
    real = [(c["s1"], c["mask"]) for c in chips]
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    net.train()
    t0 = time.time()
    for step in range(1, steps + 1):
        xb, yb = [], []
        for _ in range(batch):
            src = real if rng.random() < p_real else replay
            x, y = src[int(rng.integers(len(src)))]
            x, y = augment(x, y, rng)
            xb.append(x)
            yb.append(y)
        loss = train_step(net, opt, sched, xb, yb)
        if log and (step % 50 == 0 or step == steps):
            log({"step": step, "loss": round(loss.item(), 4), "elapsed_s": round(time.time() - t0, 1)})
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    return candidate_main(argv, __doc__, RECIPE, finetune, flood_s1.save_net, {
        "candidate": "unet-ft", "replay": "ETCI 2021 train + OMBRIA S1 train (as terrawatch_research.train.flood_s1)"})


if __name__ == "__main__":
    raise SystemExit(main())
