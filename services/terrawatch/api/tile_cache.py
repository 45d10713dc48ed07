"""A bounded in-process cache of rendered tiles (vector and raster), keyed by the data's version.

Vector tiles are keyed by ``(data version, layer, z, x, y, filters)``; the version changes in the same
commit as the data (``store.vector_tiles.data_version``). Raster tiles are keyed by ``("raster", renderer
version, the product file's inode, size and mtime_ns, product, z, x, y, format, composite, cap)``
(``products.tiles.tile_key``): a rewritten product is another key. So an entry is never served after its
data changed, and old versions simply age out of the LRU. One cache per API process, shared by both kinds
(``ApiDeps.tile_cache``); its size is bounded in bytes (``TERRAWATCH_API_TILE_CACHE_MB``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable

from cachetools import LRUCache


class _Flight:
    """One render in progress: followers wait on ``done`` and take ``body`` (None if the leader failed)."""

    __slots__ = ("done", "body")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.body: bytes | None = None


class TileCache:
    """Thread-safe LRU of tile bytes, at most ``max_bytes`` in total (0 disables caching)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._lru: LRUCache = LRUCache(maxsize=max(max_bytes, 1), getsizeof=lambda b: max(len(b), 1))
        self._flights: dict[Hashable, _Flight] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._lru.get(key)
            if body is None:
                self.misses += 1
            else:
                self.hits += 1
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        if self.max_bytes <= 0 or len(body) > self.max_bytes // 4:  # one tile never evicts most of the cache
            return
        with self._lock:
            self._lru[key] = body

    def get_or_render(self, key: Hashable, render: Callable[[], bytes]) -> tuple[bytes, bool]:
        """``(bytes, from_cache)``: the cached tile of ``key``, else ``render()`` stored under ``key``.

        Single flight: concurrent misses of the same key (threads of the API's pool) render it once; the
        others wait for that render and get its bytes (``from_cache`` True). If the render raises, the
        error goes to its caller and each waiter renders for itself (so it gets its own error)."""
        body = self.get(key)
        if body is not None:
            return body, True
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.body is not None:
                return flight.body, True
            return render(), False
        try:
            body = render()
            flight.body = body
            self.put(key, body)
            return body, False
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    @staticmethod
    def etag(key: Hashable) -> str:
        """A strong validator for the tile of ``key`` (same key = same bytes)."""
        return '"' + hashlib.sha256(repr(key).encode()).hexdigest()[:32] + '"'

    def __getstate__(self) -> dict:  # Ray Serve pickles the app: start with an empty cache
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])

