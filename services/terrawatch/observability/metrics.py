"""The Prometheus metric catalogue of terrawatch (see docs/metrics.md).

Every process imports its metrics from here, so names, labels and units are
defined once. Units follow Prometheus conventions: seconds, bytes, ``_total``
for counters.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# values of the ``stage`` label of terrawatch_stage_duration_seconds (service/pipeline.py, service/worker.py)
STAGES = ("check", "open", "read", "infer", "tiling_wall", "products", "cloud_mask", "vectorize", "store", "commit")

# values of the ``operation`` label of terrawatch_db_write_duration_seconds: the UnitOfWork operations that
# write (store/uow.py observes only these; a read-only UnitOfWork, operation "read", is not measured).
DB_WRITE_OPERATIONS = ("check", "status", "reference", "fusion", "scene", "alert_transition", "seed")

# Latency buckets in seconds: stage work is sub-second to minutes.
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Sensing-to-alert spans minutes (live) to days (backfill).
_LATENCY_BUCKETS = (
    60, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
    86400, 3 * 86400, 7 * 86400, 30 * 86400,
)

EVENTS_CONSUMED = Counter(
    "terrawatch_events_consumed_total", "Scene events read from Kafka.", ["topic"]
)
EVENTS_INVALID = Counter(
    "terrawatch_events_invalid_total", "Scene events rejected and sent to the DLQ.", ["reason"]
)
SCENES = Counter(
    "terrawatch_scenes_total",
    "Scenes finished, by outcome (processed, duplicate, failed).",
    ["outcome", "platform"],
)
TILES = Counter("terrawatch_tiles_total", "Tiles inferred.", ["hazard"])
STAGE_SECONDS = Histogram(
    "terrawatch_stage_duration_seconds",
    "Wall time of one pipeline stage for one scene.",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
SENSING_TO_ALERT_SECONDS = Histogram(
    "terrawatch_sensing_to_alert_seconds",
    "Time from the scene's sensing time to its alert being stored.",
    ["hazard"],
    buckets=_LATENCY_BUCKETS,
)
TRITON_REQUEST_SECONDS = Histogram(
    "terrawatch_triton_request_duration_seconds",
    "Client-side latency of one Triton inference request.",
    ["model"],
    buckets=_STAGE_BUCKETS,
)
DB_WRITE_SECONDS = Histogram(
    "terrawatch_db_write_duration_seconds",
    "Latency of one PostGIS write transaction.",
    ["operation"],
    buckets=_STAGE_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "terrawatch_consumer_lag_messages",
    "Messages between the committed offset and the partition's high watermark.",
    ["topic", "partition"],
)
DETECTIONS = Counter("terrawatch_detections_total", "Detection polygons stored.", ["hazard"])
SCENES_OUTSIDE_AOA = Counter(
    "terrawatch_scenes_outside_aoa_total",
    "Scenes a hazard was not inferred on: the scene lies entirely outside its model's area of applicability.",
    ["hazard"],
)
PIXELS_OUTSIDE_AOA = Counter(
    "terrawatch_pixels_outside_aoa_total",
    "Scene pixels not inferred for a hazard because they lie outside its model's area of applicability.",
    ["hazard"],
)
ALERTS = Counter("terrawatch_alerts_total", "Alerts created or updated.", ["hazard", "action"])
WEBHOOK_DELIVERIES = Counter(
    "terrawatch_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (succeeded, retry, failed, unknown).",
    ["endpoint", "outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "terrawatch_webhook_delivery_duration_seconds",
    "Latency of one webhook HTTP attempt.",
    ["endpoint"],
    buckets=_STAGE_BUCKETS,
)
# Enqueue (or operator redelivery) to accepted delivery: sub-second to the 24 h retry window.
_DELIVERY_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)
WEBHOOK_DELIVERY_LAG_SECONDS = Histogram(
    "terrawatch_webhook_enqueue_to_delivery_seconds",
    "Time from a webhook being enqueued (or redelivered) to the receiver accepting it.",
    ["endpoint"],
    buckets=_DELIVERY_BUCKETS,
)
WEBHOOK_CIRCUIT_OPEN = Gauge(
    "terrawatch_webhook_circuit_open",
    "1 while this dispatcher's circuit breaker for an endpoint is open, else 0.",
    ["endpoint"],
)
OUTBOX_DEPTH = Gauge("terrawatch_outbox_depth", "Webhook deliveries waiting in the outbox.")
OUTBOX_FAILED = Gauge("terrawatch_outbox_failed", "Webhook deliveries that gave up and wait for an operator.")
DLQ_DEPTH = Gauge("terrawatch_dlq_depth", "Pending entries (not re-driven or purged) of the scene dead-letter topic.")
SCENES_IN_FLIGHT = Gauge("terrawatch_scenes_in_flight", "Scenes being processed now.")
CONSUMPTION_PAUSED = Gauge(
    "terrawatch_consumption_paused",
    "1 while this worker's consumption is paused because the dependency is down, else 0.",
    ["dependency"],
)
DEPENDENCY_OUTAGE_SECONDS = Gauge(
    "terrawatch_dependency_outage_seconds",
    "How long the dependency has been down, as seen by this worker (0 when it is up).",
    ["dependency"],
)
OUTAGE_WINDOW_SECONDS = Gauge(
    "terrawatch_outage_window_seconds",
    "Configured outage window: a scene waits this long for a dependency before it is dead-lettered.",
)
DLQ_AUTO_REDRIVEN = Counter(
    "terrawatch_dlq_auto_redriven_total", "Transient DLQ entries re-driven automatically to the scenes topic."
)

# HTTP (API process): request count and latency per route template, bounded label values.
HTTP_UNMATCHED_ROUTE = "unmatched"  # the route label of a request no route matched (404s of random paths)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")  # anything else: "other"
HTTP_REQUESTS = Counter(
    "terrawatch_http_requests_total",
    "HTTP requests answered by the API, by route template, method and status class (2xx, 3xx, 4xx, 5xx).",
    ["route", "method", "status_class"],
)
HTTP_SECONDS = Histogram(
    "terrawatch_http_request_duration_seconds",
    "Time from receiving an HTTP request to the end of its response, by route template, method and status class.",
    ["route", "method", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BUILD_INFO = Gauge(
    "terrawatch_build_info",
    "1 per terrawatch role this process runs (process: api, consumer, dispatcher), with the package version.",
    ["process", "version"],
)

# Which process exports which terrawatch family (the Prometheus job of docs/metrics.md): every process
# imports this module, but serves only its own families (owned_registry), so no process exports another's
# metric at a meaningless 0 (the API once exported terrawatch_outage_window_seconds 0.0).
_CONSUMER = (EVENTS_CONSUMED, EVENTS_INVALID, SCENES, TILES, STAGE_SECONDS, SENSING_TO_ALERT_SECONDS,
             TRITON_REQUEST_SECONDS, DB_WRITE_SECONDS, CONSUMER_LAG, DETECTIONS, SCENES_OUTSIDE_AOA,
             PIXELS_OUTSIDE_AOA, ALERTS, DLQ_DEPTH, SCENES_IN_FLIGHT, CONSUMPTION_PAUSED, DEPENDENCY_OUTAGE_SECONDS,
             OUTAGE_WINDOW_SECONDS, DLQ_AUTO_REDRIVEN, BUILD_INFO)
_DISPATCHER = (WEBHOOK_DELIVERIES, WEBHOOK_SECONDS, WEBHOOK_DELIVERY_LAG_SECONDS, WEBHOOK_CIRCUIT_OPEN, OUTBOX_DEPTH,
               OUTBOX_FAILED, BUILD_INFO)
_API = (HTTP_REQUESTS, HTTP_SECONDS, BUILD_INFO)
OWNERS: dict[str, tuple] = {"consumer": _CONSUMER, "dispatcher": _DISPATCHER, "api": _API}


def _family(metric) -> str:
    return metric.describe()[0].name


def owned_families(*processes: str) -> set[str]:
    """Family names (as ``collect()`` yields them: counters without ``_total``) that ``processes`` export."""
    return {_family(m) for p in processes for m in OWNERS[p]}


class OwnedRegistry:
    """The default registry as the processes in ``processes`` serve it: every non-terrawatch collector
    (``process_*``, ``python_*``) and only the terrawatch families they own. Sets ``terrawatch_build_info``."""

    def __init__(self, *processes: str) -> None:
        from terrawatch import __version__

        self.families = owned_families(*processes)
        for p in processes:
            BUILD_INFO.labels(p, __version__).set(1)

    def collect(self):
        from prometheus_client import REGISTRY

        for fam in REGISTRY.collect():
            if not fam.name.startswith("terrawatch_") or fam.name in self.families:
                yield fam


def _zero_per_hazard() -> None:
    """Export the per-hazard AoA counters at 0 for every registered hazard from the start, so they exist
    (and ``rate()``/``increase()`` work) before the first scene outside an area of applicability."""
    from terrawatch.domain.hazards import HAZARDS

    for hazard in HAZARDS:
        SCENES_OUTSIDE_AOA.labels(hazard)
        PIXELS_OUTSIDE_AOA.labels(hazard)


_zero_per_hazard()
