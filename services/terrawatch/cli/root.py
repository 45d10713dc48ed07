"""The ``terrawatch`` command line (Typer): the app, its command groups and the one-line error handling.

The commands live in the sibling modules, one per group; :mod:`terrawatch.cli` imports them all."""

from __future__ import annotations

import typer

app = typer.Typer(help="terrawatch: near-real-time flood, deforestation and mining monitoring of Sentinel scenes.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
stack_app = typer.Typer(help="Start, check and stop the local stack (Kafka, PostGIS, Triton, Ray) on 127.0.0.1.",
                        no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
dlq_app = typer.Typer(help="Scene dead-letter queue: list, show, re-drive, purge (same code as /ops/dlq).",
                      no_args_is_help=True)
consumption_app = typer.Typer(help="The operator's pause flag of the worker's consumption (same code as "
                                    "/ops/consumption).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")
app.add_typer(consumption_app, name="consumption")


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


def cli_actor() -> str:
    """Who runs this command, for audit rows: ``cli:<user>@<host>``."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (container): still say it came from the CLI
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"[:160]


def cli_audit(action: str):
    """The ``audit(conn, target, details)`` callback of a use case run from the CLI (role ``cli``)."""
    from terrawatch.store.audit import record

    actor = cli_actor()
    return lambda conn, target, details: record(conn, actor, "cli", action, target, details)


def cli_engine(settings=None):
    """The PostGIS pool of a one-shot command (``settings.db_url``; default the environment's settings): the
    CLI's one call of ``store.uow.engine_for`` (one pool per database URL and process)."""
    from terrawatch.settings import get_settings
    from terrawatch.store.uow import engine_for

    return engine_for((settings or get_settings()).db_url)


_RUNBOOK = None


def cli_runbook(settings=None):
    """The runbook's services of this process (``service/bootstrap.build_runbook`` on :func:`cli_engine`; a Kafka
    producer built on the first publish), built on the first call and shared by the commands it runs."""
    global _RUNBOOK
    from terrawatch.settings import get_settings

    s = settings or get_settings()
    if _RUNBOOK is None or _RUNBOOK[0] is not s:
        from terrawatch.service.bootstrap import build_runbook

        _RUNBOOK = (s, build_runbook(s, cli_engine(s)))
    return _RUNBOOK[1]
