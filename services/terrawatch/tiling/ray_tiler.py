"""Run hazard models over a scene's tiles on Ray, with backpressure, and merge polygons across tiles.

Long-lived actors each hold Triton clients and the scene's open rasters. A tile
is read once and every hazard job runs on it; each tile's core is thresholded
and polygonized where it was inferred (pixel coordinates), so the driver only
holds polygons: its memory does not grow with the scene's pixel count. At most
``max_in_flight`` tiles are outstanding at any time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import ray

from terrawatch.domain.jobs import HazardJob, SceneTiles, TileResult
from terrawatch.domain.scene import Scene, scene_from_item
from terrawatch.domain.tiles import EXCLUDED_CLOUD, EXCLUDED_NODATA, Tile, TileGrid
from terrawatch.inference.strategies import NODATA, classify_tiles, probabilities
from terrawatch.observability.metrics import TRITON_REQUEST_SECONDS
from terrawatch.tiling.ray_cluster import RayHeadRestarted, ray_session
from terrawatch.vectorize.polygonize import merge_parts


# max_restarts=-1: a TileWorker killed any number of times (OOM, a segfaulting GDAL on a hostile file) is
# restarted; with a finite budget the pool died for good and every later scene went to the DLQ.
@ray.remote(num_cpus=0.5, max_restarts=-1, max_task_retries=2)
class TileWorker:
    """Reads tile windows, asks Triton, keeps the cores. Scenes interleave on an actor when the worker
    has several scenes in flight, so the open rasters are kept per scene (the ``KEEP_SCENES`` most
    recently used), not re-opened on every switch."""

    KEEP_SCENES = 4

    def __init__(self, triton_url: str) -> None:
        from collections import OrderedDict

        self.triton_url = triton_url
        self._clients: dict = {}
        # scene id -> (reader, {pre-event scene id: reader on the scene's grid}), least recently used first
        self._open: OrderedDict[str, tuple[object, dict[str, object]]] = OrderedDict()

    def _reader_for(self, scene: Scene, grid, cloud_mask: str | None = None):
        """The scene's open rasters, read on ``grid`` (the driver's; not re-derived here), with its
        per-scene cloud mask raster when given."""
        from terrawatch.imagery.reader import SceneReader

        if scene.id in self._open:
            self._open.move_to_end(scene.id)
            return self._open[scene.id][0]
        while len(self._open) >= self.KEEP_SCENES:
            _, (old, pres) = self._open.popitem(last=False)
            for r in (old, *pres.values()):
                r.close()
        reader = SceneReader(scene, grid, cloud_mask=cloud_mask)
        self._open[scene.id] = (reader, {})
        return reader

    def _pre_reader(self, scene_id: str, pre_item: dict, now_iso: str, grid, cloud_mask: str | None = None):
        from datetime import datetime

        from terrawatch.imagery.reader import SceneReader

        pres = self._open[scene_id][1]
        if pre_item["id"] not in pres:
            pres[pre_item["id"]] = SceneReader(scene_from_item(pre_item, datetime.fromisoformat(now_iso)), grid,
                                               cloud_mask=cloud_mask)
        return pres[pre_item["id"]]

    def _probabilities(self, job: HazardJob, tiles: list[Tile], arrays: np.ndarray, now_iso: str,
                       reader) -> np.ndarray:
        """(N, size, size) probabilities 0-1 of ``job`` for the tiles (NaN-safe models): its kind's strategy
        (``inference.strategies``) with the job's Triton model as ``infer`` and its pre-event scene, opened on
        this scene's grid on first use, as ``pre_read``."""
        pre_read = None
        if job.pre_item is not None:
            def pre_read(cloud_mask: str | None):
                return self._pre_reader(reader.scene.id, job.pre_item, now_iso, reader.grid, cloud_mask)
        return probabilities(job, tiles, arrays, self._client(job.model).infer, pre_read)

    def _client(self, model: str):
        from terrawatch.inference.triton import MODELS, TritonModel

        if model not in self._clients:
            self._clients[model] = TritonModel(self.triton_url, MODELS[model], observe=False)
        return self._clients[model]

    def run(self, scene: Scene, grid, now_iso: str, jobs: list[HazardJob], tiles: list[Tile],
            cloud_mask: str | None = None) -> list[TileResult]:
        """``scene``: parsed once by the worker, not re-parsed from the STAC item per actor (passed by
        value: a few kB, inlined in the task; a ``ray.put`` object was lost with the Ray head and hung
        the driver in the head-restart fault test); ``grid``: the scene's processing grid as the worker
        read it; ``cloud_mask``: path of the scene's L1C cloud-mask GeoTIFF (products/cloud_mask.py),
        applied like an L2A SCL band."""
        t0 = time.perf_counter()
        reader = self._reader_for(scene, grid, cloud_mask)
        # read into one (N, bands, size, size) array: a list of tiles and its np.stack copy were both alive
        arrays = np.empty((len(tiles), len(reader.present), tiles[0].size, tiles[0].size), dtype=np.float32)
        for i, t in enumerate(tiles):
            arrays[i] = reader.read(t.read_row, t.read_col, t.size)
        valid = np.ones((len(tiles), *arrays.shape[2:]), dtype=bool)  # (N, size, size); L2A has no B10
        for b in np.flatnonzero(reader.present):  # band by band: no copy of the present bands
            valid &= ~np.isnan(arrays[:, b])
        # L2A SCL flags, the L1C scene cloud mask's flags, or None
        masks = [reader.read_mask(t.read_row, t.read_col, t.size) for t in tiles]
        cloud = np.zeros(valid.shape, dtype=bool)
        for i, m in enumerate(masks):
            if m is not None:
                valid[i] &= (m & EXCLUDED_NODATA) == 0
                cloud[i] = (m & EXCLUDED_CLOUD) != 0
        # cloud/shadow per SCL or the scene mask: the models see no data there, so they give no estimate (flagged as cloud)
        arrays[np.broadcast_to(cloud[:, None], arrays.shape)] = np.nan
        t1 = time.perf_counter()
        results, infer_s = classify_tiles(
            tiles, arrays, jobs, reader.grid.transform,
            lambda job, ts, arr: self._probabilities(job, ts, arr, now_iso, reader), valid=valid, cloud=cloud)
        for res in results:
            res.read_s = (t1 - t0) / len(tiles)
            res.infer_s = infer_s / len(tiles)
        if results:
            for name, client in self._clients.items():
                results[0].triton_requests.extend((client.spec.name, dt) for dt in client.request_seconds)
                client.request_seconds.clear()
        return results


