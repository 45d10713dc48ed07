"""Triton Python backend for flood_s2: S2_TOA (N,13,H,W) reflectance x 10000 -> WATER_PROB (N,1,H,W).

The model logic lives in terrawatch.inference.triton_backend.FloodS2Model.
"""

import os
import sys
from pathlib import Path

# Triton's embedded interpreter ignores PYTHONPATH: the stack passes TERRAWATCH_PYTHONPATH;
# a source checkout falls back to <repo>/services.
sys.path[:0] = [p for p in os.environ.get("TERRAWATCH_PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
sys.path.append(str(Path(__file__).resolve().parents[3] / "services"))

from terrawatch.inference.triton_backend import FloodS2Model as TritonPythonModel  # noqa: E402,F401
