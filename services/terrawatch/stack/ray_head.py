"""A local Ray head node (``ray start --head --block``) as one supervised process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from terrawatch.settings import Settings
from terrawatch.stack.process import ManagedProcess, port_open, wait_until


def ray_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("RAY_AUTH_MODE", "disabled")
    return env


class RayHead:
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.proc = ManagedProcess(self.name, settings.state_dir)
        # Ray's unix socket paths must stay short, so its temp dir lives under /tmp.
        digest = hashlib.sha1(str(settings.state_dir).encode()).hexdigest()[:8]
        self.temp_dir = Path("/tmp") / f"tw-ray-{digest}"

    def install(self) -> None:
        import ray  # noqa: F401

    def _ray(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    def start(self) -> None:
        if self.proc.pid():
            return
        self.proc.start(
            [self._ray(), "start", "--head", "--block", f"--port={self.s.ray_port}",
             "--node-ip-address=127.0.0.1", "--num-cpus=2",
             f"--ray-client-server-port={self.s.ray_port + 1}",
             f"--dashboard-agent-listen-port={self.s.ray_port + 2}",
             f"--min-worker-port={self.s.ray_min_worker_port}",
             f"--max-worker-port={self.s.ray_min_worker_port + 999}", "--include-dashboard=false",
             "--object-store-memory=600000000", f"--temp-dir={self.temp_dir}", "--disable-usage-stats"],
            env=ray_env(),
        )

    def healthy(self) -> bool:
        if self.proc.pid() is None and self.s.ray_address is None:
            return False
        if not port_open(self.s.ray_port):
            return False
        res = subprocess.run([self._ray(), "health-check", f"--address={self.s.ray}"],
                             capture_output=True, env=ray_env(), timeout=30)
        return res.returncode == 0

    def wait(self, timeout: float = 120) -> None:
        wait_until(self.healthy, timeout, "ray", self.proc.log_file)

    def stop(self) -> bool:
        return self.proc.stop(timeout=30)
