"""A georeferenced Sentinel-2 L1C scene with real clouds, for the scene cloud-mask tests (built in tmp, never
stored in the repo).

The ukis-csmask check scene (``cloud/ukis_sentinel2.npz``: 512x512 px at ~30 m, six real bands B2, B3,
B4, B8, B11, B12 as TOA reflectance, hand label 0 shadow / 4 cloud) is written as a 13-band L1C GeoTIFF
(reflectance x 10000, uint16) on the Sen1Floods11 Spain chip's grid coarsened to 30 m (EPSG:4326). The
seven bands the sample lacks are copied from its spectrally nearest band (B1 <- B2; B5 <- B4; B6, B7,
B8A, B9 <- B8); B10 (cirrus) is the cloud-free Spain chip's own B10 (real clear-sky values, no cirrus).
So the cloud and shadow pixels are real; s2cloudless sees approximations of 4 of its 10 bands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

UKIS_BANDS = {1: 0, 2: 1, 3: 2, 7: 3, 11: 4, 12: 5}  # L1C band index (B1..B12 order) <- ukis band
NEAREST = {0: 1, 4: 3, 5: 7, 6: 7, 8: 7, 9: 7}  # missing band <- band whose values it copies


def l1c_with_real_cloud(npz: Path, spain_s2: Path, dst: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Write ``dst`` (13-band L1C GeoTIFF, 30 m); return (dst, hand-label cloud, hand-label shadow) bool (512, 512)."""
    d = np.load(npz)
    img, msk = d["img"].astype(np.float32), d["msk"][..., 0]
    with rasterio.open(spain_s2) as ds:
        b10, crs, transform = ds.read(11), ds.crs, ds.transform
    out = np.zeros((13, *img.shape[:2]), np.float32)
    for band, k in UKIS_BANDS.items():
        out[band] = img[..., k] * 10000
    for band, src in NEAREST.items():
        out[band] = out[src]
    out[10] = b10[: img.shape[0], : img.shape[1]]
    data = np.clip(np.rint(out), 1, 65535).astype(np.uint16)  # 0 is no data in L1C
    with rasterio.open(dst, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=13,
                       dtype="uint16", crs=crs, transform=transform @ Affine.scale(3)) as o:
        o.write(data)
    return dst, msk == 4, msk == 0
