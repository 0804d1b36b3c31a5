"""The models of the serving benchmark, trained the same way in every venv (stdlib + scikit-learn only).

``train(kind)`` returns a fitted estimator on scikit-learn's digits: ``lr`` is a
LogisticRegression, ``mlp`` a 256x256 MLPClassifier (fixed seeds, so every venv gets the
same model). ``cached(kind, folder)`` pickles it once per venv and reuses the pickle.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

KINDS = ("lr", "mlp")


def digits() -> tuple[Any, Any]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x, y


def train(kind: str) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    x, y = digits()
    if kind == "lr":
        return LogisticRegression(max_iter=5000).fit(x, y)
    if kind == "mlp":
        return MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=300, random_state=0).fit(x / 16.0, y)
    raise ValueError(f"unknown model kind {kind!r}; known: {KINDS}")


def inputs(kind: str, rows: int) -> list[list[float]]:
    """The request rows: the first ``rows`` digits, scaled the way ``kind`` was trained."""
    x, _ = digits()
    scale = 16.0 if kind == "mlp" else 1.0
    return (x[:rows] / scale).tolist()


def cached(kind: str, folder: Path) -> Any:
    """The trained model, pickled under ``folder`` on first use (one pickle per venv and kind)."""
    import sklearn

    path = Path(folder) / f"{kind}-sklearn{sklearn.__version__}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    model = train(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(model))
    tmp.replace(path)
    return model
