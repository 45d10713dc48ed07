"""Sentinel-2 cloud and cloud-shadow masking with the shipped ukis-csmask CNN (ONNX).

Why ukis-csmask and not s2cloudless: s2cloudless (LightGBM) needs 10 L1C bands (B1, B2, B4, B5,
B8, B8A, B9, B10, B11, B12), detects clouds only (no shadows) and pulls in ``sentinelhub``;
ukis-csmask (Wieland, Li & Martinis 2019, Remote Sens. Environ. 230, Apache-2.0) ships U-Nets for
6 bands (B2, B3, B4, B8, B11, B12), exactly the bands of the hand-labelled check scene
``cloud/ukis_sentinel2.npz``, segments cloud *and* shadow, and has an L2A variant. Its weights
are inside the PyPI wheel (``ukis-csmask[cpu]``), so it runs offline with onnxruntime.

The model was trained on ~30 m imagery; run at 10 m it mistakes dark water for cloud shadow
(measured on the Sen1Floods11 Spain chip: 22 % of pixels called shadow at 10 m, 3 % at 30 m), so
inputs are block-averaged to ~30 m first (``gsd_m`` = input pixel size) and the classes are
repeated back to the input grid. The library's own tiling (256 px, 20 % overlap, smooth blending)
and normalisation are reused; the ONNX session is cached per process.
"""

from __future__ import annotations

import json
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import softmax

CLEAR, CLOUD, SHADOW = 0, 1, 2
CSMASK_BANDS = ("B2", "B3", "B4", "B8", "B11", "B12")  # model band order blue..swir22
_S2_INDEX = {"B2": 1, "B3": 2, "B4": 3, "B8": 7, "B11": 11, "B12": 12}  # in the 13-band L1C order
MODEL_GSD_M = 30.0


@lru_cache(maxsize=2)
def _session(product_level: str):
    import onnxruntime
    import ukis_csmask

    if product_level not in ("l1c", "l2a"):
        raise ValueError(f"product_level must be 'l1c' or 'l2a', got {product_level!r}")
    model = Path(ukis_csmask.__file__).parent / f"model_6b_{product_level}.onnx"
    meta = json.loads(model.with_suffix(".json").read_text())["data"]
    if meta["dataset_statistics"]["band_names"] != ["blue", "green", "red", "nir", "swir16", "swir22"]:
        raise RuntimeError(f"unexpected band order in {model}")
    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads = int(os.environ.get("TERRAWATCH_ORT_THREADS", "2"))
    so.inter_op_num_threads = 1
    sess = onnxruntime.InferenceSession(str(model), sess_options=so, providers=["CPUExecutionProvider"])
    mean = np.asarray(meta["dataset_statistics"]["img"][0], dtype=np.float32)
    std = np.asarray(meta["dataset_statistics"]["img"][1], dtype=np.float32)
    return sess, mean, std, tuple(meta["target_size"])


def _block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """(H,W,C) -> (ceil(H/f), ceil(W/f), C) block means, edge-padded; NaN-aware."""
    h, w, c = x.shape
    ph, pw = (-h) % f, (-w) % f
    x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="edge")
    blocks = x.reshape((h + ph) // f, f, (w + pw) // f, f, c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmean(blocks, axis=(1, 3)).astype(np.float32)


def cloud_shadow_classes(
    bands6: np.ndarray,
    *,
    product_level: str = "l1c",
    gsd_m: float = MODEL_GSD_M,
    batch_size: int = 4,
) -> np.ndarray:
    """Classify (H,W,6) reflectance in [0,1] (B2,B3,B4,B8,B11,B12) -> (H,W) uint8.

    0 clear, 1 cloud, 2 cloud shadow. NaN inputs are filled with the band's training mean
    (the caller masks no data separately). ``gsd_m``: input pixel size; the model runs at ~30 m.
    """
    from ukis_csmask.utils import tile_array, untile_array

    x = np.asarray(bands6, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != 6:
        raise ValueError(f"expected (H, W, 6) reflectance, got shape {x.shape}")
    sess, mean, std, (ts, _) = _session(product_level)
    h, w, _ = x.shape
    f = max(1, int(round(MODEL_GSD_M / gsd_m)))
    if f > 1:
        x = _block_mean(x, f)
    x = np.where(np.isfinite(x), x, mean)
    x = (x - mean) / std
    name = sess.get_inputs()[0].name
    if x.shape[0] <= ts and x.shape[1] <= ts:
        # one model tile: mirror-pad instead of the library's 4+ overlapping tiles (pipeline tiles)
        pad = ((0, ts - x.shape[0]), (0, ts - x.shape[1]), (0, 0))
        tile = np.pad(x, pad, mode="symmetric")[None].transpose(0, 3, 1, 2)
        logits = sess.run(None, {name: np.ascontiguousarray(tile, dtype=np.float32)})[0]
        cls = np.argmax(logits[0], axis=0)[: x.shape[0], : x.shape[1]].astype(np.uint8)
    else:
        tiles = np.moveaxis(tile_array(x, xsize=ts, ysize=ts, overlap=0.2), -1, 1)
        probs = np.concatenate(
            [softmax(sess.run(None, {name: tiles[i : i + batch_size]})[0], axis=1)
             for i in range(0, len(tiles), batch_size)]
        )
        probs = untile_array(np.moveaxis(probs, 1, -1), (x.shape[0], x.shape[1], probs.shape[1]), overlap=0.2,
                             smooth_blending=True)
        cls = np.argmax(probs, axis=2).astype(np.uint8)
    if f > 1:
        cls = np.repeat(np.repeat(cls, f, axis=0), f, axis=1)[:h, :w]
    return cls


def cloud_mask(
    s2: np.ndarray,
    *,
    gsd_m: float = 10.0,
    product_level: str = "l1c",
    include_shadow: bool = True,
    dilate_px: int = 0,
    dn_offset: float = 0.0,
) -> np.ndarray:
    """Cloud (and shadow) mask of a Sentinel-2 array (13,H,W), reflectance x 10000 -> bool (H,W).

    Band order B1..B12 as in :mod:`terrawatch.ml.water_s2`. ``dn_offset`` = -1000 for processing
    baseline >= 04.00 DNs. ``dilate_px`` buffers the mask (ukis-csmask itself uses 4 px).
    No-data pixels (NaN or 0) are returned False: they belong to the no-data mask, not here.
    """
    s = np.asarray(s2, dtype=np.float32)
    if s.ndim != 3 or s.shape[0] != 13:
        raise ValueError(f"expected S2 array (13, H, W), got shape {s.shape}")
    six = np.stack([s[_S2_INDEX[b]] for b in CSMASK_BANDS], axis=-1)
    six = (six + np.float32(dn_offset)) / np.float32(10000.0)
    nodata = np.any(~np.isfinite(six) | (six <= 0), axis=-1)
    six[nodata] = np.nan
    cls = cloud_shadow_classes(six, product_level=product_level, gsd_m=gsd_m)
    m = cls == CLOUD
    if include_shadow:
        m |= cls == SHADOW
    if dilate_px > 0:
        m = ndimage.binary_dilation(m, iterations=dilate_px)
    return m & ~nodata
