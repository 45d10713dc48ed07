"""A bounded in-process cache of rendered vector tiles, keyed by the layers' data version.

Entries are keyed by ``(data version, layer, z, x, y, filters)``; the version changes in the same commit as
the data (``store.vector_tiles.data_version``), so an entry is never served after its data changed and old
versions simply age out of the LRU. Size is bounded in bytes (``TERRAWATCH_API_TILE_CACHE_MB``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Hashable

from cachetools import LRUCache


class TileCache:
    """Thread-safe LRU of tile bytes, at most ``max_bytes`` in total (0 disables caching)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._lru: LRUCache = LRUCache(maxsize=max(max_bytes, 1), getsizeof=lambda b: max(len(b), 1))
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

    @staticmethod
    def etag(key: Hashable) -> str:
        """A strong validator for the tile of ``key`` (same key = same bytes)."""
        return '"' + hashlib.sha256(repr(key).encode()).hexdigest()[:32] + '"'

    def __getstate__(self) -> dict:  # Ray Serve pickles the app: start with an empty cache
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])
