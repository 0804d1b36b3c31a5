"""``groundwork reproduce`` never writes outside its workspace, and never into the user's own folder.

Hostile records (a run written to a shared store by someone else, or by an older
groundwork) name inputs with ``..``, absolute paths, or paths through symlinks; each
is refused with one clear line and nothing outside the workspace changes. Honest
records get a workspace that offers what the original run could see: the parent
folders of its outputs, its inputs, and the folders git does not carry.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core.execution import execute_command
from groundwork.core.reproduce import NotReproducible, reproduce
from groundwork.errors import InvalidInput
from groundwork.storage.stores import open_stores


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def cli(*args: str, cwd: Path, config: Config) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "groundwork", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **config.child_environ()}, timeout=300)


def make_repo(root: Path, files: dict[str, str], ignore: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    if ignore:
        (root / ".gitignore").write_text(ignore)
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    git(root, "add", ".")
    git(root, "commit", "-qm", "code")
    return root


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder of the user's that no reproduction may touch."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious\n")
    return folder


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    """What a hostile record would restore."""
    folder = tmp_path / "payload"
    folder.mkdir()
    (folder / "owned.txt").write_text("owned\n")
    return folder


def intact(folder: Path) -> bool:
    return sorted(p.name for p in folder.iterdir()) == ["keep.txt"] and (folder / "keep.txt").read_text() == "precious\n"


def add_input_link(config: Config, run_id: str, name: str, payload: Path) -> None:
    """What a hostile (or older) groundwork could have written to a shared store."""
    info = open_stores(config).artifacts.put_path(payload)
    open_stores(config).metadata.add_artifact_link(run_id, "input", name, digest=info.digest, size=info.size,
                                                 is_dir=info.is_dir, file_count=info.file_count, kind="dataset")


@pytest.fixture
def recorded(tmp_path: Path, workspace: Config, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A git project and a finished run of it that reads nothing."""
    project = make_repo(tmp_path / "proj", {"job.py": "print('hello')\n"})
    monkeypatch.chdir(project)
    result = execute_command([sys.executable, "job.py"], config=workspace, name="job", echo=False)
    assert result.exit_code == 0
    return project, result.run_id


# -- recording: names are normalised --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../../../victim", "/etc/victim", "a/../../victim", ".", ""])
def test_an_input_name_that_leaves_the_run_folder_is_refused_when_recorded(
    workspace: Config, tmp_path: Path, name: str
) -> None:
    (tmp_path / "indir").mkdir()
    with gw.start_run(name="r", config=workspace) as run, pytest.raises(InvalidInput, match="relative path inside"):
        run.log_input("indir", name=name)
    assert gw.get_run(run.id, config=workspace).inputs == []


