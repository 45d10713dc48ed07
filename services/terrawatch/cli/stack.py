"""``terrawatch stack ...`` and ``terrawatch db ...``: the local stack and the schema."""

from __future__ import annotations

import json

import typer

from terrawatch.cli.root import db_app, stack_app
from terrawatch.settings import get_settings


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
