"""``terrawatch dlq ...``: the scene dead-letter queue (service/dlq.py, same code as /ops/dlq)."""

from __future__ import annotations

import json

import typer

from terrawatch.cli.root import cli_actor, cli_audit, cli_runbook, dlq_app
from terrawatch.settings import get_settings


def _dlq_ctx():
    s = get_settings()
    return s, cli_runbook(s).dlq


def _dlq_ids(ids: list[str], all_: bool) -> list[str] | None:
    """Entry ids, or None for --all (the service applies the rules: service/dlq.py's docstring)."""
    if all_ == bool(ids):
        raise typer.BadParameter("give entry ids (partition/offset) or --all")
    return None if all_ else ids


@dlq_app.command("list")
def dlq_list(
    state: str = typer.Option("pending", help="pending, redriven, purged or all."),
    limit: int = typer.Option(100, help="At most this many entries, 1..1000 (service/dlq.LIMIT, as GET /ops/dlq?limit=)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
) -> None:
    """DLQ entries (pending by default), oldest first: id, state, error code, kind, reason."""
    s, svc = _dlq_ctx()
    entries = svc.list_entries(state, limit)
    if as_json:
        for e in entries:
            typer.echo(json.dumps(e.as_dict()))
        return
    typer.echo(f"{'id':<12} {'state':<9} {'kind':<9} {'error_code':<20} {'failed_at':<25} reason")
    for e in entries:
        d = e.as_dict()
        typer.echo(f"{d['id']:<12} {d['state']:<9} {d['kind']:<9} {d['error_code']:<20} {d['failed_at'] or '-':<25} "
                   f"{' '.join(d['reason'].split())[:120]}")
    counts = svc.counts()
    typer.echo(f"# {s.dlq_topic}: {counts['pending']} pending, {counts['redriven']} redriven, "
               f"{counts['purged']} purged, {counts['retained']} retained")


@dlq_app.command("show")
def dlq_show(
    entry_id: str = typer.Argument(..., help="partition/offset, e.g. 0/12"),
    as_json: bool = typer.Option(False, "--json", help="The entry as one JSON object (as GET /ops/dlq/{id})."),
) -> None:
    """One DLQ entry: reason, source, state (redriven when and by whom), its history (earlier entries of the
    same event that were re-driven and came back) and the original payload."""
    _, svc = _dlq_ctx()
    d = svc.get_entry(entry_id).as_dict()
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    for k, v in d.items():
        if k not in ("history", "payload"):
            typer.echo(f"{k:<17} {json.dumps(v) if isinstance(v, dict) else ('-' if v is None else v)}")
    typer.echo(f"{'history':<17} {len(d['history'])} earlier re-driven entr{'y' if len(d['history']) == 1 else 'ies'}")
    for h in d["history"]:
        typer.echo(f"  {h['id']:<12} {h['error_code'] or '-':<20} redriven {h['redriven_at']} by {h['redriven_by']}")
    typer.echo(f"{'payload':<17} {d['payload']}")


def _summary(out: dict, verb: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(out))
        return
    typer.echo(f"{verb}: {' '.join(out[verb]) or '-'}")
    for k in out["skipped"]:
        typer.echo(f"skipped: {k['id']} ({k['state']})")
    if out["missing"]:
        typer.echo(f"missing: {' '.join(out['missing'])}")
    if out["remaining"] is not None:
        typer.echo(f"remaining: {out['remaining']} pending")


@dlq_app.command("redrive")
def dlq_redrive(
    ids: list[str] = typer.Argument(None, help="Entries (partition/offset)."),
    all_: bool = typer.Option(False, "--all", help="The oldest 1000 pending entries (permanent ones only with --force)."),
    force: bool = typer.Option(False, "--force", help="Also re-drive permanent entries (refused otherwise)."),
    as_json: bool = typer.Option(False, "--json", help="The answer of POST /ops/dlq/redrive as JSON."),
) -> None:
    """Republish the original payload of pending entries to the scenes topic; mark them redriven. A permanent
    entry (the event itself was refused) is refused unless --force (exit 1 with the reason)."""
    selected = _dlq_ids(ids or [], all_)
    _, svc = _dlq_ctx()
    out = svc.redrive(selected, cli_actor(), cli_audit("dlq.redrive"), force=force)
    _summary(out, "redriven", as_json)


@dlq_app.command("purge")
def dlq_purge(
    ids: list[str] = typer.Argument(None, help="Entries (partition/offset)."),
    all_: bool = typer.Option(False, "--all", help="The oldest 1000 pending entries."),
    as_json: bool = typer.Option(False, "--json", help="The answer of POST /ops/dlq/purge as JSON."),
) -> None:
    """Mark pending entries purged: no longer listed by default nor counted in terrawatch_dlq_depth."""
    selected = _dlq_ids(ids or [], all_)
    _, svc = _dlq_ctx()
    out = svc.purge(selected, cli_actor(), cli_audit("dlq.purge"))
    _summary(out, "purged", as_json)
