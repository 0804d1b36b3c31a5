"""Drift of one feature between a reference and a stream, computed from their summaries (never rows).

Numbers (two :class:`~groundwork.engines.monitor.sketch.NumberSketch` es, compared at
every bucket boundary either one holds):

* **PSI**, the population stability index, over ten bins of the reference (its deciles;
  a value that holds more than a tenth of the reference is a bin of its own);
* **Kolmogorov-Smirnov**: the largest distance between the two CDFs, and its p-value
  (the asymptotic distribution, as ``scipy.stats.ks_2samp`` uses for large samples);
* **Wasserstein** (earth mover's) distance, divided by the reference's standard
  deviation (Evidently's "normed" form), so one threshold fits every scale.

Categories (two :class:`~groundwork.engines.monitor.sketch.CategoryCounts`): Pearson's
**chi-squared** test of the stream's counts against the reference's frequencies (add-half
smoothed, so a category the reference never had is possible, not impossible), and PSI.

A feature **drifts** when the change is both *real* and *large*: its test's p-value is
below ``alpha`` divided by the number of features tested (Bonferroni: with 64 features and
no drift, the chance of any false alarm stays at most ``alpha``), and at least one
effect size crosses its threshold (PSI >= 0.2, KS >= 0.1, Wasserstein >= 0.1 standard
deviations; categories: PSI >= 0.2). Fewer than ``min_rows`` rows decide nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from groundwork.engines.monitor.sketch import VALUES, CategoryCounts, NumberSketch, Summary

_EPS = 1e-4  # the floor of a bin's share in PSI (an empty bin is not infinitely surprising)
PSI_BINS = 10


@dataclass(frozen=True)
class Thresholds:
    """When a feature drifts, and when traffic is unhealthy (``groundwork monitor`` flags)."""

    psi: float = 0.2
    ks: float = 0.1
    wasserstein: float = 0.1
    alpha: float = 0.05
    min_rows: int = 100
    max_error_rate: float = 0.05
    max_p99_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FeatureDrift:
    """One feature's comparison: the statistics, which thresholds it crossed, and the verdict."""

    name: str
    kind: str  # number | category
    rows: int
    reference_rows: int
    psi: float | None = None
    ks: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    drifted: bool = False
    crossed: list[str] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    def describe(self) -> str:
        """``x3: PSI 0.31, KS 0.22, Wasserstein 0.48 sd`` (what crossed)."""
        parts = []
        for name in self.crossed:
            value = getattr(self, name if name != "chi2" else "chi2_pvalue")
            label = {"psi": "PSI", "ks": "KS", "wasserstein": "Wasserstein", "chi2": "chi-squared p"}[name]
            parts.append(f"{label} {value:.3g}" + (" sd" if name == "wasserstein" else ""))
        return f"{self.name}: " + ", ".join(parts)


