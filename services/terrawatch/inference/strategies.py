"""How each kind of hazard model turns a batch of tiles into probabilities: a table keyed by the registry's ``kind``.

Pure (no Ray, no Triton client): the Ray actor (``tiling/ray_tiler.TileWorker``) looks a job's strategy up in
:data:`STRATEGIES` and hands it the model as ``infer`` and the job's pre-event scene as ``pre_read``; unit
tests hand it fakes (tests/unit/test_strategies.py). ``ml`` modules are imported lazily, where a kind needs one.

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

from collections.abc import Callable
from typing import Protocol

import numpy as np

from terrawatch.domain.jobs import HazardJob
from terrawatch.domain.tiles import Tile


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


def _pre(job: HazardJob, pre_read: PreRead | None) -> PreRead:
    if pre_read is None:
        raise ValueError(f"{job.hazard} ({job.kind}, model {job.model}) needs a pre-event scene; none was given")
    return pre_read
