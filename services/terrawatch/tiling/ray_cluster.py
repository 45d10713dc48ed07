"""The Ray cluster as the worker and the ops API see it: join it, probe it (its GCS session changes when the
head is restarted), and read the errors that come out of Ray tasks."""

from __future__ import annotations

import ray

from terrawatch.domain.errors import DependencyUnavailable
from terrawatch.domain.recovery import RestartRequired


def ray_session(address: str | None, timeout_s: float = 3.0) -> str | None:
    """Readiness probe of the Ray cluster at ``address`` (``host:port`` of the GCS): its session name,
    which changes when the head is restarted. None for a ``ray://`` client address (not probed).
    Raises DependencyUnavailable when the GCS does not answer."""
    import socket

    if not address or "://" in address:
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass  # fail fast when the GCS port is closed (GcsClient would retry for ~30 s)
        from ray._raylet import GcsClient

        session = GcsClient(address=address).internal_kv_get(b"session_name", namespace=b"session",
                                                             timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure: the head is not there (yet)
        raise DependencyUnavailable("ray", f"ray GCS at {address} unreachable: {type(exc).__name__}: {exc}") from exc
    if not session:
        raise DependencyUnavailable("ray", f"ray GCS at {address} answered without a session")
    return session.decode()


def use_driver_env(env: dict[str, str] | None) -> None:
    """Put ``env`` (``Settings.ray_driver_env``: the local stack's token file and loopback node address) into
    this process before it talks to the cluster. Ray reads both when it is imported, so a process that
    imported it earlier has Ray's config and token cache refreshed here."""
    import os

    from ray._private import ray_constants
    from ray._raylet import AuthenticationTokenLoader, Config

    if not env:
        return
    loopback = env.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
    if ("RAY_AUTH_TOKEN" not in os.environ and all(os.environ.get(k) == v for k, v in env.items())
            and not (loopback and ray_constants.ENABLE_RAY_CLUSTER)):
        return  # already in effect (inherited, or applied before)
    os.environ.pop("RAY_AUTH_TOKEN", None)  # would win over the token file
    os.environ.update(env)
    if loopback:
        ray_constants.ENABLE_RAY_CLUSTER = False  # 127.0.0.1 stays 127.0.0.1 (services.resolve_ip_for_localhost)
    if not ray.is_initialized():
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def join_cluster(address: str | None, driver_env: dict[str, str] | None = None) -> None:
    """Make this process a Ray driver of the cluster at ``address`` (once), with ``driver_env``
    (``Settings.ray_driver_env``) applied first."""
    import logging
    import os

    # A failed scene drops its other tile tasks in flight; their errors are the same outage, already
    # classified and logged once by the worker, not worth a traceback each from Ray's "unhandled error" hook.
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    use_driver_env(driver_env)
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)


def unwrap_error(exc: BaseException) -> BaseException:
    """The error a tile task raised, out of Ray's RayTaskError wrapper."""
    from ray.exceptions import RayTaskError

    if isinstance(exc, RayTaskError) and exc.cause is not None:
        return exc.cause
    return exc


def describe_error(exc: BaseException) -> str:
    """One line for logs and DLQ reasons (``Type: message``; a dead Ray worker says so)."""
    from ray.exceptions import RayActorError

    if isinstance(exc, RayActorError):
        return f"ray worker died: {exc}"
    return f"{type(exc).__name__}: {exc}"


def cluster_health(address: str, driver_env: dict[str, str] | None = None) -> str:
    """Readiness of the Ray cluster for ``/ops/readyz``: live nodes (inside a Ray Serve replica), the GCS's
    session (``host:port``) or ``ray health-check`` (a ``ray://`` address). A detail; raises otherwise.
    ``driver_env``: ``Settings.ray_driver_env`` (the local stack's token)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if not ray.is_initialized():
        use_driver_env(driver_env)
    if ray.is_initialized():  # inside a Ray Serve replica
        alive = [n for n in ray.nodes() if n.get("Alive")]
        if not alive:
            raise RuntimeError("no live nodes")
        return f"{len(alive)} live node(s)"
    host, _, port = address.rpartition(":")
    if host and port.isdigit() and "://" not in host:
        return f"gcs at {address} healthy ({ray_session(address)})"
    ray_cli = str(Path(sys.executable).with_name("ray"))
    res = subprocess.run([ray_cli, "health-check", f"--address={address}"], capture_output=True, text=True,
                         timeout=20, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if res.returncode:
        lines = (res.stderr or res.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else "ray health-check failed")
    return f"gcs at {address} healthy"


class RayErrors:
    """The worker's ``ErrorModel`` port for errors that come out of Ray tasks."""

    unwrap = staticmethod(unwrap_error)
    describe = staticmethod(describe_error)


class RayHeadRestarted(DependencyUnavailable, RestartRequired):
    """The Ray head this driver joined was replaced by a new session: the driver (the worker process) must
    restart to use it (a Ray driver cannot re-join a new cluster in-process)."""

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(dependency, reason)
