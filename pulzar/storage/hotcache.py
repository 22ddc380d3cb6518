"""A volume's small in-memory cache of recently read values, by (key, version).

Reads through the master's 307 name the version, and a stored version never changes: an entry
stays right until that version is dropped (deleted, superseded, found corrupt) or written
again (a retry with the same ticket). The store reports those after each write batch
(`forget`, from the writer thread). A value read while such a batch was being committed may
be the dropped one: `keep` refuses it when the `generation` it was read under is stale.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class HotValues(Generic[V]):
    def __init__(self, max_bytes: int, max_value: int) -> None:
        #: Total bytes kept (0: no cache) and the largest value kept.
        self.max_bytes = max_bytes
        self.max_value = max_value
        #: Bumped by every `forget`; read before a read, checked by `keep`.
        self.generation = 0
        self._entries: OrderedDict[tuple[str, int], tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, version: int) -> V | None:
        entry = self._entries.get((key, version))
        if entry is None:
            return None
        # KeyError: forgotten by the writer thread just now (still right to serve this once).
        with contextlib.suppress(KeyError):
            self._entries.move_to_end((key, version))
        return entry[0]

    def keep(self, key: str, version: int, value: V, size: int, generation: int) -> None:
        """Remember `value` (read under `generation`) unless it is too large or stale."""
        if size > self.max_value or size > self.max_bytes:
            return
        with self._lock:
            if generation != self.generation or (key, version) in self._entries:
                return
            self._entries[(key, version)] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def forget(self, pairs: Iterable[tuple[str, int]]) -> None:
        with self._lock:
            self.generation += 1
            for pair in pairs:
                entry = self._entries.pop(pair, None)
                if entry is not None:
                    self._bytes -= entry[1]

    def __len__(self) -> int:
        return len(self._entries)
