"""The classification step of a batch of tiles: each hazard kind's strategy (a table keyed by the registry's
``kind``) and the thresholding of its probabilities into parts, likelihood and exclusion flags (:func:`classify_tiles`).

Pure (no Ray, no Triton client): the Ray actor (``tiling/ray_tiler.TileWorker``) reads the tiles, looks a job's
strategy up in :data:`STRATEGIES` and hands it the model as ``infer`` and the job's pre-event scene as ``pre_read``;
unit tests hand it fakes (tests/unit/test_strategies.py, tests/unit/test_aoa.py). ``ml`` modules are imported
lazily, where a kind needs one.

Every strategy is ``strategy(job, tiles, arrays, infer, pre_read) -> (N, size, size) float32`` probabilities
0-1, NaN = no estimate, for the N ``tiles`` whose windows ``arrays`` holds:

- ``job``: the :class:`terrawatch.domain.jobs.HazardJob` (its ``kind`` is a ``domain.hazards.HazardModel.kind``);
- ``tiles``: the ``domain.tiles.Tile`` windows (scene grid pixels), in the order of ``arrays``;
- ``arrays``: (N, bands, size, size) float32 scene bands, NaN = no data (cloud already NaN);
- ``infer(*inputs) -> (N, ...)``: the job's model (``inference.triton.TritonModel.infer``: batched float32
  inputs in its ``ModelSpec`` order, output with the channel axis dropped);
- ``pre_read(cloud_mask) -> PreScene``: the job's pre-event scene (``job.pre_item``) opened on this scene's
  grid, with that cloud-mask GeoTIFF path (or None); None when the job has no pre-event scene.

Adding a kind of model run is one function here and one entry in :data:`STRATEGIES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from terrawatch.domain.jobs import HazardJob, TileResult
from terrawatch.domain.tiles import EXCLUDED_AOA, EXCLUDED_NODATA, Tile, crop_core
from terrawatch.vectorize.polygonize import tile_parts


class PreScene(Protocol):
    """A pre-event scene read on the current scene's grid (``imagery.reader.SceneReader``)."""

    def read(self, row: int, col: int, size: int) -> np.ndarray:
        """(bands, size, size) float32 window, NaN = no data."""

    def read_mask(self, row: int, col: int, size: int) -> np.ndarray | None:
        """(size, size) uint8 ``domain.tiles`` EXCLUDED_* flags, or None without a mask."""


Infer = Callable[..., np.ndarray]
PreRead = Callable[[str | None], PreScene]
Strategy = Callable[[HazardJob, list[Tile], np.ndarray, Infer, "PreRead | None"], np.ndarray]


def segment(job: HazardJob, tiles: list[Tile], arrays: np.ndarray, infer: Infer,
            pre_read: PreRead | None) -> np.ndarray:
    """Tile in, per-pixel probability out: ``infer(arrays)``. With a pre-event scene (S1 flood,
    ``HazardModel.change_gate``) the network's water is kept only where the backscatter fell
    (``ml.change_s1.gate_by_change`` on the same window of the pre scene, read without a cloud mask)."""
    prob = infer(arrays)
    if job.pre_item is None:
        return prob
    from terrawatch.ml.change_s1 import gate_by_change

    pre = _pre(job, pre_read)(None)
    return np.stack([gate_by_change(p, a, pre.read(t.read_row, t.read_col, t.size))
                     for p, a, t in zip(prob, arrays, tiles)])


def bitemporal(job: HazardJob, tiles: list[Tile], arrays: np.ndarray, infer: Infer,
               pre_read: PreRead | None) -> np.ndarray:
    """Two inputs, ``infer(pre_arrays, arrays)``: the same windows of the pre-event scene (with
    ``job.pre_cloud_mask``) and this scene's. Where the pre scene is cloud or no data (any mask flag) its
    bands are NaN and the result is NaN: no estimate there."""
    pre = _pre(job, pre_read)(job.pre_cloud_mask)
    pre_arrays = np.stack([pre.read(t.read_row, t.read_col, t.size) for t in tiles])
    pre_masks = [pre.read_mask(t.read_row, t.read_col, t.size) for t in tiles]
    # pre-scene cloud (SCL or its L1C scene mask) and no data: no estimate there (NaN in, NaN out)
    hidden = np.stack([m != 0 if m is not None else np.zeros(pre_arrays.shape[2:], bool) for m in pre_masks])
    pre_arrays[np.broadcast_to(hidden[:, None], pre_arrays.shape)] = np.nan
    prob = infer(pre_arrays, arrays)
    return np.where(hidden, np.nan, prob)  # (N, size, size)


def patches(job: HazardJob, tiles: list[Tile], arrays: np.ndarray, infer: Infer,
            pre_read: PreRead | None) -> np.ndarray:
    """A patch classifier slid over each tile every ``job.stride`` px (``ml.mining.mining_probability_map``,
    ``infer``: (n, 12, 48, 48) patches -> (n,) probabilities, batches of 64)."""
    from terrawatch.ml.mining import mining_probability_map

    return np.stack([mining_probability_map(a, stride=job.stride, batch=64, predict=infer) for a in arrays])


