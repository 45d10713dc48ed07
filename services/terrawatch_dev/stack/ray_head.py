"""A local Ray head node (``ray start --head --block``) as one supervised process, and in the multi-node mode
a second node that joins it (:class:`RayNode`).

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
from terrawatch_dev.stack.process import ManagedProcess, port_open, wait_until, write_secret


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


def _ray_temp_root(settings: Settings) -> Path:
    """Ray's unix socket paths must stay short, so its temp dirs live under /tmp. Ray makes a temp dir
    world-writable (0777) whenever a node or driver sets it up, so they sit in a folder of ours (0700):
    sessions, logs and the raylet/plasma unix sockets (which take no token) are the owner's only."""
    digest = hashlib.sha1(str(settings.state_dir).encode()).hexdigest()[:8]
    return Path("/tmp") / f"tw-ray-{digest}"


def _node_args(settings: Settings, temp_root: Path, temp_dir: Path, cpus: int, agent_base: int,
               workers: tuple[int, int]) -> list[str]:
    """``ray start`` arguments every local node shares: loopback address, its own agent ports
    (``agent_base`` .. +3) and worker ports (``workers``: first, last), its temp dir in ``temp_root`` (0700)."""
    temp_root.mkdir(mode=0o700, exist_ok=True)
    os.chmod(temp_root, 0o700)
    return ["--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
            f"--dashboard-agent-listen-port={agent_base}",
            # Fixed agent ports: with 0 the raylet waits 15 s for the agents to report theirs and aborts
            # the node when a loaded machine starts them slower than that.
            f"--dashboard-agent-grpc-port={agent_base + 1}", f"--metrics-export-port={agent_base + 2}",
            f"--runtime-env-agent-port={agent_base + 3}",
            f"--min-worker-port={workers[0]}", f"--max-worker-port={workers[1]}",
            f"--temp-dir={temp_dir}", "--disable-usage-stats"]


class RayHead:
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.proc = ManagedProcess(self.name, settings.state_dir)
        self.temp_root = _ray_temp_root(settings)
        self.temp_dir = self.temp_root / "r"

    def install(self) -> None:
        import ray  # noqa: F401

    def _ray(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    def start(self) -> None:
        ensure_ray_token(self.s)
        if self.proc.pid():
            return
        self.proc.start(
            [self._ray(), "start", "--head", "--block", f"--port={self.s.ray_port}",
             *_node_args(self.s, self.temp_root, self.temp_dir, cpus=2, agent_base=self.s.ray_port + 2,
                         workers=(self.s.ray_min_worker_port, self.s.ray_min_worker_port + 499)),
             f"--ray-client-server-port={self.s.ray_port + 1}", "--include-dashboard=false",
             "--dashboard-host=127.0.0.1", "--object-store-memory=600000000"],
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


# `ray start --address=...` of a node that is not the head: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (which keeps
# 127.0.0.1 from being swapped for the host's external address in every process of the node) also makes
# `ray start` refuse to join a cluster; this process alone passes that check and keeps loopback itself.
_JOIN = ("import sys\nfrom ray._private import ray_constants, services\n"
         "ray_constants.ENABLE_RAY_CLUSTER = True\n"
         "services.resolve_ip_for_localhost = lambda host: host\n"
         "from ray.scripts.scripts import main\nsys.argv[0] = 'ray'\nsys.exit(main())\n")


class RayNode(RayHead):
    """A second local Ray node, ``ray start --address=<head> --block``: the local multi-node mode
    (``Settings.ray_nodes`` 2) and the fault suite's Ray-node kill. Like the head it joins with the
    cluster's token, listens on 127.0.0.1 only and keeps its temp dir in the head's 0700 folder; its own
    ports: agents ``ray_port`` + 6..9 and the upper half of the worker ports (the head takes the lower)."""

    def __init__(self, settings: Settings, cpus: int = 1) -> None:
        self.s = settings
        self.cpus = cpus
        self.name = "ray-node2"
        self.proc = ManagedProcess(self.name, settings.state_dir)
        self.temp_root = _ray_temp_root(settings)
        self.temp_dir = self.temp_root / "n2"

    def start(self) -> None:
        if self.proc.pid():
            return
        w0 = self.s.ray_min_worker_port + 500
        self.proc.start(
            [sys.executable, "-c", _JOIN, "start", "--block", f"--address={self.s.ray}",
             f"--node-name={self.name}", "--object-store-memory=200000000",
             *_node_args(self.s, self.temp_root, self.temp_dir, cpus=self.cpus, agent_base=self.s.ray_port + 6,
                         workers=(w0, w0 + 499))],
            env=ray_env(self.s),
        )

    def healthy(self) -> bool:
        """Its process runs and the head's GCS lists it alive."""
        if self.proc.pid() is None or not port_open(self.s.ray_port):
            return False
        code = ("import sys\nfrom ray._raylet import GcsClient\n"
                "from ray.core.generated.gcs_pb2 import GcsNodeInfo\n"
                "nodes = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=10).values()\n"
                "alive = any(n.node_name == sys.argv[2] and n.state == GcsNodeInfo.ALIVE for n in nodes)\n"
                "sys.exit(0 if alive else 1)\n")
        try:
            res = subprocess.run([sys.executable, "-c", code, self.s.ray, self.name], capture_output=True,
                                 env=ray_env(self.s), timeout=30)
        except subprocess.TimeoutExpired:
            return False
        return res.returncode == 0
