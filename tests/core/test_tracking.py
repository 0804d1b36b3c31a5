"""Recording runs with the SDK: lifecycle, buffered logging, crashes, concurrency, capture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.errors import InvalidInput
from groundwork.storage.metadata import SqlMetadataStore


def python_child(code: str, config: Config, **env: str) -> subprocess.Popen[str]:
    environ = {**os.environ, **config.child_environ(), **env, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )


def wait_for_line(child: subprocess.Popen[str], prefix: str) -> str:
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"child ended before printing {prefix!r}: {child.stderr.read() if child.stderr else ''}")


def test_context_manager_records_params_metrics_and_status(workspace: Config) -> None:
    with gw.start_run(name="baseline", params={"lr": 0.01, "opt": "adam"}, tags={"team": "cv"}, config=workspace) as run:
        for step in range(100):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 100}, step=step)
        run.log({"auto": 1.0})
        run.log({"auto": 2.0})
    r = gw.get_run(run.id, config=workspace)
    assert r.status == "finished"
    assert r.params == {"lr": 0.01, "opt": "adam"}  # numbers come back as numbers
    assert r.tags["team"] == "cv"
    assert r.metrics["acc"] == pytest.approx(0.99)
    history = r.history("loss")
    assert [p.step for p in history] == list(range(100))
    assert history[-1].value == pytest.approx(0.01)
    assert [(p.step, p.value) for p in r.history("auto")] == [(0, 1.0), (1, 2.0)]


def test_exception_marks_failed_with_traceback(workspace: Config) -> None:
    with pytest.raises(ZeroDivisionError), gw.start_run(name="boom", config=workspace) as run:
        run.log({"x": 1.0})
        1 / 0  # noqa: B018
    r = gw.get_run(run.id, config=workspace)
    assert r.status == "failed"
    assert "ZeroDivisionError" in (r.error or "") and "Traceback" in (r.error or "")
    assert r.metrics == {"x": 1.0}  # what it logged before failing is kept


def test_non_numeric_metric_is_a_clear_error(workspace: Config) -> None:
    with gw.start_run(config=workspace) as run, pytest.raises(InvalidInput, match="metric 'loss' must be a number"):
        run.log({"loss": "high"})


def test_points_are_flushed_in_the_background(workspace: Config) -> None:
    run = gw.start_run(config=workspace)
    run.log({"loss": 0.5}, step=0)
    store = SqlMetadataStore(workspace.store_url)
    deadline = time.monotonic() + 30  # a correctness bound (the flusher runs), not a speed test
    while not store.metric_history(run.id, "loss"):
        assert time.monotonic() < deadline, "the background writer never flushed"
        time.sleep(0.05)
    run.end()


def test_sigkill_leaves_a_crashed_run_with_every_flushed_point(workspace: Config) -> None:
    child = python_child(
        """
        import groundwork as gw
        run = gw.start_run(name="doomed")
        print("RUN", run.id, flush=True)
        step = 0
        while True:
            run.log({"loss": 1.0 / (step + 1)}, step=step)
            if step == 3000:
                run.flush()
                print("FLUSHED", step, flush=True)
            step += 1
        """,
        workspace,
    )
    run_id = wait_for_line(child, "RUN").split()[1]
    wait_for_line(child, "FLUSHED")
    time.sleep(1.5)  # let it log (and flush in the background) a while longer
    child.send_signal(signal.SIGKILL)
    child.wait()
    store = SqlMetadataStore(workspace.store_url)
    assert store.integrity_check()
    r = gw.get_run(run_id, config=workspace)
    assert r.status == "crashed"
    steps = [p.step for p in r.history("loss")]
    assert steps[: 3001] == list(range(3001)), "a point flushed before the kill is missing"
    assert steps == list(range(len(steps))), "points are contiguous: no batch was half-written"
    assert len(steps) > 3001


def test_sigterm_flushes_and_marks_failed(workspace: Config) -> None:
    child = python_child(
        """
        import groundwork as gw
        run = gw.start_run(name="terminated")
        print("RUN", run.id, flush=True)
        step = 0
        while True:
            run.log({"loss": float(step)}, step=step)
            if step == 500:
                print("LOGGING", flush=True)
            step += 1
        """,
        workspace,
    )
    run_id = wait_for_line(child, "RUN").split()[1]
    wait_for_line(child, "LOGGING")
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == -signal.SIGTERM
    r = gw.get_run(run_id, config=workspace)
    assert r.status == "failed"
    assert r.error == "terminated by SIGTERM"
    steps = [p.step for p in r.history("loss")]
    assert len(steps) > 500 and steps == list(range(len(steps)))


def test_eight_processes_log_into_one_sqlite_store(workspace: Config) -> None:
    code = """
        import sys
        import groundwork as gw
        with gw.start_run(name=f"writer-{sys.argv[1]}") as run:
            for step in range(2000):
                run.log({"loss": step * 0.5}, step=step)
        print("DONE", run.id)
    """
    environ = {**os.environ, **workspace.child_environ()}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(i)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
        )
        for i in range(8)
    ]
    outputs = [c.communicate(timeout=300) for c in children]
    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert "locked" not in err
    run_ids = [out.split()[1] for out, _ in outputs]
    total = 0
    for run_id in run_ids:
        r = gw.get_run(run_id, config=workspace)
        assert r.status == "finished"
        total += len(r.history("loss"))
    assert total == 16_000


def test_child_attaches_to_groundwork_run_id(workspace: Config) -> None:
    with gw.start_run(name="parent", config=workspace) as parent:
        child = python_child(
            """
            import groundwork as gw
            with gw.start_run(params={"from_child": 1}) as run:
                run.log({"child_metric": 3.0})
            gw.log({"module_level": 4.0})
            print("ID", run.id)
            """,
            workspace,
            GROUNDWORK_RUN_ID=parent.id,
        )
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert out.split()[1] == parent.id
    r = gw.get_run(parent.id, config=workspace)
    assert r.status == "finished"  # the owner decides, not the attached child
    assert r.params == {"from_child": 1}
    assert r.metrics == {"child_metric": 3.0, "module_level": 4.0}
    assert [x.id for x in gw.runs(config=workspace)] == [parent.id]  # attaching created no run


def test_seed_is_recorded_and_makes_numpy_deterministic(workspace: Config) -> None:
    import numpy as np

    with gw.start_run(config=workspace) as run:
        gw.seed(1234)
        first = np.random.rand(3)
        gw.seed(1234)
        assert np.array_equal(first, np.random.rand(3))
    assert gw.get_run(run.id, config=workspace).tags["seed"] == "1234"


def test_environment_and_code_are_captured(workspace: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "train.py").write_text("print('v1')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    (repo / "train.py").write_text("print('v2, uncommitted')\n")
    monkeypatch.chdir(repo)
    from groundwork.core import tracking

    tracking._git_cache.clear()
    with gw.start_run(config=workspace) as run:
        pass
    r = gw.get_run(run.id, config=workspace)
    assert r.git_branch == "main" and r.git_dirty is True and len(r.git_commit or "") == 40
    from groundwork.storage.artifacts import ArtifactStore

    diff = ArtifactStore.from_url(workspace.artifacts_url).get_bytes(r.diff_digest).decode()
    assert "v2, uncommitted" in diff
    env = r.environment
    assert env["python"]["version"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert "sqlalchemy" in {name.lower() for name in env["packages"]}
    assert env["cpu"]["cores_logical"] == os.cpu_count()
    assert isinstance(env["cpu"]["features"], list)


@pytest.mark.postgres
def test_sdk_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    config = Config(store_url=postgres_url, artifacts_url=str(tmp_path / "artifacts"))
    with gw.start_run(name="pg", params={"lr": 0.01}, config=config) as run:
        run.log_points("loss", [1.0 / (s + 1) for s in range(5000)])
        run.log({"acc": 0.9}, step=1)
        run.log({"acc": float("nan")}, step=0)
    (found,) = gw.runs(filter="params.lr = 0.01 and metrics.acc > 0.5", config=config)
    assert found.id == run.id and found.status == "finished"
    assert len(found.history("loss")) == 5000
    assert [p.step for p in found.history("acc")] == [0, 1]


def test_a_nested_run_can_point_at_a_parent_started_just_before(workspace: Config) -> None:
    """Issue #16: the parent's row is still buffered when the child starts (sweeps do this per trial)."""
    with gw.start_run(name="outer", config=workspace) as outer:
        with gw.start_run(name="inner", parent=outer, config=workspace) as inner:
            inner.log({"x": 1.0})
        with gw.start_run(name="by-name", parent="outer", config=workspace) as named:
            pass
    assert gw.get_run(inner.id, config=workspace).parent_id == outer.id
    assert gw.get_run(named.id, config=workspace).parent_id == outer.id
    assert [c.name for c in gw.get_run(outer.id, config=workspace).children()] == ["inner", "by-name"]


