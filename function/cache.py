"""A least-recently-used cache bounded by bytes, not by entries.

The function keeps responses, serialized resources and validated specs, all
of which Crossplane asks for again and again. A VirtualKey can be large
(64 metadata values of 4 KiB, 200 models), so a bound in entries is no bound
in memory: 1,024 maximal entries were about 1.8 GB. `BytesLRU(max_bytes)`
holds entries whose summed `size` stays under `max_bytes`; an entry larger
than the whole bound is not kept at all. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BytesLRU(Generic[K, V]):
    """An LRU map whose entries' declared sizes sum to at most `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        """A cache of at most `max_bytes` (0 keeps nothing)."""
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many entries are kept."""
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value for `key`, now the most recently used, or None."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep `value`, dropping the least recently used entries to make room."""
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self.bytes = 0
