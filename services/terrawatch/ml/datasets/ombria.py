"""OMBRIA Sentinel-1 split (Drakonakis et al. 2022; masks from Copernicus EMS rapid mapping).

``root`` is a split folder with ``BEFORE/``, ``AFTER/`` and ``MASK/`` holding 256x256 greyscale
PNGs paired by the number in the file name (``S1_after_0001.png`` <-> ``S1_mask_0001.png``).
Items: ``s1`` (2,H,W) float32 dB of the AFTER image (VV via
:func:`~terrawatch.ml.datasets.png_db.ombria_png_to_db`; VH is not in the dataset -> all NaN),
``before`` (2,H,W) the same for the BEFORE image, ``mask`` (H,W) int64 flooded (MASK 255) = 1,
``id``. The PNGs are per-image min-max stretched: dB values are approximate (see ``png_db``).

``split``: "all", or "holdout" / "train": samples numbered >= ``HOLDOUT_FROM`` (700) / below. For
the shared ``OmbriaS1/train`` folder (numbers 1..787 with gaps) the hold-out is 61 of 624
samples, never trained on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from terrawatch.ml.datasets.png_db import ombria_png_to_db

_NUM = re.compile(r"(\d+)\.png$")
HOLDOUT_FROM = 700


def _index(folder: Path) -> dict[str, Path]:
    return {m.group(1): p for p in folder.glob("*.png") if (m := _NUM.search(p.name))}


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


class OmbriaS1(Dataset):
    def __init__(self, root: str | Path, split: str = "all", transforms: Callable[[dict], dict] | None = None) -> None:
        if split not in ("all", "train", "holdout"):
            raise ValueError(f"split must be all|train|holdout, got {split!r}")
        self.root = Path(root)
        self.transforms = transforms
        after, before, mask = (_index(self.root / d) for d in ("AFTER", "BEFORE", "MASK"))
        keys = sorted(set(after) & set(mask), key=lambda k: (len(k), k))
        if split != "all":
            keys = [k for k in keys if (int(k) >= HOLDOUT_FROM) == (split == "holdout")]
        if not keys:
            raise FileNotFoundError(f"no paired AFTER/ and MASK/ PNGs under {self.root}")
        self.items = [(k, after[k], before.get(k), mask[k]) for k in keys]

    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def _s1(path: Path | None, shape: tuple[int, int]) -> np.ndarray:
        out = np.full((2, *shape), np.nan, dtype=np.float32)
        if path is not None:
            out[0] = ombria_png_to_db(_grey(path))
        return out

    def __getitem__(self, i: int) -> dict:
        key, ap, bp, mp = self.items[i]
        m = _grey(mp)
        out = {
            "id": key,
            "s1": self._s1(ap, m.shape),
            "before": self._s1(bp, m.shape),
            "mask": (m > 127).astype(np.int64),
        }
        return self.transforms(out) if self.transforms else out
