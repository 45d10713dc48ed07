"""``python -m terrawatch_research.train.flood_s2 --root DIR``: measure flood-s2 and the flood ensemble.

flood-s2 has no trained parameters (see models/flood_s2/README.md): the only labelled S2 water
data here is the held-out Sen1Floods11 Spain chip, so there is nothing honest to train an S2
network on. This command instead reproduces every number of the model card on a Sen1Floods11
folder (``<id>_S1Hand.tif``, ``<id>_S2Hand.tif``, ``<id>_LabelHand.tif``): the S2 index models with
and without the cloud mask (hybrid s2cloudless + ukis-csmask, or the older csmask-only mask), the
S1 estimates, GFM-like ensembles of them (:mod:`terrawatch.ml.ensemble`, cloud mask from
:mod:`terrawatch.ml.cloud` on the whole chip) and the fused S1+S2 product (:mod:`terrawatch.ml.fusion`).
Prints one JSON object per line: {"model", "samples", "iou", "f1", "precision", "recall", "csi"}.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _estimates(s: dict) -> dict[str, tuple[str, np.ndarray]]:
    from terrawatch.ml.baselines import otsu_water_s1
    from terrawatch.ml.water_s2 import predict_mndwi_s2, predict_water_s2

    out: dict[str, tuple[str, np.ndarray]] = {"otsu-s1": ("s1", otsu_water_s1(s["s1"]))}
    try:
        from terrawatch.inference.local import predict_water_s1

        out["flood-s1"] = ("s1", predict_water_s1(s["s1"]))
    except FileNotFoundError:  # no trained S1 weights in models/flood_s1 yet
        pass
    if "s2" in s:
        from terrawatch.ml.water_s2 import _prepare, mndwi

        out["flood-s2"] = ("s2", predict_water_s2(s["s2"]))
        out["flood-s2 (csmask cloud mask)"] = ("s2", predict_water_s2(s["s2"], cloud_method="csmask"))
        out["flood-s2 (no cloud mask)"] = ("s2", predict_water_s2(s["s2"], mask_clouds=False))
        out["mndwi-s2"] = ("s2", predict_mndwi_s2(s["s2"]))
        m = mndwi(_prepare(s["s2"], 0.0))
        out["mndwi>0 (no cloud mask)"] = ("s2", np.where(np.isfinite(m), (m > 0).astype(np.float32), np.nan))
    return out


def _fused(s: dict, est: dict[str, tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The fused S1+S2 product (:mod:`terrawatch.ml.fusion`) with each cloud mask method."""
    from terrawatch.ml.cloud import cloud_layers
    from terrawatch.ml.fusion import fuse_s1_s2

    out = {}
    if "s2" not in s:
        return out
    for method in ("hybrid", "csmask"):
        cl = cloud_layers(s["s2"], method=method)
        for s1name in ("flood-s1", "otsu-s1"):
            if s1name in est:
                f = fuse_s1_s2(est[s1name][1], est["flood-s2 (no cloud mask)"][1], s2_cloud=cl.mask, s2_thin=cl.thin)
                out[f"fused({s1name}, flood-s2, {method} mask)"] = f.prob
    return out


