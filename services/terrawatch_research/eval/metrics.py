"""Binary segmentation metrics for the positive class, no-data excluded.

Counts are accumulated over all pixels of a dataset (micro average), so a dataset IoU is
``sum TP / (sum TP + sum FP + sum FN)``. CSI (critical success index, hits / (hits + misses +
false alarms)) equals IoU for binary maps; both are reported because both names are in use.
A metric whose denominator is 0 is NaN.
"""

from __future__ import annotations

import numpy as np


def confusion(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """Boolean (H,W) prediction and truth (+ valid mask) -> (tp, fp, fn, tn) over valid pixels."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ")
    v = np.ones(pred.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    tp = int((pred & truth & v).sum())
    fp = int((pred & ~truth & v).sum())
    fn = int((~pred & truth & v).sum())
    tn = int((~pred & ~truth & v).sum())
    return tp, fp, fn, tn


def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def iou(tp: int, fp: int, fn: int) -> float:
    return _ratio(tp, tp + fp + fn)


def csi(tp: int, fp: int, fn: int) -> float:
    return iou(tp, fp, fn)


def precision(tp: int, fp: int) -> float:
    return _ratio(tp, tp + fp)


def recall(tp: int, fn: int) -> float:
    return _ratio(tp, tp + fn)


def f1(tp: int, fp: int, fn: int) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn)


def scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """{iou, f1, precision, recall, csi} from counts."""
    return {"iou": iou(tp, fp, fn), "f1": f1(tp, fp, fn), "precision": precision(tp, fp),
            "recall": recall(tp, fn), "csi": csi(tp, fp, fn)}


def label_scores(pred: np.ndarray, label: np.ndarray, nodata: int = -1) -> dict[str, float]:
    """Scores of a boolean prediction against an integer label (1 positive, ``nodata`` excluded)."""
    label = np.asarray(label)
    tp, fp, fn, _ = confusion(pred, label == 1, label != nodata)
    return scores(tp, fp, fn)
