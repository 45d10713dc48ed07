"""Train the Sentinel-1 water network ``flood_s1`` on ETCI 2021 + OMBRIA S1 (CPU, minutes).

    python -m terrawatch_research.train.flood_s1 --out models/flood_s1/1/model.pt \
        [--etci ../shared/data/etci2021] [--ombria ../shared/data/ombria/OmbriaS1/train] \
        [--val ../shared/data/sen1floods11] [--steps 800] [--threads 2] [--seed 0]

Training data (all converted to dB by the loaders, see ``terrawatch.ml.datasets.png_db``):
- ETCI 2021, split "train" (tile x index < 18; x >= 18 is the held-out test split). Target = the
  flood label (in this event it covers the dark river/lakes too). Reference-water pixels outside
  the flood label are ignored (many are not dark: the reference layer is not this date's water).
  Tiles whose flood label is not darker than the tile's dry land (median VV within 20 DN = 2.4 dB,
  flood fraction > 10 %: rectangular label blocks over dry fields) are dropped as label errors.
- OMBRIA S1, split "train" (sample numbers < 700: 563 of 624). Target = MASK (EMS flooded). Pixels dark (< -18 dB
  after a 5x5 median) in both BEFORE and AFTER but outside MASK are ignored: permanent water that
  EMS flood masks leave out. VH is missing (NaN) in OMBRIA.
- Sen1Floods11 (``--val``) is only evaluated and logged, never trained on, never used to select
  a checkpoint: the saved weights are those after the last step.

Augmentation (so the net transfers to real, speckled, differently calibrated dB scenes): random
128x128 crops with zoom 0.75-1.33, flips and 90-degree rotations, dB gain N(0, 1.5 dB) common to
both bands plus N(0, 0.75 dB) per band, contrast x U(0.8, 1.2) around the crop median, multiplicative
speckle (gamma, ENL U(2.5, 10); p=0.8) added in dB, Gaussian blur (p=0.2), VH dropped to NaN
(p=0.15), a random no-data rectangle (p=0.1). Loss: BCE + soft Dice over labelled pixels.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from terrawatch.ml import flood_s1
from terrawatch.ml.datasets import ETCI2021, OmbriaS1, Sen1Floods11
from terrawatch.ml.transforms import normalize_s1_db
from terrawatch.settings import REPO_ROOT
from terrawatch_research.eval.metrics import confusion, scores

REPO = REPO_ROOT
DATA = REPO.parent / "shared" / "data"
CROP = 128
# radiometric augmentation: the PNG->dB mappings are uncertain by a few dB (OMBRIA is stretched per
# image), so the net must not rely on absolute levels alone
GAIN_DB = 1.5  # (3 dB / 1 dB / 0.7-1.3 was tried: worse on every validation set)
BAND_GAIN_DB = 0.75
CONTRAST = (0.8, 1.2)
EMA_DECAY = 0.99


def etci_label_is_plausible(s1_db: np.ndarray, flood: np.ndarray, water_body: np.ndarray) -> bool:
    """False for tiles whose flood label covers > 10 % but is not darker (VV) than the dry land."""
    fl = flood == 1
    if fl.mean() <= 0.10:
        return True
    dry = (flood == 0) & (water_body == 0)
    if not dry.any():
        return True
    vv = s1_db[0]
    return bool(np.nanmedian(vv[dry]) - np.nanmedian(vv[fl]) >= 20 * 30.0 / 255.0)


def load_etci(root: Path) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    xs, ys, dropped = [], [], 0
    for s in ETCI2021(root, split="train"):
        if not etci_label_is_plausible(s["s1"], s["mask"], s["water_body"]):
            dropped += 1
            continue
        y = s["mask"].astype(np.int8)
        y[(s["water_body"] == 1) & (y == 0)] = -1
        xs.append(s["s1"])
        ys.append(y)
    return xs, ys, dropped


def load_ombria(root: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    xs, ys = [], []
    for s in OmbriaS1(root, split="train"):
        y = s["mask"].astype(np.int8)
        dark_after = ndi.median_filter(s["s1"][0], 5) < -18.0
        before = s["before"][0]
        if np.isfinite(before).all():
            permanent = dark_after & (ndi.median_filter(before, 5) < -18.0)
            y[permanent & (y == 0)] = -1
        xs.append(s["s1"])
        ys.append(y)
    return xs, ys


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (2,H,W) dB tile + (H,W) label -> augmented (2,CROP,CROP) dB crop + label (see module)."""
    zoom = math.exp(rng.uniform(math.log(0.75), math.log(1.33)))
    side = min(int(round(CROP / zoom)), x.shape[1], x.shape[2])
    r = rng.integers(0, x.shape[1] - side + 1)
    c = rng.integers(0, x.shape[2] - side + 1)
    x = x[:, r : r + side, c : c + side]
    y = y[r : r + side, c : c + side]
    if side != CROP:
        xt = torch.from_numpy(np.ascontiguousarray(x))[None]
        x = F.interpolate(xt, size=(CROP, CROP), mode="bilinear", align_corners=False)[0].numpy()
        yt = torch.from_numpy(y.astype(np.float32))[None, None]
        y = F.interpolate(yt, size=(CROP, CROP), mode="nearest")[0, 0].numpy().astype(np.int8)
    k = int(rng.integers(0, 4))
    x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, ::-1]
    x = np.array(x, dtype=np.float32)
    y = np.array(y, dtype=np.int8)
    # radiometry in dB
    x += rng.normal(0, GAIN_DB) + rng.normal(0, BAND_GAIN_DB, size=(2, 1, 1)).astype(np.float32)
    gain = rng.uniform(*CONTRAST)
    for b in range(2):
        fin = np.isfinite(x[b])
        if fin.any():
            med = np.median(x[b][fin])
            x[b] = med + (x[b] - med) * gain
    if rng.random() < 0.2:
        x = ndi.gaussian_filter(x, sigma=(0, *(2 * [rng.uniform(0.5, 1.2)])))
    if rng.random() < 0.8:
        enl = rng.uniform(2.5, 10.0)
        x += (10.0 * np.log10(rng.gamma(enl, 1.0 / enl, size=x.shape) + 1e-6)).astype(np.float32)
    if rng.random() < 0.15:
        x[1] = np.nan
    if rng.random() < 0.1:
        h0, w0 = rng.integers(8, CROP // 2, size=2)
        r0, c0 = rng.integers(0, CROP - h0), rng.integers(0, CROP - w0)
        x[:, r0 : r0 + h0, c0 : c0 + w0] = np.nan
        y[r0 : r0 + h0, c0 : c0 + w0] = -1
    y[np.isnan(x).all(0)] = -1
    return x, y


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    valid = (y >= 0).float()
    t = y.clamp(min=0).float()
    bce = (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * valid).sum() / valid.sum().clamp(min=1)
    p = torch.sigmoid(logits) * valid
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + (t * valid).sum() + 1)
    return bce + dice