def _ensembles(s: dict, est: dict[str, tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    from terrawatch.ml.cloud import cloud_mask
    from terrawatch.ml.ensemble import WaterEstimate, combine

    cloud = cloud_mask(s["s2"]) if "s2" in s else None
    members = {
        "ensemble(otsu-s1, flood-s2)": ["otsu-s1", "flood-s2 (no cloud mask)"],
        "ensemble(flood-s1, flood-s2)": ["flood-s1", "flood-s2 (no cloud mask)"],
        "ensemble(flood-s1, otsu-s1, flood-s2)": ["flood-s1", "otsu-s1", "flood-s2 (no cloud mask)"],
        "ensemble(flood-s1, otsu-s1, flood-s2, mndwi-s2)": ["flood-s1", "otsu-s1", "flood-s2 (no cloud mask)",
                                                             "mndwi-s2"],
    }
    out = {}
    for name, names in members.items():
        if all(n in est for n in names):
            ests = [WaterEstimate(n, est[n][1], est[n][0]) for n in names]
            out[name] = combine(ests, cloud=cloud).observed_water.astype(np.float32)
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return round(float((a & b).sum() / max(int((a | b).sum()), 1)), 4)


def measure_cloud_sample(npz: Path, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Cloud/shadow masks against the hand label of ukis-csmask's check scene (512x512, ~30 m,
    6 bands B2, B3, B4, B8, B11, B12; label 0 shadow, 4 cloud). s2cloudless needs B1, B5, B8A, B9,
    B10 too, which the scene lacks: its row substitutes them (B1 <- B2, B5 <- (B4 + B8) / 2,
    B8A <- B8, B9 <- 0.3 B8, B10 <- 0) and is indicative only, never a validation."""
    from terrawatch.ml.cloud import cloud_layers, s2cloudless_cloud

    d = np.load(npz)
    img, msk = d["img"].astype(np.float32), d["msk"][..., 0]
    tc, ts = msk == 4, msk == 0
    s2 = np.full((13, *img.shape[:2]), np.nan, np.float32)
    for i, band in zip((1, 2, 3, 7, 11, 12), range(6)):
        s2[i] = img[..., band] * 10000
    out = {}
    for method in ("csmask", "hybrid"):
        cl = cloud_layers(s2, gsd_m=30.0, method=method)
        out[method] = {"mask": f"{method} ({cl.cloud_source})", "cloud_iou": _iou(cl.cloud, tc),
                       "shadow_iou": _iou(cl.shadow, ts), "cloud_or_shadow_iou": _iou(cl.mask, tc | ts)}
    b2, b4, b8 = img[..., 0], img[..., 2], img[..., 3]
    sub = s2 / 10000
    sub[0], sub[4], sub[8], sub[9], sub[10] = b2, (b4 + b8) / 2, b8, 0.3 * b8, 0.0
    sub[10] = 1e-6  # B10 = 0 would read as no data
    _, m = s2cloudless_cloud(sub, gsd_m=30.0)
    out["s2cloudless (substituted bands)"] = {"mask": "s2cloudless, 5 of 10 bands substituted: indicative only",
                                              "cloud_iou": _iou(m, tc), "precision": _iou(m & tc, m),
                                              "recall": _iou(m & tc, tc)}
    for v in out.values():
        log(json.dumps(v))
    return out


def measure_simulated_cloud(root: Path, npz: Path, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Fused S1+S2 vs S2 alone when S2 loses the pixels under a real cloud/shadow footprint: the hand
    label of the ukis check scene (cloud or shadow, 30 % of pixels) laid over each Sen1Floods11 chip
    with S2 (a simulation of cloud cover, not a real cloudy acquisition)."""
    from terrawatch.ml.datasets.sen1floods11 import Sen1Floods11
    from terrawatch_research.eval.metrics import confusion, scores
    from terrawatch.ml.fusion import fuse_s1_s2, source_shares

    msk = np.load(npz)["msk"][..., 0]
    ds = Sen1Floods11(root)
    counts: dict[str, np.ndarray] = {}
    shares = {}
    for i in range(len(ds)):
        s = ds[i]
        if "s2" not in s:
            continue
        est = _estimates(s)
        h, w = s["mask"].shape
        cloud = np.zeros((h, w), bool)
        fh, fw = min(h, msk.shape[0]), min(w, msk.shape[1])
        cloud[:fh, :fw] = (msk[:fh, :fw] == 0) | (msk[:fh, :fw] == 4)
        p2 = est["flood-s2 (no cloud mask)"][1]
        preds = {"flood-s2 alone (NaN under cloud)": np.where(cloud, np.nan, p2)}
        for s1name in ("flood-s1", "otsu-s1"):
            if s1name in est:
                f = fuse_s1_s2(est[s1name][1], p2, s2_cloud=cloud)
                preds[f"fused({s1name}, flood-s2)"] = f.prob
                shares[s1name] = source_shares(f.source)
        for k, p in preds.items():
            c = confusion(np.nan_to_num(p, nan=0.0) >= 0.5, s["mask"] == 1, s["mask"] >= 0)
            counts[k] = counts.get(k, np.zeros(4, np.int64)) + np.asarray(c)
    results = {}
    for k, c in counts.items():
        results[k] = {"model": k, "simulated_cloud_share": round(float(cloud.mean()), 4),
                      **{m: round(v, 4) for m, v in scores(*c[:3]).items()}}
        log(json.dumps(results[k]))
    for k, v in shares.items():
        log(json.dumps({"fused_sources": k, **v}))
    return results


def reliability_table(prob: np.ndarray, label: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Per probability bin (0-0.1, ..., 0.9-1.0): labelled pixels and their observed water share.
    NaN (no estimate) and label -1 are left out."""
    v = (label >= 0) & np.isfinite(prob)
    p = np.clip(prob[v], 0.0, 1.0)
    b = np.minimum((p * n_bins).astype(int), n_bins - 1)
    n = np.bincount(b, minlength=n_bins)
    w = np.bincount(b, weights=(label[v] == 1).astype(float), minlength=n_bins)
    return [{"bin": f"{i / n_bins:.1f}-{(i + 1) / n_bins:.1f}", "pixels": int(n[i]),
             "water_share": round(float(w[i] / n[i]), 4) if n[i] else None} for i in range(n_bins)]


def measure(root: Path, limit: int | None = None,
            log: Callable[[str], None] = print) -> dict[str, dict]:
    from terrawatch.ml.datasets.sen1floods11 import Sen1Floods11
    from terrawatch_research.eval.metrics import confusion, scores

    ds = Sen1Floods11(root)
    n = len(ds) if limit is None else min(limit, len(ds))
    counts: dict[str, np.ndarray] = {}
    for i in range(n):
        s = ds[i]
        est = _estimates(s)
        if "s2" in s:
            from terrawatch.ml.water_s2 import _prepare, describe_threshold, mndwi, ndwi

            x = _prepare(s["s2"], 0.0)
            log(json.dumps({"chip": s.get("id", i), "mndwi_threshold": describe_threshold(mndwi(x)),
                            "ndwi_threshold": describe_threshold(ndwi(x))}))
        preds = {k: p for k, (_, p) in est.items()} | _ensembles(s, est) | _fused(s, est)
        for k in ("flood-s2", "fused(flood-s1, flood-s2, hybrid mask)"):
            if k in preds:
                log(json.dumps({"chip": s.get("id", i), "reliability": k,
                                "table": reliability_table(preds[k], s["mask"])}))
        label = s["mask"]
        for k, p in preds.items():
            c = confusion(np.nan_to_num(p, nan=0.0) >= 0.5, label == 1, label >= 0)
            counts[k] = counts.get(k, np.zeros(4, np.int64)) + np.asarray(c)
    results = {}
    for k, c in counts.items():
        sc = {m: round(v, 4) for m, v in scores(*c[:3]).items()}
        results[k] = {"model": k, "samples": n, **sc}
        log(json.dumps(results[k]))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m terrawatch_research.train.flood_s2", description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="Sen1Floods11-format folder")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--cloud-sample", type=Path,
                    help="ukis_sentinel2.npz: also measure the cloud masks and the fused product under its cloud footprint")
    a = ap.parse_args(argv)
    measure(a.root, a.limit)
    if a.cloud_sample:
        measure_cloud_sample(a.cloud_sample)
        measure_simulated_cloud(a.root, a.cloud_sample)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
