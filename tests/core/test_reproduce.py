"""Reproduce: rerun a recorded run from its commit, diff, inputs, params and seed, then compare."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core.execution import execute_command
from groundwork.core.reproduce import NotReproducible, environment_differences, reproduce
from groundwork.errors import RunNotFound

REPO_ROOT = Path(__file__).resolve().parents[2]

TRAIN = """
    import os
    import random
    from pathlib import Path

    import groundwork as gw

    scale = float(os.environ.get("GROUNDWORK_PARAM_SCALE", "1"))
    with gw.start_run(name="train") as run:
        gw.seed()
        data = [float(x) for x in Path("data/values.txt").read_text().split()]
        try:
            import gwfakepkg
            scale *= gwfakepkg.FACTOR
        except ImportError:
            pass
        value = sum(data) * scale + random.random()
        Path("out").mkdir(exist_ok=True)
        Path("out/model.txt").write_text(f"{value:.12f}\\n")
        run.log({"value": value})
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def commit_all(root: Path, message: str) -> None:
    """``git init`` (if needed), then commit every file of ``root``."""
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    git(root, "add", ".")
    git(root, "commit", "-qm", message)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))
    monkeypatch.setenv("GROUNDWORK_STORE", config.store_url)
    monkeypatch.setenv("GROUNDWORK_ARTIFACTS", config.artifacts_url)
    return config


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git project with a committed training script, then an uncommitted change to it."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "train.py").write_text(textwrap.dedent(TRAIN))
    (root / ".gitignore").write_text("out/\ndata/\n")
    commit_all(root, "train")
    # Uncommitted: the recorded diff must be applied for the rerun to match.
    (root / "train.py").write_text(textwrap.dedent(TRAIN).replace("sum(data) * scale", "sum(data) * scale * 10"))
    (root / "data" / "values.txt").write_text("1 2 3")
    monkeypatch.chdir(root)
    return root


def record(config: Config, **env: str) -> str:
    result = execute_command(
        [sys.executable, "train.py"], config=config, name="train", params={"scale": "2"},
        inputs=["data/values.txt"], outputs=["out/model.txt"], extra_env={"GROUNDWORK_SEED": "7", **env}, echo=False,
    )
    assert result.exit_code == 0
    return result.run_id


def worktrees(root: Path) -> list[str]:
    done = subprocess.run(["git", "worktree", "list"], cwd=root, check=True, capture_output=True, text=True)
    return done.stdout.splitlines()


def test_command_run_reproduces_exactly_from_commit_diff_inputs_params_and_seed(
    repo: Path, workspace: Config
) -> None:
    run_id = record(workspace)
    original = gw.get_run(run_id, config=workspace)
    assert original.tags["seed"] == "7" and original.git_dirty

    # The working copy moves on: another uncommitted edit and deleted outputs do not matter.
    (repo / "train.py").write_text("raise SystemExit('not this code')\n")
    shutil.rmtree(repo / "out")
    result = reproduce(run_id, config=workspace, echo=False)
    assert result.exact, result.to_dict()
    assert result.verdict() == "reproduced exactly: 1 output identical"
    assert [(o.name, o.same) for o in result.outputs] == [("out/model.txt", True)]
    assert result.inputs[0].source == "store" and not result.inputs[0].changed
    assert "recorded uncommitted changes (1 file)" in result.code
    rerun = gw.get_run(result.rerun_id or "", config=workspace)
    assert rerun.tags["reproduces"] == run_id
    assert rerun.metrics == original.metrics and rerun.params == original.params
    assert len(worktrees(repo)) == 1  # the temporary worktree is gone
    assert not (repo / "out").exists()  # the user's folder was not written


def test_changed_input_is_restored_from_the_store_or_named_with_current_inputs(
    repo: Path, workspace: Config
) -> None:
    run_id = record(workspace)
    (repo / "data" / "values.txt").write_text("1 2 4")
    assert reproduce(run_id, config=workspace, echo=False).exact

    changed = reproduce(run_id, config=workspace, current_inputs=True, echo=False)
    assert not changed.exact and not changed.ok
    (note,) = changed.inputs
    assert note.name == "data/values.txt" and note.changed and note.source == "working tree"
    assert [o.name for o in changed.outputs if not o.same] == ["out/model.txt"]
    (delta,) = changed.metrics
    assert delta.key == "value" and delta.delta == pytest.approx(2 * 10)
    assert changed.verdict() == "not reproduced: 1 of 1 outputs differ, 1 metric changed"
    assert reproduce(run_id, config=workspace, current_inputs=True, tolerance=25.0, echo=False).ok


def fake_package(root: Path, version: str, factor: int) -> Path:
    site = root / f"site-{version}"
    (site / f"gwfakepkg-{version}.dist-info").mkdir(parents=True)
    (site / f"gwfakepkg-{version}.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: gwfakepkg\nVersion: {version}\n"
    )
    (site / "gwfakepkg.py").write_text(f"FACTOR = {factor}\n")
    return site


