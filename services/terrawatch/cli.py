"""The ``terrawatch`` command line (Typer)."""

from __future__ import annotations

import json
import logging
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
dlq_app = typer.Typer(help="Scene dead-letter queue: list, show, re-drive, purge (same code as /ops/dlq).",
                      no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show the full traceback when a command fails.")) -> None:
    """Errors are reported as one line on stderr with a non-zero exit code; --debug shows the traceback."""
    global _DEBUG
    _DEBUG = debug


_DEBUG = False


def main() -> None:
    """Entry point. Click handles usage errors (exit 2) and typer.Exit; any other error becomes one line
    on stderr and exit code 1, the traceback only with ``--debug``."""
    import sys

    try:
        app()  # standalone: exits itself on success, usage errors and typer.Exit
    except KeyboardInterrupt:
        sys.stderr.write("terrawatch: interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the one place where a failed command becomes a message
        if _DEBUG or "--debug" in sys.argv[1:]:
            raise
        sys.stderr.write(f"terrawatch: error: {_one_line(exc)} (terrawatch --debug ... for the traceback)\n")
        raise SystemExit(1) from None


def _one_line(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    text = " ".join(str(reason).split())
    name = type(exc).__name__
    return (text if name in text or getattr(exc, "reason", None) else f"{name}: {text}")[:500]


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
    path: Path = typer.Argument(..., exists=True, help="A STAC Item JSON file or a GeoTIFF (2 bands S1 dB, 13 bands S2 L1C, 12 bands S2 L2A)."),
    scene_id: Optional[str] = typer.Option(None, help="Scene id for a GeoTIFF (default: file stem)."),
    sensing_time: Optional[datetime] = typer.Option(None, help="Sensing time (UTC) for a GeoTIFF."),
) -> None:
    """Publish one scene event to Kafka (topic terrawatch.scenes) with a real producer."""
    from terrawatch.ingest import kafka_io
    from terrawatch.ingest.stac_items import assert_readable, item_from_geotiff

    s = get_settings()
    if path.suffix.lower() in (".json", ".geojson"):
        try:
            item = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not a JSON STAC Item: {exc}") from None
    else:
        assert_readable(path)
        st = sensing_time.replace(tzinfo=timezone.utc) if sensing_time and sensing_time.tzinfo is None else sensing_time
        item = item_from_geotiff(path, scene_id=scene_id, sensing_time=st)
    p = kafka_io.producer(s)
    kafka_io.publish_scene(p, s, item)
    if p.flush(30):
        raise RuntimeError(f"publish not acknowledged by the Kafka broker at {s.bootstrap} within 30 s")
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
    from terrawatch.service.bootstrap import build_worker
    from terrawatch.service.dlq import DepthReporter
    from terrawatch.service.subscriptions import sync_static
    from terrawatch.store.uow import engine_for

    s = get_settings()
    configure_logging(s.log_level)
    start_http_server(s.metrics_port, addr=s.metrics_host)
    sync_static(engine_for(s.worker_db_url), s)
    worker = build_worker(s)
    DepthReporter(s, engine_for(s.worker_db_url), s.dlq_depth_interval_s).start()  # terrawatch_dlq_depth
    worker.install_signal_handlers()
    dispatcher = thread = None
    if dispatch:
        dispatcher = Dispatcher(s)
        thread = threading.Thread(target=dispatcher.run_forever, daemon=True, name="dispatcher")
        thread.start()
    try:
        worker.run(max_idle_s=max_idle_s)
    finally:
        if dispatcher:
            dispatcher.stop()
    if worker.restart_requested:
        # The Ray head was replaced; a Ray driver cannot join the new one in-process. Let the webhook
        # attempts in flight finish, then start afresh in this process (same pid and static group
        # membership id, so the partitions come straight back).
        import os
        import sys

        if thread is not None:
            thread.join(timeout=60)
        logging.getLogger(__name__).warning("re-executing the worker to join the new Ray head")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "terrawatch.cli", *sys.argv[1:]])