class RayTiler:
    """Driver side: owns the actor pool, bounds in-flight tiles, merges parts.

    ``address``: the Ray GCS (``host:port``) this driver joined; when no tile finishes for
    ``stall_probe_s`` s the cluster is probed, and a dead or restarted head raises DependencyUnavailable
    instead of waiting for ever.
    """

    def __init__(self, triton_url: str, workers: int = 2, batch: int = 4, max_in_flight: int = 8,
                 address: str | None = None, stall_probe_s: float = 20.0) -> None:
        self.address = address
        self.session = ray_session(address)
        self.stall_probe_s = stall_probe_s
        # SPREAD: on a cluster of several nodes the actors go to different nodes (Ray's default packs them
        # onto the driver's node), so tiles are read and inferred on every node; one node is no different.
        self.workers = [TileWorker.options(scheduling_strategy="SPREAD").remote(triton_url)
                        for _ in range(workers)]
        self.batch = max(1, batch)
        self.max_calls = max(1, max_in_flight // self.batch)

    def check_cluster(self) -> None:
        """Raise DependencyUnavailable if the Ray head is unreachable, RayHeadRestarted if it is a new one."""
        if self.address is None:
            return
        now = ray_session(self.address)
        if self.session is not None and now != self.session:
            raise RayHeadRestarted("ray", f"the ray head was restarted (session {self.session} -> {now})")

    def _wait_one(self, pending: list) -> tuple[list, list]:
        while True:
            done, rest = ray.wait(pending, num_returns=1, timeout=self.stall_probe_s)
            if done:
                return done, rest
            self.check_cluster()  # nothing finished for a while: slow, or is the head gone?

    def _batches(self, grid: TileGrid) -> Iterator[list[Tile]]:
        batch: list[Tile] = []
        for tile in grid:
            batch.append(tile)
            if len(batch) == self.batch:
                yield batch
                batch = []
        if batch:
            yield batch

    def run(self, scene: Scene, grid, jobs: list[HazardJob], tile_size: int, overlap: int, now_iso: str,
            products: dict[str, str] | None = None, cloud_mask: str | None = None) -> SceneTiles:
        """Tile ``scene`` on ``grid`` (imagery.reader.Grid); write each hazard's likelihood and exclusion
        raster to ``products[hazard]`` (a 2-band GeoTIFF path, windowed writes) when given; ``cloud_mask``:
        the scene's cloud-mask GeoTIFF (a path the actors can open), cloud/shadow there is excluded."""
        tiles = TileGrid(grid.height, grid.width, tile_size, overlap)
        out = SceneTiles(tiles=len(tiles), parts={j.hazard: [] for j in jobs})
        by_index = {t.index: t for t in tiles}
        sinks = _open_products(products or {}, grid)
        pending: list = []
        try:
            for i, batch in enumerate(self._batches(tiles)):
                if len(pending) >= self.max_calls:
                    done, pending = self._wait_one(pending)
                    self._collect(ray.get(done[0]), out, by_index, sinks)
                worker = self.workers[i % len(self.workers)]
                pending.append(worker.run.remote(scene, grid, now_iso, jobs, batch, cloud_mask))
            while pending:
                done, pending = self._wait_one(pending)
                self._collect(ray.get(done[0]), out, by_index, sinks)
        finally:
            for ds in sinks.values():
                ds.close()
        out.parts = {h: merge_parts(p) for h, p in out.parts.items()}
        return out

    @staticmethod
    def _collect(results: list[TileResult], out: SceneTiles, tiles: dict[int, Tile], sinks: dict) -> None:
        from rasterio.windows import Window

        for r in results:
            for model, seconds in r.triton_requests:
                TRITON_REQUEST_SECONDS.labels(model).observe(seconds)
            out.valid_pixels += r.valid_pixels
            out.read_s += r.read_s
            out.infer_s += r.infer_s
            for hazard, parts in r.parts.items():
                out.parts[hazard].extend(parts)
            for hazard, n in r.outside_aoa.items():
                out.outside_aoa[hazard] = out.outside_aoa.get(hazard, 0) + n
            t = tiles[r.index]
            win = Window(t.core_col, t.core_row, t.core_w, t.core_h)
            for hazard, lk in r.likelihood.items():
                if hazard in sinks:
                    sinks[hazard].write(lk, 1, window=win)
                    sinks[hazard].write(r.exclusion[hazard], 2, window=win)

    def close(self) -> None:
        for w in self.workers:
            ray.kill(w)


def _open_products(paths: dict[str, str], grid) -> dict:
    import rasterio

    from terrawatch.products.cog import INTERMEDIATE_COMPRESSION

    sinks = {}
    for hazard, path in paths.items():
        # band 1 likelihood (255 = excluded), band 2 why excluded: the exclusion mask is stored, not dropped
        sinks[hazard] = rasterio.open(
            path, "w", driver="GTiff", width=grid.width, height=grid.height, count=2, dtype="uint8",
            crs=grid.crs, transform=grid.transform, nodata=NODATA, tiled=True, blockxsize=256, blockysize=256,
            interleave="band", **INTERMEDIATE_COMPRESSION)
        sinks[hazard].set_band_description(1, f"{hazard} likelihood 0-100 (255 = excluded, see band 2)")
        sinks[hazard].set_band_description(
            2, "exclusion bit flags: 1 no data, 2 cloud/cloud shadow, 4 radar shadow/layover, 8 outside the model's "
               "area of applicability; 0 = classified")
    return sinks
