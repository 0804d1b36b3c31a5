"""Pipelines: steps joined into a DAG, cached by content, run locally or on Ray.

    import groundwork as gw

    @gw.step
    def ingest() -> pd.DataFrame: ...

    @gw.step(outputs=("train", "test"))
    def split(data: pd.DataFrame, test_size: float = 0.25): ...

    @gw.pipeline
    def digits(test_size: float = 0.25):
        train, test = split(ingest(), test_size=test_size)
        ...

    result = gw.run_pipeline(digits, params={"test_size": 0.2}, executor="local")

Modules: :mod:`.step` (``@step``, ``File``), :mod:`.pipeline` (``@pipeline``,
loading ``module:function``), :mod:`.dag` (the graph), :mod:`.cache` (cache
keys), :mod:`.materializers` (values <-> artifacts), :mod:`.executors` (local,
inline, ray), :mod:`.worker` (what runs a step), :mod:`.run` (the orchestrator).
"""

from __future__ import annotations

from groundwork.core.pipelines.dag import Graph, PipelineCycle
from groundwork.core.pipelines.executors import ExecutorUnavailable, register_executor
from groundwork.core.pipelines.materializers import NoMaterializer, register_materializer
from groundwork.core.pipelines.pipeline import Pipeline, PipelineNotFound, load_pipeline, pipeline
from groundwork.core.pipelines.run import PipelineFailed, PipelineResult, StepEvent, StepResult, run_pipeline
from groundwork.core.pipelines.step import File, Output, Step, step

__all__ = [
    "ExecutorUnavailable",
    "File",
    "Graph",
    "NoMaterializer",
    "Output",
    "Pipeline",
    "PipelineCycle",
    "PipelineFailed",
    "PipelineNotFound",
    "PipelineResult",
    "Step",
    "StepEvent",
    "StepResult",
    "load_pipeline",
    "pipeline",
    "register_executor",
    "register_materializer",
    "run_pipeline",
    "step",
]
