"""Triton Python backend for ``flood_s1``: S1_DB (N, 2, H, W) dB -> WATER_PROB (N, 1, H, W).

The model logic lives in terrawatch.inference.triton_backend.FloodS1Model.
"""

import os
import sys
from pathlib import Path

# Triton's embedded interpreter ignores PYTHONPATH: the stack passes TERRAWATCH_PYTHONPATH;
# a source checkout falls back to <repo>/services.
sys.path[:0] = [p for p in os.environ.get("TERRAWATCH_PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
sys.path.append(str(Path(__file__).resolve().parents[3] / "services"))

from terrawatch.inference.triton_backend import FloodS1Model as TritonPythonModel  # noqa: E402,F401