def test_a_diff_over_the_cap_leaves_a_note_on_the_run(
    workspace: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from groundwork.core import environment, tracking

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (repo / "big.py").write_text("x = 1\n")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "one"], cwd=repo, check=True)
    (repo / "big.py").write_text("x = 2\n" * 1000)
    monkeypatch.setattr(environment, "MAX_DIFF_BYTES", 1000)
    monkeypatch.chdir(repo)
    tracking._git_cache.clear()
    with gw.start_run(name="capped", config=workspace) as run:
        pass
    r = gw.get_run(run.id, config=workspace)
    assert r.git_dirty is True and r.diff_digest is None
    assert "not recorded" in r.tags["gw.code_note"] and "cap" in r.tags["gw.code_note"]


def test_a_name_means_the_users_run_before_a_pipeline_step_or_a_reproduction(workspace: Config) -> None:
    """Issue #16: ``compare baseline tuned`` after the demo found the pipeline's cached step."""
    with gw.start_run(name="baseline", config=workspace) as mine:
        pass
    with gw.start_run(name="pipe", kind="pipeline", config=workspace) as pipe:
        pipe.flush()
        with gw.start_run(name="baseline", kind="step", parent=pipe.id, config=workspace) as step:
            pass
    with gw.start_run(name="baseline", tags={"reproduces": mine.id}, config=workspace):
        pass
    assert gw.get_run("baseline", config=workspace).id == mine.id
    assert gw.get_run(step.id[:8], config=workspace).id == step.id  # an id prefix still wins

    with gw.start_run(name="train", kind="step", config=workspace) as train_step:
        pass
    with gw.start_run(name="train", kind="step", tags={"reproduces": train_step.id}, config=workspace):
        pass
    assert gw.get_run("train", config=workspace).id == train_step.id  # not its reproduction
