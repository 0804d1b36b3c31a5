"""The bare FastAPI peer: the app most people write, calling the model in-process.

Run: ``BENCH_MODEL=lr BENCH_CACHE=.bench/serving/models uvicorn serving_fastapi:app --no-access-log``
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel
from serving_models import cached

model = cached(os.environ.get("BENCH_MODEL", "lr"), Path(os.environ.get("BENCH_CACHE", ".")))
app = FastAPI()


class Request(BaseModel):
    inputs: list[list[float]]


@app.post("/predict")
def predict(request: Request) -> dict[str, list[int]]:
    return {"outputs": model.predict(np.asarray(request.inputs)).tolist()}
