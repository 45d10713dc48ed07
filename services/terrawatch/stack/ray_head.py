"""A local Ray head node (``ray start --head --block``) as one supervised process.

Every socket of the head and of the processes it starts (GCS, raylet, object manager, workers, Ray client
server, dashboard agent, runtime-env agent, metrics exporters) listens on 127.0.0.1, and every one of its
gRPC services requires the cluster's token (Ray's token authentication, ``RAY_AUTH_MODE=token``). The token
is generated once per state dir into ``<state>/secrets/ray-token`` (0600); drivers get it through
:attr:`terrawatch.settings.Settings.ray_driver_env`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

from terrawatch.settings import Settings
from terrawatch.stack.process import ManagedProcess, port_open, wait_until, write_secret


def ensure_ray_token(settings: Settings) -> Path:
    """The local stack's Ray token file, generated (256 bits) on first use; its mode is kept at 0600."""
    path = settings.ray_token_file
    if not path.exists():
        write_secret(path, secrets.token_hex(32))
    os.chmod(path.parent, 0o700)
    os.chmod(path, 0o600)
    return path


def ray_env(settings: Settings) -> dict[str, str]:
    """Environment of the head and of the ``ray`` CLI against it: token auth on, loopback node address."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}  # the file is the one token
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(settings.ray_token_file.absolute()),
                # Without it `ray start --node-ip-address=127.0.0.1` swaps in the host's external address
                # and the GCS, raylet and agents listen on every interface.
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    return env


class RayHead:
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.proc = ManagedProcess(self.name, settings.state_dir)
        # Ray's unix socket paths must stay short, so its temp dir lives under /tmp. Ray makes its temp dir
        # world-writable (0777) whenever a node or driver sets it up, so it sits in a folder of ours (0700):
        # sessions, logs and the raylet/plasma unix sockets (which take no token) are the owner's only.
        digest = hashlib.sha1(str(settings.state_dir).encode()).hexdigest()[:8]
        self.temp_root = Path("/tmp") / f"tw-ray-{digest}"
        self.temp_dir = self.temp_root / "r"

    def install(self) -> None:
        import ray  # noqa: F401

    def _ray(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    def start(self) -> None:
        ensure_ray_token(self.s)
        if self.proc.pid():
            return
        self.temp_root.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.temp_root, 0o700)
        self.proc.start(
            [self._ray(), "start", "--head", "--block", f"--port={self.s.ray_port}",
             "--node-ip-address=127.0.0.1", "--num-cpus=2",
             f"--ray-client-server-port={self.s.ray_port + 1}",
             f"--dashboard-agent-listen-port={self.s.ray_port + 2}",
             # Fixed agent ports: with 0 the raylet waits 15 s for the agents to report theirs and aborts
             # the node when a loaded machine starts them slower than that.
             f"--dashboard-agent-grpc-port={self.s.ray_port + 3}", f"--metrics-export-port={self.s.ray_port + 4}",
             f"--runtime-env-agent-port={self.s.ray_port + 5}",
             f"--min-worker-port={self.s.ray_min_worker_port}",
             f"--max-worker-port={self.s.ray_min_worker_port + 999}", "--include-dashboard=false",
             "--dashboard-host=127.0.0.1",
             "--object-store-memory=600000000", f"--temp-dir={self.temp_dir}", "--disable-usage-stats"],
            env=ray_env(self.s),
        )

    def healthy(self) -> bool:
        if self.proc.pid() is None and self.s.ray_address is None:
            return False
        if not port_open(self.s.ray_port):
            return False
        env = ray_env(self.s) if self.s.ray_address is None else dict(os.environ)
        try:
            res = subprocess.run([self._ray(), "health-check", f"--address={self.s.ray}"],
                                 capture_output=True, env=env, timeout=30)
        except subprocess.TimeoutExpired:
            return False
        return res.returncode == 0

    def wait(self, timeout: float = 420) -> None:
        restarts = 0

        def check() -> bool:
            nonlocal restarts
            if self.s.ray_address is None and self.proc.pid() is None and restarts < 4:
                # `ray start` gives up when the raylet's agents take over 15 s to start (a hard-coded wait:
                # ray-project/ray#65983), as on a loaded machine; a later start usually finds them faster.
                restarts += 1
                self.start()
                return False
            return self.healthy()

        wait_until(check, timeout, "ray", self.proc.log_file)

    def stop(self) -> bool:
        return self.proc.stop(timeout=30)