@app.command("dispatch")
def dispatch() -> None:
    """Run only the webhook dispatcher (outbox -> signed HTTP POSTs with retries)."""
    import signal

    from terrawatch.alerting.dispatcher import Dispatcher
    from terrawatch.observability.logging import configure_logging

    from prometheus_client import start_http_server

    s = get_settings()
    configure_logging(s.log_level)
    start_http_server(s.dispatcher_metrics_port, addr=s.metrics_host)
    d = Dispatcher(s)
    signal.signal(signal.SIGTERM, lambda *_: d.stop())
    d.run_forever()


@app.command("demo")
def demo() -> None:
    """Start the stack, publish the sample scenes, run the pipeline, verify webhooks; print a JSON summary."""
    from terrawatch.demo import run_demo

    typer.echo(json.dumps(run_demo(get_settings())))


# --- HTTP API (issue 6): `terrawatch serve` and `terrawatch keys ...` ----------------------------------
keys_app = typer.Typer(help="API keys (roles viewer, operator, admin); stored hashed in PostGIS.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("serve")
def serve(
    host: Optional[str] = typer.Option(None, help="Bind address (default TERRAWATCH_API_HOST, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port (default TERRAWATCH_API_PORT, 18080)."),
    ray_serve: bool = typer.Option(False, "--ray-serve", help="Deploy on the Ray cluster (Ray Serve) instead."),
) -> None:
    """Serve the HTTP API: OGC API - Features (/ogc), vector tiles (/tiles), /map and the ops API (/ops)."""
    s = get_settings()
    host, port = host or s.api_host, port or s.api_port
    if ray_serve:
        from terrawatch.api.serve import run_on_ray_serve

        typer.echo(json.dumps({"url": run_on_ray_serve(s, host, port, blocking=True)}))
        return
    import uvicorn

    from terrawatch.api import create_app
    from terrawatch.observability.logging import configure_logging

    configure_logging(s.log_level)
    # Forwarding headers are believed only from TERRAWATCH_API_TRUSTED_PROXIES (middleware in create_app).
    uvicorn.run(create_app(s), host=host, port=port, log_level=s.log_level.lower(), proxy_headers=False)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., help="viewer (read layers), operator (ops actions) or admin (subscriptions, keys)."),
    name: str = typer.Option(..., help="Who or what uses the key."),
) -> None:
    """Create an API key and print it ONCE (only its salted hash is stored)."""
    from terrawatch.api.security import Role, create_key
    from terrawatch.store.uow import engine_for

    try:
        key_id, key = create_key(engine_for(get_settings().db_url), name, Role(role), created_by="cli")
    except ValueError:
        raise typer.BadParameter("role must be viewer, operator or admin", param_hint="--role") from None
    typer.echo(json.dumps({"id": key_id, "name": name, "role": role, "key": key}))


