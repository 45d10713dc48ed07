"""Conditional GET (RFC 9110 section 13.1.2), one rule for every cached layer (vector and raster tiles)."""

from __future__ import annotations

MAX_HEADER = 4096  # characters of If-None-Match considered: a longer list is cut, never parsed whole


def none_match(header: str | None, tag: str) -> bool:
    """If-None-Match with the weak comparison: ``*`` or any listed entity tag equal to ``tag`` (``W/`` ignored)."""
    if not header:
        return False
    tags = [t.strip() for t in header[:MAX_HEADER].split(",")]
    return "*" in tags or any(t.removeprefix("W/") == tag.removeprefix("W/") for t in tags)
