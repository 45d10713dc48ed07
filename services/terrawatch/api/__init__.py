"""HTTP API (FastAPI): OGC API - Features, vector tiles, the map page and the operations runbook API."""

from terrawatch.api.app import create_app

__all__ = ["create_app"]
