"""Running pipelines: caching and invalidation, parallel branches, failures and resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core.pipelines import (
    ExecutorUnavailable,
    PipelineCycle,
    PipelineFailed,
    PipelineNotFound,
    PipelineResult,
    load_pipeline,
    run_pipeline,
)
from groundwork.errors import InvalidInput
from groundwork.storage.metadata import open_metadata_store

from .conftest import FLOW, Project, fake_package


def ran(result: PipelineResult) -> set[str]:
    return {name for name, step in result.steps.items() if step.status == "finished"}


def cached(result: PipelineResult) -> set[str]:
    return {name for name, step in result.steps.items() if step.status == "cached"}


def test_second_run_is_fully_cached_and_recorded_as_cached_runs(flow_project: Project, workspace: Config) -> None:
    first = run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    assert first.status == "finished"
    assert ran(first) == {"ingest", "scale", "stamp", "other", "report"}
    assert first.value == {"total": 18, "stamp": {"n": 3, "pkg": "1.0"}, "other": 3}

    second = run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    assert second.fully_cached and second.value == first.value
    assert "5 cached" in second.summary()

    store = open_metadata_store(workspace.store_url)
    pipeline_row = store.get_run(second.run_id)
    assert pipeline_row.kind == "pipeline" and pipeline_row.status == "finished"
    assert pipeline_row.tags["gw.cached"] == "5"
    children = {row.name: row for row in store.child_runs(second.run_id)}
    assert set(children) == set(second.steps)
    for name, row in children.items():
        original = first[name]
        assert row.kind == "step" and row.status == "cached"
        assert row.cached_from == original.run_id
        assert row.cache_key == original.cache_key
        recorded = {link.name: link.digest for link in store.run_artifacts(row.id, "output")}
        assert recorded == {n: o.digest for n, o in original.outputs.items()}
    # Inputs are linked too: the cached report read what the original report read.
    report_inputs = {link.name for link in store.run_artifacts(children["report"].id, "input")}
    assert report_inputs == {"scaled", "stamp", "other"}
    # The graph is stored with the pipeline run.
    dag_link = next(link for link in store.run_artifacts(second.run_id, "output") if link.name == "pipeline.json")
    assert dag_link.kind == "pipeline"
    # Metrics logged inside a step land in the step's run.
    assert gw.get_run(first["report"].run_id or "", config=workspace).metrics == {"total": 18.0}


def test_changed_param_reruns_that_step_and_what_depends_on_it(flow_project: Project, workspace: Config) -> None:
    run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    changed = run_pipeline(flow_project.load("pipe:flow"), params={"factor": 3}, config=workspace)
    assert ran(changed) == {"scale", "report"}
    assert cached(changed) == {"ingest", "stamp", "other"}


def test_changed_project_module_reruns_the_step_that_calls_it(flow_project: Project, workspace: Config) -> None:
    run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    flow_project.write("helpers", "def transform(v):\n    return v + 2\n")
    changed = run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    assert ran(changed) == {"scale", "report"}
    assert changed.value["total"] == 24


def test_changed_step_code_with_equal_output_stops_at_that_step(flow_project: Project, workspace: Config) -> None:
    run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    source = FLOW.replace("return list(range(n))", "return [i for i in range(n)]")
    flow_project.write("pipe", source)
    changed = run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    # `other` reruns; its output is byte-identical, so `report` is still a hit.
    assert ran(changed) == {"other"}


def test_changed_input_file_reruns_what_reads_it(flow_project: Project, workspace: Config) -> None:
    run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    Path("data.txt").write_text("1 2 4")
    changed = run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    # stamp reruns (its input changed) but returns the same value, so report reruns only for `scaled`.
    assert ran(changed) == {"ingest", "scale", "stamp", "report"}
    assert cached(changed) == {"other"}


def test_changed_declared_package_version_reruns_the_declaring_step(
    flow_project: Project, workspace: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    monkeypatch.syspath_prepend(str(fake_package(tmp_path, "2.0")))
    changed = run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    assert ran(changed) == {"stamp", "report"}
    assert changed.value["stamp"]["pkg"] == "2.0"


def test_no_cache_runs_everything_and_cache_false_steps_always_run(flow_project: Project, workspace: Config) -> None:
    run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    again = run_pipeline(flow_project.load("pipe:flow"), config=workspace, cache=False)
    assert ran(again) == set(again.steps)


BRANCHES = """
    import os
    import time
    from pathlib import Path

    import groundwork as gw


    def meet(me: str, other: str, folder: str) -> dict:
        # Each branch waits for the other to start: they can only both finish if they overlap.
        Path(folder, me).touch()
        start = time.time()
        while not Path(folder, other).exists():
            if time.time() - start > 120:
                raise TimeoutError(f"{other} never ran alongside {me}")
            time.sleep(0.01)
        return {"pid": os.getpid(), "start": start, "end": time.time()}


    @gw.step(cache=False)
    def left(folder: str) -> dict:
        return meet("left", "right", folder)


    @gw.step(cache=False)
    def right(folder: str) -> dict:
        return meet("right", "left", folder)


    @gw.step(cache=False)
    def join(a: dict, b: dict) -> list:
        return [a, b]


    @gw.pipeline
    def branches(folder: str):
        return join(left(folder), right(folder))
