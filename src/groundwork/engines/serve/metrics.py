"""Prometheus metrics of a serving process, on ``GET /metrics``.

======================================  ========  ====================================
metric                                  type      labels
======================================  ========  ====================================
``groundwork_requests_total``           counter   model, status (HTTP code)
``groundwork_errors_total``             counter   model, kind (bad_request, too_large,
                                                  unprocessable, not_found, model_error)
``groundwork_request_latency_seconds``  histogram model (server time: body read to reply)
``groundwork_batch_size_rows``          histogram model (rows per runtime call)
``groundwork_batch_latency_seconds``    histogram model (one runtime call)
``groundwork_served_version``           gauge     model (the version answering now)
``groundwork_model_swaps_total``        counter   model (alias hot-swaps)
``groundwork_routed_requests_total``    counter   model, target (with ``--route``: answers
                                                  per route target, e.g. production)
``groundwork_shadow_requests_total``    counter   model, target, outcome (ok, error,
                                                  dropped: too many shadow requests waiting)
``groundwork_connections_shed_total``   counter   reason (busy: answered 503 over
                                                  ``--limit-concurrency``; full: closed
                                                  at once, far over it; header_timeout,
                                                  body_timeout: a client too slow)
======================================  ========  ====================================

With ``--workers N`` each worker writes its values to a shared folder
(``PROMETHEUS_MULTIPROC_DIR``, set by ``groundwork serve`` before the workers
start) and ``/metrics`` sums them, whichever worker answers.
"""

from __future__ import annotations

import os
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServeMetrics:
    """The metrics of one process; children per (model, label) are cached off the hot path."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series are noise here

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode values go to files whatever the registry; keep them off the global one.
        self.registry = CollectorRegistry(auto_describe=True)
        registry = None if self.multiprocess else self.registry
        self.requests = Counter("groundwork_requests", "Prediction requests answered.", ["model", "status"],
                                registry=registry)
        self.errors = Counter("groundwork_errors", "Prediction requests answered with an error.", ["model", "kind"],
                              registry=registry)
        self.latency = Histogram("groundwork_request_latency_seconds", "Server time per prediction request.",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_rows = Histogram("groundwork_batch_size_rows", "Rows per runtime call.", ["model"],
                                    buckets=BATCH_BUCKETS, registry=registry)
        self.batch_latency = Histogram("groundwork_batch_latency_seconds", "Time of one runtime call.", ["model"],
                                       buckets=LATENCY_BUCKETS, registry=registry)
        gauge_kwargs: dict[str, Any] = {"multiprocess_mode": "max"} if self.multiprocess else {}
        self.version = Gauge("groundwork_served_version", "The model version answering requests.", ["model"],
                             registry=registry, **gauge_kwargs)
        self.swaps = Counter("groundwork_model_swaps", "Alias hot-swaps to a new version.", ["model"],
                             registry=registry)
        self.routed = Counter("groundwork_routed_requests", "Requests answered by each target of a route.",
                              ["model", "target"], registry=registry)
        self.shadow = Counter("groundwork_shadow_requests", "Copies of requests sent to a shadow target.",
                              ["model", "target", "outcome"], registry=registry)
        self.shed = Counter("groundwork_connections_shed", "Connections answered 503 or closed to protect the server.",
                            ["reason"], registry=registry)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            self._children[key] = child
        return child

    def answered(self, model: str, status: int, seconds: float) -> None:
        self._child(self.requests, model, str(status)).inc()
        if status < 300:
            self._child(self.latency, model).observe(seconds)

    def error(self, model: str, kind: str) -> None:
        self._child(self.errors, model, kind).inc()

    def batch(self, model: str, rows: int, seconds: float) -> None:
        self._child(self.batch_rows, model).observe(rows)
        self._child(self.batch_latency, model).observe(seconds)

    def served(self, model: str, version: int, swapped: bool = False) -> None:
        self._child(self.version, model).set(version)
        if swapped:
            self._child(self.swaps, model).inc()

    def routed_to(self, model: str, target: str) -> None:
        self._child(self.routed, model, target).inc()

    def shadowed(self, model: str, target: str, outcome: str) -> None:
        self._child(self.shadow, model, target, outcome).inc()

    def connection_shed(self, reason: str) -> None:
        self._child(self.shed, reason).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
