"""The bare network against the hardware (issue 29): flood_s1 tiles/s per runtime (torch eager, ONNX Runtime)
and layout, the network's FLOPs per tile, achieved GFLOP/s and the machine's fp32 matrix-multiply peak.

Used by bench/pipeline.py (``make bench``); also runnable alone, prints one JSON object as its last line:

    python bench/runtime.py [--min-s 10] [--rounds 2] [--int8]

Each measurement runs in fresh spawned processes (no state shared between runtimes): ``1x2`` = one process
with 2 intra-op threads, ``2x1`` = two processes of 1 thread at once (tiles/s summed). Runtimes and layouts
are interleaved, ``rounds`` times; each runtime's best is reported (on a shared VM the slowest rounds are
other people's load). The loop is ``terrawatch.ml.flood_s1.predict_batch`` (normalise, pad, net, sigmoid,
no-data, region growing) on real synthetic-scene tiles, i.e. what Triton's model.py runs per request.
FLOPs: 2 x multiply-accumulates of every Conv2d / ConvTranspose2d / Linear for one tile (forward hooks).
Peak: the faster of ``torch.mm`` (MKL) and numpy's ``@`` (OpenBLAS) on 2048 x 2048 fp32 matrices in the same
layouts, sampled before every bare measurement, the best sample. It is a *measured* GEMM rate, not the
theoretical peak: on the development VM's AMD Zen 5 cores (2 x 512-bit FMA, 64 fp32 FLOP per cycle) GEMM
reached ~90-110 GFLOP/s per core, about half the theoretical rate, and ONNX Runtime's convolutions can exceed
it (fraction of peak > 1). Under other people's load every number here is lower and noisier.
``speedup_gemm_normalised``: per round and layout, each runtime's tiles/s divided by the GEMM sample taken
just before it, the shipped runtime over torch, and the median over the pairs (load that changed between
the two measurements of a pair cancels, load that changed within one does not: docs/performance.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RUNTIMES = ("torch", "onnxruntime")
LAYOUTS = (("1x2", 1, 2), ("2x1", 2, 1))


def flops_per_tile(net, tile: int, in_channels: int = 2) -> float:
    """Forward FLOPs (2 x MACs of convolutions, transposed convolutions and linear layers) of one tile."""
    import torch
    from torch import nn

    total = [0.0]

    def hook(mod, inp, out):
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            cin = mod.in_channels // mod.groups
            k = mod.kernel_size[0] * mod.kernel_size[1]
            spatial = out.shape[2] * out.shape[3] if isinstance(mod, nn.Conv2d) else inp[0].shape[2] * inp[0].shape[3]
            total[0] += 2.0 * k * cin * mod.out_channels * spatial
        elif isinstance(mod, nn.Linear):
            total[0] += 2.0 * mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.inference_mode():
            net(torch.zeros(1, in_channels, tile, tile))
    finally:
        for h in hs:
            h.remove()
    return total[0]


def _loop(fn, min_s: float) -> tuple[int, float]:
    n, t0 = 0, time.perf_counter()
    while True:
        n += fn()
        if time.perf_counter() - t0 >= min_s:
            return n, time.perf_counter() - t0


def bare_one(weights: Path, batches, runtime: str, threads: int, min_s: float, barrier=None) -> dict:
    """tiles/s of ``predict_batch`` with ``runtime`` on ``threads`` intra-op threads, in this process."""
    import torch

    from terrawatch.ml import flood_s1

    torch.set_num_threads(threads)
    net = flood_s1.load_net(weights)
    if runtime in ("onnxruntime", "onnxruntime-int8"):
        from terrawatch.inference.local import _calibration
        from terrawatch.ml.nets.onnx_runtime import ort_module

        int8 = runtime == "onnxruntime-int8"
        net = ort_module(net, [torch.zeros(1, 2, 256, 256)], threads=threads, graph_opt="all",
                         quantize="int8" if int8 else "", calibration=_calibration() if int8 else None)
    elif runtime != "torch":
        raise ValueError(runtime)
    flood_s1.predict_batch(net, batches[0])  # warm-up
    if barrier is not None:
        barrier.wait(600)  # the processes of a layout time the same seconds (start-up under load differs)

    def once():
        for b in batches:
            flood_s1.predict_batch(net, b)
        return sum(len(b) for b in batches)

    n, dt = _loop(once, min_s)
    return {"tiles": n, "seconds": round(dt, 2), "tiles_per_s": round(n / dt, 3)}


def matmul_one(threads: int, min_s: float, n: int = 2048, barrier=None) -> dict:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    an, bn = a.numpy(), b.numpy()
    torch.mm(a, b)
    if barrier is not None:
        barrier.wait(600)
    k, dt = _loop(lambda: (torch.mm(a, b), 1)[1], min_s / 2)
    an @ bn  # numpy's OpenBLAS (threads: OPENBLAS_NUM_THREADS, set by _layout) dispatches AVX-512 on AMD too
    kn, dtn = _loop(lambda: (an @ bn, 1)[1], min_s / 2)
    return {"gflop_per_s": round(2.0 * n ** 3 * max(k / dt, kn / dtn) / 1e9, 1),
            "torch_mm": round(2.0 * n ** 3 * k / dt / 1e9, 1), "numpy_matmul": round(2.0 * n ** 3 * kn / dtn / 1e9, 1)}


def _proc(kind: str, args: tuple, q, barrier=None) -> None:
    q.put(bare_one(*args, barrier=barrier) if kind == "bare" else matmul_one(*args, barrier=barrier))


def _layout(ctx, kind: str, procs: int, args: tuple) -> list[dict]:
    """Run ``procs`` processes at once; each loads and warms up, then all start timing together."""
    import os

    q, barrier = ctx.Queue(), ctx.Barrier(procs)
    ps = [ctx.Process(target=_proc, args=(kind, args, q, barrier)) for _ in range(procs)]
    saved = os.environ.get("OPENBLAS_NUM_THREADS")
    if kind == "mm":
        os.environ["OPENBLAS_NUM_THREADS"] = str(args[0])  # read by the child's numpy at import
    try:
        for p in ps:
            p.start()
    finally:
        if saved is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = saved
    rs = [q.get(timeout=900) for _ in ps]
    for p in ps:
        p.join(60)
    return rs


def measure(weights: Path, batches, min_s: float = 10.0, rounds: int = 1, runtimes=RUNTIMES,
            peak_s: float = 2.0) -> dict:
    """Bare tiles/s per runtime and layout (interleaved, ``rounds`` times) and the matmul peak per layout.
    Returns {"runs": [{runtime: {layout: tiles/s}}...], "peak_runs": [...], "best": {runtime: {...}},
    "peak_gflop_per_s": best peak}."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    runs, peaks, gemms = [], [], []
    for _ in range(rounds):
        run: dict = {rt: {} for rt in runtimes}
        peak: dict = {}
        gemm: dict = {rt: {} for rt in runtimes}  # the GEMM sample taken just before each bare measurement
        for name, procs, threads in LAYOUTS:
            for rt in runtimes:
                # the peak is sampled next to every bare measurement (load on a shared VM comes and goes)
                g = round(sum(r["gflop_per_s"] for r in _layout(ctx, "mm", procs, (threads, peak_s))), 1)
                peak[name] = max(peak.get(name, 0.0), g)
                gemm[rt][name] = g
                rs = _layout(ctx, "bare", procs, (weights, batches, rt, threads, min_s))
                run[rt][name] = round(sum(r["tiles_per_s"] for r in rs), 3)
        runs.append(run)
        peaks.append(peak)
        gemms.append(gemm)
    return {**combine(runs, peaks), "gemm_runs": gemms}


