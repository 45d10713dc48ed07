"""Nested cross-validation of the ``flood_s1`` post-processing, every column at once (issue 27).

Why: a hyper-parameter picked on the folds that then report it flatters itself (hysteresis growing
was picked that way and lost 0.04-0.1 IoU on held-out 8-bit tiles). Here the network is fixed (the
served ``models/flood_s1`` weights, never trained on any column below) and only its post-processing
is chosen, by a procedure that never sees the data that scores it:

- **outer loop**: leave one event out over the real-dB Sen1Floods11 chips (``sen1floods11-extra``:
  Ghana x2, Mekong, Nigeria, Somalia, Spain_6860600, USA);
- **inner selection**: among the configurations of :data:`FAMILY`, the one with the highest pooled
  IoU over the *training* events of that fold (ties: the simpler, earlier one in the family) is
  applied to the held-out event. The held-out columns (the Spain validation chip ``Spain_7370579``, the
  ETCI 2021 and OMBRIA-S1 holdout splits, 8-bit renderings) get the configuration selected on all
  real-dB chips except the Spain event. ``nested`` in the table is that procedure, not a configuration.
- **every configuration** is also reported on every column (LOEO folds, pooled, Spain*, ETCI, OMBRIA):
  this is the table a change is adopted from, with the **adoption rule** (:func:`adopt`) printed under
  it: a configuration replaces the reference (the served one) only if no column loses more than
  ``TOLERANCE`` (0.01) IoU against it and at least one column gains more than that.

A configuration (:class:`PostConfig`): probability threshold ``t``; optional hysteresis growing from seeds
``>= seed_p`` into ``>= grow_p`` (``terrawatch.ml.flood_s1.grow_water``) limited to ``reach`` px from a
seed (``None`` = unbounded, the issue-14 growing), optionally only into pixels whose water signal (dB) is at most
the ``dark_q`` quantile of the seeds'; ``smooth`` (k x k mean of the probability first); ``fill`` (enclosed dry
holes up to n px become water); optional ``gate``: ``"bimodal"`` = the per-scene
bimodality test of ``terrawatch.ml.adaptive_s1`` (a non-bimodal scene keeps only water below -23 dB).

Command: ``terrawatch cv --nested`` (= ``python -m terrawatch_research.eval.cv --nested``); the network's raw
probabilities are computed once per sample (about 2 minutes on 2 cores) and every configuration is
applied to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from terrawatch_research.eval.metrics import confusion, scores

TOLERANCE = 0.01
REFERENCE = "t0.50"  # the served configuration (issue 27: growing removed; see models/flood_s1/README.md)


@dataclass(frozen=True)
class PostConfig:
    t: float = 0.5
    seed_p: float | None = None  # None: no growing
    grow_p: float = 0.2
    reach: int | None = None
    gate: str | None = None
    smooth: int = 0  # k > 0: k x k mean of the probability before thresholding
    fill: int = 0  # n > 0: dry holes of at most n px enclosed by predicted water become water
    dark_q: float | None = None  # growing only into pixels whose water signal is <= this quantile of the seeds'

    @property
    def name(self) -> str:
        s = f"t{self.t:.2f}"
        if self.smooth:
            s += f"+smooth{self.smooth}"
        if self.seed_p is not None:
            s += f"+grow{self.seed_p:g}/{self.grow_p:g}" + (f"r{self.reach}" if self.reach else "")
            s += f"+dark{self.dark_q:g}" if self.dark_q is not None else ""
        if self.fill:
            s += f"+fill{self.fill}"
        if self.gate:
            s += f"+{self.gate}"
        return s


def _family() -> list[PostConfig]:
    out = [PostConfig(t) for t in (0.5, 0.4, 0.6)]
    for seed in (0.5, 0.6):
        for gp in (0.2, 0.3):
            for reach in (None, 3):
                out.append(PostConfig(0.5, seed, gp, reach))
    out += [PostConfig(0.5, gate="bimodal"), PostConfig(0.5, 0.5, 0.2, None, "bimodal")]
    # issue 27, second round (towards Spain* >= 0.63): finer threshold, smoothing, hole filling, growing only
    # into backscatter as dark as the seeds'
    out += [PostConfig(0.45), PostConfig(0.5, smooth=3), PostConfig(0.4, smooth=3), PostConfig(0.5, fill=64),
            PostConfig(0.5, fill=256), PostConfig(0.5, 0.5, 0.2, dark_q=0.9), PostConfig(0.5, 0.5, 0.3, dark_q=0.9)]
    return out


FAMILY: list[PostConfig] = _family()
SERVED_BEFORE_ISSUE_27 = PostConfig(0.5, 0.5, 0.2, None).name  # t0.50+grow0.5/0.2


def _grow(p: np.ndarray, c: PostConfig, sig: np.ndarray | None = None) -> np.ndarray:
    seed = p >= c.seed_p
    if not seed.any():
        return p
    mask = p >= c.grow_p
    if c.dark_q is not None and sig is not None and (np.isfinite(sig) & seed).any():
        mask &= np.nan_to_num(sig, nan=np.inf) <= np.quantile(sig[np.isfinite(sig) & seed], c.dark_q)
    if c.reach:
        mask &= ndi.binary_dilation(seed, structure=np.ones((3, 3), bool), iterations=c.reach)
    grown = ndi.binary_propagation(seed, structure=np.ones((3, 3), bool), mask=mask) & ~seed
    out = p.copy()
    out[grown] = max(c.t, 0.5)  # counted as water at any threshold of the family
    return out


def apply(c: PostConfig, s: dict) -> np.ndarray:
    """Binary water prediction of config ``c`` on a cached sample {prob, signal_ok(H,W) bool, bimodal}."""
    p = np.nan_to_num(s["prob"], nan=0.0)
    if c.smooth:
        p = ndi.uniform_filter(p, c.smooth)
    if c.seed_p is not None:
        p = _grow(p, c, s.get("signal"))
    pred = p >= c.t
    if c.fill:
        holes, n = ndi.label(ndi.binary_fill_holes(pred) & ~pred)
        if n:
            small = np.bincount(holes.ravel()) <= c.fill
            small[0] = False
            pred = pred | small[holes]
    if c.gate == "bimodal" and not s["bimodal"]:
        pred &= s["below_fallback"]
    return pred


def prepare(s1_db: np.ndarray, predict_raw: Callable[[np.ndarray], np.ndarray]) -> dict:
    """Everything :func:`apply` needs from one sample: raw network probability and the gate's inputs."""
    from terrawatch.ml.adaptive_s1 import FALLBACK_DB, bimodal_threshold
    from terrawatch.ml.baselines import water_signal_s1
    sig, valid, kind = water_signal_s1(s1_db, 5)
    t, _ = bimodal_threshold(sig, valid, kind)
    return {"prob": predict_raw(s1_db).astype(np.float32), "bimodal": t is not None,
            "below_fallback": sig < FALLBACK_DB[kind], "signal": np.where(valid, sig, np.nan).astype(np.float32)}


