"""MLflow's side: save the model as an MLflow model folder (then ``mlflow models serve`` serves it).

Run inside the MLflow venv: ``python serving_mlflow.py KIND OUT_DIR CACHE_DIR``
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import mlflow.sklearn
from mlflow.models import infer_signature
from serving_models import cached, digits


def main() -> None:
    kind, out, cache = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    model = cached(kind, cache)
    x, _ = digits()
    sample = x[:5] / (16.0 if kind == "mlp" else 1.0)
    if out.exists():
        shutil.rmtree(out)
    # MLflow 3 saves with skops by default and refuses types it does not know; the MLP's optimizer is one.
    trusted = ["sklearn.neural_network._stochastic_optimizers.AdamOptimizer"] if kind == "mlp" else None
    mlflow.sklearn.save_model(model, str(out), signature=infer_signature(sample, model.predict(sample)),
                              skops_trusted_types=trusted)
    print(out)


if __name__ == "__main__":
    main()