@keys_app.command("list")
def keys_list() -> None:
    """List keys (ids, names, roles, last use; never the secrets)."""
    from terrawatch.api.security import list_keys
    from terrawatch.store.uow import engine_for

    typer.echo(json.dumps(list_keys(engine_for(get_settings().db_url)), default=str, indent=2))


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key id (the 12 hex characters after tw_).")) -> None:
    """Revoke a key."""
    from terrawatch.api.security import revoke_key
    from terrawatch.store.uow import engine_for

    if not revoke_key(engine_for(get_settings().db_url), key_id):
        typer.echo(f"no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps({"revoked": key_id}))


@app.command("eval")
def eval_cmd(
    dataset: str = typer.Option(..., help="sen1floods11 | etci2021 | ombria-s1"),
    root: Path = typer.Option(..., exists=True, file_okay=False, help="Dataset folder (any event/split)."),
    model: Optional[str] = typer.Option(None, help="flood-s1 | flood-s2 | otsu-s1 | mndwi-s2 | ... (default: best for the sensor)"),
    corrupt: Optional[str] = typer.Option(None, help="noise | haze | cloud | speckle | missing-band"),
    split: str = typer.Option("all", help="all | train | holdout"),
    limit: Optional[int] = typer.Option(None, help="Evaluate at most this many samples."),
) -> None:
    """Evaluate a water model on a labelled dataset; the last line is JSON with iou, f1, precision, recall, csi."""
    from terrawatch.ml.eval.evaluate import evaluate

    typer.echo(json.dumps(evaluate(dataset, root, model, corrupt, split=split, limit=limit)))


@app.command("cv")
def cv_cmd(
    models: str = typer.Option("otsu-s1,adaptive-s1,unet-raw,flood-s1",
                               help="Comma-separated candidates (terrawatch.ml.eval.cv.CANDIDATES; a+b = majority ensemble)."),
    data: Optional[Path] = typer.Option(None, help="Real-dB chips (default: <shared data>/sen1floods11-extra)."),
    threads: int = typer.Option(2, help="Torch threads for training folds (fixed for reproducibility)."),
    steps: Optional[int] = typer.Option(None, help="Override the training steps of trained candidates."),
    holdouts: bool = typer.Option(True, help="Also score the ETCI and OMBRIA holdouts (separate columns)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result (counts per fold) here."),
) -> None:
    """Leave-one-event-out cross-validation of S1 water models on real-dB Sen1Floods11 chips: per-fold table, pooled IoU."""
    from terrawatch.ml.eval.cv import cross_validate, format_table

    try:
        res = cross_validate(models.split(","), data, threads=threads, steps=steps, holdouts=holdouts)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--models") from None
    typer.echo(format_table(res))
    if json_out:
        json_out.write_text(json.dumps(res, indent=1))


@app.command("fuse")
def fuse_cmd(
    s1: Path = typer.Option(..., exists=True, dir_okay=False, help="S1 GeoTIFF: 2 bands VV, VH sigma0 dB (NaN no data)."),
    s2: Path = typer.Option(..., exists=True, dir_okay=False, help="S2 L1C GeoTIFF: 13 bands B1..B12, reflectance x 10000."),
    out: Path = typer.Option(..., dir_okay=False, help="Output COG: band 1 likelihood 0-100 (255 none), band 2 source code."),
    s1_time: Optional[datetime] = typer.Option(None, help="S1 acquisition time (UTC)."),
    s2_time: Optional[datetime] = typer.Option(None, help="S2 acquisition time (UTC)."),
    window_h: Optional[float] = typer.Option(None, help="Use S2 only within this many hours of S1 (default "
                                                        "TERRAWATCH_FUSION_WINDOW_H or 72)."),
    dn_offset: float = typer.Option(0.0, help="-1000 for S2 processing baseline >= 04.00 DNs."),
    sun_zenith: Optional[float] = typer.Option(None, help="S2 mean sun zenith (deg); bounds the cloud-shadow search."),
) -> None:
    """Fused S1 + S2 flood product of one scene pair (S2 where clear, S1 under cloud); prints a JSON summary."""
    from datetime import timedelta

    from terrawatch.products.fused import fused_flood_product

    utc = [t.replace(tzinfo=timezone.utc) if t and t.tzinfo is None else t for t in (s1_time, s2_time)]
    if window_h is not None and not 0 <= window_h <= 24 * 365:
        raise typer.BadParameter("must be between 0 and 8760 hours", param_hint="--window-h")
    window = timedelta(hours=get_settings().fusion_window_h if window_h is None else window_h)
    r = fused_flood_product(s1, s2, out, s1_time=utc[0], s2_time=utc[1], window=window, dn_offset=dn_offset,
                            sun_zenith_deg=sun_zenith)
    typer.echo(json.dumps({"path": str(r.path), "s2_used": r.s2_used, "water_share": r.water_share,
                           "sources": r.shares}))


layers_app = typer.Typer(help="Reference layers: mining legality (concessions, protected areas, territories) and "
                              "reference water (subtracted from observed water: flood).",
                         no_args_is_help=True)
app.add_typer(layers_app, name="layers")


@layers_app.command("load")
def layers_load(
    path: Path = typer.Argument(..., exists=True, help="GeoJSON or GeoPackage (any CRS)."),
    kind: str = typer.Option(..., help="mining_concession | protected_area | indigenous_territory | reference_water"),
    name_field: str = typer.Option("name", help="Attribute holding the feature's name."),
    coverage: Path | None = typer.Option(
        None, exists=True, help="GeoJSON/GeoPackage polygons where the layer is complete (e.g. the country of a "
        "concession register). Default: the layer's extent (bounding box of its features)."),
) -> None:
    """Replace a reference layer in PostGIS with the features of PATH (reprojected to EPSG:4326) and record
    its coverage: mining is called illegal for lying outside every concession only inside that coverage."""
    from terrawatch.service.layers import load_layer
    from terrawatch.store.uow import engine_for

    n = load_layer(engine_for(get_settings().db_url), path, kind, name_field, coverage)
    typer.echo(json.dumps({"layer": kind, "features": n, "coverage": str(coverage) if coverage else "layer extent"}))


# --- stream operations (issue 4): `terrawatch replay` and `terrawatch backfill` -------------------------------

def _utc_bound(value: str, end: bool) -> datetime:
    """YYYY-MM-DD (whole day; --to includes it) or an ISO 8601 time; naive means UTC."""
    from datetime import timedelta

    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 time") from None
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    if end and len(value) == 10:
        t += timedelta(days=1, microseconds=-1)
    return t


@app.command("replay")
def replay_cmd(scene_id: str = typer.Argument(..., help="A scene id from the scenes table.")) -> None:
    """Republish a stored scene's STAC Item to the scenes topic (a no-op for runs whose model version is unchanged)."""
    from terrawatch.service.stream_ops import SceneNotFound, replay

    try:
        typer.echo(json.dumps(replay(get_settings(), scene_id)))
    except SceneNotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


@app.command("backfill")
def backfill_cmd(
    bbox: str = typer.Option(..., help="minx,miny,maxx,maxy in lon/lat (EPSG:4326)."),
    from_: str = typer.Option(..., "--from", help="Start (YYYY-MM-DD or ISO 8601, UTC)."),
    to: str = typer.Option(..., "--to", help="End (YYYY-MM-DD = through that day, or ISO 8601, UTC)."),
    stac_api: Optional[str] = typer.Option(None, help="STAC API root URL to search (e.g. Earth Search)."),
    collection: list[str] = typer.Option([], help="STAC collection(s) to search (default sentinel-2-l1c)."),
    folder: Optional[Path] = typer.Option(None, help="Local folder of GeoTIFFs / STAC Item JSON files."),
    sentinelhub: Optional[str] = typer.Option(None, help="Sentinel Hub product: sentinel-2-l1c or sentinel-1-grd."),
    max_cloud: Optional[float] = typer.Option(None, help="Only S2 scenes with eo:cloud_cover below this (%)."),
    max_items: Optional[int] = typer.Option(None, help="Stop after this many STAC Items."),
    sensing_time: Optional[str] = typer.Option(None, help="Sensing time (UTC) of folder GeoTIFFs that carry none."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be published; publish nothing."),
) -> None:
    """Publish scene events for an area and period through Kafka, like live traffic (progress on stderr)."""
    from terrawatch.service.stream_ops import backfill, make_source

    try:
        box = tuple(float(v) for v in bbox.split(","))
    except ValueError:
        raise typer.BadParameter("bbox must be four numbers minx,miny,maxx,maxy", param_hint="--bbox") from None
    if len(box) != 4 or box[0] >= box[2] or box[1] >= box[3]:
        raise typer.BadParameter("bbox must be minx,miny,maxx,maxy with min < max", param_hint="--bbox")
    s = get_settings()
    try:
        source = make_source(s, folder=folder, stac_api=stac_api, collections=collection, sentinelhub=sentinelhub,
                             max_cloud=max_cloud, max_items=max_items,
                             sensing_time=_utc_bound(sensing_time, False) if sensing_time else None)
        report = backfill(s, source, box, _utc_bound(from_, False), _utc_bound(to, True), dry_run=dry_run)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report.as_dict()))


