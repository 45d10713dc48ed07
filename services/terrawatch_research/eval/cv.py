"""Leave-one-event-out (LOEO) cross-validation of S1 water models on real-dB Sen1Floods11 chips.

``cross_validate(data, candidates)``: the chips under ``data`` (``sen1floods11-extra``) are grouped
by event (chip id prefix: Ghana x2, Mekong, Nigeria, Somalia, Spain_6860600, USA). For each event,
*trained* candidates are trained on the chips of all other events and predict the held-out event;
*fixed* candidates (thresholds, the adaptive estimate, a shipped network) just predict. Per fold:
TP/FP/FN over labelled pixels (label -1 excluded), IoU (``None`` when the fold has no water and no
false alarm), and the predicted water share of valid pixels (the dry-chip check). Pooled figures:
``pooled_iou`` = micro IoU over all folds (sum of counts), ``mean_fold_iou`` = mean over folds with
water. Separate columns (never used for training a fold): the Spain validation chip
(``Spain_7370579``), the ETCI 2021 and OMBRIA S1 holdouts, each predicted by the candidate trained
on all real-dB chips except the Spain event.

Candidates (:data:`CANDIDATES`): a name -> ``("fixed", predict(s1_db) -> prob)`` or
``("trained", train kwargs for terrawatch_research.train.flood_s1_featnet.train_net)``; ``+`` joins two
candidates into the GFM-style majority ensemble of :func:`terrawatch.ml.ensemble.combine`
(2 members: ties broken by their mean probability).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from terrawatch.settings import REPO_ROOT
from terrawatch_research.eval.metrics import confusion, scores

REPO = REPO_ROOT
DATA = Path(os.environ.get("TERRAWATCH_SHARED_DATA", REPO.parent / "shared" / "data"))
VALIDATION_ID = "Spain_7370579"


def _otsu(x):
    from terrawatch.ml.baselines import otsu_water_s1
    return otsu_water_s1(x)


def _adaptive(x):
    from terrawatch.ml.adaptive_s1 import adaptive_water_s1
    return adaptive_water_s1(x)


def _served(grow: bool) -> Callable[[np.ndarray], np.ndarray]:
    def predict(x):
        from terrawatch.ml import flood_s1
        from terrawatch.ml.registry import latest_version_dir
        if "served" not in _NETS:
            _NETS["served"] = flood_s1.load_net(latest_version_dir(flood_s1.NAME) / "model.pt")
        return flood_s1.predict_batch(_NETS["served"], x[None], grow=grow)[0]
    return predict


def _gated(x):
    """flood-s1 gated by the per-scene bimodality test: a non-bimodal scene keeps only water whose
    filtered VV/VH mean is below the adaptive estimate's fallback (-23 dB)."""
    from terrawatch.ml.adaptive_s1 import FALLBACK_DB, bimodal_threshold
    from terrawatch.ml.baselines import water_signal_s1
    p = _served(True)(x)
    sig, valid, kind = water_signal_s1(x, 5)
    t, _ = bimodal_threshold(sig, valid, kind)
    return p if t is not None else np.where(sig < FALLBACK_DB[kind], p, np.minimum(p, 0.49))


_NETS: dict = {}
DEFAULT_MODELS = "otsu-s1,adaptive-s1,flood-s1,flood-s1-grow"

CANDIDATES: dict[str, tuple[str, object]] = {
    "otsu-s1": ("fixed", _otsu),
    "adaptive-s1": ("fixed", _adaptive),
    # the shipped U-Net (trained on 8-bit ETCI/OMBRIA renderings, never on these chips): as served since
    # issue 27 (no post-processing; "unet-raw" is the same), and with the hysteresis growing served before
    "unet-raw": ("fixed", _served(False)),
    "flood-s1": ("fixed", _served(False)),
    "flood-s1-grow": ("fixed", _served(True)),  # + hysteresis region growing (terrawatch.ml.flood_s1.grow_water)
    "flood-s1-gated": ("fixed", _gated),
    # trained per fold on the other events' real-dB chips (terrawatch_research.train.flood_s1_featnet)
    "featnet": ("trained", {}),
    "featnet-pix": ("trained", {"arch": "pix"}),
    # the shipped U-Net fine-tuned per fold on the other events' real-dB chips, renderings replayed
    # (terrawatch_research.train.flood_s1_finetune), predicted with the served growing
    "unet-ft": ("trained", {"trainer": "finetune"}),
}