"""


def test_independent_branches_overlap_in_time_on_the_local_executor(
    project: Project, workspace: Config, tmp_path: Path
) -> None:
    project.write("branches", BRANCHES)
    folder = tmp_path / "meet"
    folder.mkdir()
    result = run_pipeline(project.load("branches:branches"), params={"folder": str(folder)},
                          executor="local", max_workers=2, config=workspace)
    a, b = result.value
    assert a["pid"] != b["pid"]
    assert a["start"] < b["end"] and b["start"] < a["end"]
    assert result.steps["left"].status == result.steps["right"].status == "finished"


FAILING = """
    from pathlib import Path

    import groundwork as gw


    @gw.step
    def first() -> int:
        return 41


    @gw.step
    def fragile(x: int) -> int:
        if not Path("fixed").exists():
            raise ValueError("the data is not ready")
        return x + 1


    @gw.step
    def last(y: int) -> int:
        return y * 2


    @gw.step(retries=2)
    def flaky() -> int:
        attempts = Path("attempts")
        count = int(attempts.read_text()) + 1 if attempts.exists() else 1
        attempts.write_text(str(count))
        if count < 3:
            raise RuntimeError(f"attempt {count} failed")
        return count


    @gw.pipeline
    def chain():
        return last(fragile(first()))


    @gw.pipeline
    def retrying():
        return flaky()