# --- Benchmarks (issue 8): `terrawatch bench ...`, implemented in bench/ at the repo root ---------------
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
) -> None:
    """Bare torch tiles/s of flood_s1 vs end to end through Kafka + Ray + Triton + PostGIS: efficiency, stages."""
    mod = _bench_module("pipeline")
    mod.emit(mod.run(scenes, size, port_base, min_bare_s, keep_stack))


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
    """Vector tiles and OGC API - Features under concurrent load: requests/s, p50/p95/p99, errors."""
    mod = _bench_module("api_load")
    mod.emit(mod.run(concurrency, seconds, port_base, keep_stack=keep_stack))


# dlq --------------------------------------------------------------------------------------------

def _dlq_ctx():
    from terrawatch.store.uow import engine_for

    s = get_settings()
    return s, engine_for(s.db_url)


def _cli_actor() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (container): still say it came from the CLI
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"[:160]


def _cli_audit(action: str):
    from terrawatch.store.audit import record

    actor = _cli_actor()
    return lambda conn, target, details: record(conn, actor, "cli", action, target, details)


def _dlq_ids(ids: list[str], all_: bool) -> list[str] | None:
    if all_ == bool(ids):
        raise typer.BadParameter("give entry ids (partition/offset) or --all")
    return None if all_ else ids