def _predictor(name: str, train_chips: list[dict], cache: dict, threads: int, steps: int | None) -> Callable:
    if "+" in name:
        members = [_predictor(n, train_chips, cache, threads, steps) for n in name.split("+")]

        def ens(x):
            from terrawatch.ml.ensemble import WaterEstimate, combine
            est = [WaterEstimate(str(i), m(x)) for i, m in enumerate(members)]
            r = combine(est, nodata=np.isnan(x).all(0))
            p = r.likelihood.astype(np.float32) / 100.0
            return np.where(r.likelihood == 255, np.nan, p)
        return ens
    kind, spec = CANDIDATES[name]
    if kind == "fixed":
        return spec
    key = (name, tuple(c["id"] for c in train_chips))
    spec = dict(spec)
    finetuned = spec.pop("trainer", None) == "finetune"
    if key not in cache:
        if finetuned:
            from terrawatch_research.train.flood_s1_finetune import RECIPE, finetune as train_net
        else:
            from terrawatch_research.train.flood_s1_featnet import RECIPE, train_net
        kw = {**RECIPE, **spec}
        if steps:
            kw["steps"] = steps
        cache[key] = train_net(train_chips, threads=threads, **kw)
    net = cache[key]
    from terrawatch.ml import flood_s1
    return lambda x: flood_s1.predict_batch(net, x[None], grow=finetuned)[0]


N_BINS = 10


def _counts(prob: np.ndarray, label: np.ndarray) -> dict:
    pred = np.nan_to_num(prob, nan=0.0) >= 0.5
    valid = label >= 0
    tp, fp, fn, _ = confusion(pred, label == 1, valid)
    p = np.clip(np.nan_to_num(prob, nan=0.0)[valid], 0.0, 1.0)
    b = np.minimum((p * N_BINS).astype(int), N_BINS - 1)
    n_bin = np.bincount(b, minlength=N_BINS)
    w_bin = np.bincount(b, weights=(label[valid] == 1).astype(float), minlength=N_BINS)
    return {"tp": tp, "fp": fp, "fn": fn, "valid": int(valid.sum()), "pred_water": int((pred & valid).sum()),
            "water": int(((label == 1) & valid).sum()),
            **{f"n{i}": int(n_bin[i]) for i in range(N_BINS)}, **{f"w{i}": int(w_bin[i]) for i in range(N_BINS)}}


def reliability(counts: dict) -> list[dict]:
    """Pooled reliability table: per probability bin, pixels and observed water share."""
    out = []
    for i in range(N_BINS):
        n, w = counts.get(f"n{i}", 0), counts.get(f"w{i}", 0)
        out.append({"bin": f"{i / N_BINS:.1f}-{(i + 1) / N_BINS:.1f}", "pixels": n,
                    "water_share": round(w / n, 4) if n else None})
    return out


def _summ(c: dict) -> dict:
    iou = None if c["tp"] + c["fp"] + c["fn"] == 0 else round(scores(c["tp"], c["fp"], c["fn"])["iou"], 4)
    s = scores(c["tp"], c["fp"], c["fn"])
    return {**c, "iou": iou, "precision": None if s["precision"] != s["precision"] else round(s["precision"], 4),
            "recall": None if s["recall"] != s["recall"] else round(s["recall"], 4),
            "pred_share": round(c["pred_water"] / max(c["valid"], 1), 5)}


def _add(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) + b[k] for k in b}


def _holdout(dataset: str, root: Path, predict: Callable, limit: int | None = None) -> float | None:
    from terrawatch.ml.datasets import DATASETS
    if not root.exists():
        return None
    ds = DATASETS[dataset](root, split="holdout")
    tot: dict = {}
    for i in range(len(ds) if limit is None else min(limit, len(ds))):
        s = ds[i]
        tot = _add(tot, _counts(predict(s["s1"]), s["mask"]))
    return _summ(tot)["iou"]


