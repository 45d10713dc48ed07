"""A cross-validation candidate, not served: a small feature classifier trained on real-dB chips.

    python -m terrawatch_research.train.flood_s1_featnet --out /tmp/featnet/model.pt \
        [--data <shared data>/sen1floods11-extra] [--steps 300] [--threads 2] [--seed 0]

``terrawatch cv --models featnet`` trains it per leave-one-event-out fold. Under that CV it lost
to the split-based Otsu baseline on the Nigeria fold by far more than 0.05 (trained without
Nigeria it learns the darker USA water and misses Nigeria's), so ``flood_s1`` does not serve it
(models/flood_s1/README.md).

Training data: the hand-labelled Sen1Floods11 chips under ``--data`` (real sigma0 dB), except
every chip of the validation event ``Spain`` (``Spain_7370579`` lives elsewhere and is never read;
``Spain_6860600`` comes from the same event and is excluded too, so the Spain number stays held
out). The 8-bit ETCI / OMBRIA renderings are not used.

Model: :class:`terrawatch.ml.nets.feature_net.FeatureNet` over
:func:`terrawatch.ml.s1_features.s1_features` (features are computed after augmentation, as at
inference; each chip's features are computed once as recorded, with extra multiplicative speckle
(gamma, ENL U(4, 20)) and with VH missing, drawn with p 0.45 / 0.45 / 0.10). Augmentation models
real sensor variation, applied in feature space where it is exact for those channels: calibration
offset N(0, 1 dB) common to both bands plus N(0, 0.5 dB) per band, an incidence-angle gain ramp
across the crop (U(-1.5, 1.5) dB end to end, along a random axis); flips and 90-degree rotations.
Crops of ``CROP`` px, chips drawn uniformly.
Loss: BCE over labelled pixels. Adam, cosine learning rate, fixed seed and thread count: the
same command on the same torch build reproduces the weights bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from terrawatch.ml import flood_s1
from terrawatch.ml.datasets import Sen1Floods11
from terrawatch.ml.s1_features import s1_features
from terrawatch.settings import REPO_ROOT

REPO = REPO_ROOT
DATA = Path(os.environ.get("TERRAWATCH_SHARED_DATA", REPO.parent / "shared" / "data"))
CROP = 96
VALIDATION_EVENTS = ("Spain",)


def event_of(chip_id: str) -> str:
    """Sen1Floods11 chip id ``<Event>_<n>`` -> event name."""
    return chip_id.split("_")[0]


def load_chips(root: Path, exclude_events: tuple[str, ...] = VALIDATION_EVENTS) -> list[dict]:
    """Chips under ``root`` as {id, event, s1 (2,H,W) dB, mask (H,W) int8}, events in ``exclude_events`` left out."""
    out = []
    for s in Sen1Floods11(root):
        ev = event_of(s["id"])
        if ev in exclude_events:
            continue
        out.append({"id": s["id"], "event": ev, "s1": s["s1"], "mask": s["mask"].astype(np.int8)})
    return out


def chip_variants(ch: dict, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Features of a chip as recorded, with extra speckle (ENL U(4, 20)) and with VH missing:
    [(features (F,H,W), label (H,W) int8 with -1 where no input)] x 3. Computed once per chip."""
    x = ch["s1"]
    enl = rng.uniform(4.0, 20.0)
    speckled = x + (10.0 * np.log10(rng.gamma(enl, 1.0 / enl, size=x.shape) + 1e-6)).astype(np.float32)
    no_vh = x.copy()
    no_vh[1] = np.nan
    out = []
    for v in (x, speckled, no_vh):
        f, valid = s1_features(v)
        out.append((f, np.where(valid, ch["mask"], -1).astype(np.int8)))
    return out


VARIANT_P = (0.45, 0.45, 0.10)
# feature channels that move with a VV / VH dB offset (scale 6 dB), and the VV-VH channel (scale 3 dB)
VV_CH, VH_CH, RATIO_CH, ANCHOR_CH = (0, 3, 5), (1, 4, 6), 2, 8


