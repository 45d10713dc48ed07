"""``terrawatch bench ...``: benchmarks, implemented in bench/ at the repo root."""

from __future__ import annotations

import typer

from terrawatch.cli.root import app


bench_app = typer.Typer(help="Benchmarks on a private throw-away stack (run from a source checkout); "
                             "each prints one JSON object as its last line.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _bench_module(name: str):
    import importlib
    import sys

    from terrawatch.settings import REPO_ROOT

    if not (REPO_ROOT / "bench" / f"{name}.py").exists():
        typer.echo(f"bench/{name}.py not found: benchmarks run from a source checkout", err=True)
        raise typer.Exit(2)
    sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module(f"bench.{name}")


@bench_app.command("pipeline")
def bench_pipeline(
    scenes: int = typer.Option(6, help="Synthetic S1 scenes in the end-to-end run."),
    size: int = typer.Option(768, help="Scene side (px, 10 m)."),
    port_base: int = typer.Option(41000, help="First of the private stack's ports."),
    min_bare_s: float = typer.Option(20.0, help="Seconds of bare-torch and Triton-only timing each."),
    keep_stack: bool = typer.Option(False, help="Leave the private stack running."),
    runtimes: str = typer.Option("", help="flood_s1 runtimes run end to end side by side, comma-separated "
                                 "(default: torch and the shipped one, models/flood_s1/config.pbtxt)."),
) -> None:
    """flood_s1 per runtime (torch eager, ONNX Runtime) against a matmul peak, and CPU-s per tile end to end
    through Kafka + Ray + Triton + PostGIS split into model and overhead (runtime_speedup_vs_torch, cpu_s_per_tile)."""
    mod = _bench_module("pipeline")
    mod.emit(mod.run(scenes, size, port_base, min_bare_s, keep_stack,
                     runtimes=[v.strip() for v in runtimes.split(",") if v.strip()] or None))


@bench_app.command("sustained")
def bench_sustained(
    rate: float = typer.Option(120, help="Scenes per hour."),
    minutes: float = typer.Option(3, help="How long to publish."),
    size: int = typer.Option(512, help="Scene side (px, 10 m)."),
    port_base: int = typer.Option(41000, help="First of the private stack's ports."),
    keep_stack: bool = typer.Option(False, help="Leave the private stack running."),
) -> None:
    """N scenes/hour for M minutes: consumer lag trend, worker/Ray/Triton RSS, publish-to-stored latency."""
    mod = _bench_module("sustained")
    mod.emit(mod.run(rate, minutes, size, port_base, keep_stack=keep_stack))


@bench_app.command("api")
def bench_api(
    concurrency: int = typer.Option(8, help="Requests in flight."),
    seconds: float = typer.Option(30, help="Load duration per endpoint group (s)."),
    port_base: int = typer.Option(41000, help="First of the private stack's ports."),
    keep_stack: bool = typer.Option(False, help="Leave the private stack running."),
) -> None:
    """Vector tiles, OGC API - Features pages and raster tiles (every zoom the TileJSON advertises, p50/p95/p99
    per zoom) under concurrent load: requests/s, p50/p95/p99, errors."""
    mod = _bench_module("api_load")
    mod.emit(mod.run(concurrency, seconds, port_base, keep_stack=keep_stack))
