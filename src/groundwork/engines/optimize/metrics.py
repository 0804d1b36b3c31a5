"""Quality metrics: how close a candidate's outputs stay to the baseline's, or to the labels.

Every metric scores the *first* model output. ``drop`` is how much worse a candidate
scores than the FP32 baseline, in the metric's own units, so ``--max-drop 0.01``
means "at most 0.01 worse": one point of accuracy, a mean cosine of at least 0.99,
an MSE at most 0.01 higher.

* ``accuracy``: top-1 accuracy against the labels; without labels, top-1 agreement
  with the baseline's predictions (the baseline then scores 1.0).
* ``cosine``: mean cosine similarity of each row's output to the baseline's output.
* ``mse``: mean squared error against the labels, or against the baseline's output
  without labels. Lower is better.
* ``module:function``: ``function(outputs, reference, labels) -> float``, with
  ``outputs``/``reference`` the candidate's and the baseline's first output. Higher is
  better unless the function has an attribute ``higher_is_better = False``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from groundwork.engines.optimize.loading import load_callable
from groundwork.errors import InvalidInput

MetricFn = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], float]

BUILTIN = ("accuracy", "cosine", "mse")


@dataclass(frozen=True)
class Metric:
    name: str
    fn: MetricFn
    higher_is_better: bool = True

    def score(self, outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> float:
        return float(self.fn(np.asarray(outputs), np.asarray(reference), labels))

    def drop(self, baseline: float, score: float) -> float:
        """How much worse ``score`` is than ``baseline`` (negative: better)."""
        return baseline - score if self.higher_is_better else score - baseline


def _rows(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1).astype(np.float64) if x.ndim > 1 else x.astype(np.float64)[:, None]


def accuracy(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> float:
    if outputs.ndim < 2:
        raise InvalidInput(f"metric 'accuracy' needs class scores of shape (rows, classes); got {outputs.shape}")
    predicted = outputs.reshape(outputs.shape[0], -1).argmax(axis=1)
    target = reference.reshape(reference.shape[0], -1).argmax(axis=1) if labels is None else labels.reshape(-1)
    if target.shape[0] != predicted.shape[0]:
        raise InvalidInput(f"metric 'accuracy': {predicted.shape[0]} predictions but {target.shape[0]} labels")
    return float(np.mean(predicted == target.astype(predicted.dtype)))


def cosine(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> float:
    a, b = _rows(outputs), _rows(reference)
    if a.shape != b.shape:
        raise InvalidInput(f"metric 'cosine': output shape {outputs.shape} differs from the baseline's {reference.shape}")
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = den == 0
    cos = np.where(both_zero, 1.0, num / np.where(both_zero, 1.0, den))
    return float(np.mean(cos))


def mse(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> float:
    target = reference if labels is None else labels
    a = np.asarray(outputs, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    if a.size != b.size:
        raise InvalidInput(f"metric 'mse': outputs of shape {a.shape} against a target of shape {b.shape}")
    return float(np.mean((a.reshape(-1) - b.reshape(-1)) ** 2))


def get_metric(spec: str | Metric | Callable[..., float]) -> Metric:
    """A metric by name, ``module:function`` reference, or Python callable."""
    if isinstance(spec, Metric):
        return spec
    if callable(spec):
        name = getattr(spec, "__name__", "custom")
        return Metric(name, spec, bool(getattr(spec, "higher_is_better", True)))
    if spec == "accuracy":
        return Metric("accuracy", accuracy)
    if spec == "cosine":
        return Metric("cosine", cosine)
    if spec == "mse":
        return Metric("mse", mse, higher_is_better=False)
    if ":" in spec:
        fn = load_callable(spec, what="metric")
        return Metric(spec, fn, bool(getattr(fn, "higher_is_better", True)))
    raise InvalidInput(f"unknown metric {spec!r}", hint="use accuracy, cosine, mse or module:function")
