"""TileCache.get_or_render: concurrent misses of one key render once; a failed render is not shared."""

from __future__ import annotations

import threading
import time

import pytest

from terrawatch.api.tile_cache import TileCache


def test_concurrent_misses_render_once_and_share_the_bytes():
    c = TileCache(1 << 20)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def render() -> bytes:
        calls.append(1)
        started.set()
        release.wait(5)
        return b"tile"

    out: list[tuple[bytes, bool]] = []
    threads = [threading.Thread(target=lambda: out.append(c.get_or_render(("k",), render))) for _ in range(6)]
    threads[0].start()
    assert started.wait(5)  # the leader is rendering; the others arrive during its render
    for t in threads[1:]:
        t.start()
    time.sleep(0.2)  # let the followers reach the flight (if one came late it gets an LRU hit: same answer)
    release.set()
    for t in threads:
        t.join(5)
    assert calls == [1] and sorted(out) == [(b"tile", False)] + [(b"tile", True)] * 5
    assert c.get_or_render(("k",), render) == (b"tile", True) and calls == [1]  # now from the LRU
    assert c._flights == {}


def test_a_failed_render_raises_to_its_caller_and_is_not_cached():
    c = TileCache(1 << 20)

    def bad() -> bytes:
        raise LookupError("outside")

    with pytest.raises(LookupError):
        c.get_or_render(("k",), bad)
    assert c._flights == {} and c.get(("k",)) is None
    assert c.get_or_render(("k",), lambda: b"ok") == (b"ok", False)


def test_a_disabled_cache_still_renders():
    c = TileCache(0)
    assert c.get_or_render(("k",), lambda: b"x") == (b"x", False)
    assert c.get_or_render(("k",), lambda: b"y") == (b"y", False)