@dlq_app.command("list")
def dlq_list(
    state: str = typer.Option("pending", help="pending, redriven, purged or all."),
    limit: int = typer.Option(100, min=1, max=10_000, help="At most this many entries."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
) -> None:
    """DLQ entries (pending by default), oldest first: id, state, error code, kind, reason."""
    from terrawatch.service import dlq

    s, engine = _dlq_ctx()
    entries = dlq.list_entries(s, engine, state, limit)
    if as_json:
        for e in entries:
            typer.echo(json.dumps(e.as_dict()))
        return
    typer.echo(f"{'id':<12} {'state':<9} {'kind':<9} {'error_code':<20} {'failed_at':<25} reason")
    for e in entries:
        d = e.as_dict()
        typer.echo(f"{d['id']:<12} {d['state']:<9} {d['kind']:<9} {d['error_code']:<20} {d['failed_at'] or '-':<25} "
                   f"{' '.join(d['reason'].split())[:120]}")
    counts = dlq.counts(s, engine)
    typer.echo(f"# {s.dlq_topic}: {counts['pending']} pending, {counts['redriven']} redriven, "
               f"{counts['purged']} purged, {counts['retained']} retained")


@dlq_app.command("show")
def dlq_show(entry_id: str = typer.Argument(..., help="partition/offset, e.g. 0/12")) -> None:
    """One DLQ entry as JSON: reason, source, state (redriven when and by whom) and the original payload."""
    from terrawatch.service import dlq

    s, engine = _dlq_ctx()
    typer.echo(json.dumps(dlq.get_entry(s, engine, entry_id).as_dict(), indent=2))


@dlq_app.command("redrive")
def dlq_redrive(
    ids: list[str] = typer.Argument(None, help="Entries (partition/offset)."),
    all_: bool = typer.Option(False, "--all", help="Every pending entry."),
) -> None:
    """Republish the original payload of pending entries to the scenes topic; mark them redriven."""
    from terrawatch.ingest import kafka_io
    from terrawatch.service import dlq

    selected = _dlq_ids(ids or [], all_)
    s, engine = _dlq_ctx()
    out = dlq.redrive(s, engine, kafka_io.producer(s), selected, _cli_actor(), _cli_audit("dlq.redrive"))
    typer.echo(json.dumps(out))
    if ids and out["missing"]:
        raise typer.Exit(1)


@dlq_app.command("purge")
def dlq_purge(
    ids: list[str] = typer.Argument(None, help="Entries (partition/offset)."),
    all_: bool = typer.Option(False, "--all", help="Every pending entry."),
) -> None:
    """Mark pending entries purged: no longer listed by default nor counted in terrawatch_dlq_depth."""
    from terrawatch.service import dlq

    selected = _dlq_ids(ids or [], all_)
    s, engine = _dlq_ctx()
    out = dlq.purge(s, engine, selected, _cli_actor(), _cli_audit("dlq.purge"))
    typer.echo(json.dumps(out))
    if ids and out["missing"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    main()
