"""Domain errors. Each carries a human-readable reason that ends up in the DLQ or an HTTP 4xx."""

from __future__ import annotations


class TerrawatchError(Exception):
    """Base of every error terrawatch raises on purpose."""

    code = "error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidEvent(TerrawatchError):
    """The scene event is not a valid STAC Item for terrawatch (retrying cannot help)."""

    code = "invalid_event"


class UnreadableAsset(TerrawatchError):
    """An asset cannot be opened or read as a raster (retrying cannot help)."""

    code = "unreadable_asset"


class UnsupportedScene(TerrawatchError):
    """The scene is valid but no hazard model applies to it."""

    code = "unsupported_scene"


class NoValidPixels(TerrawatchError):
    """Every pixel of the scene is NaN or nodata in some band: nothing was observed, which must not be
    stored as "observed, no hazard" (retrying cannot help)."""

    code = "no_valid_pixels"


class UnprocessableInput(TerrawatchError):
    """A model rejected the tensors made from this scene (shape, type): the scene's content, not an outage."""

    code = "unprocessable_input"


class TransientError(TerrawatchError):
    """A dependency (Triton, PostGIS, Ray) failed; the scene should be retried."""

    code = "transient"


DEPENDENCIES = ("triton", "ray", "postgis")


class DlqWriteError(RuntimeError):
    """The DLQ record was not acknowledged (broker down); the source offset must not be committed.
    Raised by the DLQ sink (``ingest.dlq.DlqSink``), read by the worker."""


class DependencyUnavailable(TransientError):
    """A dependency (``triton``, ``ray`` or ``postgis``) is down or not ready: not the scene's fault.

    The worker pauses consumption and waits for the dependency instead of spending the scene's attempts.
    """

    code = "transient"

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(reason)
        self.dependency = dependency

    def __reduce__(self):  # pickled across Ray (the default would call __init__(reason) only)
        return (type(self), (self.dependency, self.reason))


# Kinds a use case raises for its caller (the API maps each to one HTTP status in api/errors.py; the CLI
# prints the reason). Services subclass them with their own names (e.g. service/alerts.AlertNotFound).


class NotFound(TerrawatchError):
    """The thing asked for does not exist (HTTP 404)."""

    code = "not_found"


class Conflict(TerrawatchError):
    """The request clashes with the current state: exists already, changed meanwhile, not allowed now (409)."""

    code = "conflict"


class InvalidInput(TerrawatchError):
    """A value the use case will not take (422)."""

    code = "invalid_input"


class BadRequest(TerrawatchError):
    """A request the server will not run (HTTP 400): unknown parameters, filters outside the allow-list."""

    code = "bad_request"


class PayloadTooLarge(TerrawatchError):
    code = "payload_too_large"


class Unauthenticated(TerrawatchError):
    code = "unauthenticated"


class Forbidden(TerrawatchError):
    code = "forbidden"


class RateLimited(TerrawatchError):
    code = "rate_limited"

    def __init__(self, reason: str, retry_after_s: int = 60) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Unavailable(TerrawatchError):
    """A dependency (Kafka, PostGIS, Triton, Ray) cannot be reached now (503)."""

    code = "unavailable"