STRATEGIES: dict[str, Strategy] = {"segment": segment, "bitemporal": bitemporal, "patches": patches}


def strategy_for(kind: str) -> Strategy:
    """The strategy of a registry ``kind``; ValueError naming the known kinds otherwise."""
    try:
        return STRATEGIES[kind]
    except KeyError:
        raise ValueError(f"unknown hazard kind {kind!r}: known kinds are {sorted(STRATEGIES)} "
                         "(inference/strategies.STRATEGIES)") from None


def probabilities(job: HazardJob, tiles: list[Tile], arrays: np.ndarray, infer: Infer,
                  pre_read: PreRead | None = None) -> np.ndarray:
    """(N, size, size) probabilities 0-1 (NaN = no estimate) of ``job`` for ``tiles``, by its kind's strategy."""
    return strategy_for(job.kind)(job, tiles, arrays, infer, pre_read)


NODATA = 255  # likelihood band: 0-100, 255 = excluded (band 2 has the domain.tiles EXCLUDED_* flags)


def aoa_mask(aoa: dict, transform, read_row: int, read_col: int, size: int) -> np.ndarray:
    """(size, size) bool, True where a pixel centre of the tile window lies inside ``aoa`` (grid CRS)."""
    from affine import Affine
    from rasterio.features import geometry_mask

    return geometry_mask([aoa], out_shape=(size, size), invert=True,
                         transform=transform @ Affine.translation(read_col, read_row))


def classify_tiles(tiles: list[Tile], arrays: np.ndarray, jobs: list[HazardJob], transform,
                   probabilities, valid: np.ndarray | None = None,
                   cloud: np.ndarray | None = None) -> tuple[list[TileResult], float]:
    """Run every job on a batch of tiles and keep each tile's core: parts, likelihood, exclusion flags.

    ``arrays``: (N, bands, size, size) float32, NaN = no data; ``transform``: the scene grid's affine;
    ``probabilities(job, tiles, arrays)`` -> (n, size, size) 0-1 (NaN = no estimate) for the tiles
    given. A job's tiles without a pixel in its AoA are not passed to ``probabilities``; its pixels
    outside the AoA are flagged ``EXCLUDED_AOA`` and never classified. ``valid`` (N, size, size): pixels
    with data (default: no NaN band); ``cloud``: pixels masked as cloud/shadow (no estimate there).
    Returns (results, inference s).
    """
    if valid is None:
        valid = ~np.isnan(arrays).any(axis=1)  # (N, size, size)
    results = [TileResult(t.index, {}, {}, {}, int(crop_core(t, v).sum()), 0.0, 0.0) for t, v in zip(tiles, valid)]
    infer_s = 0.0
    for job in jobs:
        inside = ([aoa_mask(job.aoa, transform, t.read_row, t.read_col, t.size) for t in tiles]
                  if job.aoa is not None else None)
        todo = [i for i, t in enumerate(tiles) if inside is None or crop_core(t, inside[i]).any()]
        ti = time.perf_counter()
        raw = np.full(arrays.shape[:1] + arrays.shape[2:], np.nan, dtype=np.float32)
        if todo:  # tiles without an AoA pixel are not inferred at all
            sel = todo if len(todo) < len(tiles) else slice(None)
            raw[sel] = probabilities(job, [tiles[i] for i in todo], arrays[sel])
        if cloud is not None:
            raw = np.where(cloud, np.nan, raw)  # (N, size, size)
        infer_s += time.perf_counter() - ti
        for i, (tile, prob, ok, res) in enumerate(zip(tiles, raw, valid, results)):
            core_ok = crop_core(tile, ok)
            core_p = crop_core(tile, prob)
            core_out = None
            if inside is not None:
                core_out = ~crop_core(tile, inside[i])
                res.outside_aoa[job.hazard] = int((core_out & core_ok).sum())
                core_ok = core_ok & ~core_out  # outside the AoA: excluded, never classified
            # no estimate from the model on valid input: cloud (optical) or radar shadow (SAR)
            core_x = core_ok & np.isnan(core_p)
            core_lk = np.clip(np.rint(np.nan_to_num(core_p, nan=0.0) * 100), 0, 100).astype(np.uint8)
            classified = core_ok & ~core_x
            mask = classified & (core_lk >= job.threshold * 100)
            res.parts[job.hazard] = tile_parts(mask, core_lk, tile.core_row, tile.core_col)
            res.likelihood[job.hazard] = np.where(classified, core_lk, NODATA).astype(np.uint8)
            flags = np.where(core_ok, 0, EXCLUDED_NODATA) | np.where(core_x, job.excluded_flag, 0)
            if core_out is not None:
                flags = np.where(core_out, EXCLUDED_AOA, flags)
            res.exclusion[job.hazard] = flags.astype(np.uint8)
    return results, infer_s


def _pre(job: HazardJob, pre_read: PreRead | None) -> PreRead:
    if pre_read is None:
        raise ValueError(f"{job.hazard} ({job.kind}, model {job.model}) needs a pre-event scene; none was given")
    return pre_read
