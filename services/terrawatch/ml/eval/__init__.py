"""Evaluation: metrics, corruptions and ``evaluate(dataset, root, model, corrupt)``.

``python -m terrawatch.ml.eval --dataset ... --root ... [--model] [--corrupt] [--split]`` prints
one JSON line; see :mod:`terrawatch.ml.eval.evaluate`.
"""

from terrawatch.ml.eval.evaluate import DEFAULT_MODELS, EVAL_MODELS, EvalModel, evaluate, register_model

__all__ = ["DEFAULT_MODELS", "EVAL_MODELS", "EvalModel", "evaluate", "register_model"]
