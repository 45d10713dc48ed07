"""``python -m terrawatch_research.eval.change``: S1 change detection on OMBRIA's BEFORE/AFTER pairs.

OMBRIA-S1 is the only data here with a pre-event acquisition. Its images are 8-bit renderings with
an approximate per-image dB mapping (:mod:`terrawatch.ml.datasets.png_db`), VV only, and masks from
Copernicus EMS (flooded = new water): a separate column, never a real-dB result. Prints one JSON
line per model with pooled IoU, precision and recall over the split (label -1 excluded) for
``change-s1`` (:func:`terrawatch.ml.change_s1.change_water_s1`), the single-image estimates on the
AFTER image and what the pipeline serves with a pre-event scene, ``flood-s1 + change gate``
(:func:`terrawatch.ml.change_s1.gate_by_change`), with its per-pair wins and losses against ``flood-s1``. ``--split holdout`` (61 samples numbered >= 700, never trained on by flood-s1) is
the default; ``all`` (624) only makes sense for the training-free estimates.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from terrawatch.settings import REPO_ROOT
from terrawatch_research.eval.metrics import confusion, scores

REPO = REPO_ROOT
DATA = Path(os.environ.get("TERRAWATCH_SHARED_DATA", REPO.parent / "shared" / "data"))


def _models(with_network: bool) -> dict:
    from terrawatch.ml.adaptive_s1 import adaptive_water_s1
    from terrawatch.ml.baselines import otsu_water_s1
    from terrawatch.ml.change_s1 import change_water_s1

    out = {
        "change-s1 (pre/post)": lambda s: change_water_s1(s["s1"], s["before"]),
        "otsu-s1 (post only)": lambda s: otsu_water_s1(s["s1"]),
        "adaptive-s1 (post only)": lambda s: adaptive_water_s1(s["s1"]),
    }
    if with_network:
        from terrawatch.inference.local import predict_water_s1

        from terrawatch.ml.change_s1 import gate_by_change

        out["flood-s1 (post only)"] = lambda s: predict_water_s1(s["s1"])
        out["flood-s1 + change gate (pre/post)"] = lambda s: gate_by_change(predict_water_s1(s["s1"]), s["s1"],
                                                                            s["before"])
    return out


def measure(root: Path, split: str = "holdout", limit: int | None = None, with_network: bool = True,
            log=print) -> dict[str, dict]:
    from terrawatch.ml.datasets.ombria import OmbriaS1

    ds = OmbriaS1(root, split=split)
    models = _models(with_network)
    counts = {k: np.zeros(3, np.int64) for k in models}
    wins = {k: [0, 0] for k in models}  # pairs where the model's IoU is above / below flood-s1's
    n = len(ds) if limit is None else min(limit, len(ds))
    used = 0
    for i in range(n):
        s = ds[i]
        if not np.isfinite(s["before"]).any():
            continue
        used += 1
        per = {}
        for k, f in models.items():
            c = np.asarray(confusion(np.nan_to_num(f(s), nan=0.0) >= 0.5, s["mask"] == 1, s["mask"] >= 0)[:3])
            counts[k] += c
            per[k] = c[0] / max(c.sum(), 1) if c.sum() else None
        ref = per.get("flood-s1 (post only)")
        for k, iou in per.items():
            if ref is not None and iou is not None and iou != ref:
                wins[k][0 if iou > ref else 1] += 1
    out = {}
    for k, c in counts.items():
        out[k] = {"model": k, "dataset": f"OMBRIA-S1 {split} (8-bit renderings)", "samples": used,
                  **{m: round(v, 4) for m, v in scores(*c).items()},
                  **({"pairs_won_lost_vs_flood_s1": wins[k]} if with_network else {})}
        log(json.dumps(out[k]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m terrawatch_research.eval.change", description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=DATA / "ombria" / "OmbriaS1" / "train")
    ap.add_argument("--split", default="holdout", choices=("holdout", "all", "train"))
    ap.add_argument("--limit", type=int)
    ap.add_argument("--no-network", action="store_true", help="skip flood-s1 (e.g. with --split all)")
    a = ap.parse_args(argv)
    measure(a.root, a.split, a.limit, with_network=not a.no_network)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
