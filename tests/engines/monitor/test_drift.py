"""Drift from summaries: the statistics agree with SciPy; a shifted feature is found, an unshifted stream is not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from groundwork.engines.monitor.drift import (
    Thresholds,
    chi2_sf,
    compare_categories,
    compare_numbers,
    judge,
    kolmogorov_pvalue,
)
from groundwork.engines.monitor.sketch import BlockSketch, CategoryCounts, NumberSketch


@pytest.mark.parametrize(("statistic", "dof"), [(0.5, 1), (3.0, 2), (10.0, 3), (100.0, 80), (1e-3, 5), (400.0, 9)])
def test_chi2_survival_matches_scipy(statistic: float, dof: int) -> None:
    assert chi2_sf(statistic, dof) == pytest.approx(stats.chi2.sf(statistic, dof), rel=1e-9, abs=1e-300)


def test_ks_and_wasserstein_from_sketches_match_scipy_on_the_rows() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20_000), rng.normal(0.3, 1.2, size=5_000)
    got = compare_numbers(NumberSketch.of(a), NumberSketch.of(b))
    exact = stats.ks_2samp(a, b)
    assert got["ks"] == pytest.approx(exact.statistic, abs=0.005)
    assert got["wasserstein"] == pytest.approx(stats.wasserstein_distance(a, b) / a.std(), rel=0.02)
    assert got["ks_pvalue"] < 1e-20
    near = rng.normal(0.03, 1, size=5_000)
    asymptotic = stats.ks_2samp(a, near, method="asymp")
    assert kolmogorov_pvalue(asymptotic.statistic, 20_000, 5_000) == pytest.approx(asymptotic.pvalue, rel=0.05)


def test_psi_is_zero_for_the_same_data_and_large_for_a_moved_one() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=10_000)
    assert compare_numbers(NumberSketch.of(a), NumberSketch.of(a))["psi"] == pytest.approx(0.0, abs=1e-12)
    assert compare_numbers(NumberSketch.of(a), NumberSketch.of(a + 1.0))["psi"] > 0.5


def test_categories_chi_squared_matches_a_contingency_free_test() -> None:
    reference = CategoryCounts.of(np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200))
    same = CategoryCounts.of(np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20))
    moved = CategoryCounts.of(np.array(["a"] * 20 + ["b"] * 30 + ["c"] * 50))
    assert compare_categories(reference, same)["chi2_pvalue"] > 0.9
    result = compare_categories(reference, moved)
    assert result["chi2_pvalue"] < 1e-6 and result["psi"] > 0.2
    new = compare_categories(reference, CategoryCounts.of(np.array(["a"] * 90 + ["z"] * 10)))
    assert np.isfinite(new["chi2"]), "a category the reference never had is possible, not impossible"


def _drifted(reference: BlockSketch, stream: np.ndarray, categories: tuple[CategoryCounts, CategoryCounts]) -> set[str]:
    sketches = BlockSketch(stream.shape[1])
    sketches.add(stream)
    tests = stream.shape[1] + 1
    found = {f"x{j}" for j in range(stream.shape[1])
             if judge(f"x{j}", reference.sketch(j), sketches.sketch(j), Thresholds(), tests).drifted}
    if judge("colour", categories[0], categories[1], Thresholds(), tests).drifted:
        found.add("colour")
    return found


def test_a_shifted_feature_is_found_and_an_unshifted_stream_raises_no_alarm() -> None:
    """Over 40 seeds: 8 numeric features and a category; the stream moves x3 by half a standard deviation."""
    seeds = 40
    found_shift = 0
    false_alarms = 0
    wrong_features = 0
    colours = np.array(["red", "green", "blue"])
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        reference = BlockSketch(8)
        reference.add(rng.normal(size=(5000, 8)))
        ref_colours = CategoryCounts.of(rng.choice(colours, 5000, p=[0.5, 0.3, 0.2]))
        still = rng.normal(size=(2000, 8))
        still_colours = CategoryCounts.of(rng.choice(colours, 2000, p=[0.5, 0.3, 0.2]))
        if _drifted(reference, still, (ref_colours, still_colours)):
            false_alarms += 1
        shifted = rng.normal(size=(2000, 8))
        shifted[:, 3] += 0.5
        flagged = _drifted(reference, shifted, (ref_colours, still_colours))
        found_shift += "x3" in flagged
        wrong_features += len(flagged - {"x3"})
    print(f"\ndrift detection over {seeds} seeds: shifted x3 found {found_shift}/{seeds}; "
          f"false alarms on unshifted streams {false_alarms}/{seeds} ({false_alarms / seeds:.1%}); "
          f"other features flagged in shifted streams {wrong_features}")
    assert found_shift == seeds
    assert false_alarms / seeds <= 0.05
    assert wrong_features <= 2


def test_a_moved_category_is_found() -> None:
    rng = np.random.default_rng(7)
    colours = np.array(["red", "green", "blue"])
    reference = CategoryCounts.of(rng.choice(colours, 5000, p=[0.5, 0.3, 0.2]))
    moved = CategoryCounts.of(rng.choice(colours, 2000, p=[0.2, 0.3, 0.5]))
    result = judge("colour", reference, moved, Thresholds())
    assert result.drifted and result.crossed == ["chi2", "psi"] and result.kind == "category"


def test_too_few_rows_decide_nothing() -> None:
    rng = np.random.default_rng(8)
    result = judge("x", NumberSketch.of(rng.normal(size=5000)), NumberSketch.of(rng.normal(3, 1, size=50)),
                   Thresholds(min_rows=100))
    assert not result.drifted and result.note == "too few rows to judge (50 < 100)"
    assert result.psi is not None and result.psi > 1  # the statistics are still reported