def combine(runs: list[dict], peaks: list[dict]) -> dict:
    """Best tiles/s per runtime over ``runs`` (and per layout), best peak over ``peaks``."""
    best = {}
    for rt in runs[0]:
        tps, name = max((tps, name) for run in runs for name, tps in run[rt].items())
        best[rt] = {"tiles_per_s": tps, "layout": name,
                    "per_layout": {lay: max(run[rt][lay] for run in runs) for lay, _, _ in LAYOUTS}}
    return {"runs": runs, "peak_runs": peaks, "best": best,
            "peak_gflop_per_s": max(v for p in peaks for v in p.values())}


def summarise(bare: dict, flops: float, shipped: str) -> dict:
    """The hardware view of :func:`measure`: GFLOP/s and fraction of peak per runtime, the shipped
    runtime's speedup over torch eager (best layout each, and per layout)."""
    peak = bare["peak_gflop_per_s"]
    out = {"flops_per_tile_gflop": round(flops / 1e9, 3), "peak_gflop_per_s": peak,
           "gflop_per_s": {}, "fraction_of_peak": {}}
    for rt, b in bare["best"].items():
        g = b["tiles_per_s"] * flops / 1e9
        out["gflop_per_s"][rt] = round(g, 1)
        out["fraction_of_peak"][rt] = round(g / peak, 3) if peak else None
    if "torch" in bare["best"] and shipped in bare["best"]:
        t, s = bare["best"]["torch"], bare["best"][shipped]
        out["runtime_speedup_vs_torch"] = round(s["tiles_per_s"] / t["tiles_per_s"], 3)
        out["runtime_speedup_vs_torch_per_layout"] = {
            lay: round(s["per_layout"][lay] / t["per_layout"][lay], 3) for lay in t["per_layout"]}
        if bare.get("gemm_runs"):
            out["speedup_gemm_normalised"] = gemm_normalised(bare["runs"], bare["gemm_runs"], shipped)
    return out


