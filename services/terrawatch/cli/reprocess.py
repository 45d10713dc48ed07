"""``terrawatch reprocess``: process stored scenes again (service/reprocess.py, as ``POST /ops/reprocess``)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from terrawatch.cli.root import app, cli_audit, cli_runbook


def _time(value: str | None, name: str):
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date or time", param_hint=name) from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@app.command("reprocess")
def reprocess_cmd(
    scene_ids: list[str] = typer.Argument(None, help="Stored scene ids (or --bbox with --since/--until)."),
    bbox: Optional[str] = typer.Option(None, help="west,south,east,north (lon/lat): the stored scenes meeting it."),
    since: Optional[str] = typer.Option(None, help="With --bbox: sensed at or after (ISO 8601; naive = UTC)."),
    until: Optional[str] = typer.Option(None, help="With --bbox: sensed before (ISO 8601; naive = UTC)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the scenes and the run tag; publish nothing."),
    as_json: bool = typer.Option(False, "--json", help="The answer as JSON (as POST /ops/reprocess)."),
) -> None:
    """Process stored scenes again under a new run version (current reference layers, history, thresholds,
    models); the alerts the new run no longer supports are updated or withdrawn, with lifecycle events and
    webhooks. Audited as scene.reprocess."""
    box = None
    if bbox is not None:
        try:
            box = tuple(float(v) for v in bbox.split(","))
        except ValueError:
            raise typer.BadParameter("four numbers west,south,east,north", param_hint="--bbox") from None
        if len(box) != 4:
            raise typer.BadParameter("four numbers west,south,east,north", param_hint="--bbox")
    out = cli_runbook().reprocess.reprocess(scene_ids=scene_ids or None, bbox=box, since=_time(since, "--since"),
                                            until=_time(until, "--until"), dry_run=dry_run,
                                            audit=cli_audit("scene.reprocess"))
    if as_json:
        typer.echo(json.dumps(out))
        return
    typer.echo(f"run {out['run']}: {out['outcome']} ({out['note']})")
    for sc in out["scenes"]:
        typer.echo(f"  {sc['id']}  {sc['sensing_time']}  {', '.join(sc['runs']) or 'no run yet'}")
    for m in out["missing"]:
        typer.echo(f"  {m}  not stored")
