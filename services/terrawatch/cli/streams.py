"""``terrawatch replay`` and ``terrawatch backfill``: stream operations (service/stream_ops.py); ``terrawatch
consumption show|pause|resume``: the pause flag (service/ops.py, as /ops/consumption)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from terrawatch.cli.root import app, cli_actor, cli_audit, cli_runbook, consumption_app
from terrawatch.settings import get_settings


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
def replay_cmd(
    scene_id: str = typer.Argument(..., help="A scene id from the scenes table."),
    as_json: bool = typer.Option(False, "--json", help="The answer as JSON (as POST /ops/scenes/{id}/replay)."),
) -> None:
    """Republish a stored scene's STAC Item to the scenes topic; says whether the run will be new or a
    duplicate (a no-op for runs whose model version is unchanged). An unknown scene: exit 1 (the API: 404)."""
    out = cli_runbook().streams.replay(scene_id, audit=cli_audit("scene.replay"))
    if as_json:
        typer.echo(json.dumps(out))
    else:
        typer.echo(f"published {out['published']} to {out['topic']}: {out['outcome']} ({out['note']})")


@app.command("backfill")
def backfill_cmd(
    bbox: str = typer.Option(..., help="minx,miny,maxx,maxy in lon/lat (EPSG:4326)."),
    from_: str = typer.Option(..., "--from", help="Start (YYYY-MM-DD or ISO 8601, UTC)."),
    to: str = typer.Option(..., "--to", help="End (YYYY-MM-DD = through that day, or ISO 8601, UTC)."),
    stac_api: Optional[str] = typer.Option(None, help="STAC API root URL to search (e.g. Earth Search)."),
    collection: list[str] = typer.Option([], help="STAC collection(s) to search (default sentinel-2-l1c)."),
    folder: Optional[Path] = typer.Option(None, help="Local folder of GeoTIFFs / STAC Item JSON files (at most 500)."),
    recursive: Optional[bool] = typer.Option(None, "--recursive/--no-recursive",
                                             help="--folder only: also its subfolders (default) or not."),
    sentinelhub: Optional[str] = typer.Option(None, help="Sentinel Hub product: sentinel-2-l1c or sentinel-1-grd."),
    max_cloud: Optional[float] = typer.Option(None, help="Only S2 scenes with eo:cloud_cover below this (%)."),
    max_items: Optional[int] = typer.Option(None, help="Stop after this many STAC Items."),
    sensing_time: Optional[str] = typer.Option(None, help="Sensing time (UTC) of folder GeoTIFFs that carry none."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be published; publish nothing."),
) -> None:
    """Publish scene events for an area and period through Kafka, like live traffic (progress on stderr).
    --folder is the use case of POST /ops/backfill (at most 500 files, audited as scene.backfill)."""
    from terrawatch.service.stream_ops import make_source

    try:
        box = tuple(float(v) for v in bbox.split(","))
    except ValueError:
        raise typer.BadParameter("bbox must be four numbers minx,miny,maxx,maxy", param_hint="--bbox") from None
    if len(box) != 4 or box[0] >= box[2] or box[1] >= box[3]:
        raise typer.BadParameter("bbox must be minx,miny,maxx,maxy with min < max", param_hint="--bbox")
    s = get_settings()
    when = _utc_bound(sensing_time, False) if sensing_time else None
    start, end = _utc_bound(from_, False), _utc_bound(to, True)
    if folder is not None and not (stac_api or sentinelhub):
        report = cli_runbook(s).streams.backfill_folder(
            str(folder.resolve()), None, recursive=recursive is not False, sensing_time=when, dry_run=dry_run,
            bbox=box, start=start, end=end, progress=True, audit=cli_audit("scene.backfill"))
        typer.echo(json.dumps(report.as_dict()))
        return
    if recursive is not None:
        raise typer.BadParameter("only with --folder", param_hint="--recursive/--no-recursive")
    try:
        source = make_source(s, folder=folder, stac_api=stac_api, collections=collection, sentinelhub=sentinelhub,
                             max_cloud=max_cloud, max_items=max_items, sensing_time=when)
        report = cli_runbook(s).streams.backfill(source, box, start, end, dry_run=dry_run)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report.as_dict()))


def _consumption_out(out: dict, as_json: bool) -> None:
    if as_json:  # serialised like the API's answer (pydantic: ISO 8601 times)
        from pydantic_core import to_json

        typer.echo(to_json(out).decode())
    elif out["paused"]:
        typer.echo(f"paused by {out.get('updated_by')} at {out.get('updated_at')}: "
                   f"{out.get('reason') or '(no reason)'}")
    else:
        typer.echo("consuming" + (f" (resumed by {out['updated_by']} at {out['updated_at']})"
                                  if out.get("updated_by") else ""))


@consumption_app.command("show")
def consumption_show(as_json: bool = typer.Option(False, "--json", help="As GET /ops/consumption.")) -> None:
    """Whether the worker consumes scenes: the pause flag, its reason, who set it and when."""
    _consumption_out(cli_runbook().consumption.show(), as_json)


def _set_consumption(paused: bool, reason: str, as_json: bool) -> None:
    audit = cli_audit("consumption.pause" if paused else "consumption.resume")
    _consumption_out(cli_runbook().consumption.set(paused, reason, cli_actor(), audit), as_json)


@consumption_app.command("pause")
def consumption_pause(
    reason: str = typer.Option("", help="Why, at most 500 characters (kept with the flag and in the audit log)."),
    as_json: bool = typer.Option(False, "--json", help="As POST /ops/consumption/pause."),
) -> None:
    """Pause the worker's consumption (it reads the flag every TERRAWATCH_CONTROL_POLL_S s); audited as
    consumption.pause."""
    _set_consumption(True, reason, as_json)


@consumption_app.command("resume")
def consumption_resume(
    reason: str = typer.Option("", help="Why, at most 500 characters (kept with the flag and in the audit log)."),
    as_json: bool = typer.Option(False, "--json", help="As POST /ops/consumption/resume."),
) -> None:
    """Resume the worker's consumption; audited as consumption.resume."""
    _set_consumption(False, reason, as_json)
