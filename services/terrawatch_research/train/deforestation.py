"""Train and evaluate the deforestation model on synthetic pairs built from REAL Sentinel-2 spectra.

No labelled forest-loss pairs are available offline, so pairs are synthesised from the real 13-band
L1C chip ``../shared/data/sen1floods11/Spain_7370579_S2Hand.tif`` (Sen1Floods11, CC BY 4.0):

1. Pixel pools by spectral rules (TOA): *forest-like* NDVI >= 0.5; *bare soil* 0 <= NDVI <= 0.2,
   B11 > B8, MNDWI < 0, B2 < 3000; *other* = every other valid pixel with NDVI < 0.5 (fields,
   built-up, water). The chip is cut into 64 px blocks in a checkerboard: black blocks feed training,
   white blocks the held-out test set, so no test pixel spectrum is ever seen in training.
2. ``synth_pair``: a pre scene with smooth random forest stands (forest-pool spectra) in a background
   of other-pool spectra; the post scene copies it, re-samples some background (crop change, not
   loss), clears 0-4 shaped events inside forest (ellipses, rotated rectangles, 1-3 px roads,
   irregular blobs) by replacing spectra with bare-soil-pool spectra (edge pixels are linear mixtures,
   bare fraction 0.3-1; 30 % of events clear only 50-90 % of each pixel; 30 % of events leave
   sparse regrowth/pasture (other-pool spectra with 0.15 <= NDVI < 0.4) instead of bare soil;
   label = cleared fraction >= 0.5), then applies a vegetation seasonal gain
   (B5-B8A x 0.85-1.15), a scene gain (x 0.92-1.08), haze (additive, 0-300 DN, strongest in blue) and
   noise (1 % + 10 DN) to the post scene and noise to the pre scene.
3. ``real_paste_pair``: a spatially real case: the whole real chip is the pre scene and in
   24x24 px windows of the test blocks, forest pixels are replaced by the pixels of a real bare window
   (also from the test blocks), then the same radiometric perturbation is applied.

Commands::

    python -m terrawatch_research.train.deforestation train --s2 ../shared/data/sen1floods11/Spain_7370579_S2Hand.tif \
        --out models/deforestation_s2/1/model.pt
    python -m terrawatch_research.train.deforestation eval --s2 ../shared/data/sen1floods11/Spain_7370579_S2Hand.tif
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from terrawatch.ml import deforestation as defo
from terrawatch.ml.nets.deforestation import DeforestationNet, pixel_features

BLOCK = 64
SCENE = 64
B2, B3, B5, B8, B8A, B11 = 1, 2, 4, 7, 8, 11
# Relative haze strength per band B1..B12 (Rayleigh/aerosol-like: strong in blue, weak in SWIR).
HAZE_WEIGHT = np.array([1.0, 0.85, 0.65, 0.5, 0.42, 0.36, 0.32, 0.28, 0.26, 0.22, 0.0, 0.1, 0.05], np.float32)


def split_mask(h: int, w: int, split: str, block: int = BLOCK) -> np.ndarray:
    """(h, w) bool: checkerboard of ``block`` px blocks; "train" = even blocks, "test" = odd."""
    yy, xx = np.mgrid[:h, :w]
    even = ((yy // block + xx // block) % 2) == 0
    return even if split == "train" else ~even


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a - b) / np.maximum(a + b, 1e-6)


def spectral_classes(s2: np.ndarray) -> dict[str, np.ndarray]:
    """(13, H, W) L1C x 10000 -> bool (H, W) masks "forest", "bare", "other" (disjoint)."""
    s2 = np.asarray(s2, np.float32)
    valid = defo.valid_mask(s2)
    nd = np.nan_to_num(defo.ndvi(s2), nan=-1)
    mndwi = np.nan_to_num(_nd(s2[B3], s2[B11]), nan=1)
    forest = valid & (nd >= defo.FOREST_NDVI)
    bare = valid & (nd >= 0) & (nd <= 0.2) & (s2[B11] > s2[B8]) & (mndwi < 0) & (s2[B2] < 3000)
    other = valid & ~forest & ~bare
    return {"forest": forest, "bare": bare, "other": other}


def spectral_pools(s2: np.ndarray, region: np.ndarray) -> dict[str, np.ndarray]:
    """Real spectra (n, 13) float32 per class, only from pixels where ``region`` is True."""
    s2 = np.asarray(s2, np.float32)
    pools = {k: s2[:, m & region].T.copy() for k, m in spectral_classes(s2).items()}
    nd = defo.ndvi(pools["other"].T[:, :, None])[:, 0]
    pools["pasture"] = pools["other"][(nd >= 0.15) & (nd < 0.4)]
    return pools


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-9)


def event_shapes(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """Union of ``n`` random clearing shapes in a (size, size) bool mask."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = np.zeros((size, size), bool)
    for _ in range(n):
        kind = rng.choice(["ellipse", "rect", "road", "blob"], p=[0.3, 0.3, 0.15, 0.25])
        cy, cx = rng.uniform(0, size, 2)
        th = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        if kind == "ellipse":
            a, b = rng.uniform(2, size / 4, 2)
            m = (u / a) ** 2 + (v / b) ** 2 <= 1
        elif kind == "rect":
            a, b = rng.uniform(1.5, size / 6, 2)
            m = (np.abs(u) <= a) & (np.abs(v) <= b)
        elif kind == "road":
            half_len, half_w = rng.uniform(size / 6, size / 2), rng.uniform(0.5, 1.5)
            m = (np.abs(u) <= half_len) & (np.abs(v) <= half_w)
        else:
            r = rng.uniform(4, size / 4)
            m = ((u**2 + v**2) <= r**2) & (_smooth(rng, (size, size), 2.0) > -0.3)
        out |= m
    return out


