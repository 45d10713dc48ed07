"""Pipeline benchmark: bare flood_s1 throughput per runtime (torch eager, ONNX Runtime) against the hardware,
and the cost per tile end to end through Kafka + Ray + Triton + PostGIS, same model, same machine, one run.

    python bench/pipeline.py [--scenes 6] [--size 768] [--port-base 41000]
    terrawatch bench pipeline          (the same; also `make bench`)

1. bare: ``terrawatch.ml.flood_s1.predict_batch`` (the code Triton's model.py runs) on batches of
   ``triton_batch`` (4) tiles of ``tile_size`` (256) px made of real synthetic-scene windows, in two
   layouts that use the machine's 2 cores: one process with 2 torch threads, and 2 processes with
   1 thread each (tiles/s summed). The faster layout is the model's limit on this machine and the
   reference of the efficiency (measured before and after the end-to-end runs; the faster run counts).
2. triton: the same batches through tritonclient gRPC to Triton, one request at a time; tiles/s.
3. end-to-end: a worker (`terrawatch run`) on a private stack; after one warm-up scene, N synthetic
   scenes are published at once and the clock stops when the last run is committed in PostGIS;
   tiles/s = sum of the runs' tiles / wall time. ``efficiency`` = end-to-end / bare. Then one large
   scene (``--large-size``, 2304 px = 144 tiles) the same way: ``efficiency_large``. ``--in-flight 1,2``
   repeats both with workers keeping 1 and 2 scenes in flight, side by side in the same run.
Stage breakdown: the worker's terrawatch_stage_duration_seconds (sum per stage over the measured
scenes, seconds per scene), Triton's own request/queue/compute times and mean batch size, and the CPU
seconds each process group (triton, ray actors, ray core, worker, postgres, kafka, other) used during
the phase. ``--instances`` / ``--torch-threads`` render flood_s1's Triton instance count and threads;
``--tile-workers 2,3`` compares Ray TileWorker counts side by side (keys ``<in flight>/tw<workers>``),
``--in-flight-tiles 8,16`` the tiles outstanding on Ray per scene (keys ``<in flight>/tiles<n>``).

Issue 29 (the cost-per-tile contract): the bare measurement is bench/runtime.py (torch eager and ONNX Runtime,
both layouts, interleaved, with a matrix-multiply peak sampled next to each; FLOPs per tile); ``--runtimes
torch,onnxruntime`` (default) runs the end-to-end phases once per runtime on the same stack (flood_s1's
config.pbtxt is rewritten and Triton reloads it). The JSON carries ``runtime_speedup_vs_torch`` (bare tiles/s
of the shipped runtime over torch eager, best layout each), ``flops_per_tile_gflop``, ``gflop_per_s`` and
``fraction_of_peak`` per runtime, ``peak_gflop_per_s``, and ``cpu_s_per_tile`` per runtime and scene size:
``model`` = Triton's CPU-s (server + Python-backend stubs), ``overhead`` = worker + Ray actors + Ray core +
PostgreSQL + Kafka of this bench's stack, ``total`` = both (processes of other stacks on a shared machine are
left out: ``outside``), and ``cpu_s_per_tile_large_vs_torch`` (total of the shipped runtime / torch, 144 tiles).
Prints the result as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import runtime as rt_bench  # noqa: E402
from bench.common import (  # noqa: E402
    cpu_by_group, cpu_snapshot, delta, emit, log, machine, private_stack, publish, scrape, set_runtime, start_worker,
    stop_worker, synthetic_items, wait_http, wait_runs,
)


def tile_batches(item: dict, tile: int, batch: int, n_batches: int):
    """Real (batch, 2, tile, tile) dB windows of a synthetic scene, cycled."""
    import numpy as np

    from terrawatch.domain.scene import scene_from_item
    from terrawatch.domain.tiles import TileGrid
    from terrawatch.imagery.reader import SceneReader

    with SceneReader(scene_from_item(item)) as reader:
        tiles = [reader.read(t.read_row, t.read_col, t.size)
                 for t in TileGrid(reader.grid.height, reader.grid.width, tile, 32)]
    arrays = np.stack(tiles)
    return [arrays[(np.arange(batch) + i * batch) % len(arrays)] for i in range(n_batches)]


def triton_only(url: str, batches, min_s: float) -> dict:
    from terrawatch.inference.triton import MODELS, TritonModel

    m = TritonModel(url, MODELS["flood_s1"])
    m.infer(batches[0])
    n = 0
    t0 = time.perf_counter()
    while True:
        for b in batches:
            m.infer(b)
            n += len(b)
        if time.perf_counter() - t0 >= min_s:
            break
    dt = time.perf_counter() - t0
    return {"tiles": n, "seconds": round(dt, 2), "tiles_per_s": round(n / dt, 3)}


def _phase(bs, work: Path, metrics_url: str, triton_url: str, scenes: int, size: int, tag: str,
           timeout_s: float) -> dict:
    """Publish ``scenes`` synthetic scenes of ``size`` px at once to the running worker; the clock stops when
    the last run is committed. Returns tiles/s, stage seconds per scene and Triton's own counters."""
    s = bs.settings
    items = synthetic_items(work, scenes, size, tag, start=1)
    scope = (str(s.state_dir), str(bs.stack.ray.temp_dir)) if bs.stack is not None else None
    m0, tr0, cpu0 = scrape(metrics_url), scrape(triton_url), cpu_snapshot(scope)
    log(f"end to end: {scenes} scenes of {size}x{size} px ...")
    t0 = time.perf_counter()
    publish(s, items)
    runs = wait_runs(s, [i["id"] for i in items], timeout_s)
    wall = time.perf_counter() - t0
    m1, tr1, cpu1 = scrape(metrics_url), scrape(triton_url), cpu_snapshot(scope)
    tiles = sum(runs.values())
    out: dict = {"scenes": scenes, "scene_px": size, "tiles": tiles, "seconds": round(wall, 2),
                 "tiles_per_s": round(tiles / wall, 3), "scenes_per_min": round(60 * scenes / wall, 2)}
    stages = {}
    for stage in STAGES:
        total = delta(m1, m0, "terrawatch_stage_duration_seconds_sum", stage=stage)
        stages[stage] = round(total / scenes, 3)
    stages["wall_per_scene"] = round(wall / scenes, 3)
    out["stage_s_per_scene"] = stages
    n_inf = delta(tr1, tr0, "nv_inference_count", model="flood_s1")
    n_exec = delta(tr1, tr0, "nv_inference_exec_count", model="flood_s1")
    n_req = delta(tr1, tr0, "nv_inference_request_success", model="flood_s1")
    us = lambda name: delta(tr1, tr0, name, model="flood_s1")  # noqa: E731
    out["triton"] = {
        "tiles": int(n_inf), "requests": int(n_req), "executions": int(n_exec),
        "mean_batch": round(n_inf / n_exec, 2) if n_exec else None,
        "compute_s": round(us("nv_inference_compute_infer_duration_us") / 1e6, 2),
        "queue_s": round(us("nv_inference_queue_duration_us") / 1e6, 2),
        "request_s": round(us("nv_inference_request_duration_us") / 1e6, 2),
        "compute_share_of_wall": round(us("nv_inference_compute_infer_duration_us") / 1e6 / wall, 3),
    }
    # CPU seconds per process group while the phase ran (2 cores = 2 CPU seconds per wall second).
    out["cpu_s"] = cpu_by_group(cpu0, cpu1)
    out["cpu_s_per_tile"] = {g: round(v / tiles, 4) for g, v in out["cpu_s"].items()} if tiles else {}
    model = out["cpu_s"].get("triton", 0.0)
    overhead = sum(out["cpu_s"].get(g, 0.0) for g in OVERHEAD_GROUPS)
    out["cost_per_tile"] = {"model": round(model / tiles, 4), "overhead": round(overhead / tiles, 4),
                            "total": round((model + overhead) / tiles, 4)} if tiles else {}
    return out