def augment(f: np.ndarray, y: np.ndarray, rng: np.random.Generator, crop: int = CROP) -> tuple[np.ndarray, np.ndarray]:
    """Features (F,H,W) + label -> augmented (F,crop,crop) + label: crop, flips/rotations and, in
    feature space (exact for these channels), a calibration offset and an incidence-angle gain ramp."""
    h, w = y.shape
    r = int(rng.integers(0, h - crop + 1))
    c = int(rng.integers(0, w - crop + 1))
    f = f[:, r : r + crop, c : c + crop]
    y = y[r : r + crop, c : c + crop]
    k = int(rng.integers(0, 4))
    f, y = np.rot90(f, k, axes=(1, 2)), np.rot90(y, k)
    if rng.random() < 0.5:
        f, y = f[:, :, ::-1], y[:, ::-1]
    f = np.array(f, dtype=np.float32)
    y = np.array(y, dtype=np.int8)
    common = rng.normal(0, 1.0)
    b_vv, b_vh = rng.normal(0, 0.5, size=2)
    ramp = np.linspace(-0.5, 0.5, crop, dtype=np.float32) * np.float32(rng.uniform(-1.5, 1.5))
    ramp = ramp[:, None] if rng.random() < 0.5 else ramp[None, :]
    for ch in VV_CH:
        f[ch] += (common + b_vv + ramp) / 6.0
    for ch in VH_CH:
        f[ch] += (common + b_vh + ramp) / 6.0
    f[RATIO_CH] += (b_vv - b_vh) / 3.0
    f[ANCHOR_CH] += ramp / 6.0  # the per-scene anchor absorbs the constant offsets
    return np.clip(f, -6.0, 6.0), y


def train_net(chips: list[dict], *, steps: int = 300, batch: int = 8, lr: float = 5e-3, seed: int = 0,
              threads: int = 2, arch: str = "cnn", use: list[int] | None = None, hidden: int = 16,
              log=None) -> torch.nn.Module:
    """Train a FeatureNet on ``chips`` (see :func:`load_chips`); deterministic for a seed + thread count."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    variants = [chip_variants(ch, rng) for ch in chips]
    net = flood_s1.build_feature_net(arch=arch, use=use, hidden=hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    net.train()
    t0 = time.time()
    for step in range(1, steps + 1):
        xb, yb = [], []
        for _ in range(batch):
            var = variants[int(rng.integers(len(variants)))]
            f, y = var[int(rng.choice(3, p=VARIANT_P))]
            f, y = augment(f, y, rng)
            xb.append(f)
            yb.append(y)
        xt = torch.from_numpy(np.stack(xb))
        yt = torch.from_numpy(np.stack(yb).astype(np.int64))[:, None]
        v = (yt >= 0).float()
        logits = net(xt)
        loss = (F.binary_cross_entropy_with_logits(logits, yt.clamp(min=0).float(), reduction="none") * v).sum() / v.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 100 == 0 or step == steps):
            log({"step": step, "loss": round(loss.item(), 4), "elapsed_s": round(time.time() - t0, 1)})
    return net.eval()


RECIPE = {"steps": 300, "batch": 8, "lr": 5e-3, "arch": "cnn", "use": None, "hidden": 16}


def candidate_main(argv: list[str] | None, doc: str, recipe: dict, train, save, meta: dict) -> int:
    """The command line of a real-dB cross-validation candidate: train ``train(chips, seed=, threads=, log=,
    **recipe)`` on the chips under ``--data`` (the validation event left out), ``save(net, out, meta)``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=DATA / "sen1floods11-extra")
    ap.add_argument("--steps", type=int, default=recipe["steps"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    chips = load_chips(a.data)
    t0 = time.time()
    recipe = {**recipe, "steps": a.steps}
    net = train(chips, seed=a.seed, threads=a.threads, log=lambda r: print(json.dumps(r), flush=True), **recipe)
    secs = round(time.time() - t0, 1)
    save(net, a.out, {**meta, **recipe, "seed": a.seed, "threads": a.threads,
                      "train_chips": [c["id"] for c in chips], "excluded_events": list(VALIDATION_EVENTS),
                      "train_data": f"Sen1Floods11 hand-labelled chips (CC BY 4.0) under {a.data.name}/",
                      "train_seconds": secs, "torch": torch.__version__})
    print(json.dumps({"saved": str(a.out), "train_seconds": secs}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return candidate_main(argv, __doc__, RECIPE, train_net, flood_s1.save_feature_net,
                          {"candidate": "featnet", "crop": CROP})


if __name__ == "__main__":
    raise SystemExit(main())