def test_an_input_outside_the_project_is_recorded_by_its_absolute_path(
    tmp_path: Path, workspace: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("1\n")
    project = make_repo(tmp_path / "work" / "proj", {"job.py": "print(open('../../data/x.txt').read())\n"})
    monkeypatch.chdir(project)
    done = cli("run", "--name", "outside", "--input", "../../data", "--", sys.executable, "job.py",
               cwd=project, config=workspace)
    assert done.returncode == 0, done.stderr
    (link,) = gw.get_run("outside", config=workspace).inputs
    assert link.name == str(data.resolve())  # not "../../data", which a rerun would join to its workspace

    (data / "x.txt").write_text("2\n")
    result = reproduce("outside", config=workspace, echo=False)
    (note,) = result.inputs
    assert note.source == "external" and note.changed  # read where it is, never restored over
    assert (data / "x.txt").read_text() == "2\n"


# -- reproducing hostile records ------------------------------------------------------------------------------


def test_a_recorded_traversal_name_is_refused_and_the_target_survives(
    recorded: tuple[Path, str], workspace: Config, victim: Path, payload: Path
) -> None:
    project, run_id = recorded
    # Enough '..' to climb out of any temporary folder, then down to the victim.
    add_input_link(workspace, run_id, "../" * 40 + str(victim).lstrip("/"), payload)

    with pytest.raises(NotReproducible, match="outside the rerun workspace"):
        reproduce(run_id, config=workspace, echo=False)
    assert intact(victim)

    done = cli("reproduce", run_id, cwd=project, config=workspace)
    assert done.returncode == 1
    assert done.stderr.count("Error:") == 1 and "outside the rerun workspace" in done.stderr
    assert "Traceback" not in done.stderr
    assert intact(victim)


def test_a_path_through_a_committed_symlink_is_refused(
    workspace: Config, victim: Path, payload: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "linked"
    project.mkdir()
    (project / "data").symlink_to(victim, target_is_directory=True)  # committed: every checkout has it
    make_repo(project, {"job.py": "print('hi')\n"})
    monkeypatch.chdir(project)
    run_id = execute_command([sys.executable, "job.py"], config=workspace, name="linked", echo=False).run_id
    add_input_link(workspace, run_id, "data/owned.txt", payload / "owned.txt")

    with pytest.raises(NotReproducible, match="outside the rerun workspace"):
        reproduce(run_id, config=workspace, echo=False)
    assert intact(victim)


def test_an_absolute_input_outside_the_project_is_read_never_restored(
    recorded: tuple[Path, str], workspace: Config, victim: Path, payload: Path
) -> None:
    _, run_id = recorded
    add_input_link(workspace, run_id, str(victim), payload)
    result = reproduce(run_id, config=workspace, echo=False)
    (note,) = result.inputs
    assert note.source == "external" and note.changed
    assert intact(victim)


# -- the user's own folder ------------------------------------------------------------------------------------


def test_without_git_the_rerun_uses_a_copy_and_the_users_folder_is_untouched(workspace: Config, tmp_path: Path) -> None:
    """The reproduction of issue #9, item 2, as typed."""
    folder = tmp_path / "nogit"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "a.txt").write_text("v1\n")
    done = cli("run", "--name", "nogit", "--input", "data", "--output", "seen.txt", "--",
               "sh", "-c", "cat data/a.txt > seen.txt", cwd=folder, config=workspace)
    assert done.returncode == 0, done.stderr
    (folder / "data" / "a.txt").write_text("v2\n")
    (folder / "data" / "b.txt").write_text("unsaved\n")
    (folder / "seen.txt").unlink()

    done = cli("reproduce", "nogit", cwd=folder, config=workspace)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reproduced exactly: 1 output identical" in done.stdout  # the recorded v1, restored in the copy
    assert "a copy of the files in" in done.stdout
    assert (folder / "data" / "a.txt").read_text() == "v2\n"
    assert (folder / "data" / "b.txt").read_text() == "unsaved\n"
    assert not (folder / "seen.txt").exists()


# -- a workspace that offers what the original run could see -------------------------------------------------

JOB = """
    import json
    from pathlib import Path

    total = sum(int(x) for x in Path("data/input.txt").read_text().split())
    Path("out/model.pkl").write_text(str(total))          # out/ is ignored: empty in a fresh checkout
    Path("results/a/b/metrics.json").write_text(json.dumps({"total": total}))  # nested two deep, ignored
    Path("logs/run.log").write_text("done")               # an empty untracked folder
    print(json.dumps({"total": total}))
"""


def test_ignored_and_untracked_folders_and_inputs_are_there_for_the_rerun(
    tmp_path: Path, workspace: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_repo(tmp_path / "proj", {"job.py": JOB}, ignore="out/\nresults/\n")
    for folder in ("out", "results/a/b", "logs", "data"):
        (project / folder).mkdir(parents=True)
    (project / "data" / "input.txt").write_text("1 2 3\n")  # untracked, not ignored
    monkeypatch.chdir(project)
    first = execute_command([sys.executable, "job.py"], config=workspace, name="layout", inputs=["data/input.txt"],
                            outputs=["out/model.pkl", "results/a/b/metrics.json"], echo=False)
    assert first.exit_code == 0

    result = reproduce(first.run_id, config=workspace, echo=False)
    assert result.exact, result.to_dict()
    assert gw.get_run(first.run_id, config=workspace).diff_digest is None  # data/ is not code
    assert [o.name for o in result.outputs] == ["out/model.pkl", "results/a/b/metrics.json"]
    assert [(i.name, i.source) for i in result.inputs] == [("data/input.txt", "store")]
    rerun = gw.get_run(result.rerun_id or "", config=workspace)
    assert [i.name for i in rerun.inputs] == ["data/input.txt"]  # a reproduction records what it read


# -- pipeline steps: a file argument outside the project ------------------------------------------------------

READER = """
    import groundwork as gw


    @gw.step
    def count(path: gw.File) -> int:
        return len(open(path).read().split())


    @gw.pipeline
    def reader(data: str = ""):
        return count(gw.File(data))
"""


def test_a_step_file_outside_the_project_is_restored_beside_the_workspace_not_over_the_users_file(
    tmp_path: Path, workspace: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "shared" / "words.txt"
    data.parent.mkdir()
    data.write_text("one two three\n")
    project = make_repo(tmp_path / "proj", {"reader.py": READER})
    monkeypatch.chdir(project)
    ran = gw.run_pipeline(f"{project / 'reader.py'}:reader", params={"data": str(data)}, config=workspace,
                          executor="inline")
    data.write_text("the user edited this file since\n")

    result = reproduce(ran["count"].run_id or "", config=workspace, echo=False)
    assert result.exact, result.to_dict()  # the recorded bytes, from the store
    assert [(i.source, i.changed) for i in result.inputs] == [("store", False)]
    assert data.read_text() == "the user edited this file since\n"

    current = reproduce(ran["count"].run_id or "", config=workspace, current_inputs=True, echo=False)
    assert [(i.source, i.changed) for i in current.inputs] == [("external", True)]
    assert not current.ok and data.read_text() == "the user edited this file since\n"


def test_the_copy_without_git_leaves_out_groundworks_own_store(tmp_path: Path) -> None:
    from groundwork.core.reproduce.checkout import _copy_folder

    folder = tmp_path / "folder"
    (folder / "store" / "ab").mkdir(parents=True)
    (folder / "store" / "ab" / "blob").write_text("artifact\n")
    (folder / "meta.db").write_text("sqlite\n")
    (folder / "meta.db-wal").write_text("wal\n")
    (folder / ".groundwork").mkdir()
    (folder / "train.py").write_text("print(1)\n")
    config = Config(store_url=f"sqlite:///{folder / 'meta.db'}", artifacts_url=str(folder / "store"))
    _copy_folder(folder, tmp_path / "copy", config)
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["train.py"]
