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
    kafka_version: str = Field(default="4.3.1", description="Apache Kafka version of the local stack (Maven Central).")
    kafka_port: int = Field(default=19092, description="Local stack: Kafka broker port.")
    kafka_controller_port: int = Field(default=19093, description="Local stack: KRaft controller port.")
    kafka_brokers: int = Field(
        default=1, description="Local stack: Kafka nodes (KRaft broker+controller each; node n on kafka_port and "
                               "kafka_controller_port + 10(n-1)); 3 = the multi-node mode of the fault suite.")
    pg_port: int = Field(default=15432, description="Local stack: PostgreSQL port.")
    triton_http_port: int = Field(default=18000, description="Local stack: Triton HTTP port.")
    triton_grpc_port: int = Field(default=18001, description="Local stack: Triton gRPC port.")
    triton_metrics_port: int = Field(default=18002, description="Local stack: Triton /metrics port.")
    ray_port: int = Field(default=16379, description="Local stack: Ray GCS port (+1 client server, +2 agent HTTP, +3 agent gRPC, "
                                                     "+4 metrics export, +5 runtime-env agent; all on 127.0.0.1).")
    ray_min_worker_port: int = Field(default=20000, description="Local stack: first of 1000 Ray worker ports (the head "
                                                                "takes the first 500, a second node the rest).")
    ray_nodes: int = Field(default=1, ge=1, le=2, description="Local stack: Ray nodes, the head and with 2 a second node "
                                                             "on 127.0.0.1 (the multi-node mode; agents on ray_port + 6..9).")
    metrics_port: int = Field(default=19464, description="Port of the worker's /metrics (9464 in containers).")
    metrics_host: str = Field(default="127.0.0.1", description="Bind address of /metrics (0.0.0.0 in containers).")
    dispatcher_metrics_port: int = Field(default=19465, description="Port of a standalone dispatcher's /metrics.")

    # Connections (override to use existing services)
    kafka_bootstrap: str | None = Field(default=None, description="Kafka bootstrap servers (default: the local stack).")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of PostGIS as the schema owner: migrations, grants, admin CLI "
        "(default: the local stack, role terrawatch).")
    worker_database_url: str | None = Field(
        default=None, description="PostGIS URL of the pipeline worker and dispatcher (role terrawatch_worker; "
        "default: the local stack, or TERRAWATCH_DATABASE_URL when only that is set).")
    api_read_database_url: str | None = Field(
        default=None, description="PostGIS URL of the API's read role (OGC API, tiles, reads; role "
        "terrawatch_api_read: SELECT on published views only; default as for the worker).")
    api_write_database_url: str | None = Field(
        default=None, description="PostGIS URL of the API's write role (auth, audit, ops/admin actions; role "
        "terrawatch_api_write; default as for the worker).")
    triton_url: str | None = Field(default=None, description="Triton gRPC host:port (default: the local stack).")
    ray_address: str | None = Field(default=None, description="Ray cluster, host:port or ray://host:10001 (default: the local stack).")
    model_repository: Path = Field(default=REPO_ROOT / "models", description="Triton model repository served by the local stack.")

    # Topics and consumer
    scenes_topic: str = Field(default="terrawatch.scenes", description="Topic of scene events (STAC Items).")
    dlq_topic: str = Field(default="terrawatch.scenes.dlq", description="Dead-letter topic (original payload + reason).")
    consumer_group: str = Field(default="terrawatch-pipeline", description="Consumer group of the pipeline workers.")
    topic_partitions: int = Field(default=4, description="Partitions of the scenes topic when terrawatch creates it.")
    consumer_instance_id: str | None = Field(
        default=None,
        description="Static group membership (Kafka group.instance.id) of this worker: a restarted worker takes "
                    "its partitions back at once. Default <hostname>-<metrics port>; '' = dynamic membership. "
                    "Must be unique per running worker of a group (see docs/scaling.md).")
    consumer_session_timeout_s: float = Field(
        default=30.0, description="Kafka session timeout (s): how long a dead worker's partitions wait before "
                                  "they move to another worker.")

    # Kafka client security (every producer, consumer and admin client: ingest/kafka_config.py) and topic durability
    kafka_security_protocol: str = Field(
        default="", description="librdkafka security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL "
                                "('' = librdkafka's default, PLAINTEXT: the local stack only).")
    kafka_sasl_mechanism: str = Field(
        default="", description="sasl.mechanism, e.g. SCRAM-SHA-512 (Strimzi), SCRAM-SHA-256, PLAIN ('' = none).")
    kafka_sasl_username: str = Field(default="", description="SASL user name (sasl.username).")
    kafka_sasl_password: str = Field(default="", description="SASL password (sasl.password); from a secret.")
    kafka_ssl_ca_location: str = Field(
        default="", description="PEM file of the CA that signed the brokers' certificates (ssl.ca.location; "
                                "'' = the system CA store).")
    kafka_config: str = Field(
        default="", description="JSON object of further librdkafka settings for every client, e.g. "
                                '{"ssl.certificate.location": "/tls/user.crt"} (applied after the settings '
                                "above; a client's own settings such as acks=all still win).")
    kafka_replication_factor: int | None = Field(
        default=None, description="Replication factor of the topics terrawatch creates, and the least readiness "
                                  "accepts on existing ones (default: min(3, brokers)).")
    kafka_min_insync_replicas: int | None = Field(
        default=None, description="min.insync.replicas of the topics terrawatch creates, and the least readiness "
                                  "accepts (default: min(2, replication factor)).")

    # Dependency outages (Triton, Ray, PostGIS): pause consumption instead of dead-lettering
    outage_window_s: float = Field(
        default=900.0, description="How long (s) a scene waits out a dependency outage (consumption paused) "
                                   "before it is dead-lettered as transient.")
    outage_probe_max_s: float = Field(
        default=10.0, description="Longest wait (s) between readiness probes of a dependency that is down.")
    dlq_auto_redrive: bool = Field(
        default=True, description="Re-drive transient DLQ entries automatically once every dependency is ready.")
    dlq_auto_redrive_max: int = Field(
        default=3, description="Automatic re-drives per event; an event dead-lettered again after that many "
                               "waits for an operator.")
    dlq_auto_redrive_interval_s: float = Field(
        default=30.0, description="How often (s) the worker looks for new transient DLQ entries to re-drive.")

    # Tiling and inference
    tile_size: int = Field(default=256, description="Tile window (px) read and inferred at once.")
    tile_overlap: int = Field(default=32, description="Overlap (px) on each side; only the tile centre is kept.")
    max_in_flight_tiles: int = Field(default=8, description="Backpressure: tiles outstanding on Ray at once.")
    triton_batch: int = Field(default=4, description="Tiles per Ray task and Triton request.")
    tile_workers: int = Field(default=2, ge=1, le=64, description="Ray TileWorker actors per worker (each sends "
                              "one Triton request at a time; docs/performance.md).")
    scenes_in_flight: int = Field(
        default=2, ge=1, le=16, description="Scenes a worker processes at once: scene N+1 is read and inferred "
        "while scene N is vectorized and stored (offsets still committed in order; docs/performance.md).")
    revoke_drain_s: float = Field(
        default=60.0, ge=0, description="On a rebalance, how long (s) the worker waits for the in-flight scenes "
        "of revoked partitions to finish and commit; scenes still unfinished are abandoned uncommitted (the "
        "new owner re-processes them; run markers make a late duplicate write a no-op).")
    # Triton serving (rendered into config.pbtxt by python -m terrawatch.inference.serving; Helm triton.serving)
    triton_instance_kind: str = Field(default="cpu", pattern="^(cpu|gpu)$",
                                      description="Triton model instances on cpu or gpu (KIND_CPU / KIND_GPU).")
    triton_instance_count: int | None = Field(default=None, ge=1, description="Triton instances per model (per GPU "
                                              "for gpu; None = each model's config.pbtxt on cpu, 1 on gpu).")
    triton_gpus: str = Field(default="", description="GPU ids for gpu instances, comma-separated ('' = all visible).")
    triton_torch_threads: int | None = Field(default=None, ge=1,
                                             description="torch intra-op threads per instance (None = the model's).")
    triton_preferred_batch: str = Field(default="", description="Dynamic-batcher preferred batch sizes, "
                                        "comma-separated ('' = the model's config.pbtxt).")
    triton_queue_delay_us: int | None = Field(default=None, ge=0, description="Dynamic-batcher max queue delay "
                                              "(us; None = the model's config.pbtxt).")
    triton_runtime: str = Field(default="", pattern="^(|torch|onnxruntime)$", description="How the torch-net models "
                                "run in Triton: torch or onnxruntime ('' = each model's config.pbtxt).")
    triton_ort_providers: str = Field(default="", description="ONNX Runtime execution providers, comma-separated "
                                      "('' = the model's; auto = CPU, or CUDA then CPU on gpu instances).")
    flood_threshold: float = Field(default=0.5, description="Water probability (0-1) above which a pixel is flooded.")
    mining_threshold: float = Field(default=0.8, description="Mine probability (0-1); 0.8 as in the model's validation.")
    mining_stride: int = Field(default=16, description="Stride (px) of the 48 px mining classifier's sliding window.")
    deforestation_threshold: float = Field(default=0.5, description="Forest-loss probability (0-1).")
    s1_change_detection: bool = Field(
        default=True, description="Sentinel-1 flood with a pre-event scene of the same relative orbit (named in the "
        "event, or the latest one in PostGIS that raised no flood alert): keep the network's water only where the "
        "backscatter fell by >= 1.5 dB (terrawatch.ml.change_s1.gate_by_change). Off: the network alone.")
    s1_change_max_age_days: float = Field(
        default=60.0, gt=0, le=730, description="Oldest pre-event scene S1 change detection looks for (days before "
        "the scene); an older reference compares across seasons (vegetation, soil moisture).")
    fusion_window_h: float = Field(default=72.0, ge=0, le=8760,
                                   description="Fused S1 + S2 flood product (`terrawatch fuse`): S2 is used only within "
                                               "this many hours of the S1 acquisition.")
    aoa_overrides: dict[str, Path] = Field(
        default={}, description="Areas of applicability replacing models/<model>/aoa.geojson, as JSON "
        "{\"<model>\": \"<GeoJSON path>\"} (e.g. after retraining a model on a wider region).")

    asset_schemes: str = Field(default="file,http,https,s3",
                               description="URL schemes a scene asset or STAC reference may use.")
    asset_allow_hosts: str = Field(
        default="", description="Comma-separated hosts/CIDRs that asset and STAC URLs may reach although they "
        "resolve to loopback, private or link-local addresses.")
    asset_file_roots: str = Field(
        default="", description="Comma-separated folders file:// asset hrefs must lie under ('' = the state dir "
        "and the shared data dir).")
    write_products: bool = Field(default=True, description="Write per-hazard GeoTIFFs per scene: band 1 likelihood 0-100, band 2 exclusion flags.")
    l1c_cloud_mask: bool = Field(
        default=True, description="Mask cloud and cloud shadow of Sentinel-2 L1C scenes once per scene (hybrid "
        "s2cloudless + ukis-csmask at ~30 m, written as <products dir>/<scene>/cloud_mask.tif) and exclude them from "
        "every S2 hazard, as SCL does for L2A. Off: L1C scenes are inferred with no cloud mask.")
    products_root: Path | None = Field(default=None, description="Where likelihood rasters go (default <state_dir>/products).")
    raster_max_source_pixels: int = Field(
        default=1_048_576, ge=262_144, description="Most pixels one raster tile may read (its extent at the "
        "resolution of the product level it is read from); a zoom over it is refused with 400 and the TileJSON's "
        "minzoom is the lowest zoom under it.")

    # Vectorize and alerting
    min_mapping_unit_ha: float = Field(default=0.2, description="Smallest detection kept (ha, geodesic), like RADD.")
    webhook_subscribers: str = Field(
        default="",
        description="Comma-separated url|secret pairs of static webhook subscribers (whsec_ secrets).",
    )
    webhook_allow_private: str = Field(
        default="", description="Comma-separated hosts/CIDRs that may receive webhooks although private."
    )
    webhook_timeout_s: float = Field(default=10.0, description="Per-attempt HTTP timeout of a webhook POST (s).")
    alert_rules_dir: Path = Field(default=REPO_ROOT / "alerts" / "rules",
                                  description="Alert rules (*.yaml + schema.json), validated at startup.")
    webhook_retry_window_h: float = Field(default=24.0, description="Retry a webhook for this long (h), then fail it.")
    webhook_retry_base_s: float = Field(default=2.0, description="Backoff base (s): attempt n waits U(0, base*2^n).")
    webhook_retry_cap_s: float = Field(default=3600.0, description="Longest wait between two attempts (s).")
    webhook_max_per_endpoint: int = Field(default=4, description="Concurrent webhook requests per endpoint.")
    webhook_workers: int = Field(default=8, description="Concurrent webhook requests per dispatcher in total.")
    webhook_breaker_failures: int = Field(default=5, description="Consecutive failures that open an endpoint's circuit.")
    webhook_breaker_cooldown_s: float = Field(default=60.0, description="Open-circuit pause before a trial request (s).")
    webhook_lease_s: float | None = Field(
        default=None, description="How long a claimed delivery stays reserved (s); default 4 x timeout + 30.")
    cap_sender: str = Field(default="terrawatch@localhost", description="CAP <sender> of CAP 1.2 webhook payloads.")
    log_level: str = Field(default="INFO", description="Log level of the JSON logs.")

    # Sentinel Hub / Copernicus Data Space (terrawatch.imagery.sentinelhub); OAuth client credentials.
    sh_client_id: str = Field(default="", description="Sentinel Hub OAuth client id.")
    sh_client_secret: str = Field(default="", description="Sentinel Hub OAuth client secret.")
    sh_base_url: str = Field(default="https://sh.dataspace.copernicus.eu",
                             description="Process/Catalog API base (https://services.sentinel-hub.com for SH).")
    sh_token_url: str = Field(
        default="https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token",
        description="OAuth token endpoint (client credentials grant).")
    sh_max_attempts: int = Field(default=4, description="Tries per request on HTTP 429/5xx or connection errors.")
    sh_retry_base_s: float = Field(default=5.0, description="First retry wait (s); x3 per further attempt.")
    sh_timeout_s: float = Field(default=120.0, description="Per-request timeout (s).")
    sh_max_px: int = Field(default=2500, description="Largest Process API output side (px); larger areas are split.")

    # HTTP API (terrawatch serve)
    api_host: str = Field(default="127.0.0.1", description="Bind address of terrawatch serve.")
    api_port: int = Field(default=18080, description="Port of terrawatch serve.")
    api_cors_origins: str = Field(default="", description="Comma-separated origins allowed by CORS ('' = none).")
    api_public_read: bool = Field(
        default=False, description="Serve the map layers (OGC API, tiles, /map) without an API key.")
    map_style_url: str = Field(
        default="", description="MapLibre style URL for /map's basemap (e.g. a deployment's vector tile style); "
        "'' = the offline basemap bundled by make web (Natural Earth land, coastlines, borders).")
    api_auth_failures_per_minute: int = Field(
        default=20, description="Failed authentications per client address per minute before HTTP 429.")
    api_trusted_proxies: str = Field(
        default="", description="Comma-separated proxy addresses/CIDRs whose X-Forwarded-For/-Proto/-Host is believed "
        "('' = none: the TCP peer is the client).")
    api_public_url: str = Field(
        default="", description="The API's public base URL (http(s)://host[:port][/prefix]) for absolute links "
        "(TileJSON, STAC, OGC); '' = X-Forwarded-Host from a trusted proxy, else the listening address. The "
        "client's Host header is never used.")
    api_max_body_bytes: int = Field(default=1 << 20, description="Largest request body (bytes) before HTTP 413.")
    api_max_upload_bytes: int = Field(
        default=64 << 20, description="Largest body (bytes) of the routes that take uploads (reference layers).")
    api_statement_timeout_ms: int = Field(
        default=10_000, description="PostgreSQL statement_timeout of the API's connections (ms).")
    api_filter_max_chars: int = Field(default=8192, description="Longest CQL2 filter (characters) before HTTP 400.")
    api_tile_cache_mb: int = Field(
        default=64, description="Memory (MiB) of the API's tile cache, vector and raster tiles together, keyed by the "
        "data's version (vector: the layers' data version; raster: the product file's) (0 = off).")
    api_ogc_max_limit: int = Field(
        default=1000, description="Largest OGC items page; a larger limit is capped to it (OGC API Part 1).")
    api_backfill_roots: str = Field(
        default="", description="Comma-separated folders a backfill may read ('' = state dir and shared data).")
    worker_metrics_url: str | None = Field(
        default=None, description="The worker's /metrics (default http://127.0.0.1:<metrics_port>/metrics).")
    dispatcher_metrics_url: str | None = Field(
        default=None, description="A standalone dispatcher's /metrics, probed by /ops/status and stack status "
                                  "(default http://127.0.0.1:<dispatcher_metrics_port>/metrics).")
    control_poll_s: float = Field(default=2.0, description="How often the worker reads the pause flag (s).")
    dlq_depth_interval_s: float = Field(
        default=15.0, description="How often the worker measures the pending DLQ entries for terrawatch_dlq_depth (s).")

    @property
    def products_dir(self) -> Path:
        return self.products_root or self.state_dir / "products"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or ",".join(f"127.0.0.1:{self.kafka_port + 10 * i}"
                                                for i in range(max(1, self.kafka_brokers)))

    @property
    def secrets_dir(self) -> Path:
        """Local stack: generated credentials (mode 0700; every file in it 0600)."""
        return self.state_dir / "secrets"

    @property
    def pg_passfile(self) -> Path:
        """Local stack: libpq password file of the service roles (not of ``postgres``)."""
        return self.secrets_dir / "pgpass"

    @property
    def ray_token_file(self) -> Path:
        """Local stack: Ray's authentication token (``RAY_AUTH_TOKEN_PATH``)."""
        return self.secrets_dir / "ray-token"

    def _local_db_url(self, role: str) -> str:
        # No password in the URL: libpq (psycopg) and asyncpg (tipg) read it from the passfile parameter.
        from urllib.parse import quote

        return (f"postgresql+psycopg://{role}@127.0.0.1:{self.pg_port}/terrawatch"
                f"?passfile={quote(str(self.pg_passfile.absolute()), safe='/')}")

    @property
    def db_url(self) -> str:
        return self.database_url or self._local_db_url("terrawatch")

    def _role_url(self, explicit: str | None, role: str) -> str:
        if explicit:
            return explicit
        if self.database_url:  # only the owner URL given: every process uses it (see docs/security.md)
            return self.database_url
        return self._local_db_url(role)

    @property
    def worker_db_url(self) -> str:
        return self._role_url(self.worker_database_url, "terrawatch_worker")

    @property
    def api_read_db_url(self) -> str:
        return self._role_url(self.api_read_database_url, "terrawatch_api_read")

    @property
    def api_write_db_url(self) -> str:
        return self._role_url(self.api_write_database_url, "terrawatch_api_write")

    @property
    def triton(self) -> str:
        return self.triton_url or f"127.0.0.1:{self.triton_grpc_port}"

    @property
    def ray(self) -> str:
        return self.ray_address or f"127.0.0.1:{self.ray_port}"

    @property
    def ray_driver_env(self) -> dict[str, str]:
        """Environment a Ray driver of the local stack needs: its token and a loopback node address (Ray
        otherwise swaps 127.0.0.1 for the host's external address). {} with TERRAWATCH_RAY_ADDRESS: Ray
        reads RAY_AUTH_MODE / RAY_AUTH_TOKEN(_PATH) from the process environment itself."""
        if self.ray_address:
            return {}
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.ray_token_file.absolute()),
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_markdown() -> str:
    """The settings reference (docs/settings.md), generated from this class."""
    lines = ["# Settings", "",
             "Environment variables read by every terrawatch process (pydantic-settings).",
             "Generated by `python -m terrawatch.settings > docs/settings.md`; a unit test keeps it current.", "",
             "| variable | default | meaning |", "|---|---|---|"]
    for name, f in Settings.model_fields.items():
        default = f.default
        if isinstance(default, Path):
            default = str(default).replace(str(REPO_ROOT), "<repo>").replace(str(Path.home()), "~")
        default = "" if default is None else f"`{default}`" if default != "" else "(empty)"
        lines.append(f"| `TERRAWATCH_{name.upper()}` | {default} | {f.description or ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
