"""How much labelled water the S2 cloud/shadow mask removes, and how much cloud/shadow it still finds (issue 27).

``python -m terrawatch_research.eval.cloud_water [--root ../shared/data/sen1floods11] [--cloud-sample NPZ]``:

1. every labelled Sen1Floods11 chip with S2 under ``--root``, as it is: share of labelled water pixels masked
   (cloud or shadow) and share of all valid pixels masked; the sun from the dataset (``s2_sun``: the event's
   S2 date at 10:30 local mean solar time at the chip centre) or unknown;
2. the same chips with a **small real cloud pasted in** (issue 27's failure: a 0.2 % cloud licensed shadow
   on 45 % of a chip's water): a 24 x 24 px block (0.22 % of a 512 px chip) of the ukis check scene's
   brightest hand-labelled cloud spectra, at 5 places (centre and the four quadrant centres); the water
   masked outside the block itself is the mask's error (no real shadow exists: the cloud is pasted);
   with the chip's sun and with the sun unknown (``sun=None``: the 10:30 sector is searched);
3. the ukis-csmask check scene (``cloud/ukis_sentinel2.npz``, hand label): share of cloud / shadow / clear
   pixels masked, and of its label-1 pixels (840 px of small ponds, water spectra: the label's water class),
   sun unknown (the scene has no metadata: the 10:30 sector is searched); the hand-labelled cloud and shadow
   pixels left unmasked are counted too (``*_missed_px``), so "recall no worse" is checked pixel for pixel.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from terrawatch_research.eval.cv import DATA

UKIS_BANDS = {1: 0, 2: 1, 3: 2, 7: 3, 11: 4, 12: 5}  # L1C band index <- ukis band (as tests/cloud_samples.py)
NEAREST = {0: 1, 4: 3, 5: 7, 6: 7, 8: 7, 9: 7}
BLOCK = 24


def _cloud_spectrum(npz: Path) -> np.ndarray:
    """(13,) L1C reflectance x 10000: median of the ukis scene's brightest 10 % hand-labelled cloud pixels;
    missing bands from the spectrally nearest one, B10 = 0.02 (thick cloud, cirrus-band bright)."""
    d = np.load(npz)
    img, msk = d["img"].astype(np.float32), d["msk"][..., 0]
    cl = img[msk == 4]
    bright = cl[cl[:, 0] >= np.percentile(cl[:, 0], 90)]
    six = np.median(bright, axis=0)
    out = np.zeros(13, np.float32)
    for band, k in UKIS_BANDS.items():
        out[band] = six[k] * 10000
    for band, src in NEAREST.items():
        out[band] = out[src]
    out[10] = 200.0
    return out


def measure(root: Path, npz: Path | None, layers_fn: Callable | None = None, log: Callable[[str], None] = print) -> dict:
    from terrawatch.ml.cloud import cloud_layers
    from terrawatch.ml.datasets import Sen1Floods11
    layers_fn = layers_fn or (lambda s2, gsd_m, sun: cloud_layers(s2, gsd_m=gsd_m, sun=sun))
    out: dict = {"chips": [], "pasted": [], "ukis": None}
    spec = _cloud_spectrum(npz) if npz and npz.exists() else None
    for s in Sen1Floods11(root):
        if "s2" not in s:
            continue
        lab, sun = s["mask"], s.get("s2_sun")
        water, valid = lab == 1, lab >= 0
        m = layers_fn(s["s2"], 10.0, sun).mask
        row = {"chip": s["id"], "sun": None if sun is None else f"{sun.source} az {sun.azimuth_deg:.0f} zen {sun.zenith_deg:.0f}",
               "water_px": int(water.sum()), "water_masked": round(float(m[water].mean()), 4),
               "masked": round(float(m[valid].mean()), 4)}
        out["chips"].append(row)
        log(json.dumps(row))
        if spec is None:
            continue
        h, w = lab.shape
        tot_w = tot_m = tot_mu = 0
        for r, c in ((h // 2, w // 2), (h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4)):
            s2 = s["s2"].copy()
            blk = np.zeros((h, w), bool)
            blk[r - BLOCK // 2 : r + BLOCK // 2, c - BLOCK // 2 : c + BLOCK // 2] = True
            s2[:, blk] = spec[:, None]
            m = layers_fn(s2, 10.0, sun).mask
            wat = water & ~blk
            tot_w += int(wat.sum())
            tot_m += int((m & wat).sum())
            tot_mu += int((layers_fn(s2, 10.0, None).mask & wat).sum()) if sun is not None else int((m & wat).sum())
        row = {"chip": s["id"], "pasted_cloud_share": round(BLOCK * BLOCK / (h * w), 4),
               "water_masked_outside_the_cloud": round(tot_m / max(tot_w, 1), 4),
               "water_masked_outside_the_cloud_sun_unknown": round(tot_mu / max(tot_w, 1), 4)}
        out["pasted"].append(row)
        log(json.dumps(row))
    if npz and npz.exists():
        d = np.load(npz)
        img, msk = d["img"].astype(np.float32), d["msk"][..., 0]
        s2 = np.full((13, *img.shape[:2]), np.nan, np.float32)
        for i, band in zip((1, 2, 3, 7, 11, 12), range(6)):
            s2[i] = img[..., band] * 10000
        cl = layers_fn(s2, 30.0, None)
        tc, ts = msk == 4, msk == 0
        clear = ~(tc | ts)
        out["ukis"] = {"cloud_masked": round(float(cl.mask[tc].mean()), 4),
                       "shadow_masked": round(float(cl.mask[ts].mean()), 4),
                       "clear_masked": round(float(cl.mask[clear].mean()), 4),
                       "water_masked": round(float(cl.mask[msk == 1].mean()), 4),
                       "cloud_missed_px": int((tc & ~cl.mask).sum()), "shadow_missed_px": int((ts & ~cl.mask).sum()),
                       "water_masked_px": int((cl.mask & (msk == 1)).sum()),
                       "shadow_iou": round(float((cl.shadow & ts).sum() / (cl.shadow | ts).sum()), 4)}
        log(json.dumps({"ukis check scene": out["ukis"]}))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DATA / "sen1floods11")
    ap.add_argument("--cloud-sample", type=Path, default=DATA / "cloud" / "ukis_sentinel2.npz")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    res = measure(a.root, a.cloud_sample)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
