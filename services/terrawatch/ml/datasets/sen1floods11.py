"""Sen1Floods11 hand-labelled chips (Bonafilia et al. 2020, CC BY 4.0).

``root`` holds ``<id>_S1Hand.tif`` (2 bands VV, VH sigma0 dB float32, NaN no data),
``<id>_S2Hand.tif`` (13 bands B1..B12 incl. B8A and B10, L1C reflectance x 10000) and
``<id>_LabelHand.tif`` (-1 no data, 0 dry, 1 water), flat or in sub-folders (the original
``S1Hand/``, ``S2Hand/``, ``LabelHand/`` layout). Chips are 512x512, EPSG:4326, ~10 m.
Items: ``s1`` (2,H,W) float32 dB, ``s2`` (13,H,W) float32 (absent if no S2 file), ``mask``
(H,W) int64 water label (-1 no data), ``id``; ``s2_sun`` (:class:`terrawatch.ml.cloud.SunAngles`, for the
cloud-shadow geometry) where the S2 chip's centre is known and ``Sen1Floods11_Metadata.geojson`` (under
``root`` or its parent) gives the event's S2 date (``location`` = the chip id's prefix): the sun at 10:30 local
mean solar time that day (Sentinel-2's overpass; the metadata has no time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from torch.utils.data import Dataset


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _s2_dates(root: Path) -> dict[str, str]:
    """{location: "YYYY/MM/DD"} from Sen1Floods11_Metadata.geojson under ``root`` (or its parent); {} if absent."""
    import json
    for p in (root / "Sen1Floods11_Metadata.geojson", root.parent / "Sen1Floods11_Metadata.geojson"):
        if p.is_file():
            try:
                feats = json.loads(p.read_text()).get("features") or []
            except (OSError, ValueError):
                return {}
            return {str(f["properties"].get("location")): str(f["properties"].get("s2_date"))
                    for f in feats if (f.get("properties") or {}).get("s2_date")}
    return {}


class Sen1Floods11(Dataset):
    def __init__(self, root: str | Path, transforms: Callable[[dict], dict] | None = None) -> None:
        self.root = Path(root)
        self.transforms = transforms
        s1 = sorted(self.root.rglob("*_S1Hand.tif"))
        if not s1:
            raise FileNotFoundError(f"no *_S1Hand.tif under {self.root}")
        others = {p.name: p for p in self.root.rglob("*.tif")}
        self.items = []
        for p in s1:
            cid = p.name[: -len("_S1Hand.tif")]
            self.items.append((cid, p, others.get(f"{cid}_S2Hand.tif"), others.get(f"{cid}_LabelHand.tif")))
        self.s2_dates = _s2_dates(self.root)

    def _sun(self, cid: str, s2p: Path):
        from datetime import datetime, timezone

        from terrawatch.ml.cloud import sun_angles
        date = self.s2_dates.get(cid.split("_")[0])
        if not date:
            return None
        try:
            when = datetime.strptime(date.replace("-", "/"), "%Y/%m/%d").replace(tzinfo=timezone.utc)
            with rasterio.open(s2p) as src:
                if src.crs is None or not src.crs.is_geographic:
                    return None
                b = src.bounds
        except (ValueError, OSError, rasterio.errors.RasterioError):
            return None
        return sun_angles(None, when, (b.left + b.right) / 2, (b.bottom + b.top) / 2)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        cid, s1p, s2p, labp = self.items[i]
        s1 = _read(s1p).astype(np.float32)
        if s1.shape[0] != 2:
            raise ValueError(f"{s1p}: expected 2 bands (VV, VH), got {s1.shape[0]}")
        out = {"id": cid, "s1": s1}
        if s2p is not None:
            out["s2"] = _read(s2p).astype(np.float32)
            sun = self._sun(cid, s2p)
            if sun is not None:
                out["s2_sun"] = sun
        if labp is not None:
            out["mask"] = _read(labp)[0].astype(np.int64)
        else:
            out["mask"] = np.full(s1.shape[1:], -1, dtype=np.int64)
        out["mask"][np.isnan(s1).all(0)] = -1
        return self.transforms(out) if self.transforms else out