def perturb(x: np.ndarray, rng: np.random.Generator, seasonal: bool = True) -> np.ndarray:
    """Post-scene radiometry on (13, H, W) x 10000: vegetation seasonal gain, scene gain, haze, noise."""
    x = x.astype(np.float32, copy=True)
    if seasonal:
        veg = np.nan_to_num(defo.ndvi(x), nan=0) > 0.3
        g = rng.uniform(0.85, 1.15)
        x[B5][veg] *= 1 + (g - 1) / 2
        for b in range(B5 + 1, B8A + 1):
            x[b][veg] *= g
    x *= rng.uniform(0.92, 1.08)
    if rng.random() < 0.5:
        x += rng.uniform(0, 300) * HAZE_WEIGHT[:, None, None]
    return add_noise(x, rng)


def add_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor-like noise: sigma = 1 % of the value + 10 DN, clipped at 1 DN."""
    return np.maximum(x + rng.standard_normal(x.shape).astype(np.float32) * (0.01 * np.abs(x) + 10), 1)


def synth_pair(
    pools: dict[str, np.ndarray], rng: np.random.Generator, size: int = SCENE, p_event: float = 0.8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic (pre, post, label) triple: (13, size, size) float32 x 2 and (size, size) bool."""
    n = size * size
    stands = _smooth(rng, (size, size), rng.uniform(3, 8))
    stands = stands > np.quantile(stands, 1 - rng.uniform(0.3, 0.9))
    pre = pools["other"][rng.integers(0, len(pools["other"]), n)].T.reshape(13, size, size).copy()
    pre[:, stands] = pools["forest"][rng.integers(0, len(pools["forest"]), stands.sum())].T
    post = pre.copy()
    crop = (_smooth(rng, (size, size), 3) > rng.uniform(0.3, 1.2)) & ~stands
    post[:, crop] = pools["other"][rng.integers(0, len(pools["other"]), crop.sum())].T
    n_events = int(rng.integers(1, 5)) if rng.random() < p_event else 0
    events = event_shapes(rng, size, n_events) & stands
    frac = np.zeros((size, size), np.float32)
    # Cleared fraction of the pixel: whole clearing, or partial (residual canopy) clearing.
    frac[events] = 1.0 if rng.random() < 0.7 else rng.uniform(0.5, 0.9)
    edge = events & ~ndimage.binary_erosion(events)
    frac[edge] = rng.uniform(0.3, 1.0, edge.sum())
    # New cover: bare soil, or sparse regrowth / pasture (low-NDVI "other" spectra).
    cover = pools["pasture"] if rng.random() < 0.3 else pools["bare"]
    new = cover[rng.integers(0, len(cover), events.sum())].T
    post[:, events] = frac[events] * new + (1 - frac[events]) * post[:, events]
    post = perturb(post, rng)
    pre = add_noise(pre, rng)
    label = events & (frac >= 0.5) & defo.forest_mask(pre)
    return pre, post, label


