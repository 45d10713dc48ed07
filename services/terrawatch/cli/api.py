"""``terrawatch serve`` and ``terrawatch keys ...``: the HTTP API and its keys."""

from __future__ import annotations

import json
from typing import Optional

import typer

from terrawatch.cli.root import app, cli_audit, cli_runbook
from terrawatch.settings import get_settings


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
        from terrawatch_dev.stack.ray_serve import run_on_ray_serve

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
    from terrawatch.domain.errors import InvalidInput
    from terrawatch.service.keys import parse_role

    try:
        role = parse_role(role).value
    except InvalidInput as exc:
        raise typer.BadParameter(exc.reason, param_hint="--role") from None
    key_id, key = cli_runbook().keys.create(name, role, "cli", audit=cli_audit("key.create"))
    typer.echo(json.dumps({"id": key_id, "name": name, "role": role, "key": key}))


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json", help="A JSON array instead of a table.")) -> None:
    """List keys (ids, names, roles, last use; never the secrets): a table, or JSON with --json."""
    keys = cli_runbook().keys.list()
    if as_json:
        typer.echo(json.dumps(keys, default=str, indent=2))
        return
    cols = [c for c in ("id", "name", "role", "created_at", "last_used_at", "revoked_at") if not keys or c in keys[0]]
    typer.echo("  ".join(f"{c:<20}" for c in cols).rstrip())
    for k in keys:
        typer.echo("  ".join(f"{'-' if k.get(c) is None else str(k[c])[:19]:<20}" for c in cols).rstrip())


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key id (the 12 hex characters after tw_).")) -> None:
    """Revoke a key."""
    cli_runbook().keys.revoke(key_id, audit=cli_audit("key.revoke"))  # KeyNotFound: exit 1
    typer.echo(json.dumps({"revoked": key_id}))