def cross_validate(candidates: list[str], data: Path | None = None, *, threads: int = 2, steps: int | None = None,
                   holdouts: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """LOEO over the real-dB chips for each candidate; returns {candidates: {name: {folds, pooled...}}}."""
    from terrawatch.ml.datasets import Sen1Floods11
    from terrawatch_research.train.flood_s1_featnet import load_chips
    unknown = sorted({m for c in candidates for m in c.split("+")} - set(CANDIDATES))
    if unknown:
        raise ValueError(f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(CANDIDATES)} (a+b = ensemble)")
    data = Path(data or DATA / "sen1floods11-extra")
    chips = load_chips(data, exclude_events=())
    events = sorted({c["event"] for c in chips})
    val_root = data.parent / "sen1floods11"
    val = [s for s in Sen1Floods11(val_root)] if val_root.exists() else []
    val = [s for s in val if s["id"] == VALIDATION_ID]
    cache: dict = {}
    out: dict = {"data": str(data), "events": events, "chips": {e: [c["id"] for c in chips if c["event"] == e] for e in events},
                 "candidates": {}}
    for name in candidates:
        folds, tot = {}, {}
        for ev in events:
            train = [c for c in chips if c["event"] != ev]
            predict = _predictor(name, train, cache, threads, steps)
            fc: dict = {}
            for c in chips:
                if c["event"] == ev:
                    fc = _add(fc, _counts(predict(c["s1"]), c["mask"]))
            folds[ev] = _summ(fc)
            tot = _add(tot, fc)
            if log:
                log(f"{name} {ev} {folds[ev]}")
        res = {"folds": folds, "pooled": _summ(tot), "reliability": reliability(tot)}
        fi = [f["iou"] for f in folds.values() if f["water"] > 0 and f["iou"] is not None]
        res["mean_fold_iou"] = round(float(np.mean(fi)), 4) if fi else None
        final = _predictor(name, [c for c in chips if c["event"] != "Spain"], cache, threads, steps)
        if val:
            res["spain_7370579"] = _summ(_counts(final(val[0]["s1"]), val[0]["mask"]))["iou"]
        if holdouts:
            res["etci_holdout"] = _holdout("etci2021", DATA / "etci2021", final)
            res["ombria_holdout"] = _holdout("ombria-s1", DATA / "ombria" / "OmbriaS1" / "train", final)
        out["candidates"][name] = res
        if log:
            log(f"{name} pooled {res['pooled']['iou']} mean_fold {res['mean_fold_iou']} spain {res.get('spain_7370579')}")
    return out


def _f(v) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def format_table(result: dict, baseline: str = "otsu-s1") -> str:
    """Per-fold IoU (and predicted water share on dry folds) per candidate, pooled figures, holdout columns."""
    events = result["events"]
    cands = result["candidates"]
    lines = ["LOEO on real-dB Sen1Floods11 chips (" + result["data"] + "); IoU of water, label -1 excluded;",
             "dry folds (no labelled water) show the predicted water share of valid pixels in [brackets].",
             ""]
    head = f"{'candidate':<28}" + "".join(f"{e:>10}" for e in events) + f"{'pooled':>9}{'mean':>8}{'Spain*':>8}{'ETCI':>7}{'OMBRIA':>8}"
    lines.append(head)
    for name, r in cands.items():
        row = f"{name:<28}"
        for e in events:
            f = r["folds"][e]
            row += f"{('[' + format(f['pred_share'] * 100, '.2f') + '%]') if f['water'] == 0 else _f(f['iou']):>10}"
        row += f"{_f(r['pooled']['iou']):>9}{_f(r['mean_fold_iou']):>8}{_f(r.get('spain_7370579')):>8}"
        row += f"{_f(r.get('etci_holdout')):>7}{_f(r.get('ombria_holdout')):>8}"
        lines.append(row)
    if baseline in cands:
        b = cands[baseline]
        lines.append("")
        for name, r in cands.items():
            if name == baseline:
                continue
            d = [(e, (r["folds"][e]["iou"] or 0) - (b["folds"][e]["iou"] or 0)) for e in events if r["folds"][e]["water"] > 0]
            worst = min(d, key=lambda t: t[1]) if d else ("-", 0.0)
            wins = sum(1 for _, v in d if v > 0)
            lines.append(f"{name}: pooled {r['pooled']['iou'] - b['pooled']['iou']:+.3f} vs {baseline}; "
                         f"wins {wins}/{len(d)} wet folds; worst fold {worst[0]} {worst[1]:+.3f}")
    lines.append("* Spain_7370579: validation chip, never trained on; predicted by the candidate trained on all non-Spain chips.")
    return "\n".join(lines)


def run_nested(data: Path | None = None, *, holdouts: bool = True, json_out: Path | None = None,
               log: Callable[[str], None] | None = None) -> str:
    """``terrawatch cv --nested``: nested LOEO of the flood_s1 post-processing with every column and the adoption
    rule (:mod:`terrawatch_research.eval.nested`); returns the printed table."""
    from terrawatch_research.eval import nested
    samples = nested.load_samples(Path(data or DATA / "sen1floods11-extra"), DATA, _served(False),
                                  holdouts=holdouts, log=log)
    res = nested.run(samples)
    if json_out:
        Path(json_out).write_text(json.dumps(res, indent=1))
    return nested.format_table(res)


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="LOEO cross-validation of S1 water models on real-dB chips")
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--no-holdouts", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--nested", action="store_true",
                    help="nested LOEO of the flood_s1 post-processing, every column and the adoption rule "
                         "(terrawatch_research.eval.nested); --models is ignored")
    a = ap.parse_args(argv)
    if a.nested:
        print(run_nested(a.data, holdouts=not a.no_holdouts, json_out=a.json, log=lambda s: print(s, flush=True)))
        return 0
    res = cross_validate(a.models.split(","), a.data, threads=a.threads, steps=a.steps, holdouts=not a.no_holdouts,
                         log=lambda s: print(s, flush=True))
    print(format_table(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
