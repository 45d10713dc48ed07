"""``python -m terrawatch_research.eval --dataset D --root DIR [--model M] [--corrupt C] [--split S]``.

Prints the result of :func:`terrawatch_research.eval.evaluate.evaluate` as one JSON line (last line).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from terrawatch.ml.datasets import DATASETS
from terrawatch_research.eval.corruptions import KINDS
from terrawatch_research.eval.evaluate import EVAL_MODELS, evaluate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m terrawatch_research.eval", description="Evaluate a water model.")
    ap.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--model", choices=sorted(EVAL_MODELS))
    ap.add_argument("--corrupt", choices=KINDS)
    ap.add_argument("--split", default="all", choices=("all", "train", "holdout"))
    ap.add_argument("--limit", type=int)
    a = ap.parse_args(argv)
    print(json.dumps(evaluate(a.dataset, a.root, a.model, a.corrupt, split=a.split, limit=a.limit)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
