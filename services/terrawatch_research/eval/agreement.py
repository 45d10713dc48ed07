"""Agreement of independent S1 water estimates as a likelihood: reliability and precision per level (issue 27).

``python -m terrawatch_research.eval.agreement [--json out.json]``. Three estimates per pixel, each a vote
(probability >= 0.5): the served network (``flood-s1``, no post-processing), the GFM-style adaptive threshold
(``adaptive-s1``) and change detection against the pre-event image (``change-s1``, only where a pre-event
image exists: the OMBRIA BEFORE renderings). For every data set and pooled, per agreement level (votes for
water / estimates available) the labelled pixels and the observed water share (= the precision of calling
those pixels water), plus the IoU of "at least k votes" maps. Nothing is fitted: this is the table from which
likelihood tiers can be defined by measured precision (models/flood_s1/README.md).

Data: the real-dB Sen1Floods11 chips (7 LOEO chips + the Spain validation chip; the network never trained on
them), the ETCI 2021 holdout and the OMBRIA-S1 holdout (never trained on; 8-bit renderings).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from terrawatch_research.eval.cv import DATA


def _votes(s: dict, net: Callable) -> list[np.ndarray]:
    from terrawatch.ml.adaptive_s1 import adaptive_water_s1
    from terrawatch.ml.change_s1 import change_water_s1
    p = np.nan_to_num(net(s["s1"]), nan=0.0)
    s["_net_prob"] = p
    v = [p >= 0.5, np.nan_to_num(adaptive_water_s1(s["s1"]), nan=0.0) >= 0.5]
    if "before" in s and np.isfinite(s["before"]).any():
        v.append(np.nan_to_num(change_water_s1(s["s1"], s["before"]), nan=0.0) >= 0.5)
    return v


def _samples(root: Path) -> dict[str, list[dict]]:
    from terrawatch.ml.datasets import DATASETS, Sen1Floods11
    out: dict[str, list[dict]] = {}
    chips = []
    for sub in ("sen1floods11-extra", "sen1floods11"):
        if (root / sub).exists():
            chips += [s for s in Sen1Floods11(root / sub)]
    out["real-dB chips (8)"] = chips
    for key, name, r in (("ETCI holdout", "etci2021", root / "etci2021"),
                         ("OMBRIA holdout", "ombria-s1", root / "ombria" / "OmbriaS1" / "train")):
        if r.exists():
            ds = DATASETS[name](r, split="holdout")
            out[key] = [ds[i] for i in range(len(ds))]
    return out


def measure(root: Path = DATA, log: Callable[[str], None] = print) -> dict:
    from terrawatch.inference.local import predict_water_s1
    res: dict = {}
    pooled: dict[str, list[int]] = {}
    for name, samples in _samples(root).items():
        levels: dict[str, list[int]] = {}
        patterns: dict[str, list[int]] = {}
        rel_n, rel_w = np.zeros(10, np.int64), np.zeros(10, np.int64)
        atleast: dict[int, list[int]] = {}
        for s in samples:
            v = _votes(s, predict_water_s1)
            lab = s["mask"]
            valid, water = lab >= 0, lab == 1
            k = np.sum(v, axis=0)
            b = np.minimum((np.clip(s["_net_prob"][valid], 0, 1) * 10).astype(int), 9)
            rel_n += np.bincount(b, minlength=10)
            rel_w += np.bincount(b, weights=water[valid].astype(float), minlength=10).astype(np.int64)
            n = len(v)
            for j in range(n + 1):
                sel = valid & (k == j)
                key = f"{j}/{n}"
                c = levels.setdefault(key, [0, 0])
                c[0] += int(sel.sum())
                c[1] += int((sel & water).sum())
                p = pooled.setdefault(key, [0, 0])
                p[0] += int(sel.sum())
                p[1] += int((sel & water).sum())
            for j in range(1, n + 1):
                pred = k >= j
                c = atleast.setdefault(j, [0, 0, 0])
                c[0] += int((pred & water & valid).sum())
                c[1] += int((pred & ~water & valid).sum())
                c[2] += int((~pred & water & valid).sum())
            # which estimates voted (N network, A adaptive, C change): precision of each combination
            names = "NAC"[:n]
            code = sum(vi.astype(np.int64) << b for b, vi in enumerate(v))
            for cval in range(1, 2 ** n):
                sel = valid & (code == cval)
                key = "+".join(names[b] for b in range(n) if cval >> b & 1) + f" of {n}"
                c = patterns.setdefault(key, [0, 0])
                c[0] += int(sel.sum())
                c[1] += int((sel & water).sum())
            # network alone for comparison
            c = atleast.setdefault(0, [0, 0, 0])
            c[0] += int((v[0] & water & valid).sum())
            c[1] += int((v[0] & ~water & valid).sum())
            c[2] += int((~v[0] & water & valid).sum())
        res[name] = {"levels": {k: {"pixels": a, "water_share": round(b / a, 4) if a else None}
                                for k, (a, b) in sorted(levels.items())},
                     "network_reliability": {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": [int(rel_n[i]),
                                             round(float(rel_w[i] / rel_n[i]), 4) if rel_n[i] else None] for i in range(10)},
                     "voters": {k: {"pixels": a, "water_share": round(b / a, 4) if a else None}
                                for k, (a, b) in sorted(patterns.items())},
                     "iou_at_least": {("network alone" if j == 0 else f">= {j} votes"): round(tp / max(tp + fp + fn, 1), 4)
                                      for j, (tp, fp, fn) in sorted(atleast.items())}}
        log(json.dumps({name: res[name]}))
    res["pooled"] = {k: {"pixels": a, "water_share": round(b / a, 4) if a else None} for k, (a, b) in sorted(pooled.items())}
    log(json.dumps({"pooled": res["pooled"]}))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    res = measure()
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