"""


def test_failing_step_fails_the_pipeline_keeps_upstream_and_the_next_run_resumes(
    project: Project, workspace: Config
) -> None:
    project.write("failing", FAILING)
    with pytest.raises(PipelineFailed) as failure:
        run_pipeline(project.load("failing:chain"), config=workspace)
    error = failure.value
    assert error.step == "fragile"
    assert "ValueError: the data is not ready" in error.message
    assert error.traceback and 'raise ValueError("the data is not ready")' in error.traceback
    result = error.result
    assert [result[s].status for s in ("first", "fragile", "last")] == ["finished", "failed", "skipped"]

    store = open_metadata_store(workspace.store_url)
    assert store.get_run(result.run_id).status == "failed"
    failed_row = store.get_run(result["fragile"].run_id or "")
    assert failed_row.status == "failed" and "ValueError" in (failed_row.error or "")
    # The upstream output is kept, in the store and in the artifact store.
    kept = result["first"].outputs["output"]
    assert gw.get_run(result["first"].run_id or "", config=workspace).status == "finished"
    assert Path(workspace.artifacts_url).exists() and kept.digest

    Path("fixed").touch()
    resumed = run_pipeline(project.load("failing:chain"), config=workspace)
    assert cached(resumed) == {"first"}
    assert ran(resumed) == {"fragile", "last"}
    assert resumed.value == 84


def test_retries_run_a_raising_step_again(project: Project, workspace: Config) -> None:
    project.write("failing", FAILING)
    result = run_pipeline(project.load("failing:retrying"), config=workspace)
    assert result.value == 3
    assert result["flaky"].attempts == 3
    assert gw.get_run(result["flaky"].run_id or "", config=workspace).tags["gw.attempts"] == "3"


def test_inline_and_local_executors_give_equal_digests(flow_project: Project, workspace: Config) -> None:
    local = run_pipeline(flow_project.load("pipe:flow"), config=workspace, executor="local", cache=False)
    inline = run_pipeline(flow_project.load("pipe:flow"), config=workspace, executor="inline", cache=False)
    for name in local.steps:
        assert local[name].outputs["output"].digest == inline[name].outputs["output"].digest


# -- bad input: one clear error each ------------------------------------------------------------------


def test_unknown_module_or_function_is_one_clear_error(project: Project, workspace: Config) -> None:
    with pytest.raises(PipelineNotFound, match="no module named 'no_such_module'"):
        load_pipeline("no_such_module:flow")
    path = project.write("pipe", FLOW.replace("helpers.transform(v)", "v").replace("import helpers", ""))
    with pytest.raises(PipelineNotFound, match="has no attribute 'nope'") as missing:
        load_pipeline(f"{path}:nope")
    assert missing.value.hint == f"pipelines in {path}: flow"
    with pytest.raises(PipelineNotFound, match="no Python file"):
        load_pipeline("missing/file.py:flow")
    with pytest.raises(InvalidInput, match="is a Step, not a pipeline"):
        load_pipeline(f"{path}:scale")
    with pytest.raises(InvalidInput, match="does not name a pipeline"):
        load_pipeline("just_a_module")


def test_value_without_materializer_fails_its_step_with_one_line(project: Project, workspace: Config) -> None:
    project.write("opaque", """
        import groundwork as gw


        class Opaque:
            pass


        @gw.step
        def make() -> "Opaque":
            return Opaque()


        @gw.pipeline
        def opaque():
            return make()
    """)
    with pytest.raises(PipelineFailed) as failure:
        run_pipeline(project.load("opaque:opaque"), config=workspace)
    message = failure.value.message
    assert "step 'make' returned a Opaque (opaque.Opaque), which groundwork cannot store" in message
    assert "register_materializer" in message
    assert failure.value.traceback is None
    assert "\n" not in message


def test_custom_materializer_travels_to_worker_processes(project: Project, workspace: Config) -> None:
    project.write("custom", """
        import groundwork as gw


        class Vocab:
            def __init__(self, words):
                self.words = list(words)


        gw.register_materializer(
            Vocab,
            lambda v, path: path.write_text("\\n".join(v.words)),
            lambda path: Vocab(path.read_text().split("\\n")),
            filename="vocab.txt",
        )


        @gw.step
        def build() -> "Vocab":
            return Vocab(["b", "a"])


        @gw.step
        def size(vocab: "Vocab") -> int:
            return len(vocab.words)


        @gw.pipeline
        def custom():
            return size(build())
    """)
    result = run_pipeline(project.load("custom:custom"), config=workspace, executor="local")
    assert result.value == 2
    assert result["build"].outputs["output"].materializer == "custom.Vocab"


def test_cycle_is_one_clear_error(project: Project, workspace: Config) -> None:
    @gw.step
    def a() -> int:
        return 1

    @gw.step
    def b(x: int) -> int:
        return x

    @gw.pipeline
    def loop():  # type: ignore[no-untyped-def]
        first = a()
        second = b(first)
        first.after(second)

    with pytest.raises(PipelineCycle, match=r"pipeline 'loop' has a cycle: (a -> b -> a|b -> a -> b)"):
        run_pipeline(loop, config=workspace)


def test_unknown_executor_is_one_clear_error_and_records_nothing(flow_project: Project, workspace: Config) -> None:
    with pytest.raises(InvalidInput, match="unknown executor 'nope'") as error:
        run_pipeline(flow_project.load("pipe:flow"), executor="nope", config=workspace)
    assert error.value.hint == "choose one of: inline, local, ray"
    assert gw.runs(config=workspace) == []


def test_unreachable_ray_is_one_clear_error(flow_project: Project, workspace: Config) -> None:
    pytest.importorskip("ray")
    config = workspace.with_(ray_address="127.0.0.1:9")
    with pytest.raises(ExecutorUnavailable, match=r"cannot reach Ray at 127\.0\.0\.1:9") as error:
        run_pipeline(flow_project.load("pipe:flow"), executor="ray", config=config, cache=False)
    assert "GROUNDWORK_RAY_ADDRESS" in (error.value.hint or "")
    (pipeline_run,) = gw.runs(filter="kind = 'pipeline'", config=workspace)
    assert pipeline_run.status == "failed"


def test_fully_cached_pipeline_never_starts_an_executor(flow_project: Project, workspace: Config) -> None:
    run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    # An unreachable Ray does not matter when nothing needs to run.
    config = workspace.with_(ray_address="127.0.0.1:9")
    again = run_pipeline(flow_project.load("pipe:flow"), executor="ray", config=config)
    assert again.fully_cached


def test_bad_params_and_bad_options_are_clear(flow_project: Project, workspace: Config) -> None:
    with pytest.raises(InvalidInput, match="bad parameters for pipeline 'flow'"):
        run_pipeline(flow_project.load("pipe:flow"), params={"nope": 1}, config=workspace)
    with pytest.raises(InvalidInput, match="unknown resource 'cpu'"):
        gw.step(resources={"cpu": 1})(lambda: 1)
    with pytest.raises(InvalidInput, match="retries must be"):
        gw.step(retries=-1)(lambda: 1)


def test_step_called_outside_a_pipeline_is_a_plain_function() -> None:
    @gw.step
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8


def test_result_output_loads_values(flow_project: Project, workspace: Config) -> None:
    result = run_pipeline(flow_project.load("pipe:flow"), config=workspace)
    assert result.output("ingest") == [1, 2, 3]
    assert result.output("scale") == [4, 6, 8]
    assert json.loads(json.dumps(result.to_dict()))["steps"][0]["name"] == "ingest"
    with pytest.raises(InvalidInput, match="has no step 'nope'"):
        result.output("nope")


def test_caching_on_every_metadata_backend(
    store_url: str, flow_project: Project, workspace: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = workspace.with_(store_url=store_url)
    monkeypatch.setenv("GROUNDWORK_STORE", store_url)
    first = run_pipeline(flow_project.load("pipe:flow"), config=config, executor="local")
    second = run_pipeline(flow_project.load("pipe:flow"), config=config, executor="local")
    assert ran(first) == set(first.steps) and second.fully_cached
    changed = run_pipeline(flow_project.load("pipe:flow"), params={"factor": 5}, config=config)
    assert ran(changed) == {"scale", "report"}
