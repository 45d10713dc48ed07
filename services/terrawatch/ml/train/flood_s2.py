"""``python -m terrawatch.ml.train.flood_s2 --root DIR``: measure flood-s2 and the flood ensemble.

flood-s2 has no trained parameters (see models/flood_s2/README.md): the only labelled S2 water
data here is the held-out Sen1Floods11 Spain chip, so there is nothing honest to train an S2
network on. This command instead reproduces every number of the model card on a Sen1Floods11
folder (``<id>_S1Hand.tif``, ``<id>_S2Hand.tif``, ``<id>_LabelHand.tif``): the S2 index models with
and without the cloud mask, the S1 estimates, and GFM-like ensembles of them
(:mod:`terrawatch.ml.ensemble`, cloud mask from :mod:`terrawatch.ml.cloud` on the whole chip).
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
        out["flood-s2"] = ("s2", predict_water_s2(s["s2"]))
        out["flood-s2 (no cloud mask)"] = ("s2", predict_water_s2(s["s2"], mask_clouds=False))
        out["mndwi-s2"] = ("s2", predict_mndwi_s2(s["s2"]))
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


def measure(root: Path, limit: int | None = None,
            log: Callable[[str], None] = print) -> dict[str, dict]:
    from terrawatch.ml.datasets.sen1floods11 import Sen1Floods11
    from terrawatch.ml.eval.metrics import confusion, scores

    ds = Sen1Floods11(root)
    n = len(ds) if limit is None else min(limit, len(ds))
    counts: dict[str, np.ndarray] = {}
    for i in range(n):
        s = ds[i]
        est = _estimates(s)
        preds = {k: p for k, (_, p) in est.items()} | _ensembles(s, est)
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
    ap = argparse.ArgumentParser(prog="python -m terrawatch.ml.train.flood_s2", description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="Sen1Floods11-format folder")
    ap.add_argument("--limit", type=int)
    a = ap.parse_args(argv)
    measure(a.root, a.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
