"""Runtime settings, read from environment variables prefixed ``TERRAWATCH_``.

Defaults describe the local stack started by ``terrawatch stack up``; production
points the same variables at existing services (see README.md).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TERRAWATCH_", extra="ignore")

    # Local stack
    state_dir: Path = Field(default=REPO_ROOT / ".terrawatch", description="Data/logs/PIDs of the local stack.")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "terrawatch", description="Downloads kept between runs.")
    kafka_version: str = "4.3.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    pg_port: int = 15432
    triton_http_port: int = 18000
    triton_grpc_port: int = 18001
    triton_metrics_port: int = 18002
    ray_port: int = 16379
    ray_min_worker_port: int = 20000
    metrics_port: int = 19464

    # Connections (override to use existing services)
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    triton_url: str | None = None
    ray_address: str | None = None
    model_repository: Path = REPO_ROOT / "models"

    # Topics and consumer
    scenes_topic: str = "terrawatch.scenes"
    dlq_topic: str = "terrawatch.scenes.dlq"
    consumer_group: str = "terrawatch-pipeline"
    topic_partitions: int = 4

    # Tiling and inference
    tile_size: int = 256
    tile_overlap: int = 32
    max_in_flight_tiles: int = 8
    triton_batch: int = 4
    flood_model: str = "flood_s1"
    flood_threshold: float = 0.5

    # Vectorize and alerting
    min_mapping_unit_ha: float = 0.2
    simplify_tolerance_m: float = 5.0
    alert_merge_distance_m: float = 500.0
    webhook_subscribers: str = Field(
        default="",
        description="Comma-separated url|secret pairs of static webhook subscribers (whsec_ secrets).",
    )
    webhook_allow_private: str = Field(
        default="", description="Comma-separated hosts/CIDRs that may receive webhooks although private."
    )
    webhook_timeout_s: float = 10.0
    log_level: str = "INFO"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def db_url(self) -> str:
        return self.database_url or f"postgresql+psycopg://terrawatch@127.0.0.1:{self.pg_port}/terrawatch"

    @property
    def triton(self) -> str:
        return self.triton_url or f"127.0.0.1:{self.triton_grpc_port}"

    @property
    def ray(self) -> str:
        return self.ray_address or f"127.0.0.1:{self.ray_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
