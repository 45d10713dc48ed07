"""ETCI 2021 flood-detection tiles (NASA IMPACT / IEEE GRSS ESI, Copernicus Sentinel-1).

``root`` is a folder of event folders ``<event>/tiles/{vv,vh,flood_label,water_body_label}/``
with 256x256 PNGs ``<event>_x-<X>_y-<Y>_vv.png`` / ``..._vh.png`` and labels
``<event>_x-<X>_y-<Y>.png`` (0/255). A folder that itself contains ``tiles/`` is read as one event.
Items: ``s1`` (2,256,256) float32 dB via :data:`~terrawatch.ml.datasets.png_db.ETCI_VV_DB` /
``ETCI_VH_DB`` (pixels 0 in both VV and VH are no data -> NaN), ``mask`` (H,W) int64 flood label
(-1 no data or label file missing), ``water_body`` (H,W) uint8 reference water (0/1), ``id``,
``event``, ``x``, ``y``.

``split``: "all", or "holdout" / "train": tiles with x index >= ``HOLDOUT_MIN_X`` (18) / < 18. For
the shared Nebraska event the hold-out is 37 of 198 tiles (x 18..21), never used in training.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from terrawatch.ml.datasets.png_db import ETCI_VH_DB, ETCI_VV_DB, png_to_db

HOLDOUT_MIN_X = 18
_NAME = re.compile(r"^(?P<base>.+_x-(?P<x>\d+)_y-(?P<y>\d+))_vv\.png$")


def _png(path: Path) -> np.ndarray:
    a = np.asarray(Image.open(path))
    return a[..., 0] if a.ndim == 3 else a


class ETCI2021(Dataset):
    def __init__(self, root: str | Path, split: str = "all", transforms: Callable[[dict], dict] | None = None) -> None:
        if split not in ("all", "train", "holdout"):
            raise ValueError(f"split must be all|train|holdout, got {split!r}")
        self.root = Path(root)
        self.transforms = transforms
        events = [self.root] if (self.root / "tiles").is_dir() else sorted(p for p in self.root.iterdir() if (p / "tiles").is_dir())
        self.items = []
        for ev in events:
            for vv in sorted((ev / "tiles" / "vv").glob("*_vv.png")):
                m = _NAME.match(vv.name)
                if not m:
                    continue
                x, y = int(m["x"]), int(m["y"])
                if split == "holdout" and x < HOLDOUT_MIN_X or split == "train" and x >= HOLDOUT_MIN_X:
                    continue
                self.items.append((ev, m["base"], x, y))
        if not self.items:
            raise FileNotFoundError(f"no ETCI tiles ({split}) under {self.root}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        ev, base, x, y = self.items[i]
        t = ev / "tiles"
        vv, vh = _png(t / "vv" / f"{base}_vv.png"), _png(t / "vh" / f"{base}_vh.png")
        nodata = (vv == 0) & (vh == 0)
        s1 = np.stack([png_to_db(vv, ETCI_VV_DB), png_to_db(vh, ETCI_VH_DB)])
        s1[:, nodata] = np.nan
        fl, wb = t / "flood_label" / f"{base}.png", t / "water_body_label" / f"{base}.png"
        mask = (_png(fl) > 127).astype(np.int64) if fl.exists() else np.full(vv.shape, -1, dtype=np.int64)
        mask[nodata] = -1
        water_body = (_png(wb) > 127).astype(np.uint8) if wb.exists() else np.zeros(vv.shape, dtype=np.uint8)
        out = {"id": base, "event": ev.name, "x": x, "y": y, "s1": s1, "mask": mask, "water_body": water_body}
        return self.transforms(out) if self.transforms else out
