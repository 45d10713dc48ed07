"""Start, check and stop the whole local stack."""

from __future__ import annotations

import json
from dataclasses import dataclass

from terrawatch.settings import Settings
from terrawatch_dev.stack.kafka import Kafka
from terrawatch_dev.stack.postgres import Postgres
from terrawatch_dev.stack.process import ManagedProcess
from terrawatch_dev.stack.ray_head import RayHead, RayNode
from terrawatch_dev.stack.triton import Triton


# terrawatch processes started next to the stack (by `make demo`), stopped first by `down`.
APP_PROCESSES = ("worker", "api")


@dataclass
class Stack:
    settings: Settings

    def __post_init__(self) -> None:
        s = self.settings
        self.kafka = Kafka(s)
        self.postgres = Postgres(s)
        self.triton = Triton(s)
        self.ray = RayHead(s)
        # The multi-node mode's second Ray node starts after the head (services start and wait in order).
        self.ray_nodes = [RayNode(s)] if s.ray_nodes >= 2 else []
        self.services = [self.postgres, self.kafka, self.triton, self.ray, *self.ray_nodes]

    def up(self) -> None:
        """Install what is missing, start every service, wait until each is healthy."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        for svc in self.services:
            svc.install()
        for svc in self.services:
            svc.start()
        for svc in self.services:
            svc.wait()
        from terrawatch.ingest.topics import ensure_topics
        from terrawatch.store.migrate import upgrade

        ensure_topics(self.settings)
        upgrade(self.settings)
        (self.settings.state_dir / "stack.json").write_text(json.dumps(self.describe(), indent=2))

    def status(self) -> dict[str, str]:
        return {svc.name: ("healthy" if svc.healthy() else "unhealthy") for svc in self.services}

    def down(self) -> dict[str, bool]:
        """Stop terrawatch's own processes, then the services, only by the PIDs recorded at start."""
        out = {name: ManagedProcess(name, self.settings.state_dir).stop(timeout=60) for name in APP_PROCESSES}
        out.update({svc.name: svc.stop() for svc in reversed(self.services)})
        return out

    def describe(self) -> dict[str, str]:
        s = self.settings
        return {
            "kafka": s.bootstrap,
            "postgres": s.db_url,
            "triton_grpc": s.triton,
            "triton_http": f"http://127.0.0.1:{s.triton_http_port}",
            "triton_metrics": f"http://127.0.0.1:{s.triton_metrics_port}/metrics",
            "ray": s.ray,
            "state_dir": str(s.state_dir),
        }
