"""What every request handler needs: the config, the stores, and small time-bounded caches."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from starlette.requests import Request

from groundwork.config import Config
from groundwork.storage.artifacts import ArtifactStore
from groundwork.storage.stores import MetadataStore, PipelineStore, RegistryStore, Stores, open_stores

T = TypeVar("T")


class TTLCache(Generic[T]):
    """A small thread-safe LRU whose entries expire after ``ttl`` seconds (``None``: never)."""

    def __init__(self, size: int, ttl: float | None) -> None:
        self.size = size
        self.ttl = ttl
        self._items: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> T | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            stamp, value = item
            if self.ttl is not None and time.monotonic() - stamp > self.ttl:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: T) -> T:
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        found = self.get(key)
        return found if found is not None else self.put(key, compute())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class ServerContext:
    """The stores of one app (opened on first use) and its caches."""

    def __init__(self, config: Config, *, confined: bool = False) -> None:
        self.config = config
        #: On a team server: only what the project's runs, models and exports refer to is visible,
        #: whatever digest a caller names (artifact bytes are shared between projects in the store).
        self.confined = confined
        self._stores: Stores | None = None
        self._lock = threading.Lock()
        #: Run counts by filter: exact, but recomputed at most every few seconds.
        self.counts: TTLCache[int] = TTLCache(256, ttl=5.0)
        #: Param, metric and tag keys (for the column chooser).
        self.columns: TTLCache[dict[str, Any]] = TTLCache(4, ttl=10.0)
        #: Downsampled series, keyed by what makes them valid (see metrics.py).
        self.series: TTLCache[dict[str, Any]] = TTLCache(128, ttl=None)

    @property
    def stores(self) -> Stores:
        if self._stores is None:
            with self._lock:
                if self._stores is None:
                    self._stores = open_stores(self.config)
        return self._stores

    @property
    def store(self) -> MetadataStore:
        return self.stores.metadata

    @property
    def registry(self) -> RegistryStore:
        return self.stores.registry

    @property
    def pipelines(self) -> PipelineStore:
        return self.stores.pipelines

    @property
    def artifacts(self) -> ArtifactStore:
        return self.stores.artifacts


def get_context(request: Request) -> ServerContext:
    """The FastAPI dependency that hands a handler its app's :class:`ServerContext`."""
    context: ServerContext = request.app.state.groundwork
    return context
