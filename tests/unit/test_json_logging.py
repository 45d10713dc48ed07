"""JSON log lines carry level, logger, message and the scene/tile/trace context."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from terrawatch.observability.logging import configure_logging, current_context, log_context


@pytest.fixture()
def stream():
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("info", stream=buf)
    yield buf
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_one_json_object_per_line_with_required_keys(stream):
    log = logging.getLogger("terrawatch.test")
    log.info("scene %s read", "A", extra={"bytes": 1234})
    log.warning("multi\nline")
    out = lines(stream)
    assert len(out) == 2
    first = out[0]
    assert first["level"] == "INFO" and first["logger"] == "terrawatch.test"
    assert first["msg"] == "scene A read" and first["bytes"] == 1234
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert out[1]["msg"] == "multi\nline"


def test_level_from_setting_filters_debug(stream):
    log = logging.getLogger("terrawatch.test")
    log.debug("hidden")
    log.info("shown")
    assert [r["msg"] for r in lines(stream)] == ["shown"]
    configure_logging("DEBUG", stream=stream)
    log.debug("now shown")
    assert lines(stream)[-1]["msg"] == "now shown"


def test_unknown_level_rejected():
    with pytest.raises(ValueError):
        configure_logging("loud")


def test_context_fields_nest_and_reset(stream):
    log = logging.getLogger("terrawatch.test")
    with log_context(scene_id="S1A_X", trace_id="abc"):
        log.info("scene")
        with log_context(tile_id="3_7", trace_id=None):
            log.info("tile")
        log.info("after tile")
    log.info("outside")
    scene, tile, after, outside = lines(stream)
    assert scene["scene_id"] == "S1A_X" and scene["trace_id"] == "abc" and "tile_id" not in scene
    assert tile["tile_id"] == "3_7" and tile["scene_id"] == "S1A_X" and tile["trace_id"] == "abc"
    assert "tile_id" not in after
    assert not {"scene_id", "tile_id", "trace_id"} & outside.keys()
    assert current_context() == {}


def test_context_is_per_task(stream):
    log = logging.getLogger("terrawatch.test")

    async def work(scene: str):
        with log_context(scene_id=scene):
            await asyncio.sleep(0)
            log.info("step")

    async def main():
        await asyncio.gather(work("a"), work("b"))

    asyncio.run(main())
    assert sorted(r["scene_id"] for r in lines(stream)) == ["a", "b"]


def test_exception_and_non_json_values(stream):
    log = logging.getLogger("terrawatch.test")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed", extra={"path": object()})
    rec = lines(stream)[0]
    assert rec["level"] == "ERROR" and "RuntimeError: boom" in rec["exc"]
    assert rec["path"].startswith("<object")
