"""``terrawatch publish``, ``run``, ``dispatch`` and ``demo``: the pipeline's processes."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from terrawatch.cli.root import app
from terrawatch.settings import get_settings


@app.command("publish")
def publish(
    path: Path = typer.Argument(..., exists=True, help="A STAC Item JSON file or a GeoTIFF (2 bands S1 dB, 13 bands S2 L1C, 12 bands S2 L2A)."),
    scene_id: Optional[str] = typer.Option(None, help="Scene id for a GeoTIFF (default: file stem)."),
    sensing_time: Optional[datetime] = typer.Option(None, help="Sensing time (UTC) for a GeoTIFF."),
) -> None:
    """Publish one scene event to Kafka (topic terrawatch.scenes) with a real producer."""
    from terrawatch.domain.errors import InvalidInput
    from terrawatch.ingest.stac_items import assert_readable, item_from_geotiff
    from terrawatch.service.stream_ops import publish as publish_event

    if path.suffix.lower() in (".json", ".geojson"):
        try:
            item = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path} is not a JSON STAC Item: {exc}") from None
    else:
        assert_readable(path)
        st = sensing_time.replace(tzinfo=timezone.utc) if sensing_time and sensing_time.tzinfo is None else sensing_time
        item = item_from_geotiff(path, scene_id=scene_id, sensing_time=st)
    # not acknowledged by the broker within 30 s: KafkaUnavailable (a domain TransientError), exit 1
    typer.echo(json.dumps(publish_event(get_settings(), item)))


@app.command("run")
def run(
    dispatch: bool = typer.Option(True, help="Also run the webhook dispatcher in this process."),
    max_idle_s: Optional[float] = typer.Option(None, help="Exit after this many idle seconds (batch mode)."),
) -> None:
    """Run the pipeline worker: consume scenes, tile on Ray, infer on Triton, store, alert; /metrics served."""
    from prometheus_client import start_http_server

    from terrawatch.observability.logging import configure_logging
    from terrawatch.service.bootstrap import build_run

    s = get_settings()
    configure_logging(s.log_level)
    from terrawatch.observability.metrics import OwnedRegistry

    # the consumer's families, and the dispatcher's when it runs in this process (docs/metrics.md)
    start_http_server(s.metrics_port, addr=s.metrics_host,
                      registry=OwnedRegistry("consumer", *(("dispatcher",) if dispatch else ())))
    process = build_run(s, dispatch)  # the composition root (service/bootstrap.py)
    process.run(max_idle_s=max_idle_s)
    if process.worker.restart_requested:
        # The Ray head was replaced; a Ray driver cannot join the new one in-process. Let the webhook
        # attempts in flight finish, then start afresh in this process (same pid and static group
        # membership id, so the partitions come straight back).
        import os
        import sys

        if process.thread is not None:
            process.thread.join(timeout=60)
        logging.getLogger(__name__).warning("re-executing the worker to join the new Ray head")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "terrawatch.cli", *sys.argv[1:]])


@app.command("dispatch")
def dispatch() -> None:
    """Run only the webhook dispatcher (outbox -> signed HTTP POSTs with retries)."""
    import signal

    from prometheus_client import start_http_server

    from terrawatch.observability.logging import configure_logging
    from terrawatch.service.bootstrap import build_dispatcher, worker_pool

    s = get_settings()
    configure_logging(s.log_level)
    from terrawatch.observability.metrics import OwnedRegistry

    start_http_server(s.dispatcher_metrics_port, addr=s.metrics_host, registry=OwnedRegistry("dispatcher"))
    d = build_dispatcher(s, worker_pool(s))
    signal.signal(signal.SIGTERM, lambda *_: d.stop())
    d.run_forever()


@app.command("demo")
def demo() -> None:
    """Start the stack, publish the sample scenes, run the pipeline, verify webhooks; print a JSON summary."""
    from terrawatch_dev.demo import run_demo

    typer.echo(json.dumps(run_demo(get_settings())))
