"""Comparing a rerun with the run it reproduces: outputs, metrics, environments, and the verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from groundwork.core.reproduce.inputs import InputNote
from groundwork.storage.records import ArtifactLink, RunRow
from groundwork.storage.stores import MetadataStore

#: Output kinds that describe a run rather than its result (never compared).
NOT_RESULTS = frozenset({"code", "pipeline", "log"})


@dataclass(frozen=True)
class OutputDiff:
    name: str
    recorded: str | None
    reproduced: str | None

    @property
    def same(self) -> bool:
        return self.recorded == self.reproduced


@dataclass(frozen=True)
class MetricDelta:
    key: str
    recorded: float | None
    reproduced: float | None

    @property
    def delta(self) -> float | None:
        if self.recorded is None or self.reproduced is None:
            return None
        return self.reproduced - self.recorded

    @property
    def same(self) -> bool:
        a, b = self.recorded, self.reproduced
        if a is None or b is None:
            return a is b
        return a == b or (math.isnan(a) and math.isnan(b))

    def within(self, tolerance: float) -> bool:
        delta = self.delta
        return self.same or (delta is not None and not math.isnan(delta) and abs(delta) <= tolerance)


@dataclass(frozen=True)
class EnvDifference:
    what: str  # package, python, cpu, cpu feature, os, gpu
    name: str
    recorded: str | None
    reproduced: str | None

    def describe(self) -> str:
        before = self.recorded if self.recorded is not None else "(none)"
        after = self.reproduced if self.reproduced is not None else "(none)"
        return f"{self.what} {self.name}: {before} -> {after}".replace("  ", " ")


@dataclass
class Reproduction:
    """The outcome of reproducing one run."""

    original_id: str
    original_name: str
    kind: str
    rerun_id: str | None = None
    rerun_status: str | None = None
    rerun_error: str | None = None
    code: str = ""
    tolerance: float | None = None
    outputs: list[OutputDiff] = field(default_factory=list)
    metrics: list[MetricDelta] = field(default_factory=list)
    environment: list[EnvDifference] = field(default_factory=list)
    inputs: list[InputNote] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Why the rerun proves nothing even when its outputs match (it never passes then).
    unchecked: str | None = None

    @property
    def outputs_equal(self) -> bool:
        return all(o.same for o in self.outputs)

    @property
    def exact(self) -> bool:
        """The rerun finished and every output (and metric) is identical."""
        return (self.unchecked is None and self.rerun_status == "finished" and self.outputs_equal
                and all(m.same for m in self.metrics))

    @property
    def within_tolerance(self) -> bool:
        if self.tolerance is None or self.rerun_status != "finished" or self.unchecked is not None:
            return False
        return all(m.within(self.tolerance) for m in self.metrics)

    @property
    def ok(self) -> bool:
        return self.exact or self.within_tolerance

    def verdict(self) -> str:
        if self.exact:
            n = len(self.outputs)
            return f"reproduced exactly: {n} output{'s' if n != 1 else ''} identical"
        if self.unchecked is not None:
            return f"not reproduced: {self.unchecked}"
        if self.rerun_status != "finished":
            return f"not reproduced: the rerun {self.rerun_status or 'did not run'}"
        if self.within_tolerance:
            return f"reproduced within tolerance {self.tolerance:g}: every metric delta is within it"
        differing = [o for o in self.outputs if not o.same]
        parts = []
        if differing:
            parts.append(f"{len(differing)} of {len(self.outputs)} outputs differ")
        changed_metrics = [m for m in self.metrics if not m.same]
        if changed_metrics:
            parts.append(f"{len(changed_metrics)} metric{'s' if len(changed_metrics) != 1 else ''} changed")
        return "not reproduced: " + (", ".join(parts) or "results differ")

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": self.original_id,
            "name": self.original_name,
            "kind": self.kind,
            "rerun": self.rerun_id,
            "rerun_status": self.rerun_status,
            "rerun_error": self.rerun_error,
            "exact": self.exact,
            "within_tolerance": self.within_tolerance,
            "ok": self.ok,
            "verdict": self.verdict(),
            "tolerance": self.tolerance,
            "code": self.code,
            "outputs": [{**asdict(o), "same": o.same} for o in self.outputs],
            "metrics": [{**asdict(m), "delta": m.delta, "same": m.same} for m in self.metrics],
            "environment": [asdict(e) for e in self.environment],
            "inputs": [{**asdict(i), "changed": i.changed} for i in self.inputs],
            "notes": list(self.notes),
            "unchecked": self.unchecked,
        }


def environment_differences(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[EnvDifference]:
    """What differs between two captured environments, in the terms that change results."""
    if not before or not after:
        return []
    out: list[EnvDifference] = []
    bp, ap = before.get("python") or {}, after.get("python") or {}
    for key in ("version", "implementation"):
        if bp.get(key) != ap.get(key):
            out.append(EnvDifference("python", key, _s(bp.get(key)), _s(ap.get(key))))
    pb, pa = before.get("packages") or {}, after.get("packages") or {}
    for name in sorted(set(pb) | set(pa), key=str.lower):
        if pb.get(name) != pa.get(name):
            out.append(EnvDifference("package", name, _s(pb.get(name)), _s(pa.get(name))))
    cb, ca = before.get("cpu") or {}, after.get("cpu") or {}
    if cb.get("model") != ca.get("model"):
        out.append(EnvDifference("cpu", "model", _s(cb.get("model")), _s(ca.get("model"))))
    fb, fa = set(cb.get("features") or []), set(ca.get("features") or [])
    for feature in sorted(fb - fa):
        out.append(EnvDifference("cpu feature", feature, "present", "absent"))
    for feature in sorted(fa - fb):
        out.append(EnvDifference("cpu feature", feature, "absent", "present"))
    ob, oa = before.get("os") or {}, after.get("os") or {}
    for key in ("system", "release"):
        if ob.get(key) != oa.get(key):
            out.append(EnvDifference("os", key, _s(ob.get(key)), _s(oa.get(key))))
    gb = [g.get("name") for g in before.get("gpus") or [] if isinstance(g, dict)]
    ga = [g.get("name") for g in after.get("gpus") or [] if isinstance(g, dict)]
    if gb != ga:
        out.append(EnvDifference("gpu", "devices", ", ".join(map(str, gb)) or None, ", ".join(map(str, ga)) or None))
    return out


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


# -- comparing two runs ---------------------------------------------------------------------------------------


def results(links: Sequence[ArtifactLink]) -> dict[str, str]:
    return {link.name: link.digest for link in links if link.kind not in NOT_RESULTS}


def compare(original: RunRow, rerun: RunRow, store: MetadataStore, result: Reproduction) -> None:
    """Fill ``result`` with the output, metric and environment differences of two runs."""
    recorded = results(store.run_artifacts(original.id, "output"))
    again = results(store.run_artifacts(rerun.id, "output"))
    result.outputs = [OutputDiff(n, recorded.get(n), again.get(n)) for n in sorted(set(recorded) | set(again))]
    keys = sorted(set(original.metrics) | set(rerun.metrics))
    result.metrics = [MetricDelta(k, original.metrics.get(k), rerun.metrics.get(k)) for k in keys]
    before = store.environment(original.env_digest) if original.env_digest else None
    after = store.environment(rerun.env_digest) if rerun.env_digest else None
    result.environment = environment_differences(before, after)
    if before is None:
        result.notes.append("the original run recorded no environment to compare with")


def compare_pipelines(original: RunRow, rerun: RunRow, store: MetadataStore, result: Reproduction) -> None:
    """Compare step by step (outputs as ``step.output``, metrics as ``step.metric``)."""
    def by_step(pipeline_id: str) -> dict[str, RunRow]:
        steps = {}
        for child in store.child_runs(pipeline_id):
            source = store.get_run(child.cached_from) if child.status == "cached" and child.cached_from else child
            steps[child.name] = source
        return steps

    before, after = by_step(original.id), by_step(rerun.id)
    outputs: list[OutputDiff] = []
    metrics: list[MetricDelta] = []
    for name in sorted(set(before) | set(after)):
        a = results(store.run_artifacts(before[name].id, "output")) if name in before else {}
        b = results(store.run_artifacts(after[name].id, "output")) if name in after else {}
        outputs += [OutputDiff(f"{name}.{o}", a.get(o), b.get(o)) for o in sorted(set(a) | set(b))]
        ma = before[name].metrics if name in before else {}
        mb = after[name].metrics if name in after else {}
        metrics += [MetricDelta(f"{name}.{k}", ma.get(k), mb.get(k)) for k in sorted(set(ma) | set(mb))]
    result.outputs, result.metrics = outputs, metrics
    env_before = store.environment(original.env_digest) if original.env_digest else None
    env_after = store.environment(rerun.env_digest) if rerun.env_digest else None
    result.environment = environment_differences(env_before, env_after)
