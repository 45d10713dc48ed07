"""What the scene pipeline hands the tiler and gets back (pure data; the Ray adapter ``tiling/ray_tiler.py``
runs them, ``service/ports.Tiler`` names them).

Pixel coordinates are the scene grid's (row, col); ``parts`` lists are ``vectorize.polygonize.PixelPart``s
(connected regions of a tile core in scene pixel coordinates).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from terrawatch.domain.tiles import EXCLUDED_CLOUD


@dataclass(frozen=True)
class HazardJob:
    """One hazard model to run on every tile.

    ``kind``: ``segment`` (tile in, per-pixel probability out; with a ``pre_item``, S1 flood's pre-event
    scene, the probability is gated by the backscatter drop from it, ``ml.change_s1.gate_by_change``),
    ``patches`` (a patch classifier slid over the tile every ``stride`` px, e.g. mining) or ``bitemporal``
    (the same window of the ``pre_item`` scene, read on this scene's grid, and the tile in;
    ``pre_cloud_mask``: that scene's cloud mask when it was L1C and masked, no estimate under its cloud). ``threshold`` is 0-1.
    ``excluded_flag``: the exclusion bit recorded where the model returns NaN on valid input
    (``EXCLUDED_CLOUD`` for optical models, ``EXCLUDED_RADAR`` for SAR models).
    ``aoa``: the model's area of applicability clipped to the scene, a GeoJSON geometry **in the scene
    grid's CRS**; None = the whole scene is inside. Tiles with no pixel inside are not inferred; pixels
    outside are flagged ``EXCLUDED_AOA`` and never detected.
    """

    hazard: str
    model: str
    threshold: float = 0.5
    kind: str = "segment"
    stride: int = 16
    pre_item: dict | None = None
    excluded_flag: int = EXCLUDED_CLOUD
    aoa: dict | None = None
    pre_cloud_mask: str | None = None  # the pre-event L1C scene's cloud-mask GeoTIFF (products/cloud_mask.py)


@dataclass
class TileResult:
    index: int
    parts: dict[str, list]
    likelihood: dict[str, np.ndarray]  # per hazard, (core_h, core_w) uint8 0-100, 255 where excluded
    exclusion: dict[str, np.ndarray]  # per hazard, (core_h, core_w) uint8 EXCLUDED_* bit flags, 0 = classified
    valid_pixels: int
    read_s: float
    infer_s: float
    outside_aoa: dict[str, int] = field(default_factory=dict)  # per hazard, core pixels not inferred (AoA)
    # (model, seconds) of each Triton request made for these tiles: observed into
    # terrawatch_triton_request_duration_seconds by the driver (the process whose /metrics is scraped)
    triton_requests: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class SceneTiles:
    """What the driver keeps for a scene: merged pixel-space parts per hazard and timings."""

    tiles: int = 0
    valid_pixels: int = 0
    parts: dict[str, list] = field(default_factory=dict)
    outside_aoa: dict[str, int] = field(default_factory=dict)  # per hazard, pixels outside its AoA
    read_s: float = 0.0
    infer_s: float = 0.0