def gemm_normalised(runs: list[dict], gemms: list[dict], shipped: str) -> dict:
    """Per round and layout, (shipped tiles/s / its GEMM sample) over (torch tiles/s / its GEMM sample):
    the speedup with each measurement scaled by the machine's rate at that moment, so load that comes and
    goes between the two measurements of a pair cancels to first order; and the median over every pair."""
    import statistics

    pairs = [{lay: round((run[shipped][lay] / gemm[shipped][lay]) / (run["torch"][lay] / gemm["torch"][lay]), 3)
              for lay in run["torch"] if gemm["torch"].get(lay) and gemm[shipped].get(lay) and run["torch"][lay]}
             for run, gemm in zip(runs, gemms, strict=True)]
    values = [v for p in pairs for v in p.values()]
    return {"runs": pairs, "median": round(statistics.median(values), 3) if values else None}


def shipped_runtime(config_text: str) -> str:
    import re

    m = re.search(r'key:\s*"runtime"\s*value:\s*\{\s*string_value:\s*"(\w+)"', config_text)
    return m.group(1) if m else "torch"


def main(argv: list[str] | None = None) -> None:
    import json
    import tempfile

    from bench.common import log, machine, synthetic_items
    from bench.pipeline import tile_batches
    from terrawatch.ml import flood_s1
    from terrawatch.settings import REPO_ROOT

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-s", type=float, default=10.0, help="seconds per bare measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--int8", action="store_true", help="also the int8 (static QDQ) ONNX model (evaluated, not shipped)")
    a = ap.parse_args(argv)
    weights = REPO_ROOT / "models" / "flood_s1" / "1" / "model.pt"
    item = synthetic_items(Path(tempfile.mkdtemp(prefix="tw-bench-rt-")), 1, 512, "bare")[0]
    batches = tile_batches(item, 256, 4, 4)
    log("bare runtimes x layouts ...")
    bare = measure(weights, batches, a.min_s, a.rounds, RUNTIMES + (("onnxruntime-int8",) if a.int8 else ()))
    shipped = shipped_runtime((REPO_ROOT / "models" / "flood_s1" / "config.pbtxt").read_text())
    out = {"bench": "runtime", "machine": machine(), "shipped_runtime": shipped, "bare": bare,
           **summarise(bare, flops_per_tile(flood_s1.load_net(weights), 256), shipped)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