# CPU groups of the pipeline that are not the model (bench/common.CPU_GROUPS); "bench", "other" (unclassified
# processes of this stack) and "outside" (other stacks) are reported but not charged to the pipeline.
OVERHEAD_GROUPS = ("worker", "ray_actors", "ray_core", "postgres", "kafka")


STAGES = ("check", "open", "read", "infer", "tiling_wall", "products", "vectorize", "store", "commit")


def run(scenes: int = 6, size: int = 768, port_base: int = 41000, min_bare_s: float = 20.0,
        keep_stack: bool = False, timeout_s: float = 1800, large_size: int = 2304,
        in_flight: list[int] | None = None, preferred_batch: str = "", queue_delay_us: int | None = None,
        instances: int | None = None, torch_threads: int | None = None, tile_workers: list[int] | None = None,
        in_flight_tiles: list[int] | None = None, runtimes: list[str] | None = None) -> dict:
    """Bare torch, Triton alone, then end to end: ``scenes`` scenes of ``size`` px and one scene of
    ``large_size`` px (0 = skip), for each ``in_flight`` value (the worker's TERRAWATCH_SCENES_IN_FLIGHT;
    default: the setting's default) and each of ``runtimes`` (flood_s1 in Triton; default torch then the shipped
    runtime), all on one stack in one run; the bare runtimes before and after."""
    from terrawatch.ml import flood_s1
    from terrawatch.settings import REPO_ROOT, Settings

    shipped = rt_bench.shipped_runtime((REPO_ROOT / "models" / "flood_s1" / "config.pbtxt").read_text())
    runtimes = runtimes or list(dict.fromkeys(["torch", shipped]))

    in_flight = in_flight or [Settings.model_fields["scenes_in_flight"].default]
    result: dict = {"bench": "pipeline", "machine": machine()}
    work = Path(tempfile.mkdtemp(prefix="tw-bench-pipeline-"))
    with private_stack(port_base, keep=keep_stack, preferred_batch=preferred_batch, queue_delay_us=queue_delay_us,
                       instances=instances, torch_threads=torch_threads, runtime=runtimes[0]) as bs:
        s = bs.settings
        result.update({"model": "flood_s1", "weights": bs.weights, "tile_px": s.tile_size, "overlap_px": s.tile_overlap,
                       "batch": s.triton_batch, "triton_config": bs.triton_config})
        ref = synthetic_items(work, 1, 512, "bare")[0]
        batches = tile_batches(ref, s.tile_size, s.triton_batch, 4)

        weights = s.model_repository / "flood_s1" / "1" / "model.pt"
        flops = rt_bench.flops_per_tile(flood_s1.load_net(weights), s.tile_size)
        bare_rt = tuple(dict.fromkeys(["torch", shipped, *runtimes]))
        log(f"bare {', '.join(bare_rt)} (1 process x 2 threads, 2 processes x 1 thread, matmul peak) ...")
        bare = [rt_bench.measure(weights, batches, min_bare_s, 1, bare_rt)]
        log(f"bare: {bare[0]['runs']} peak {bare[0]['peak_runs']}")
        log("Triton alone (one request at a time) ...")
        result["triton_only"] = dict(triton_only(s.triton, batches, min_bare_s), runtime=runtimes[0])
        log(f"triton only: {result['triton_only']}")
        runs: dict[str, dict] = {}
        combos = [(rt, n, w, ft) for rt in runtimes for ft in (in_flight_tiles or [None])
                  for w in (tile_workers or [None]) for n in in_flight]
        try:
            for rt, n, w, ft in combos:
                if bs.triton_config.get("runtime") != rt:
                    log(f"Triton: flood_s1 runtime -> {rt} (reload) ...")
                    set_runtime(bs, rt)
                key = (f"{rt}/" if len(runtimes) > 1 else "") + str(n) + ("" if w is None else f"/tw{w}") + \
                    ("" if ft is None else f"/tiles{ft}")
                env = {"TERRAWATCH_SCENES_IN_FLIGHT": str(n)}
                if w is not None:
                    env["TERRAWATCH_TILE_WORKERS"] = str(w)
                    env["TERRAWATCH_MAX_IN_FLIGHT_TILES"] = str(w * s.triton_batch)
                if ft is not None:
                    env["TERRAWATCH_MAX_IN_FLIGHT_TILES"] = str(ft)
                worker = start_worker(bs, work / f"worker-{rt}-{n}-{w}.log", **env)
                try:
                    metrics_url = f"http://127.0.0.1:{s.metrics_port}/metrics"
                    triton_url = f"http://127.0.0.1:{s.triton_metrics_port}/metrics"
                    try:
                        wait_http(metrics_url, 300)
                    except TimeoutError:
                        log_path = work / f"worker-{rt}-{n}-{w}.log"
                        log("worker log tail:\n" + log_path.read_text(errors="replace")[-3000:])
                        raise
                    warm = synthetic_items(work, 1, size, f"warm{n}-")
                    publish(s, warm)
                    wait_runs(s, [i["id"] for i in warm], 600)
                    r = {"small": _phase(bs, work, metrics_url, triton_url, scenes, size, f"e2e{n}-", timeout_s)}
                    if large_size:
                        r["large"] = _phase(bs, work, metrics_url, triton_url, 1, large_size, f"big{n}-", timeout_s)
                    r["runtime"] = rt
                    runs[key] = r
                    log(f"scenes in flight {key}: {r}")
                finally:
                    stop_worker(worker)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # Bare again after the end-to-end runs: on a shared machine the load changes; the faster of the
        # two bare runs is the reference (the conservative choice for the efficiency).
        log("bare runtimes again ...")
        bare.append(rt_bench.measure(weights, batches, min_bare_s, 1, bare_rt))
        log(f"bare: {bare[1]['runs']} peak {bare[1]['peak_runs']}")
    allbare = rt_bench.combine([b["runs"][0] for b in bare], [b["peak_runs"][0] for b in bare])
    result["bare_runtimes"] = allbare
    result["bare"] = dict(allbare["best"][shipped], runtime=shipped)
    result["bare_runs_tiles_per_s"] = allbare["runs"]
    result["shipped_runtime"] = shipped
    result.update(rt_bench.summarise(allbare, flops, shipped))
    for r in runs.values():
        ref_tps = allbare["best"][r["runtime"]]["tiles_per_s"]
        for phase in (v for v in r.values() if isinstance(v, dict)):
            phase["efficiency"] = round(phase["tiles_per_s"] / ref_tps, 3)
    cost: dict = {}
    for r in runs.values():  # the last combo of each runtime (the default: the only one)
        cost[r["runtime"]] = {ph: r[ph]["cost_per_tile"] for ph in ("small", "large") if ph in r}
    result["cpu_s_per_tile"] = cost
    if "torch" in cost and shipped in cost and "large" in cost["torch"] and "large" in cost[shipped]:
        result["cpu_s_per_tile_large_vs_torch"] = round(
            cost[shipped]["large"]["total"] / cost["torch"]["large"]["total"], 3)
        result["cpu_s_per_tile_small_vs_torch"] = round(
            cost[shipped]["small"]["total"] / cost["torch"]["small"]["total"], 3)
    result["runs_by_scenes_in_flight"] = runs
    main_run = runs[list(runs)[-1]]
    result["scenes_in_flight"] = in_flight[-1]
    result["end_to_end"] = main_run["small"]
    result["stage_s_per_scene"] = main_run["small"]["stage_s_per_scene"]
    result["stage_note"] = ("read/infer are summed over tiles inside the Ray actors (2 actors, overlapping); "
                            "with several scenes in flight the stages of different scenes overlap in time")
    result["triton"] = main_run["small"]["triton"]
    result["machine"]["load_avg_1m_at_end"] = round(__import__("os").getloadavg()[0], 2)
    result["efficiency"] = main_run["small"]["efficiency"]
    if "large" in main_run:
        result["efficiency_large"] = main_run["large"]["efficiency"]
        result["large_scene_tiles"] = main_run["large"]["tiles"]
    result["goals"] = {"runtime_speedup_vs_torch": ">= 2.0", "cpu_s_per_tile_large_vs_torch": "<= 0.6"}
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--size", type=int, default=768, help="scene side in px (10 m)")
    ap.add_argument("--port-base", type=int, default=41000)
    ap.add_argument("--min-bare-s", type=float, default=20.0, help="seconds of bare/Triton-only timing each")
    ap.add_argument("--keep-stack", action="store_true")
    ap.add_argument("--large-size", type=int, default=2304, help="side (px) of the one large scene (0 = skip)")
    ap.add_argument("--in-flight", default="", help="comma-separated scenes-in-flight values to compare "
                    "side by side (default: the setting's default)")
    ap.add_argument("--preferred-batch", default="", help="flood_s1 dynamic-batcher preferred sizes, e.g. 4,8")
    ap.add_argument("--queue-delay-us", type=int, default=None, help="flood_s1 dynamic-batcher max queue delay")
    ap.add_argument("--tile-workers", default="", help="comma-separated Ray TileWorker counts to compare (each "
                    "with TERRAWATCH_MAX_IN_FLIGHT_TILES = workers x batch; default: the settings')")
    ap.add_argument("--in-flight-tiles", default="", help="comma-separated TERRAWATCH_MAX_IN_FLIGHT_TILES values to "
                    "compare (tiles outstanding on Ray per scene; keys <in flight>/tiles<n>)")
    ap.add_argument("--instances", type=int, default=None, help="flood_s1 Triton CPU instances (default: shipped)")
    ap.add_argument("--torch-threads", type=int, default=None, help="torch threads per instance (default: shipped)")
    ap.add_argument("--runtimes", default="", help="comma-separated flood_s1 runtimes to run end to end side by "
                    "side (default: torch and the shipped one)")
    a = ap.parse_args(argv)
    emit(run(a.scenes, a.size, a.port_base, a.min_bare_s, a.keep_stack, large_size=a.large_size,
             in_flight=[int(v) for v in a.in_flight.split(",") if v.strip()] or None,
             preferred_batch=a.preferred_batch, queue_delay_us=a.queue_delay_us, instances=a.instances,
             torch_threads=a.torch_threads,
             tile_workers=[int(v) for v in a.tile_workers.split(",") if v.strip()] or None,
             in_flight_tiles=[int(v) for v in a.in_flight_tiles.split(",") if v.strip()] or None,
             runtimes=[v.strip() for v in a.runtimes.split(",") if v.strip()] or None))


if __name__ == "__main__":
    main()