def real_paste_pair(
    s2: np.ndarray, region: np.ndarray, rng: np.random.Generator, n_events: int = 8, win: int = 24
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole real chip as pre; post has forest pixels of ``n_events`` windows (inside ``region``)
    replaced by the co-located pixels of real bare windows (inside ``region``), then ``perturb``."""
    pre = np.asarray(s2, np.float32)
    cls = spectral_classes(pre)
    forest, bare = cls["forest"], cls["bare"]
    sw = np.lib.stride_tricks.sliding_window_view
    inside = sw(region, (win, win)).all((-1, -2))
    f_frac = sw(forest, (win, win)).mean((-1, -2))
    b_frac = sw(bare, (win, win)).mean((-1, -2))
    targets = np.argwhere(inside & (f_frac >= 0.3))
    donors = np.argwhere(inside & (b_frac >= 0.5))
    if len(targets) == 0 or len(donors) == 0:
        raise ValueError("no forest target or bare donor windows in region")
    post = pre.copy()
    label = np.zeros(pre.shape[1:], bool)
    used = np.zeros(pre.shape[1:], bool)
    for ty, tx in targets[rng.permutation(len(targets))]:
        if n_events == 0:
            break
        if used[ty : ty + win, tx : tx + win].any():
            continue
        dy, dx = donors[rng.integers(len(donors))]
        sel = forest[ty : ty + win, tx : tx + win] & bare[dy : dy + win, dx : dx + win]
        tgt = post[:, ty : ty + win, tx : tx + win]
        tgt[:, sel] = pre[:, dy : dy + win, dx : dx + win][:, sel]
        label[ty : ty + win, tx : tx + win] |= sel
        used[ty : ty + win, tx : tx + win] = True
        n_events -= 1
    return pre, perturb(post, rng), label


def _forest_pixels(pre: np.ndarray, post: np.ndarray, label: np.ndarray, forest_ndvi: float):
    f = pixel_features(torch.from_numpy(pre[None]), torch.from_numpy(post[None]))[0]
    keep = defo.forest_mask(pre, forest_ndvi) & defo.valid_mask(post)
    return f[:, torch.from_numpy(keep)].T, torch.from_numpy(label[keep].astype(np.float32))


def make_training_set(pools, n_scenes: int, seed: int, size: int = SCENE, forest_ndvi: float = defo.FOREST_NDVI):
    """Features (P, 48) and labels (P,) of the forest pixels of ``n_scenes`` synthetic pairs."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n_scenes):
        x, y = _forest_pixels(*synth_pair(pools, rng, size), forest_ndvi)
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def train(
    s2: np.ndarray,
    n_scenes: int = 400,
    epochs: int = 8,
    seed: int = 0,
    hidden: int = 64,
    lr: float = 3e-3,
    batch: int = 4096,
    log=print,
) -> tuple[DeforestationNet, dict]:
    """Fit ``DeforestationNet`` on synthetic pairs from the train blocks of ``s2``."""
    torch.manual_seed(seed)
    pools = spectral_pools(s2, split_mask(*s2.shape[1:], "train"))
    x, y = make_training_set(pools, n_scenes, seed)
    model = DeforestationNet(hidden=hidden)
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    lossf = torch.nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(seed)
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        tot = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            logit = model.logits_flat(x[idx])
            loss = lossf(logit, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        sched.step()
        log(f"epoch {ep + 1}/{epochs} bce={tot / len(x):.4f}")
    model.eval()
    info = {"train_scenes": n_scenes, "scene_px": SCENE, "train_forest_pixels": len(x),
            "train_positive_fraction": float(y.mean()), "epochs": epochs, "seed": seed, "hidden": hidden,
            "pool_sizes_train": {k: len(v) for k, v in pools.items()}}
    return model, info


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    pixels: int = 0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        self.tp += int((pred & truth).sum())
        self.fp += int((pred & ~truth).sum())
        self.fn += int((~pred & truth).sum())
        self.pixels += pred.size

    def metrics(self) -> dict:
        p = self.tp / max(self.tp + self.fp, 1)
        r = self.tp / max(self.tp + self.fn, 1)
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(p + r, 1e-12), 4),
                "iou": round(self.tp / max(self.tp + self.fp + self.fn, 1), 4),
                "positives": self.tp + self.fn, "pixels": self.pixels}


