"""Where model weights live: the Triton model repository ``models/`` at the repo root.

Settings-free on purpose (usable from Triton's Python backend, tests and training). The
environment variable ``TERRAWATCH_MODEL_REPOSITORY`` overrides the location.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "TERRAWATCH_MODEL_REPOSITORY"


def model_repository() -> Path:
    """The model repository folder: $TERRAWATCH_MODEL_REPOSITORY, else ``<repo>/models``, else ``./models``."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "models").is_dir() and (parent / "services").is_dir():
            return parent / "models"
    return Path.cwd() / "models"


def model_dir(name: str) -> Path:
    """``<model repository>/<name>`` (e.g. ``model_dir("flood_s1")``); it may not exist yet."""
    return model_repository() / name


def latest_version_dir(name: str, filename: str = "model.pt") -> Path:
    """Highest numeric version folder of ``name`` that contains ``filename``."""
    root = model_dir(name)
    versions = sorted((int(p.name), p) for p in root.glob("*") if p.name.isdigit() and (p / filename).is_file())
    if not versions:
        raise FileNotFoundError(f"no {name}/<version>/{filename} under {root.parent} (set ${ENV}?)")
    return versions[-1][1]