# -- the statistics ---------------------------------------------------------------------------------------
def kolmogorov_pvalue(statistic: float, n: int, m: int) -> float:
    """P(D >= statistic) for two samples of ``n`` and ``m`` values (asymptotic, Stephens' correction)."""
    if n <= 0 or m <= 0:
        return math.nan
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * statistic
    if lam < 0.2:
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = 2.0 * (-1) ** (j - 1) * math.exp(-2.0 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for a chi-squared variable with ``dof`` degrees of freedom."""
    if dof <= 0:
        return math.nan
    if statistic <= 0:
        return 1.0
    return _gamma_q(dof / 2.0, statistic / 2.0)


def _gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (series or continued fraction)."""
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def _psi(reference: np.ndarray[Any, Any], current: np.ndarray[Any, Any]) -> float:
    r = np.maximum(reference, _EPS)
    c = np.maximum(current, _EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def compare_numbers(reference: NumberSketch, current: NumberSketch) -> dict[str, float]:
    """PSI, KS (and its p-value) and the normed Wasserstein distance of two sketches."""
    m, n = reference.count, current.count
    if not m or not n:
        return {"psi": math.nan, "ks": math.nan, "ks_pvalue": math.nan, "wasserstein": math.nan}
    support = np.flatnonzero(reference.counts | current.counts)
    r = reference.counts[support].astype(np.float64)
    c = current.counts[support].astype(np.float64)
    cdf_r = np.cumsum(r) / m
    cdf_c = np.cumsum(c) / n
    gap = np.abs(cdf_r - cdf_c)
    ks = float(gap.max())
    x = VALUES[support]
    wasserstein = float(np.dot(gap[:-1], np.diff(x))) if len(x) > 1 else 0.0
    scale = reference.std
    normed = wasserstein / scale if scale > 0 else (0.0 if wasserstein == 0 else math.inf)
    # PSI bins: the reference's deciles, on bucket boundaries (a heavy bucket is a bin of its own).
    before = (cdf_r - r / m) * PSI_BINS
    bins = np.minimum(np.floor(before + 1e-9), PSI_BINS - 1).astype(np.int64)
    share_r = np.bincount(bins, weights=r, minlength=PSI_BINS) / m
    share_c = np.bincount(bins, weights=c, minlength=PSI_BINS) / n
    used = (share_r > 0) | (share_c > 0)
    return {"psi": _psi(share_r[used], share_c[used]), "ks": ks, "ks_pvalue": kolmogorov_pvalue(ks, n, m),
            "wasserstein": normed}


def compare_categories(reference: CategoryCounts, current: CategoryCounts) -> dict[str, float]:
    """Chi-squared (statistic, p-value) and PSI of two category counts."""
    m, n = reference.count, current.count
    if not m or not n:
        return {"psi": math.nan, "chi2": math.nan, "chi2_pvalue": math.nan}
    names = sorted(set(reference.values) | set(current.values))
    ref = np.array([reference.values.get(k, 0) for k in names] + [reference.other], dtype=np.float64)
    cur = np.array([current.values.get(k, 0) for k in names] + [current.other], dtype=np.float64)
    used = (ref > 0) | (cur > 0)
    ref, cur = ref[used], cur[used]
    k = len(ref)
    if k < 2:
        return {"psi": 0.0, "chi2": 0.0, "chi2_pvalue": 1.0}
    expected = (ref + 0.5) / (m + 0.5 * k) * n
    statistic = float(np.sum((cur - expected) ** 2 / expected))
    return {"psi": _psi(ref / m, cur / n), "chi2": statistic, "chi2_pvalue": chi2_sf(statistic, k - 1)}


def judge(name: str, reference: Summary, current: Summary, thresholds: Thresholds, tests: int = 1) -> FeatureDrift:
    """Compare one feature and decide whether it drifted (``tests``: how many features are judged together)."""
    alpha = thresholds.alpha / max(1, tests)
    if isinstance(reference, CategoryCounts) or isinstance(current, CategoryCounts):
        if not (isinstance(reference, CategoryCounts) and isinstance(current, CategoryCounts)):
            return FeatureDrift(name, "category", current.count, reference.count,
                                note="the reference holds numbers here and the stream categories (or the reverse)")
        stats = compare_categories(reference, current)
        result = FeatureDrift(name, "category", current.count, reference.count, psi=stats["psi"],
                              chi2=stats["chi2"], chi2_pvalue=stats["chi2_pvalue"])
        significant = stats["chi2_pvalue"] < alpha
        if significant:
            result.crossed.append("chi2")
        if stats["psi"] >= thresholds.psi:
            result.crossed.append("psi")
        large = stats["psi"] >= thresholds.psi
    else:
        stats = compare_numbers(reference, current)
        result = FeatureDrift(name, "number", current.count, reference.count, psi=stats["psi"], ks=stats["ks"],
                              ks_pvalue=stats["ks_pvalue"], wasserstein=stats["wasserstein"])
        significant = stats["ks_pvalue"] < alpha
        for key in ("psi", "ks", "wasserstein"):
            if stats[key] >= getattr(thresholds, key):
                result.crossed.append(key)
        large = bool(result.crossed)
    if current.count < thresholds.min_rows:
        result.note = f"too few rows to judge ({current.count} < {thresholds.min_rows})"
        result.crossed = []
        return result
    if not reference.count:
        result.note = "the reference has no values here"
        result.crossed = []
        return result
    result.drifted = bool(significant and large)
    if not result.drifted:
        result.crossed = []
    return result


__all__ = ["FeatureDrift", "Thresholds", "chi2_sf", "compare_categories", "compare_numbers", "judge",
           "kolmogorov_pvalue"]
