"""The prediction log's Prometheus metrics, on the serving process's ``/metrics``.

==============================================  ========  ==========================================
metric                                          type      labels
==============================================  ========  ==========================================
``groundwork_prediction_log_dropped_total``     counter   model (requests not logged: the writer's
                                                          queue was full)
``groundwork_prediction_log_rows_total``        counter   model (rows in closed segments)
``groundwork_prediction_log_segments_total``    counter   model (segments closed and stored)
``groundwork_feature_drift``                    gauge     model, route, feature, statistic (psi, ks,
                                                          wasserstein, chi2; ``drifted`` is 1 or 0),
                                                          of the last closed segment against the
                                                          served version's reference
==============================================  ========  ==========================================
"""

from __future__ import annotations

from typing import Any


class LogMetrics:
    """A :class:`~groundwork.engines.monitor.log.LogListener` that counts into Prometheus metrics.

    ``registry`` is the serving process's (None in multiprocess mode, where values go to files).
    """

    def __init__(self, registry: Any, *, multiprocess: bool = False) -> None:
        from prometheus_client import Counter, Gauge

        self.dropped = Counter("groundwork_prediction_log_dropped", "Requests the prediction log dropped (queue full).",
                               ["model"], registry=registry)
        self.rows = Counter("groundwork_prediction_log_rows", "Rows in closed prediction-log segments.", ["model"],
                            registry=registry)
        self.segments = Counter("groundwork_prediction_log_segments", "Prediction-log segments closed and stored.",
                                ["model"], registry=registry)
        extra: dict[str, Any] = {"multiprocess_mode": "mostrecent"} if multiprocess else {}
        self.drift = Gauge("groundwork_feature_drift", "Drift of a feature in the last closed segment.",
                           ["model", "route", "feature", "statistic"], registry=registry, **extra)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def log_dropped(self, model: str) -> None:
        self._child(self.dropped, model).inc()

    def log_segment(self, model: str, rows: int, requests: int) -> None:
        self._child(self.rows, model).inc(rows)
        self._child(self.segments, model).inc()

    def log_drift(self, model: str, route: str, feature: str, statistic: str, value: float) -> None:
        self._child(self.drift, model, route, feature, statistic).set(value)


__all__ = ["LogMetrics"]