def train_step(net, opt, sched, xb: list[np.ndarray], yb: list[np.ndarray]) -> torch.Tensor:
    """One optimiser step on a batch of augmented (2,CROP,CROP) dB crops and labels; returns the loss."""
    xt = torch.from_numpy(normalize_s1_db(np.stack(xb)))
    yt = torch.from_numpy(np.stack(yb)[:, None].astype(np.int64))
    loss = loss_fn(net(xt), yt)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss


def evaluate_sets(net, sets: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> dict[str, float]:
    net.eval()
    out = {}
    for name, samples in sets.items():
        tp = fp = fn = 0
        for x, y in samples:
            p = flood_s1.predict_batch(net, x[None])[0]
            c = confusion(p >= 0.5, y == 1, y >= 0)
            tp, fp, fn = tp + c[0], fp + c[1], fn + c[2]
        out[name] = round(scores(tp, fp, fn)["iou"], 4)
    net.train()
    return out


def train(out: Path, etci: Path, ombria: Path, val: Path | None, steps: int = 800, batch: int = 16,
          lr: float = 2e-3, threads: int = 2, seed: int = 0, p_etci: float = 0.4, log_every: int = 50) -> dict:
    """Train, save ``out`` (state dict) + ``out.with_suffix('.json')``; returns the training record."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    ex, ey, dropped = load_etci(etci)
    ox, oy = load_ombria(ombria)
    print(json.dumps({"etci_train_tiles": len(ex), "etci_dropped_label_errors": dropped, "ombria_train": len(ox),
                      "load_s": round(time.time() - t0, 1)}), flush=True)
    monitor: dict[str, list] = {}
    if val is not None and val.exists():
        monitor["sen1floods11"] = [(s["s1"], s["mask"]) for s in Sen1Floods11(val)]
    monitor["etci_holdout"] = [(s["s1"], s["mask"]) for s in ETCI2021(etci, split="holdout")]

    net = flood_s1.build_net()
    # the saved weights are an exponential moving average of the trained ones (BN buffers included)
    ema = torch.optim.swa_utils.AveragedModel(
        net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(EMA_DECAY), use_buffers=True)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    history = []
    net.train()
    t1 = time.time()
    for step in range(1, steps + 1):
        xb, yb = [], []
        for _ in range(batch):
            src_x, src_y = (ex, ey) if rng.random() < p_etci else (ox, oy)
            i = int(rng.integers(len(src_x)))
            x, y = augment(src_x[i], src_y[i], rng)
            xb.append(x)
            yb.append(y)
        loss = train_step(net, opt, sched, xb, yb)
        ema.update_parameters(net)
        if step % log_every == 0 or step == steps:
            rec = {"step": step, "loss": round(loss.item(), 4), "elapsed_s": round(time.time() - t1, 1)}
            if step % (4 * log_every) == 0 or step == steps:
                rec.update(evaluate_sets(ema.module, monitor))
            history.append(rec)
            print(json.dumps(rec), flush=True)
    net = ema.module
    final = evaluate_sets(net, monitor)
    meta = {"version": 1, "trained_steps": steps, "batch": batch, "crop": CROP, "seed": seed, "lr": lr,
            "train_data": {"etci2021": f"{etci} split=train ({len(ex)} tiles, {dropped} dropped)",
                           "ombria-s1": f"{ombria} split=train ({len(ox)} samples)"},
            "validation_only": str(val) if val else None, "final_iou": final,
            "train_seconds": round(time.time() - t1, 1)}
    net.eval()
    flood_s1.save_net(net, out, meta)
    print(json.dumps({"saved": str(out), **final, "train_seconds": meta["train_seconds"]}), flush=True)
    return {"history": history, **meta}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "models" / "flood_s1" / "1" / "model.pt")
    ap.add_argument("--etci", type=Path, default=DATA / "etci2021")
    ap.add_argument("--ombria", type=Path, default=DATA / "ombria" / "OmbriaS1" / "train")
    ap.add_argument("--val", type=Path, default=DATA / "sen1floods11")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    train(a.out, a.etci, a.ombria, a.val, steps=a.steps, batch=a.batch, lr=a.lr, threads=a.threads, seed=a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
