"""A sample of served requests and their predictions, stored for monitoring off the hot path.

The request path only draws a random number and, for a sampled request, appends a
tuple to a bounded buffer. A background thread writes the buffer to the
``prediction_samples`` table in one transaction every ``flush_interval_s``; a full
buffer drops new samples (counted in ``dropped``) rather than slow serving down.
"""

from __future__ import annotations

import collections
import random
import sys
import threading
import time
from typing import Any

import orjson

from groundwork.config import Config
from groundwork.storage.stores import open_stores

_OPTS = orjson.OPT_SERIALIZE_NUMPY


class PredictionSampler:
    """Keeps ``rate`` of the predictions (0 disables, 1 keeps all) in the metadata store."""

    def __init__(self, config: Config, rate: float, *, flush_interval_s: float = 1.0, max_buffer: int = 10_000) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("the sample rate is a fraction between 0 and 1")
        self.rate = rate
        self.config = config
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.dropped = 0
        self.written = 0
        self._buffer: collections.deque[tuple[str, int, float, Any, Any, float]] = collections.deque()
        self._random = random.random
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def start(self) -> None:
        if self.rate > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="gw-sampler", daemon=True)
            self._thread.start()

    def offer(self, model: str, version: int, inputs: Any, outputs: Any, latency_s: float) -> None:
        """Maybe keep one prediction (cheap: a random draw, and an append when sampled)."""
        if self.rate <= 0 or self._random() >= self.rate:
            return
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            return
        self._buffer.append((model, version, time.time(), inputs, outputs, latency_s * 1000.0))

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()
        self.flush()

    def flush(self) -> None:
        count = len(self._buffer)
        if not count:
            return
        taken = [self._buffer.popleft() for _ in range(count)]
        rows = [
            {
                "model": model,
                "version": version,
                "timestamp": ts,
                "inputs": orjson.dumps(inputs, option=_OPTS).decode(),
                "outputs": orjson.dumps(outputs, option=_OPTS).decode(),
                "latency_ms": latency_ms,
            }
            for model, version, ts, inputs, outputs, latency_ms in taken
        ]
        try:
            open_stores(self.config).registry.add_prediction_samples(rows)
            self.written += len(rows)
        except Exception as exc:  # monitoring must never take serving down
            self.dropped += len(rows)
            if not self._warned:
                self._warned = True
                print(f"groundwork serve: could not store prediction samples: {exc}", file=sys.stderr)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        else:
            self.flush()
