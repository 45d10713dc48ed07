"""``terrawatch stack ...`` and ``terrawatch db ...``: the local stack and the schema."""

from __future__ import annotations

import json

import typer

from terrawatch.cli.root import db_app, stack_app
from terrawatch.settings import get_settings


@stack_app.command("up")
def stack_up() -> None:
    """Install what is missing, start every service and wait until all are healthy."""
    from terrawatch_dev.stack import Stack

    stack = Stack(get_settings())
    stack.up()
    typer.echo(json.dumps(stack.describe(), indent=2))


def _service_checks(stack) -> dict:
    """name -> check() for each service of the local stack. Ray: its head process runs and its GCS port
    accepts connections (a ``ray health-check`` subprocess costs seconds; /ops/readyz asks the GCS itself)."""
    from terrawatch_dev.stack.process import ManagedProcess, port_open

    s = stack.settings
    checks = {svc.name: svc.healthy for svc in stack.services if svc.name != "ray"}
    checks["ray"] = lambda: ManagedProcess("ray", s.state_dir).pid() is not None and port_open(s.ray_port)
    return checks


def local_status(settings) -> dict:
    """Services (healthy/unhealthy) and terrawatch processes (service.ops.process_health), all probed at once.
    ``ok`` is false when a service is unhealthy or a process that `make demo` / the stack started (its PID
    file under the state dir is alive or stale) does not answer."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from terrawatch.service.ops import process_health
    from terrawatch_dev.stack import Stack
    from terrawatch_dev.stack.process import ManagedProcess

    t0 = time.perf_counter()
    stack = Stack(settings)
    checks = _service_checks(stack)
    with ThreadPoolExecutor(max_workers=len(checks) + 1) as pool:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        procs_f = pool.submit(process_health, settings)
        services = {}
        for name, f in futures.items():
            try:
                services[name] = "healthy" if f.result() else "unhealthy"
            except Exception:  # noqa: BLE001 - a probe that fails means unhealthy
                services[name] = "unhealthy"
        processes = procs_f.result()
    for p in processes:
        managed = ManagedProcess(p["process"], settings.state_dir)
        p["managed"] = managed.pid_file.exists()  # started by `make demo` (the stack's state dir)
    ok = all(v == "healthy" for v in services.values()) and all(p["up"] for p in processes if p["managed"])
    return {"ok": ok, "services": services, "processes": processes,
            "elapsed_s": round(time.perf_counter() - t0, 3)}


@stack_app.command("status")
def stack_status(as_json: bool = typer.Option(False, "--json", help="One JSON object instead of a table.")) -> None:
    """Each service (healthy/unhealthy) and terrawatch process (worker, dispatcher, API: up/down, since,
    version), probed in parallel; exit 1 if a service, or a process the stack started, is down."""
    out = local_status(get_settings())
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        typer.echo(f"{'name':<11} {'state':<10} detail")
        for name, state in out["services"].items():
            typer.echo(f"{name:<11} {state:<10}")
        for p in out["processes"]:
            state = "up" if p["up"] else ("down" if p["managed"] else "not running")
            detail = (f"since {p['since']}, version {p['version']}, {p['detail']}" if p["up"] else p["detail"])
            typer.echo(f"{p['process']:<11} {state:<10} {detail}")
        typer.echo(f"# checked in {out['elapsed_s']} s")
    raise typer.Exit(0 if out["ok"] else 1)


@stack_app.command("down")
def stack_down() -> None:
    """Stop the processes that `stack up` started (by recorded PID), nothing else."""
    from terrawatch_dev.stack import Stack

    typer.echo(json.dumps(Stack(get_settings()).down(), indent=2))


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Apply migrations up to REVISION."""
    from terrawatch.store.migrate import upgrade

    upgrade(get_settings(), revision)
