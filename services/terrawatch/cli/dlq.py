"""``terrawatch dlq ...``: the scene dead-letter queue (service/dlq.py, same code as /ops/dlq)."""

from __future__ import annotations

import json

import typer

from terrawatch.cli.root import cli_actor, cli_audit, dlq_app
from terrawatch.settings import get_settings


def _dlq_ctx():
    from terrawatch.store.uow import engine_for

    s = get_settings()
    return s, engine_for(s.db_url)


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
    out = dlq.redrive(s, engine, kafka_io.producer(s), selected, cli_actor(), cli_audit("dlq.redrive"))
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
    out = dlq.purge(s, engine, selected, cli_actor(), cli_audit("dlq.purge"))
    typer.echo(json.dumps(out))
    if ids and out["missing"]:
        raise typer.Exit(1)
