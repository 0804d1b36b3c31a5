"""``groundwork monitor``: drift, latency, errors and throughput of a served model, from segment summaries.

    report = monitor_report("digits@production", since="1h")          # reference found through lineage
    report.alert, report.crossings, report.to_dict()

What a target selects from the log: ``NAME@ALIAS`` the requests answered under that
route (shadow copies included: a shadowed alias is monitored on the traffic it saw),
``NAME/3`` those version 3 answered, ``NAME`` every answered request (no shadow copies).
Only summaries are read (merged by adding counts), never the logged rows: ten million
logged predictions are a few hundred segment summaries. A window (``since``) selects
whole segments (at most ``--log-segment-seconds`` long, 60 s by default).

A segment that a server left open (its process is gone, or it has not been refreshed for
:data:`LOST_AFTER_S`) is reported as lost, with the rows it held at its last refresh.
"""

from __future__ import annotations

import math
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from groundwork.config import Config
from groundwork.engines.monitor.drift import FeatureDrift, Thresholds, judge
from groundwork.engines.monitor.reference import Reference, ReferenceNotFound, find_reference, load_reference
from groundwork.engines.monitor.segment import Group, Layout, layout_from_signature, summary_groups
from groundwork.engines.monitor.sketch import NumberSketch, Summary, merge_into
from groundwork.errors import InvalidInput
from groundwork.storage.records import SegmentRow

#: An open segment not refreshed for this long is lost (its writer refreshes it every few seconds).
LOST_AFTER_S = 120.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)\s*$",
                       re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, *, now: float | None = None, flag: str = "--since") -> float:
    """A UNIX time from ``30m``, ``1h``, ``2d`` (that long ago) or a date (``2026-12-06``, ``2026-12-06T10:30``)."""
    now = time.time() if now is None else now
    match = _DURATION.match(text or "")
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)[0].lower()]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{flag} {text!r} is neither a duration nor a date",
                           hint=f"write {flag} 30m, 1h, 2d or 1w, or a date such as 2026-12-06T10:30") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as a person typing a date means it
    return moment.astimezone(UTC).timestamp()


