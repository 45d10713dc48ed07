"""The ``terrawatch`` command line (Typer)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from terrawatch.settings import get_settings

app = typer.Typer(help="terrawatch: near-real-time flood, deforestation and mining monitoring of Sentinel scenes.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
stack_app = typer.Typer(help="Start, check and stop the local stack (Kafka, PostGIS, Triton, Ray) on 127.0.0.1.",
                        no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")


@stack_app.command("up")
def stack_up() -> None:
    """Install what is missing, start every service and wait until all are healthy."""
    from terrawatch.stack import Stack

    stack = Stack(get_settings())
    stack.up()
    typer.echo(json.dumps(stack.describe(), indent=2))


@stack_app.command("status")
def stack_status() -> None:
    """Report each service as healthy or unhealthy (exit 1 if any is unhealthy)."""
    from terrawatch.stack import Stack

    status = Stack(get_settings()).status()
    typer.echo(json.dumps(status, indent=2))
    raise typer.Exit(0 if all(v == "healthy" for v in status.values()) else 1)


@stack_app.command("down")
def stack_down() -> None:
    """Stop the processes that `stack up` started (by recorded PID), nothing else."""
    from terrawatch.stack import Stack

    typer.echo(json.dumps(Stack(get_settings()).down(), indent=2))


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Apply migrations up to REVISION."""
    from terrawatch.store.migrate import upgrade

    upgrade(get_settings(), revision)




@app.command("publish")
def publish(
    path: Path = typer.Argument(..., exists=True, help="A STAC Item JSON file or a GeoTIFF (2 bands S1 dB, 13 bands S2 L1C)."),
    scene_id: Optional[str] = typer.Option(None, help="Scene id for a GeoTIFF (default: file stem)."),
    sensing_time: Optional[datetime] = typer.Option(None, help="Sensing time (UTC) for a GeoTIFF."),
) -> None:
    """Publish one scene event to Kafka (topic terrawatch.scenes) with a real producer."""
    from terrawatch.ingest import kafka_io
    from terrawatch.ingest.stac_items import item_from_geotiff

    s = get_settings()
    if path.suffix.lower() in (".json", ".geojson"):
        item = json.loads(path.read_text())
    else:
        st = sensing_time.replace(tzinfo=timezone.utc) if sensing_time and sensing_time.tzinfo is None else sensing_time
        item = item_from_geotiff(path, scene_id=scene_id, sensing_time=st)
    p = kafka_io.producer(s)
    kafka_io.publish_scene(p, s, item)
    if p.flush(30):
        typer.echo("publish not acknowledged by the broker", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps({"published": item.get("id"), "topic": s.scenes_topic}))


@app.command("run")
def run(
    dispatch: bool = typer.Option(True, help="Also run the webhook dispatcher in this process."),
    max_idle_s: Optional[float] = typer.Option(None, help="Exit after this many idle seconds (batch mode)."),
) -> None:
    """Run the pipeline worker: consume scenes, tile on Ray, infer on Triton, store, alert; /metrics served."""
    import threading

    from prometheus_client import start_http_server

    from terrawatch.alerting.dispatcher import Dispatcher
    from terrawatch.observability.logging import configure_logging
    from terrawatch.service.worker import Worker, sync_static_subscribers

    s = get_settings()
    configure_logging(s.log_level)
    start_http_server(s.metrics_port, addr="127.0.0.1")
    sync_static_subscribers(s)
    worker = Worker(s)
    worker.install_signal_handlers()
    dispatcher = None
    if dispatch:
        dispatcher = Dispatcher(s)
        threading.Thread(target=dispatcher.run_forever, daemon=True, name="dispatcher").start()
    try:
        worker.run(max_idle_s=max_idle_s)
    finally:
        if dispatcher:
            dispatcher.stop()


@app.command("dispatch")
def dispatch() -> None:
    """Run only the webhook dispatcher (outbox -> signed HTTP POSTs with retries)."""
    import signal

    from terrawatch.alerting.dispatcher import Dispatcher
    from terrawatch.observability.logging import configure_logging

    s = get_settings()
    configure_logging(s.log_level)
    d = Dispatcher(s)
    signal.signal(signal.SIGTERM, lambda *_: d.stop())
    d.run_forever()


@app.command("demo")
def demo() -> None:
    """Start the stack, publish the sample scenes, run the pipeline, verify webhooks; print a JSON summary."""
    from terrawatch.demo import run_demo

    typer.echo(json.dumps(run_demo(get_settings())))


if __name__ == "__main__":
    app()
