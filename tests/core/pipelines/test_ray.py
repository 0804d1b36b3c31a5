"""The Ray executor on a local Ray (2 CPUs), inside a loopback-only network namespace.

Run with: unshare -n bash -c 'ip link set lo up && exec "$@"' _ .venv/bin/pytest -m ray tests/core/pipelines
"""

from __future__ import annotations

from typing import Any

import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core.pipelines import ExecutorUnavailable, run_pipeline

from .conftest import Project

pytestmark = pytest.mark.ray


def digests(result: Any) -> dict[str, dict[str, str]]:
    return {name: {o: info.digest for o, info in step.outputs.items()} for name, step in result.steps.items()}


def test_ray_gives_the_same_output_digests_as_the_local_executor(
    ray_session: Any, flow_project: Project, workspace: Config
) -> None:
    on_ray = run_pipeline(flow_project.load("pipe:flow"), executor="ray", config=workspace, cache=False)
    local = run_pipeline(flow_project.load("pipe:flow"), executor="local", config=workspace, cache=False)
    assert on_ray.status == local.status == "finished"
    assert digests(on_ray) == digests(local)
    # Steps ran in Ray workers, which captured their own environment; metrics still reach the step's run.
    report = gw.get_run(on_ray["report"].run_id or "", config=workspace)
    assert report.metrics == {"total": 18.0}
    assert report.environment.get("python")
    # Outputs live in the artifact store, so a later run reuses them whatever the executor.
    assert run_pipeline(flow_project.load("pipe:flow"), executor="local", config=workspace).fully_cached


def test_ray_honours_resources(ray_session: Any, project: Project, workspace: Config) -> None:
    project.write("heavy", """
        import os

        import groundwork as gw
        import ray


        @gw.step(resources={"cpus": 2, "memory": "10MB"})
        def wide() -> dict:
            return {"cpus": ray.get_runtime_context().get_assigned_resources().get("CPU")}


        @gw.step(resources={"gpus": 1})
        def needs_gpu() -> int:
            return 1


        @gw.pipeline
        def heavy():
            return wide()


        @gw.pipeline
        def gpu():
            return needs_gpu()
    """)
    result = run_pipeline(project.load("heavy:heavy"), executor="ray", config=workspace)
    assert result.value == {"cpus": 2.0}
    with pytest.raises(ExecutorUnavailable, match="step 'needs_gpu' needs GPU=1 but the Ray cluster has 0"):
        run_pipeline(project.load("heavy:gpu"), executor="ray", config=workspace)


def test_a_failing_step_on_ray_fails_the_pipeline_with_its_traceback(
    ray_session: Any, project: Project, workspace: Config
) -> None:
    project.write("boom", """
        import groundwork as gw


        @gw.step
        def boom() -> int:
            raise KeyError("missing column")


        @gw.pipeline
        def pipe():
            return boom()
    """)
    with pytest.raises(gw.GroundworkError, match="KeyError") as failure:
        run_pipeline(project.load("boom:pipe"), executor="ray", config=workspace)
    assert 'raise KeyError("missing column")' in (getattr(failure.value, "traceback", "") or "")