# -- merging groups -----------------------------------------------------------------------------------------
@dataclass
class Stream:
    """Groups of many segments merged: counts added, sketches merged."""

    requests: int = 0
    rows: int = 0
    first_ts: float = math.inf
    last_ts: float = -math.inf
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    versions: Counter[int] = field(default_factory=Counter)
    latency: NumberSketch = field(default_factory=NumberSketch)
    features: dict[str, Summary] = field(default_factory=dict)
    outputs: dict[str, Summary] = field(default_factory=dict)

    def add(self, group: Group) -> None:
        self.requests += group.requests
        self.rows += group.rows
        self.first_ts = min(self.first_ts, group.first_ts)
        self.last_ts = max(self.last_ts, group.last_ts)
        self.statuses.update(group.statuses)
        self.errors.update(group.errors)
        self.versions[group.version] += group.requests
        self.latency.merge(group.latency)
        for name, summary in group.features.items():
            self.features[name] = merge_into(self.features.get(name), summary)
        for name, summary in group.outputs.items():
            self.outputs[name] = merge_into(self.outputs.get(name), summary)

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))

    def traffic(self) -> dict[str, Any]:
        span = max(1.0, self.last_ts - self.first_ts) if self.requests else 0.0
        latency = self.latency
        return {
            "requests": self.requests, "rows": self.rows, "errors": self.failed,
            "error_rate": self.failed / self.requests if self.requests else 0.0,
            "errors_by_kind": dict(self.errors), "statuses": dict(sorted(self.statuses.items())),
            "throughput_rps": self.requests / span if span else 0.0,
            "latency_ms": {"p50": _finite(latency.quantile(0.5)), "p99": _finite(latency.quantile(0.99)),
                           "mean": _finite(latency.mean)},
            "first_ts": self.first_ts if self.requests else None, "last_ts": self.last_ts if self.requests else None,
            "versions": {str(v): n for v, n in sorted(self.versions.items())},
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def selects(group: Group, model_ref: Any, route: str | None = None) -> bool:
    """Whether ``group`` belongs to the stream a target (or a ``--compare`` route) names."""
    if route is not None:
        return group.route == route
    if model_ref.alias is not None:
        return bool(group.route == model_ref.alias)
    if model_ref.version is not None:
        return bool(group.version == model_ref.version)
    return not group.shadow


# -- drift --------------------------------------------------------------------------------------------------
def drift_of(stream: Stream, reference: Reference, layout: Layout, thresholds: Thresholds,
             ) -> tuple[list[FeatureDrift], FeatureDrift | None]:
    """Each feature's drift (named as in the reference) and the predictions' (against the reference's target)."""
    judged = [f for f in layout.names if f in reference.features and f in stream.features]
    tests = len(judged) + (1 if reference.prediction is not None else 0)
    features = []
    for name in judged:
        result = judge(reference.names.get(name, name), reference.features[name], stream.features[name], thresholds,
                       tests)
        features.append(result)
    prediction = None
    current = stream.outputs.get("prediction")
    if reference.prediction is not None and current is not None:
        prediction = judge("prediction", reference.prediction, current, thresholds, tests)
    return features, prediction


def segment_drift(model: str, summary: dict[str, Any], reference_for: Callable[[str, int, Layout], Reference | None],
                  thresholds: Thresholds) -> dict[str, list[FeatureDrift]]:
    """Drift of each route answered in one segment (not shadows), against its version's reference."""
    layout = Layout.from_dict(summary["layout"])
    by_route: dict[str, tuple[Stream, int]] = {}
    for group in summary_groups(summary):
        if group.shadow or not group.rows:
            continue
        stream, version = by_route.get(group.route, (Stream(), group.version))
        stream.add(group)
        by_route[group.route] = (stream, max(version, group.version))
    out: dict[str, list[FeatureDrift]] = {}
    for route, (stream, version) in by_route.items():
        reference = reference_for(model, version, layout)
        if reference is None:
            continue
        features, prediction = drift_of(stream, reference, layout, thresholds)
        out[route] = features + ([prediction] if prediction is not None else [])
    return out


# -- the report ----------------------------------------------------------------------------------------------
@dataclass
class MonitorReport:
    """What ``groundwork monitor`` prints (``to_dict()`` is its ``--json``)."""

    target: str
    model: str
    route: str | None
    version: int | None
    since: float | None
    until: float | None
    thresholds: Thresholds
    segments: int = 0
    lost: list[dict[str, Any]] = field(default_factory=list)
    traffic: dict[str, Any] = field(default_factory=dict)
    reference: Reference | None = None
    reference_error: str | None = None
    features: list[FeatureDrift] = field(default_factory=list)
    prediction: FeatureDrift | None = None
    crossings: list[str] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    compare: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    generated_at: float = field(default_factory=time.time)

    @property
    def alert(self) -> bool:
        """Whether a threshold was crossed (``groundwork monitor`` then exits 1)."""
        return bool(self.crossings)

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted] + (
            ["prediction"] if self.prediction is not None and self.prediction.drifted else [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "model": self.model, "route": self.route, "version": self.version,
            "window": {"since": self.since, "until": self.until, "segments": self.segments, "lost": self.lost},
            "traffic": self.traffic,
            "reference": self.reference.to_dict() if self.reference else None,
            "reference_error": self.reference_error,
            "drift": {"features": [f.to_dict() for f in self.features],
                      "prediction": self.prediction.to_dict() if self.prediction else None,
                      "drifted": self.drifted},
            "thresholds": self.thresholds.to_dict(),
            "crossings": self.crossings, "alert": self.alert,
            "series": self.series, "compare": self.compare, "notes": self.notes,
            "elapsed_s": self.elapsed_s, "generated_at": self.generated_at,
        }


def lost_segments(rows: Sequence[SegmentRow], now: float | None = None) -> list[SegmentRow]:
    """Open segments whose writer is gone (its process ended on this host, or it stopped refreshing them)."""
    from groundwork._process import pid_alive

    now = time.time() if now is None else now
    host = socket.gethostname()
    out = []
    for row in rows:
        if row.status != "open":
            continue
        dead_here = row.host == host and row.pid is not None and not pid_alive(row.pid)
        if dead_here or now - row.updated_at > LOST_AFTER_S:
            out.append(row)
    return out


def monitor_report(
    target: str,
    *,
    since: str | float | None = None,
    until: str | float | None = None,
    reference: str | None = None,
    thresholds: Thresholds | None = None,
    compare: tuple[str, str] | None = None,
    series: bool = False,
    config: Config | None = None,
    reference_files: bool = True,
) -> MonitorReport:
    """The report on ``target`` (``digits@production``, ``digits/3``, ``digits``); see the module's docstring."""
    from groundwork.core.registry import ModelRef, get_model_version, registry_store
    from groundwork.storage.stores import open_stores

    started = time.perf_counter()
    config = config or Config.from_env()
    thresholds = thresholds or Thresholds()
    model_ref = ModelRef.parse(target)
    version = get_model_version(str(model_ref), config=config)  # an unknown model or alias: one clear error
    if compare is not None:
        aliases = registry_store(config).aliases(model_ref.name)
        for label in compare:
            if not label.isdigit() and label != "latest" and label not in aliases:
                raise InvalidInput(f"--compare: {model_ref.name} has no alias {label!r} "
                                   f"(aliases: {', '.join(aliases) or 'none'})",
                                   hint="compare two routes the server answered with: aliases or version numbers")
    start = parse_since(since) if isinstance(since, str) else since
    end = parse_since(until, flag="--until") if isinstance(until, str) else until
    if start is not None and end is not None and end <= start:
        raise InvalidInput("--until is not after --since", hint="give a window that moves forward in time")
    report = MonitorReport(target, model_ref.name, model_ref.alias, version.version, start, end, thresholds)
    stores = open_stores(config)
    rows = stores.monitor.segments(model_ref.name, since=start, until=end)
    report.lost = [{"id": r.id, "rows": r.rows, "requests": r.requests, "opened_at": r.opened_at,
                    "updated_at": r.updated_at, "pid": r.pid, "host": r.host} for r in lost_segments(rows)]
    closed = [r for r in rows if r.status == "closed" and r.summary]
    report.segments = len(closed)
    if compare is not None:
        report.compare = _compare(closed, model_ref, compare, thresholds)
    stream = Stream()
    layouts: Counter[Layout] = Counter()
    decoded: list[tuple[SegmentRow, Layout, list[Group]]] = []
    for row in closed:
        assert row.summary is not None
        layout = Layout.from_dict(row.summary["layout"])
        groups = [g for g in summary_groups(row.summary) if selects(g, model_ref)]
        if not groups:
            continue
        decoded.append((row, layout, groups))
        for group in groups:
            stream.add(group)
            if group.rows:
                layouts[layout] += group.rows
    report.traffic = stream.traffic()
    if not stream.requests:
        report.notes.append(f"no logged requests of {target} in this window" if closed or not rows
                            else f"no closed segments of {target} in this window yet")
    chosen = layouts.most_common(1)[0][0] if layouts else layout_from_signature(version.signature)
    if chosen is not None:
        layout = chosen
        try:
            report.reference = (load_reference(reference, layout, config=config, files=reference_files)
                                if reference is not None
                                else find_reference(model_ref.name, version.version, layout, config=config))
        except ReferenceNotFound as exc:
            if reference is not None:
                raise
            report.reference_error = str(exc).splitlines()[0] + (f" ({exc.hint})" if exc.hint else "")
        if report.reference is not None:
            report.features, report.prediction = drift_of(stream, report.reference, layout, thresholds)
            if series:
                report.series = [_point(row, groups, report.reference, layout, thresholds)
                                 for row, lay, groups in decoded if lay == layout]
    if series and not report.series:
        report.series = [_point(row, groups, None, lay, thresholds) for row, lay, groups in decoded]
    report.crossings = _crossings(report, thresholds)
    report.elapsed_s = time.perf_counter() - started
    return report


def _crossings(report: MonitorReport, thresholds: Thresholds) -> list[str]:
    out = [f"drift: {f.describe()}" for f in report.features if f.drifted]
    if report.prediction is not None and report.prediction.drifted:
        out.append(f"drift: {report.prediction.describe()}")
    traffic = report.traffic
    if traffic.get("requests") and traffic["error_rate"] > thresholds.max_error_rate:
        out.append(f"error rate {traffic['error_rate']:.1%} > {thresholds.max_error_rate:.1%}")
    p99 = (traffic.get("latency_ms") or {}).get("p99")
    if thresholds.max_p99_ms is not None and p99 is not None and p99 > thresholds.max_p99_ms:
        out.append(f"latency p99 {p99:.2f} ms > {thresholds.max_p99_ms:g} ms")
    return out


def _point(row: SegmentRow, groups: list[Group], reference: Reference | None, layout: Layout,
           thresholds: Thresholds) -> dict[str, Any]:
    """One segment of the series the UI draws: traffic, latency, errors and each feature's drift."""
    stream = Stream()
    for group in groups:
        stream.add(group)
    point: dict[str, Any] = {"segment": row.id, "ts": row.last_ts, "first_ts": row.first_ts, **stream.traffic()}
    if reference is not None:
        features, prediction = drift_of(stream, reference, layout, thresholds)
        point["drift"] = {f.name: {"psi": f.psi, "ks": f.ks, "wasserstein": f.wasserstein, "chi2_pvalue": f.chi2_pvalue,
                                   "drifted": f.drifted} for f in features + ([prediction] if prediction else [])}
    return point


def _compare(closed: list[SegmentRow], model_ref: Any, routes: tuple[str, str],
             thresholds: Thresholds) -> dict[str, Any]:
    """Two routes side by side: traffic, latency, errors, their predictions, and how often shadow pairs agreed."""
    streams = {route: Stream() for route in routes}
    agreed = {"rows": 0, "agree": 0, "abs_diff_sum": 0.0}
    numeric = False
    for row in closed:
        assert row.summary is not None
        for group in summary_groups(row.summary):
            for route in routes:
                if selects(group, model_ref, route):
                    streams[route].add(group)
        for pair in row.summary.get("pairs", []):
            if {pair["primary"], pair["shadow"]} == set(routes):
                agreed["rows"] += pair["rows"]
                agreed["agree"] += pair["agree"]
                if "abs_diff_sum" in pair:
                    numeric = True
                    agreed["abs_diff_sum"] += pair["abs_diff_sum"]
    a, b = (streams[r] for r in routes)
    out: dict[str, Any] = {"routes": list(routes), "traffic": {r: streams[r].traffic() for r in routes},
                           "agreement": None, "predictions": None}
    if agreed["rows"]:
        agreement: dict[str, Any] = {"paired_rows": agreed["rows"], "agree": agreed["agree"],
                                     "rate": agreed["agree"] / agreed["rows"], "by": "shadow copies of the same requests"}
        if numeric:
            agreement["mean_abs_diff"] = agreed["abs_diff_sum"] / agreed["rows"]
        out["agreement"] = agreement
    pa, pb = a.outputs.get("prediction"), b.outputs.get("prediction")
    if pa is not None and pb is not None and pa.count and pb.count:
        out["predictions"] = judge("prediction", pa, pb, thresholds).to_dict()
        out["predictions"]["by"] = f"{routes[1]}'s predictions against {routes[0]}'s"
    return out


#: ``gw.monitor("digits@production", since="1h")``
monitor = monitor_report

__all__ = ["LOST_AFTER_S", "MonitorReport", "Stream", "lost_segments", "monitor", "monitor_report", "parse_since",
           "segment_drift", "selects"]
