"""Triton Python backend for ``mining_s2``: PATCHES (N, 12, 48, 48) -> MINE_PROB (N, 1).

The model logic lives in terrawatch.inference.triton_backend.MiningModel.
"""

import os
import sys
from pathlib import Path

# Triton's embedded interpreter ignores PYTHONPATH: the stack passes TERRAWATCH_PYTHONPATH;
# a source checkout falls back to <repo>/services.
sys.path[:0] = [p for p in os.environ.get("TERRAWATCH_PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
sys.path.append(str(Path(__file__).resolve().parents[3] / "services"))

from terrawatch.inference.triton_backend import MiningModel as TritonPythonModel  # noqa: E402,F401
