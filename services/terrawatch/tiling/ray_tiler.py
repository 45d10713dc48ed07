"""Run a segmentation model over a scene's tiles on Ray, with backpressure.

Long-lived actors each hold a Triton client and the scene's open rasters; the
driver keeps at most ``max_in_flight`` tiles outstanding and stitches the tile
cores into a (H, W) uint8 likelihood raster (0-100; 255 = no data).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import ray

from terrawatch.domain.scene import Scene, scene_from_item
from terrawatch.domain.tiles import Tile, TileGrid, crop_core

NODATA = 255


@dataclass
class TileOutput:
    index: int
    likelihood: np.ndarray  # (core_h, core_w) uint8, 0-100 or NODATA
    read_s: float
    infer_s: float


@ray.remote(num_cpus=0.5, max_restarts=2, max_task_retries=2)
class TileWorker:
    def __init__(self, triton_url: str) -> None:
        self.triton_url = triton_url
        self._clients: dict = {}
        self._reader = None
        self._scene_id: str | None = None

    def _reader_for(self, item: dict, now_iso: str):
        from datetime import datetime

        from terrawatch.imagery.reader import SceneReader

        if self._scene_id != item["id"]:
            if self._reader is not None:
                self._reader.close()
            self._reader = SceneReader(scene_from_item(item, datetime.fromisoformat(now_iso)))
            self._scene_id = item["id"]
        return self._reader

    def _client(self, model: str):
        from terrawatch.inference.triton import MODELS, TritonSegmenter

        if model not in self._clients:
            self._clients[model] = TritonSegmenter(self.triton_url, MODELS[model])
        return self._clients[model]

    def run(self, item: dict, now_iso: str, model: str, tiles: list[Tile]) -> list[TileOutput]:
        t0 = time.perf_counter()
        reader = self._reader_for(item, now_iso)
        arrays = np.stack([reader.read(t.read_row, t.read_col, t.size) for t in tiles])
        t1 = time.perf_counter()
        valid = ~np.isnan(arrays).any(axis=1)
        probs = self._client(model).infer(arrays)  # models treat NaN as no data
        t2 = time.perf_counter()
        outs = []
        for tile, prob, ok in zip(tiles, probs, valid):
            lk = np.where(ok, np.clip(np.rint(prob * 100), 0, 100), NODATA).astype(np.uint8)
            outs.append(TileOutput(tile.index, np.ascontiguousarray(crop_core(tile, lk)),
                                   (t1 - t0) / len(tiles), (t2 - t1) / len(tiles)))
        return outs


class RayTiler:
    """Driver side: owns the actor pool and stitches results."""

    def __init__(self, triton_url: str, workers: int = 2, batch: int = 4, max_in_flight: int = 8) -> None:
        self.workers = [TileWorker.remote(triton_url) for _ in range(workers)]
        self.batch = max(1, batch)
        self.max_calls = max(1, max_in_flight // self.batch)

    def _batches(self, grid: TileGrid) -> Iterator[list[Tile]]:
        batch: list[Tile] = []
        for tile in grid:
            batch.append(tile)
            if len(batch) == self.batch:
                yield batch
                batch = []
        if batch:
            yield batch

    def run(self, scene: Scene, height: int, width: int, model: str, tile_size: int, overlap: int,
            now_iso: str) -> tuple[np.ndarray, dict[str, float], int]:
        """Return (likelihood (H, W) uint8, stage seconds summed over tiles, tile count)."""
        grid = TileGrid(height, width, tile_size, overlap)
        tiles = {t.index: t for t in grid}
        out = np.full((height, width), NODATA, dtype=np.uint8)
        pending: list = []
        stages = {"read": 0.0, "infer": 0.0}
        i = 0
        for batch in self._batches(grid):
            if len(pending) >= self.max_calls:
                done, pending = ray.wait(pending, num_returns=1)
                self._stitch(ray.get(done[0]), tiles, out, stages)
            worker = self.workers[i % len(self.workers)]
            pending.append(worker.run.remote(scene.item, now_iso, model, batch))
            i += 1
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            self._stitch(ray.get(done[0]), tiles, out, stages)
        return out, stages, len(tiles)

    @staticmethod
    def _stitch(results: list[TileOutput], tiles: dict[int, Tile], out: np.ndarray, stages: dict) -> None:
        for r in results:
            t = tiles[r.index]
            out[t.core_row : t.core_row + t.core_h, t.core_col : t.core_col + t.core_w] = r.likelihood
            stages["read"] += r.read_s
            stages["infer"] += r.infer_s

    def close(self) -> None:
        for w in self.workers:
            ray.kill(w)