def evaluate(
    s2: np.ndarray,
    model: DeforestationNet,
    n_scenes: int = 150,
    seed: int = 1,
    n_paste: int = 10,
    threshold: float = defo.DEFAULT_THRESHOLD,
) -> dict:
    """Held-out metrics (test blocks only) for the learned model and the index baseline."""
    region = split_mask(*s2.shape[1:], "test")
    pools = spectral_pools(s2, region)
    rng = np.random.default_rng(seed)
    res: dict = {"threshold": threshold, "pool_sizes_test": {k: len(v) for k, v in pools.items()}}

    def run(name: str, pairs) -> None:
        learned, base = Counts(), Counts()
        for pre, post, label in pairs:
            learned.add(defo.loss_probability(pre, post, model) >= threshold, label)
            base.add(defo.change_baseline(pre, post, forest_ndvi=float(model.forest_ndvi)), label)
        res[name] = {"learned": learned.metrics(), "baseline_dnbr_dndvi": base.metrics()}

    run("synthetic", (synth_pair(pools, rng) for _ in range(n_scenes)))
    run("real_paste", (real_paste_pair(s2, region, rng) for _ in range(n_paste)))

    # No-change pairs: any flagged pixel is a false alarm.
    def nochange(pairs) -> dict:
        n_forest = flagged_l = flagged_b = 0
        for pre, post in pairs:
            fm = defo.forest_mask(pre)
            n_forest += int(fm.sum())
            flagged_l += int((defo.loss_probability(pre, post, model) >= threshold).sum())
            flagged_b += int(defo.change_baseline(pre, post).sum())
        return {"forest_pixels": n_forest, "learned_flagged_fraction_of_forest": round(flagged_l / max(n_forest, 1), 5),
                "baseline_flagged_fraction_of_forest": round(flagged_b / max(n_forest, 1), 5)}

    def synth_nochange():
        for _ in range(n_scenes // 3):
            pre, post, _ = synth_pair(pools, rng, p_event=0.0)
            yield pre, post

    chip = np.asarray(s2, np.float32)
    res["nochange_synthetic"] = nochange(synth_nochange())
    res["nochange_real_chip_perturbed"] = nochange((chip, perturb(chip, rng)) for _ in range(3))
    res["nochange_identical"] = nochange([(chip, chip.copy())])
    # Out of the training ranges (gain 0.85-1.15, haze <= 300 DN): browning of all vegetation
    # (red-edge/NIR x veg_gain, e.g. drought or leaf-off) and/or haze, no loss.
    res["nochange_stress"] = [
        {"veg_gain": g, "haze_dn": h, **nochange([(chip, stress(chip, veg_gain=g, haze_dn=h))])}
        for g, h in ((0.75, 600), (1.0, 2000), (0.6, 0), (0.5, 0))
    ]
    return res


def stress(x: np.ndarray, veg_gain: float, haze_dn: float) -> np.ndarray:
    """Deterministic radiometric stress beyond the training ranges (no loss added)."""
    x = x.astype(np.float32, copy=True)
    veg = np.nan_to_num(defo.ndvi(x), nan=0) > 0.3
    x[B5][veg] *= 1 + (veg_gain - 1) / 2
    for b in range(B5 + 1, B8A + 1):
        x[b][veg] *= veg_gain
    return x + haze_dn * HAZE_WEIGHT[:, None, None]


def _read(path: str) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read().astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m terrawatch_research.train.deforestation", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    default_s2 = str(defo.REPO_ROOT.parent / "shared" / "data" / "sen1floods11" / "Spain_7370579_S2Hand.tif")
    t = sub.add_parser("train", help="train on synthetic-from-real pairs, then evaluate on held-out pairs")
    t.add_argument("--s2", default=default_s2)
    t.add_argument("--out", default=str(defo.DEFAULT_WEIGHTS))
    t.add_argument("--scenes", type=int, default=400)
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    e = sub.add_parser("eval", help="held-out metrics of saved weights")
    e.add_argument("--s2", default=default_s2)
    e.add_argument("--weights", default=str(defo.DEFAULT_WEIGHTS))
    e.add_argument("--scenes", type=int, default=150)
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    s2 = _read(a.s2)
    t0 = time.time()
    if a.cmd == "train":
        model, info = train(s2, n_scenes=a.scenes, epochs=a.epochs, seed=a.seed, log=lambda m: print(m, file=sys.stderr))
        info["train_seconds"] = round(time.time() - t0, 1)
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out)
        info["eval"] = evaluate(s2, model)
        info["source_chip"] = Path(a.s2).name
        info["command"] = "python -m terrawatch_research.train.deforestation " + " ".join(argv or sys.argv[1:])
        out.with_name("metrics.json").write_text(json.dumps(info, indent=1) + "\n")
        print(json.dumps(info))
    else:
        res = evaluate(s2, defo.load_model(a.weights), n_scenes=a.scenes, seed=a.seed)
        res["seconds"] = round(time.time() - t0, 1)
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