def test_changed_package_is_named_with_the_output_it_changed(repo: Path, workspace: Config, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "groundwork"]
    env = {**os.environ, "PYTHONPATH": str(fake_package(tmp_path, "1.0", 1)), "GROUNDWORK_SEED": "3"}
    done = subprocess.run([*cli, "run", "--input", "data/values.txt", "--output", "out/model.txt", "--",
                           sys.executable, "train.py"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run_id = gw.runs(config=workspace, limit=1)[0].id

    env["PYTHONPATH"] = str(fake_package(tmp_path, "2.0", 3))
    done = subprocess.run([*cli, "reproduce", run_id, "--quiet"], env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not reproduced: 1 of 1 outputs differ" in done.stdout
    assert "package gwfakepkg: 1.0 -> 2.0" in done.stdout
    assert "out/model.txt" in done.stdout

    as_json = subprocess.run([*cli, "reproduce", run_id, "--json"], env=env, capture_output=True, text=True)
    report = json.loads(as_json.stdout)
    assert report["exact"] is False and report["ok"] is False
    assert {"what": "package", "name": "gwfakepkg", "recorded": "1.0", "reproduced": "2.0"} in report["environment"]


def test_environment_differences_cover_packages_python_and_cpu_features() -> None:
    before = {"python": {"version": "3.11.7"}, "packages": {"torch": "2.13.0", "old": "1"},
              "cpu": {"model": "A", "features": ["avx2", "amx_tile"]}, "os": {"system": "Linux"}}
    after = {"python": {"version": "3.12.1"}, "packages": {"torch": "2.13.1", "new": "2"},
             "cpu": {"model": "A", "features": ["avx2", "avx512f"]}, "os": {"system": "Linux"}}
    described = [d.describe() for d in environment_differences(before, after)]
    assert described == [
        "python version: 3.11.7 -> 3.12.1",
        "package new: (none) -> 2",
        "package old: 1 -> (none)",
        "package torch: 2.13.0 -> 2.13.1",
        "cpu feature amx_tile: present -> absent",
        "cpu feature avx512f: absent -> present",
    ]


def test_unknown_run_and_lost_commit_are_clear_errors(repo: Path, workspace: Config) -> None:
    with pytest.raises(RunNotFound):
        reproduce("no-such-run", config=workspace)
    run_id = record(workspace)
    shutil.rmtree(repo / ".git")
    git(repo, "init", "-q")
    with pytest.raises(NotReproducible, match="is not in the repository"):
        reproduce(run_id, config=workspace, echo=False)


# -- the digits pipeline: its training step reproduces bit for bit -------------------------------------------


@pytest.fixture
def digits_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "digits"
    root.mkdir()
    shutil.copy(REPO_ROOT / "src" / "groundwork" / "examples" / "digits" / "pipeline.py", root / "pipeline.py")
    commit_all(root, "digits")
    monkeypatch.chdir(root)
    return root


@pytest.mark.slow
def test_digits_training_step_reproduces_exactly_and_names_a_changed_package(
    digits_repo: Path, workspace: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    result = gw.run_pipeline(f"{digits_repo / 'pipeline.py'}:digits_pipeline", params={"epochs": 2, "hidden": 16},
                             config=workspace)
    train = result["train"]
    reproduced = reproduce(train.run_id or "", config=workspace, echo=False)
    assert reproduced.exact, reproduced.to_dict()
    assert reproduced.outputs[0].name == "output"
    assert {m.key for m in reproduced.metrics} == {"loss"}
    assert {i.source for i in reproduced.inputs} == {"store"}
    rerun = gw.get_run(reproduced.rerun_id or "", config=workspace)
    assert rerun.kind == "step" and rerun.tags["reproduces"] == train.run_id
    recorded = gw.get_run(train.run_id or "", config=workspace).history("loss")
    assert [(p.step, p.value) for p in rerun.history("loss")] == [(p.step, p.value) for p in recorded]

    # A different scikit-learn in the rerun's environment: still exact, and the change is named.
    site = tmp_path / "shadow"
    (site / "scikit_learn-9.9.9.dist-info").mkdir(parents=True)
    (site / "scikit_learn-9.9.9.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: scikit-learn\nVersion: 9.9.9\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    shadowed = reproduce(train.run_id or "", config=workspace, echo=False)
    assert shadowed.exact
    assert [d.describe() for d in shadowed.environment if d.name == "scikit-learn"] == [
        f"package scikit-learn: {gw.get_run(train.run_id or '', config=workspace).environment['packages']['scikit-learn']} -> 9.9.9"
    ]


FLOW = """
    import groundwork as gw


    @gw.step
    def numbers(n: int = 3) -> list:
        return list(range(n))


    @gw.step
    def total(values: list) -> int:
        gw.log({"total": sum(values)})
        return sum(values)


    @gw.pipeline
    def flow(n: int = 3):
        return total(numbers(n=n))
"""


def test_a_cached_step_reproduces_the_run_it_reused(tmp_path: Path, workspace: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "flow.py").write_text(textwrap.dedent(FLOW))
    commit_all(root, "flow")
    monkeypatch.chdir(root)
    first = gw.run_pipeline(f"{root / 'flow.py'}:flow", config=workspace, executor="inline")
    second = gw.run_pipeline(f"{root / 'flow.py'}:flow", config=workspace, executor="inline")
    result = reproduce(second["total"].run_id or "", config=workspace, echo=False)
    assert result.exact and result.original_id == first["total"].run_id
    assert any("reused run" in note for note in result.notes)

    whole = reproduce(first.run_id, config=workspace, echo=False)
    assert whole.exact, whole.to_dict()
    assert sorted(o.name for o in whole.outputs) == ["numbers.output", "total.output"]
    assert [m.key for m in whole.metrics] == ["total.total"]


# -- a name means the original run, and a reproduction that checked nothing never passes (issue #16) ----------

SUMIT = """
    from pathlib import Path

    total = sum(int(x) for x in Path("data/nums.txt").read_text().split())
    Path("out").mkdir(exist_ok=True)
    Path("out/sum.txt").write_text(f"{total}\\n")
"""


def test_reproducing_by_name_after_a_reproduction_checks_the_original_inputs(
    tmp_path: Path, workspace: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "sumit"
    (root / "data").mkdir(parents=True)
    (root / "sum.py").write_text(textwrap.dedent(SUMIT))
    (root / ".gitignore").write_text("out/\n")  # data/ is merely untracked
    commit_all(root, "sum")
    (root / "data" / "nums.txt").write_text("1 2 3\n")
    monkeypatch.chdir(root)
    cli = [sys.executable, "-m", "groundwork"]
    done = subprocess.run([*cli, "run", "--name", "sumit", "--input", "data/nums.txt", "--output", "out/sum.txt",
                           "--", sys.executable, "sum.py"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    first = subprocess.run([*cli, "reproduce", "sumit", "--quiet"], capture_output=True, text=True)
    assert first.returncode == 0 and "reproduced exactly" in first.stdout, first.stdout + first.stderr

    (root / "data" / "nums.txt").write_text("1 2 4\n")
    again = subprocess.run([*cli, "reproduce", "sumit", "--current-inputs", "--quiet"], capture_output=True, text=True)
    assert again.returncode == 1, again.stdout
    assert "not reproduced" in again.stdout and "data/nums.txt: recorded" in again.stdout


def test_current_inputs_never_passes_for_a_run_that_recorded_no_inputs(repo: Path, workspace: Config) -> None:
    result = execute_command([sys.executable, "-c", "open('seen.txt', 'w').write('x')"], config=workspace,
                             name="noinputs", outputs=["seen.txt"], echo=False)
    plain = reproduce(result.run_id, config=workspace, echo=False)
    assert plain.exact and plain.ok
    checked = reproduce(result.run_id, config=workspace, current_inputs=True, echo=False)
    assert checked.outputs_equal and not checked.exact and not checked.ok
    assert checked.verdict().startswith("not reproduced: run") and "recorded no inputs" in checked.verdict()
    assert not reproduce(result.run_id, config=workspace, current_inputs=True, tolerance=1.0, echo=False).ok


def test_a_step_reproduces_again_by_name_and_its_reproduction_by_id(
    tmp_path: Path, workspace: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "flow.py").write_text(textwrap.dedent(FLOW))
    commit_all(root, "flow")
    monkeypatch.chdir(root)
    ran = gw.run_pipeline(f"{root / 'flow.py'}:flow", config=workspace, executor="inline")
    once = reproduce("total", config=workspace, echo=False)
    twice = reproduce("total", config=workspace, echo=False)  # the step again, not its reproduction
    assert once.exact and twice.exact, twice.to_dict()
    assert once.original_id == twice.original_id == ran["total"].run_id
    of_the_copy = reproduce(once.rerun_id or "", config=workspace, echo=False)
    assert of_the_copy.exact and of_the_copy.original_id == once.rerun_id


def test_a_step_reproduces_outside_a_git_checkout_from_another_folder(
    tmp_path: Path, workspace: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "nogit"
    (project / "examples" / "flows").mkdir(parents=True)
    (project / "examples" / "flows" / "flow.py").write_text(textwrap.dedent(FLOW))
    monkeypatch.chdir(project)
    done = subprocess.run([sys.executable, "-m", "groundwork", "pipeline", "run", "examples/flows/flow.py:flow"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*") if "__pycache__" not in p.parts)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = reproduce("total", config=workspace, echo=False)
    assert result.exact, result.to_dict()
    assert "a copy of the files in" in result.code
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if "__pycache__" not in p.parts) == before


def test_no_digits_step_takes_a_name_the_docs_give_a_users_run() -> None:
    import ast

    tree = ast.parse((REPO_ROOT / "src" / "groundwork" / "examples" / "digits" / "pipeline.py").read_text())
    steps = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
             and any("step" in ast.unparse(d) for d in node.decorator_list)}
    assert "train_baseline" in steps
    assert not steps & {"baseline", "tuned", "digits-mlp"}
