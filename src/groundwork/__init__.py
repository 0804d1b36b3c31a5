"""groundwork: machine-learning infrastructure a small team runs for itself.

The object model::

    Run            one recorded execution: params, metric series, tags, logs,
                   code version, environment, inputs and outputs (artifacts)
      └ Artifact   bytes addressed by their SHA-256 (a file, or a directory manifest)

Recording (``gw.start_run`` returns an :class:`ActiveRun`)::

    import groundwork as gw
    with gw.start_run(name="baseline", params={"lr": 0.01}) as run:
        for step in range(100):
            run.log({"loss": loss, "acc": acc}, step=step)
        run.log_artifact("out/model.pt")

Reading (``gw.get_run`` and ``gw.runs`` return :class:`Run` snapshots)::

    gw.runs(filter="metrics.acc > 0.9 and params.lr = 0.01", order_by="-metrics.acc")
    r = gw.get_run(run_id)      # r.id, r.name, r.status, r.params, r.metrics
    r.history("loss")           # every point: step, value, timestamp

Where things are kept comes from :class:`Config` (``GROUNDWORK_STORE``,
``GROUNDWORK_ARTIFACTS``…); every function takes ``config=`` to override it.
Attributes load lazily, so ``import groundwork`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "Config",
    "File",
    "GroundworkError",
    "MetricPoint",
    "ModelVersion",
    "Run",
    "Signature",
    "active_run",
    "choice",
    "distributed",
    "export",
    "get_model_version",
    "get_run",
    "infer_volume",
    "integer",
    "lineage",
    "load_model",
    "log",
    "log_artifact",
    "log_params",
    "loguniform",
    "monitor",
    "optimize",
    "pipeline",
    "promote_model",
    "register_flavor",
    "register_materializer",
    "run_pipeline",
    "runs",
    "seed",
    "start_run",
    "step",
    "sweep",
    "uniform",
]

_LAZY = {
    "ActiveRun": "groundwork.core.tracking",
    "active_run": "groundwork.core.tracking",
    "start_run": "groundwork.core.tracking",
    "log": "groundwork.core.tracking",
    "log_params": "groundwork.core.tracking",
    "log_artifact": "groundwork.core.tracking",
    "seed": "groundwork.core.tracking",
    "Run": "groundwork.core.runs",
    "MetricPoint": "groundwork.core.runs",
    "get_run": "groundwork.core.runs",
    "infer_volume": "groundwork.engines.infer",
    "runs": "groundwork.core.runs",
    "Config": "groundwork.config",
    "GroundworkError": "groundwork.errors",
    "Signature": "groundwork.core.signatures",
    "ModelVersion": "groundwork.core.registry",
    "get_model_version": "groundwork.core.registry",
    "promote_model": "groundwork.core.registry",
    "register_flavor": "groundwork.core.flavors",
    "load_model": "groundwork.engines.flavors",
    "optimize": "groundwork.engines.optimize",
    "export": "groundwork.engines.export",
    "step": "groundwork.core.pipelines.step",
    "pipeline": "groundwork.core.pipelines.pipeline",
    "run_pipeline": "groundwork.core.pipelines.run",
    "File": "groundwork.core.pipelines.step",
    "register_materializer": "groundwork.core.pipelines.materializers",
    "lineage": "groundwork.core.lineage",
    "sweep": "groundwork.core.sweeps.sweep",
    "distributed": "groundwork.core.distributed",
    "loguniform": "groundwork.core.sweeps.space",
    "uniform": "groundwork.core.sweeps.space",
    "integer": "groundwork.core.sweeps.space",
    "choice": "groundwork.core.sweeps.space",
    "monitor": "groundwork.engines.monitor.report",
}

if TYPE_CHECKING:
    from groundwork.config import Config
    from groundwork.core.distributed import distributed
    from groundwork.core.flavors import register_flavor
    from groundwork.core.lineage import lineage
    from groundwork.core.pipelines.materializers import register_materializer
    from groundwork.core.pipelines.pipeline import pipeline
    from groundwork.core.pipelines.run import run_pipeline
    from groundwork.core.pipelines.step import File, step
    from groundwork.core.registry import ModelVersion, get_model_version, promote as promote_model
    from groundwork.core.runs import MetricPoint, Run, get_run, runs
    from groundwork.core.signatures import Signature
    from groundwork.core.sweeps.space import choice, integer, loguniform, uniform
    from groundwork.core.sweeps.sweep import sweep
    from groundwork.core.tracking import (
        ActiveRun,
        active_run,
        log,
        log_artifact,
        log_params,
        seed,
        start_run,
    )
    from groundwork.engines.export import export
    from groundwork.engines.flavors import load_model
    from groundwork.engines.infer import infer_volume
    from groundwork.engines.monitor.report import monitor
    from groundwork.engines.optimize import optimize
    from groundwork.errors import GroundworkError


# The built-in model flavors live in the engines layer; the package root registers them
# by name, exactly as a plugin registers its own (imported when a model is first saved
# or loaded), so the core finds them without importing the engines.
def _register_builtin_flavors() -> None:
    from groundwork.core.flavors import register_flavor

    for flavor in ("onnx", "optimized", "sklearn", "pytorch", "python"):  # python last: any object with predict
        register_flavor(flavor, f"groundwork.engines.flavors.{flavor}:FLAVOR")


_register_builtin_flavors()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'groundwork' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
