"""The digits pipeline: ingest -> split -> standardize -> train (PyTorch MLP) + train_baseline -> evaluate.

    groundwork pipeline run groundwork.examples.digits.pipeline:digits_pipeline --param epochs=10
    groundwork pipeline run groundwork.examples.digits.pipeline:digits_pipeline --param epochs=10   # fully cached
    groundwork lineage <the evaluate step's run id>
    groundwork reproduce <the train step's run id>                                         # bit-exact

Every step is cached by its code, params, inputs and declared packages: change
``hidden`` and only ``train`` and ``evaluate`` run again. ``train`` is deterministic
under its seed (deterministic algorithms, one thread, a fixed generator), so
``groundwork reproduce`` of it gives the very same weights. ``train`` and
``train_baseline`` do not depend on each other, so the local executor runs them at once.
(Step names are run names: ``train_baseline`` leaves ``baseline`` to the runs you record.)
"""

from __future__ import annotations

from typing import Any

import pandas as pd

import groundwork as gw

FEATURES = [f"pixel_{i}" for i in range(64)]


def build_mlp(hidden: int):  # type: ignore[no-untyped-def]
    from torch import nn

    return nn.Sequential(nn.Linear(len(FEATURES), hidden), nn.ReLU(), nn.Linear(hidden, 10))


@gw.step(packages=["scikit-learn"])
def ingest() -> pd.DataFrame:
    """scikit-learn's bundled 8x8 digits (1,797 images), one row per image."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data.astype("float32"), columns=FEATURES)
    frame["label"] = digits.target.astype("int64")
    return frame


@gw.step(outputs=("train", "test"), packages=["scikit-learn"])
def split(data: pd.DataFrame, test_size: float = 0.25, seed: int = 0):  # type: ignore[no-untyped-def]
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(data, test_size=test_size, random_state=seed, stratify=data["label"])
    return train.reset_index(drop=True), test.reset_index(drop=True)


@gw.step(outputs=("train", "test", "scaler"), packages=["scikit-learn"])
def standardize(train: pd.DataFrame, test: pd.DataFrame):  # type: ignore[no-untyped-def]
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train[FEATURES])

    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(scaler.transform(frame[FEATURES]).astype("float32"), columns=FEATURES)
        out["label"] = frame["label"].to_numpy()
        return out

    return apply(train), apply(test), scaler


@gw.step(packages=["torch"])
def train(train: pd.DataFrame, epochs: int = 20, hidden: int = 128, lr: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """A two-layer MLP, bit-for-bit deterministic under ``seed``; returns its state dict."""
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x = torch.tensor(train[FEATURES].to_numpy())
    y = torch.tensor(train["label"].to_numpy())
    model = build_mlp(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        gw.log({"loss": total / len(x)}, step=epoch)
    state: dict[str, Any] = model.state_dict()
    return state


@gw.step(packages=["scikit-learn"])
def train_baseline(train: pd.DataFrame, c: float = 1.0):  # type: ignore[no-untyped-def]
    """A logistic regression to beat."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000).fit(train[FEATURES], train["label"])


@gw.step(packages=["torch", "scikit-learn"])
def evaluate(state: dict[str, Any], reference: Any, test: pd.DataFrame, hidden: int = 128) -> dict[str, Any]:
    import torch

    model = build_mlp(hidden)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        predicted = model(torch.tensor(test[FEATURES].to_numpy())).argmax(1).numpy()
    scores = {
        "accuracy": float((predicted == test["label"].to_numpy()).mean()),
        "baseline_accuracy": float(reference.score(test[FEATURES], test["label"])),
    }
    gw.log(scores)
    return scores


@gw.pipeline
def digits_pipeline(epochs: int = 20, hidden: int = 128, lr: float = 0.01, seed: int = 0, test_size: float = 0.25):  # type: ignore[no-untyped-def]
    data = ingest()
    train_raw, test_raw = split(data, test_size=test_size, seed=seed)
    train_set, test_set, _scaler = standardize(train_raw, test_raw)
    model = train(train_set, epochs=epochs, hidden=hidden, lr=lr, seed=seed)
    reference = train_baseline(train_set)
    return evaluate(model, reference, test_set, hidden=hidden)


if __name__ == "__main__":
    result = digits_pipeline(epochs=5)
    print(result.summary(), result.value)
