"""BentoML's side: one service per model, plain (``Digits``) and with adaptive batching (``DigitsBatched``).

Run inside the BentoML venv, from this folder:
``BENCH_MODEL=lr BENCH_CACHE=... bentoml serve serving_bentoml:Digits --host 127.0.0.1 --port 3000``
Both take ``{"inputs": [[...], ...]}`` on ``POST /predict`` (BentoML's defaults otherwise).
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
import numpy as np
from serving_models import cached

_KIND = os.environ.get("BENCH_MODEL", "lr")
_CACHE = Path(os.environ.get("BENCH_CACHE", "."))


@bentoml.service
class Digits:
    def __init__(self) -> None:
        self.model = cached(_KIND, _CACHE)

    @bentoml.api
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.predict(inputs)


@bentoml.service
class DigitsBatched:
    def __init__(self) -> None:
        self.model = cached(_KIND, _CACHE)

    @bentoml.api(batchable=True)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.predict(inputs)
