"""A store with a prediction log to monitor (shared by the CLI and browser tests of ``groundwork monitor``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import groundwork as gw
from groundwork.config import Config


def log_two_routes(home: Path) -> Config:
    """digits v1 @production and v2 @candidate, each trained on a logged dataset; a log of both routes.

    production answers requests like the training data (895 of two rows, and one refused);
    candidate's own requests have pixel_10 moved by 6 (a canary that sees other traffic), and
    a shadow copy of every production request goes to candidate, which agrees with production
    on all its rows but the first row of every tenth request.
    """
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from groundwork.engines.monitor.log import LogOptions, PredictionLog

    config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=str(home / "artifacts"))
    x, y = load_digits(return_X_y=True)
    frame = pd.DataFrame(x, columns=[f"pixel_{i}" for i in range(64)])
    frame["label"] = y
    frame.to_parquet(home / "train.parquet")
    model = LogisticRegression(max_iter=300).fit(x, y)
    for alias in ("production", "candidate"):
        with gw.start_run(name=f"train-{alias}", config=config, capture_code=False) as run:
            run.log_input(home / "train.parquet", kind="dataset")
            version = run.log_model(model, "digits", example=x[:5])
        gw.promote_model("digits", version.version, alias=alias, config=config)
    log = PredictionLog(config, LogOptions(segment_rows=1000))
    moved = x.copy()
    moved[:, 10] += 6.0
    predicted = model.predict(x)
    for i in range(0, 1790, 2):
        rows = x[i:i + 2].astype(np.float32)
        rid = log.offer("digits", "production", "production", 1, rows, 2, predicted[i:i + 2], 0.002)
        shadow = predicted[i:i + 2].copy()
        if i % 20 == 0:
            shadow[0] = (shadow[0] + 1) % 10
        log.offer("digits", "candidate", "candidate", 2, rows, 2, shadow, 0.004, shadow=True, request_id=rid)
        log.offer("digits", "candidate", "candidate", 2, moved[i:i + 2].astype(np.float32), 2, predicted[i:i + 2],
                  0.003)
        if i % 100 == 0:
            log.flush()
    log.offer("digits", "production", "production", 1, None, 0, None, 0.0, 422, "unprocessable")
    log.close()
    return config
