"""``evaluate(dataset, root, model, corrupt)``: metrics of a water/flood model on a labelled dataset.

Datasets (``root`` may hold any event/split in the same layout as the shared copies):

- ``sen1floods11``: folder of ``<id>_S1Hand.tif`` / ``<id>_S2Hand.tif`` / ``<id>_LabelHand.tif``;
  positive = water (label 1), label -1 excluded.
- ``etci2021``: folder of event folders ``<event>/tiles/...``; positive = ``flood_label``;
  pixels with no data in both VV and VH excluded. ``split="holdout"`` = the tiles never trained on.
- ``ombria-s1``: split folder with ``BEFORE/``, ``AFTER/``, ``MASK/``; input = AFTER; positive =
  MASK. ``split="holdout"`` = the samples never trained on.

Models are looked up in :data:`EVAL_MODELS` (name -> sensor + a function taking the sensor's
array in physical units and returning an (H,W) probability, NaN = no estimate; a pixel is
predicted positive where ``prob >= 0.5``). Metrics are micro-averaged over all pixels
(:mod:`terrawatch_research.eval.metrics`). ``corrupt`` applies one of
:data:`terrawatch_research.eval.corruptions.KINDS` to each input (seed = ``seed`` + sample index).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from terrawatch.ml.datasets import DATASETS
from terrawatch_research.eval.corruptions import corrupt as apply_corruption
from terrawatch_research.eval.metrics import confusion, scores


@dataclass(frozen=True)
class EvalModel:
    """A model for evaluation: ``sensor`` "s1" | "s2" and ``predict`` ("module:function" or callable)."""

    sensor: str
    predict: str | Callable[[np.ndarray], np.ndarray]
    description: str = ""

    def fn(self) -> Callable[[np.ndarray], np.ndarray]:
        if callable(self.predict):
            return self.predict
        module, _, attr = self.predict.partition(":")
        return getattr(importlib.import_module(module), attr)


# name -> model. Add S2 models here or with register_model(); imports are lazy.
EVAL_MODELS: dict[str, EvalModel] = {
    "flood-s1": EvalModel("s1", "terrawatch.inference.local:predict_water_s1", "S1 U-Net (models/flood_s1)"),
    "otsu-s1": EvalModel("s1", "terrawatch.ml.baselines:otsu_water_s1", "split-based Otsu on S1 dB"),
    "adaptive-s1": EvalModel("s1", "terrawatch.ml.adaptive_s1:adaptive_water_s1",
                             "GFM-style bimodality test + threshold + region growing on S1 dB"),
    "flood-s2": EvalModel("s2", "terrawatch.ml.water_s2:predict_water_s2", "S2 MNDWI+NDWI, cloud-masked"),
    "mndwi-s2": EvalModel("s2", "terrawatch.ml.water_s2:predict_mndwi_s2", "S2 MNDWI + Otsu"),
}

# dataset -> sensors it provides, and model preference (first one whose sensor is present wins)
DATASET_SENSORS = {"sen1floods11": ("s1", "s2"), "etci2021": ("s1",), "ombria-s1": ("s1",)}
DEFAULT_MODELS = {"sen1floods11": ("flood-s2", "flood-s1"), "etci2021": ("flood-s1",), "ombria-s1": ("flood-s1",)}


def register_model(name: str, sensor: str, predict: str | Callable[[np.ndarray], np.ndarray], description: str = "") -> None:
    if sensor not in ("s1", "s2"):
        raise ValueError(f"sensor must be s1 or s2, got {sensor!r}")
    EVAL_MODELS[name] = EvalModel(sensor, predict, description)


def _dataset(dataset: str, root: Path, split: str):
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    cls = DATASETS[dataset]
    if split == "all":
        return cls(root)
    if dataset == "sen1floods11":
        raise ValueError("sen1floods11 has no split; it is never trained on")
    return cls(root, split=split)


def default_model(dataset: str, sample: dict | None = None) -> str:
    """The preferred registered model whose sensor the dataset (or its first sample) provides."""
    for name in DEFAULT_MODELS[dataset]:
        spec = EVAL_MODELS.get(name)
        if spec and (sample is None or spec.sensor in sample):
            return name
    raise ValueError(f"no registered model for {dataset}")


def _takes_sun(fn) -> bool:
    import inspect
    try:
        return "sun" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _clean(v: float) -> float | None:
    return None if v != v else round(float(v), 4)


def evaluate(dataset: str, root: Path | str, model: str | None = None, corrupt: str | None = None,
             *, split: str = "all", seed: int = 0, limit: int | None = None) -> dict:
    """Run ``model`` over ``dataset`` at ``root``; returns
    {dataset, model, samples, iou, f1, precision, recall, csi, corrupt, split}."""
    ds = _dataset(dataset, Path(root), split)
    if len(ds) == 0:
        raise ValueError(f"{dataset} at {root}: no samples")
    first = ds[0]
    model = model or default_model(dataset, first)
    if model not in EVAL_MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(EVAL_MODELS)}")
    spec = EVAL_MODELS[model]
    if spec.sensor not in DATASET_SENSORS[dataset]:
        raise ValueError(f"model {model} needs {spec.sensor}; {dataset} provides {DATASET_SENSORS[dataset]}")
    predict = spec.fn()
    tp = fp = fn = 0
    n = len(ds) if limit is None else min(limit, len(ds))
    for i in range(n):
        s = first if i == 0 else ds[i]
        if spec.sensor not in s:
            raise ValueError(f"{dataset} sample {s.get('id')} has no {spec.sensor} input")
        x = s[spec.sensor]
        if corrupt:
            x = apply_corruption(corrupt, x, spec.sensor, seed + i)
        if spec.sensor == "s2" and s.get("s2_sun") is not None and _takes_sun(predict):
            prob = np.asarray(predict(x, sun=s["s2_sun"]), dtype=np.float32)  # cloud-shadow geometry
        else:
            prob = np.asarray(predict(x), dtype=np.float32)
        pred = np.nan_to_num(prob, nan=0.0) >= 0.5
        label = s["mask"]
        c = confusion(pred, label == 1, label >= 0)
        tp, fp, fn = tp + c[0], fp + c[1], fn + c[2]
    sc = scores(tp, fp, fn)
    return {"dataset": dataset, "model": model, "samples": n, **{k: _clean(v) for k, v in sc.items()},
            "corrupt": corrupt, "split": split}
