"""Sustained load: N scenes/hour for M minutes through the real pipeline, with consumer lag and memory.

    python bench/sustained.py [--rate 120] [--minutes 3] [--size 512] [--port-base 41000]
    terrawatch bench sustained

Publishes one synthetic S1 scene every 3600/rate s (a new place each time) to a worker on a
private stack; every ``--sample-s`` s records the consumer group's lag (high watermark minus
committed offset, summed over partitions, read from Kafka) and the RSS of the worker, its Ray
TileWorker processes and Triton. After the last publish it waits for the lag to reach 0.
Bounded means: lag returns to 0 after the load, and the RSS slope (MB/min, least squares) over the
second half of the run, after warm-up, stays under ``--max-rss-slope`` (the JSON says which).
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

from bench.common import (  # noqa: E402
    emit, log, machine, private_stack, publish, start_worker, stop_worker, stored_runs, synthetic_items,
    wait_http, wait_runs,
)


def group_lag(settings) -> int:
    from confluent_kafka import Consumer, TopicPartition

    from terrawatch.ingest.kafka_config import client_config

    c = Consumer(client_config(settings, **{"group.id": settings.consumer_group, "enable.auto.commit": False}))
    try:
        md = c.list_topics(settings.scenes_topic, timeout=10)
        parts = [TopicPartition(settings.scenes_topic, p) for p in md.topics[settings.scenes_topic].partitions]
        lag = 0
        for tp in c.committed(parts, timeout=10):
            low, high = c.get_watermark_offsets(tp, timeout=10, cached=False)
            lag += high - (tp.offset if tp.offset >= 0 else low)
        return lag
    finally:
        c.close()


def rss_mb(stack, worker_pid: int) -> dict:
    """RSS (MB) of the worker process, the Ray worker processes of the private Ray head (the TileWorker
    actors), and Triton with its Python-backend stubs."""
    import psutil

    def rss(pids):
        total = 0
        for pid in pids:
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return round(total / 2**20, 1)

    ray_workers = []
    head = stack.ray.proc.pid()
    if head:
        for p in psutil.Process(head).children(recursive=True):
            try:
                cmd = " ".join(p.cmdline())
                # Ray worker processes: "default_worker.py ..." until an actor renames itself "ray::<Class>"
                if "default_worker.py" in cmd or (cmd.startswith("ray::") and "Agent" not in cmd):
                    ray_workers.append(p.pid)
            except psutil.Error:
                continue
    triton = []
    if stack.triton.proc.pid():  # tritonserver and its Python-backend stub processes (the model lives there)
        tp = psutil.Process(stack.triton.proc.pid())
        triton = [tp.pid, *(c.pid for c in tp.children(recursive=True))]
    return {"worker": rss([worker_pid]), "ray_workers": rss(ray_workers), "triton": rss(triton)}


def slope_per_min(ts: list[float], ys: list[float]) -> float:
    import numpy as np

    if len(ts) < 3:
        return 0.0
    return float(np.polyfit(np.asarray(ts) / 60.0, np.asarray(ys), 1)[0])


def run(rate: float = 120, minutes: float = 3, size: int = 512, port_base: int = 41000, sample_s: float = 10,
        max_rss_slope: float = 20.0, keep_stack: bool = False, drain_timeout_s: float = 900) -> dict:
    result: dict = {"bench": "sustained", "machine": machine(), "rate_per_h": rate, "minutes": minutes,
                    "scene_px": size}
    work = Path(tempfile.mkdtemp(prefix="tw-bench-sustained-"))
    with private_stack(port_base, keep=keep_stack) as bs:
        s = bs.settings
        result["weights"] = bs.weights
        worker = start_worker(bs, work / "worker.log")
        try:
            wait_http(f"http://127.0.0.1:{s.metrics_port}/metrics", 120)
            warm = synthetic_items(work, 1, size, "warm")
            publish(s, warm)
            wait_runs(s, [i["id"] for i in warm], 600)
            n = max(1, round(rate * minutes / 60))
            interval = 3600.0 / rate
            items = synthetic_items(work, n, size, "load", start=1)  # each at its own place
            published: dict[str, float] = {}
            stored: dict[str, float] = {}
            samples = []
            t0 = time.monotonic()
            next_pub, next_sample, i = t0, t0, 0
            log(f"publishing {n} scenes, one every {interval:.0f} s ...")
            while True:
                now = time.monotonic()
                if i < n and now >= next_pub:
                    publish(s, [items[i]])
                    published[items[i]["id"]] = now
                    i += 1
                    next_pub += interval
                if len(stored) < len(published):
                    for sid in stored_runs(s, list(published)):
                        stored.setdefault(sid, now)
                if now >= next_sample:
                    sample = {"t_s": round(now - t0, 1), "published": i, "stored": len(stored),
                              "lag": group_lag(s), **rss_mb(bs.stack, worker.pid)}
                    samples.append(sample)
                    log(str(sample))
                    next_sample += sample_s
                if i >= n and len(stored) == n:
                    break
                if now - t0 > minutes * 60 + drain_timeout_s:
                    raise TimeoutError(f"{n - len(stored)} scenes not stored after the drain timeout")
                time.sleep(0.25)
            samples.append({"t_s": round(time.monotonic() - t0, 1), "published": n, "stored": len(stored),
                            "lag": group_lag(s), **rss_mb(bs.stack, worker.pid)})
        finally:
            stop_worker(worker)
            shutil.rmtree(work, ignore_errors=True)
    import numpy as np

    lat = [stored[k] - published[k] for k in published]
    ts = [x["t_s"] for x in samples]
    result.update({
        "published": n, "processed": len(stored),
        "publish_to_stored_s": {"p50": round(float(np.percentile(lat, 50)), 1),
                                "p95": round(float(np.percentile(lat, 95)), 1), "max": round(max(lat), 1)},
        "lag_trend": [x["lag"] for x in samples],
        "lag_max": max(x["lag"] for x in samples), "lag_end": samples[-1]["lag"],
        # slope over the second half too: the first minutes include warm-up (allocator pools, caches)
        "rss_mb": {k: {"start": samples[0][k], "end": samples[-1][k], "max": max(x[k] for x in samples),
                       "slope_mb_per_min": round(slope_per_min(ts, [x[k] for x in samples]), 2),
                       "slope_2nd_half_mb_per_min": round(slope_per_min(ts[len(ts) // 2:],
                                                                        [x[k] for x in samples[len(ts) // 2:]]), 2)}
                   for k in ("worker", "ray_workers", "triton")},
        "samples": samples,
    })
    result["bounded"] = bool(result["lag_end"] == 0 and all(
        v["slope_2nd_half_mb_per_min"] <= max_rss_slope for v in result["rss_mb"].values()))
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=120, help="scenes per hour")
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--size", type=int, default=512, help="scene side in px (10 m)")
    ap.add_argument("--port-base", type=int, default=41000)
    ap.add_argument("--sample-s", type=float, default=10)
    ap.add_argument("--max-rss-slope", type=float, default=20.0, help="MB/min per process group")
    ap.add_argument("--keep-stack", action="store_true")
    a = ap.parse_args(argv)
    emit(run(a.rate, a.minutes, a.size, a.port_base, a.sample_s, a.max_rss_slope, a.keep_stack))


if __name__ == "__main__":
    main()