def _counts(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    tp, fp, fn, _ = confusion(pred, label == 1, label >= 0)
    return np.array([tp, fp, fn], dtype=np.int64)


def _iou(c: np.ndarray) -> float | None:
    return None if c.sum() == 0 else round(scores(int(c[0]), int(c[1]), int(c[2]))["iou"], 4)


def load_samples(data: Path, shared: Path, predict_raw, holdouts: bool = True, log=None) -> dict:
    """{"chips": [(event, sample)], "spain": [sample], "etci": [...], "ombria": [...]} with labels."""
    from terrawatch.ml.datasets import DATASETS, Sen1Floods11
    from terrawatch_research.train.flood_s1_featnet import load_chips
    out: dict = {"chips": [], "spain": [], "etci": [], "ombria": []}
    for c in load_chips(data, exclude_events=()):
        out["chips"].append((c["event"], {**prepare(c["s1"], predict_raw), "mask": c["mask"]}))
    val_root = data.parent / "sen1floods11"
    if val_root.exists():
        for s in Sen1Floods11(val_root):
            if s["id"] == "Spain_7370579":
                out["spain"].append({**prepare(s["s1"], predict_raw), "mask": s["mask"]})
    if log:
        log(f"nested: {len(out['chips'])} real-dB chips, {len(out['spain'])} Spain validation chip")
    if holdouts:
        for key, name, root in (("etci", "etci2021", shared / "etci2021"),
                                ("ombria", "ombria-s1", shared / "ombria" / "OmbriaS1" / "train")):
            if not root.exists():
                continue
            ds = DATASETS[name](root, split="holdout")
            for i in range(len(ds)):
                s = ds[i]
                out[key].append({**prepare(s["s1"], predict_raw), "mask": s["mask"]})
            if log:
                log(f"nested: {key} holdout {len(out[key])} samples")
    return out


def _score(c: PostConfig, samples: list[dict]) -> np.ndarray:
    tot = np.zeros(3, np.int64)
    for s in samples:
        tot += _counts(apply(c, s), s["mask"])
    return tot


def _select_pooled(by_event: dict, train: list[str], family: list[PostConfig], reference: str) -> PostConfig:
    """Highest pooled IoU over the training events (ties: the earlier configuration)."""
    samples = [s for e in train for s in by_event[e]]
    best, best_iou = family[0], -1.0
    for c in family:
        v = _iou(_score(c, samples)) or 0.0
        if v > best_iou + 1e-9:
            best, best_iou = c, v
    return best


def _select_rule(by_event: dict, train: list[str], family: list[PostConfig], reference: str) -> PostConfig:
    """The adoption rule applied inside the fold: columns = each training event with water + their pooled IoU;
    among the configurations that pass :func:`adopt` against the reference there, the highest pooled IoU;
    the reference when none passes."""
    def cols(c: PostConfig) -> dict:
        per = {e: _score(c, by_event[e]) for e in train}
        return {"folds": {e: (_iou(v) if v[0] + v[2] > 0 else None) for e, v in per.items()},
                "pooled": _iou(sum(per.values())), "spain": None, "etci": None, "ombria": None}
    ref_c = next(c for c in family if c.name == reference)
    ref = cols(ref_c)
    best, best_pooled = ref_c, ref["pooled"] or 0.0
    for c in family:
        r = cols(c)
        if c.name != reference and adopt(r, ref, train)[0] and (r["pooled"] or 0.0) > best_pooled + 1e-9:
            best, best_pooled = c, r["pooled"] or 0.0
    return best


SELECTIONS = {"pooled": _select_pooled, "rule": _select_rule}


def run(samples: dict, family: list[PostConfig] = FAMILY, reference: str = REFERENCE) -> dict:
    """Per-config table on every column plus one row per nested selection procedure (:data:`SELECTIONS`)."""
    events = sorted({e for e, _ in samples["chips"]})
    by_event = {e: [s for ev, s in samples["chips"] if ev == e] for e in events}
    rows: dict[str, dict] = {}
    for c in family:
        folds = {e: _score(c, by_event[e]) for e in events}
        rows[c.name] = _row(folds, c, samples, by_event)
    nested = {}
    for how, select in SELECTIONS.items():
        chosen, folds = {}, {}
        for e in events:
            chosen[e] = select(by_event, [ev for ev in events if ev != e], family, reference)
            folds[e] = _score(chosen[e], by_event[e])
        final = select(by_event, [ev for ev in events if ev != "Spain"], family, reference)
        r = _row(folds, final, samples, by_event)
        r["chosen"] = {e: c.name for e, c in chosen.items()} | {"holdout columns": final.name}
        nested[how] = r
    return {"events": events, "reference": reference, "rows": rows, "nested": nested,
            "water": {e: int(sum((s["mask"] == 1).sum() for s in by_event[e])) for e in events}}


def _row(folds: dict, c: PostConfig, samples: dict, by_event: dict) -> dict:
    pooled = sum(folds.values())
    r = {"folds": {e: _iou(v) if (v[0] + v[2]) > 0 else None for e, v in folds.items()},
         "dry_share": {e: round(float(v[1]) / max(1, sum(int((s["mask"] >= 0).sum()) for s in by_event[e])), 5)
                       for e, v in folds.items() if v[0] + v[2] == 0},
         "pooled": _iou(pooled)}
    sc = scores(int(pooled[0]), int(pooled[1]), int(pooled[2]))
    r["pr"] = {"pooled": [round(sc["precision"], 4), round(sc["recall"], 4)]}
    for key in ("spain", "etci", "ombria"):
        tot = _score(c, samples[key]) if samples[key] else None
        r[key] = _iou(tot) if tot is not None else None
        if tot is not None and tot.sum():
            sc = scores(int(tot[0]), int(tot[1]), int(tot[2]))
            r["pr"][key] = [round(sc["precision"], 4), round(sc["recall"], 4)]
    return r


COLUMNS = ("pooled", "spain", "etci", "ombria")


def _cols(r: dict, events: list[str]) -> dict[str, float | None]:
    return {**{e: r["folds"][e] for e in events if r["folds"][e] is not None}, **{k: r[k] for k in COLUMNS}}


def adopt(cand: dict, ref: dict, events: list[str], tol: float = TOLERANCE) -> tuple[bool, str]:
    """The adoption rule: no column more than ``tol`` below the reference, at least one more than ``tol`` above."""
    a, b = _cols(cand, events), _cols(ref, events)
    d = {k: a[k] - b[k] for k in a if a[k] is not None and b.get(k) is not None}
    if not d:
        return False, "no common column"
    worst = min(d, key=d.get)
    if d[worst] < -tol:
        return False, f"loses {worst} {d[worst]:+.3f}"
    best = max(d, key=d.get)
    if d[best] <= tol:
        return False, f"no column gains > {tol} (best {best} {d[best]:+.3f})"
    return True, f"gains {best} {d[best]:+.3f}, worst {worst} {d[worst]:+.3f}"


def _f(v) -> str:
    return "   n/a" if v is None else f"{v:.3f}"


def format_table(res: dict) -> str:
    events, reference = res["events"], res["reference"]
    head = f"{'configuration':<30}" + "".join(f"{e[:8]:>9}" for e in events) + \
        f"{'pooled':>8}{'Spain*':>8}{'ETCI':>7}{'OMBRIA':>8}  adoption vs {reference}"
    lines = ["Nested LOEO cross-validation of the flood_s1 post-processing (fixed network, real-dB folds);",
             "dry folds show the predicted water share in [brackets]; Spain* = Spain_7370579, ETCI/OMBRIA = holdout splits.",
             f"Rule: adopt a configuration only if no column loses more than {TOLERANCE} IoU vs the served one "
             f"({reference}) and one column gains more than {TOLERANCE}.", "", head]
    ref = res["rows"][reference]
    missing = [k for k in ("spain", "etci", "ombria") if ref.get(k) is None]
    if missing:
        lines.insert(3, f"Columns missing ({', '.join(missing)}): the adoption verdicts below are incomplete.")

    def line(name: str, r: dict, verdict: str) -> str:
        s = f"{name:<30}"
        for e in events:
            s += f"{('[' + format(r['dry_share'][e] * 100, '.2f') + '%]') if e in r['dry_share'] else _f(r['folds'][e]):>9}"
        return s + f"{_f(r['pooled']):>8}{_f(r['spain']):>8}{_f(r['etci']):>7}{_f(r['ombria']):>8}  {verdict}"

    for name, r in res["rows"].items():
        verdict = "served (reference)" if name == reference else ("ADOPT: " if adopt(r, ref, events)[0] else "no: ") + \
            adopt(r, ref, events)[1]
        lines.append(line(name, r, verdict))
    for how, n in res["nested"].items():
        lines.append(line(f"nested, {how} selection", n, "estimate of the selection procedure"))
    for how, n in res["nested"].items():
        lines.append(f"{how} selection chose, per held-out fold: " + ", ".join(f"{k}: {v}" for k, v in n["chosen"].items()))
    lines.append(f"{SERVED_BEFORE_ISSUE_27}: served until issue 27 (hysteresis growing)")
    return "\n".join(lines)
