"""Nested cross-validation of the flood_s1 post-processing (terrawatch_research.eval.nested): the choice is made on
the training events only, every column is reported, and the adoption rule rejects a loss on any column."""

from __future__ import annotations

import numpy as np

from terrawatch_research.eval import nested
from terrawatch_research.eval.nested import PostConfig


def _sample(prob: np.ndarray, mask: np.ndarray) -> dict:
    return {"prob": prob.astype(np.float32), "mask": mask.astype(np.int8), "bimodal": True,
            "below_fallback": np.zeros(prob.shape, bool)}


def _event(kind: str) -> dict:
    """kind "low": water at probability 0.45 (a 0.4 threshold finds it); "high": dry land at 0.45 next to
    water at 0.9 (a 0.4 threshold floods it)."""
    p = np.full((20, 20), 0.05)
    m = np.zeros((20, 20))
    p[:10], m[:10] = 0.9, 1
    if kind == "low":
        p[10:14], m[10:14] = 0.45, 1
    else:
        p[10:14] = 0.45
    return _sample(p, m)


FAMILY = [PostConfig(0.5), PostConfig(0.4)]


def _samples(kinds: dict[str, str]) -> dict:
    one = _event("low")
    return {"chips": [(e, _event(k)) for e, k in kinds.items()], "spain": [one], "etci": [one], "ombria": [one]}


def test_selection_sees_only_the_training_events():
    # A, B, C favour t0.40; D is hurt by it. Held out, D is scored with the config chosen on A, B, C (t0.40),
    # so the nested row reports D's loss instead of the config that suits D.
    s = _samples({"A": "low", "B": "low", "C": "low", "D": "high"})
    res = nested.run(s, FAMILY, reference="t0.50")
    n = res["nested"]["pooled"]
    assert n["chosen"]["D"] == "t0.40" and n["chosen"]["A"] == "t0.40"
    assert n["folds"]["D"] == res["rows"]["t0.40"]["folds"]["D"] < res["rows"]["t0.50"]["folds"]["D"]
    # the rule selection, applied inside the fold, refuses t0.40 wherever D is a training event
    r = res["nested"]["rule"]
    assert r["chosen"]["A"] == "t0.50" and r["chosen"]["D"] == "t0.40"


def test_adoption_rule_rejects_a_loss_on_any_column_and_prints_with_the_table():
    s = _samples({"A": "low", "B": "low", "D": "high"})
    res = nested.run(s, FAMILY, reference="t0.50")
    ok, why = nested.adopt(res["rows"]["t0.40"], res["rows"]["t0.50"], res["events"])
    assert not ok and why.startswith("loses D")
    text = nested.format_table(res)
    assert "no column loses more than 0.01" in text and "ETCI" in text and "OMBRIA" in text and "Spain*" in text
    assert "no: loses D" in text and "served (reference)" in text
    # a change that gains somewhere and loses nowhere is adopted
    ok, _ = nested.adopt(res["rows"]["t0.40"], res["rows"]["t0.50"], ["A", "B"])
    assert ok


def test_bounded_growing_stops_at_its_reach():
    p = np.full((1, 30), 0.05)
    p[0, :3] = 0.9
    p[0, 3:25] = 0.3
    s = _sample(p, np.zeros((1, 30)))
    unbounded = nested.apply(PostConfig(0.5, 0.5, 0.2), s)
    bounded = nested.apply(PostConfig(0.5, 0.5, 0.2, reach=3), s)
    assert unbounded[0, :25].all() and not unbounded[0, 25:].any()
    assert bounded[0, :6].all() and not bounded[0, 6:].any()


def test_smoothing_hole_filling_and_dark_only_growing():
    # a 3x3 dry hole (9 px) inside water: filled with fill >= 9, kept with fill 8
    p = np.full((12, 12), 0.9)
    p[4:7, 4:7] = 0.1
    s = _sample(p, np.zeros((12, 12)))
    assert nested.apply(PostConfig(0.5, fill=9), s).all()
    assert not nested.apply(PostConfig(0.5, fill=8), s)[4:7, 4:7].any()
    # an isolated 0.9 pixel in dry land: its 3x3 mean (0.14) is below 0.5
    q = np.full((9, 9), 0.05)
    q[4, 4] = 0.9
    assert nested.apply(PostConfig(0.5), _sample(q, np.zeros((9, 9))))[4, 4]
    assert not nested.apply(PostConfig(0.5, smooth=3), _sample(q, np.zeros((9, 9)))).any()
    # growing from seeds (signal -25 dB) into 0.3 pixels: only those as dark as the seeds with dark_q
    g = np.full((1, 10), 0.05)
    g[0, :3], g[0, 3:8] = 0.9, 0.3
    sig = np.full((1, 10), -10.0, np.float32)
    sig[0, :3], sig[0, 3:5] = -25.0, -26.0  # 3-4 dark, 5-7 bright (-10 dB)
    d = {**_sample(g, np.zeros((1, 10))), "signal": sig}
    assert nested.apply(PostConfig(0.5, 0.5, 0.2), d)[0, :8].all()
    dark = nested.apply(PostConfig(0.5, 0.5, 0.2, dark_q=0.9), d)
    assert dark[0, :5].all() and not dark[0, 5:].any()
    assert PostConfig(0.4, 0.5, 0.2, dark_q=0.9, smooth=3, fill=64).name == "t0.40+smooth3+grow0.5/0.2+dark0.9+fill64"
