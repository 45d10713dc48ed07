"""Evaluation: metrics, corruptions and ``evaluate(dataset, root, model, corrupt)``.

``python -m terrawatch_research.eval --dataset ... --root ... [--model] [--corrupt] [--split]`` prints
one JSON line; see :mod:`terrawatch_research.eval.evaluate`.
"""

from terrawatch_research.eval.evaluate import DEFAULT_MODELS, EVAL_MODELS, EvalModel, evaluate, register_model

__all__ = ["DEFAULT_MODELS", "EVAL_MODELS", "EvalModel", "evaluate", "register_model"]
