"""Environment capture: git state of a real repository, CPU features, caching, digests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata as importlib_metadata
from pathlib import Path

import pytest

from groundwork.core import environment
from groundwork.core.environment import (
    CPU_FEATURES,
    capture_environment,
    cpu_features,
    environment_digest,
    git_state,
    parse_cpuinfo,
    parse_nvidia_smi,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def tree_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("lr = 0.1\nprint(lr)\n")
    (root / "data").mkdir()
    (root / "data" / "keep.txt").write_text("unchanged\n")
    (root / "gone.txt").write_text("to be deleted\n")
    (root / "blob.bin").write_bytes(bytes(range(256)))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


@needs_git
def test_clean_repo(repo: Path) -> None:
    state = git_state(repo)
    assert state.commit == git(repo, "rev-parse", "HEAD")
    assert state.branch == "main"
    assert state.dirty is False
    assert state.diff == b""
    assert state.root == str(repo.resolve())


@needs_git
def test_dirty_repo_diff_reproduces_the_tree(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_text("lr = 0.01\nprint(lr)\n")  # unstaged change
    (repo / "gone.txt").unlink()  # deletion
    (repo / "blob.bin").write_bytes(bytes(reversed(range(256))))  # binary change
    (repo / "staged.py").write_text("staged = True\n")
    git(repo, "add", "staged.py")  # staged new file
    (repo / "notes.md").write_text("# untracked notes\n")  # untracked text file
    (repo / "data" / "new file [1].txt").write_text("odd name\n")  # untracked, in a subdirectory
    (repo / "weights.bin").write_bytes(b"\0\1\2" * 100)  # untracked binary: left out
    index_before = (repo / ".git" / "index").read_bytes()

    state = git_state(repo / "data")  # from a subdirectory: the whole repository counts

    assert state.commit == git(repo, "rev-parse", "HEAD")
    assert state.branch == "main"
    assert state.dirty is True
    assert b"lr = 0.01" in state.diff
    assert b"notes.md" in state.diff and b"# untracked notes" in state.diff
    assert b"new file [1].txt" in state.diff
    assert b"staged = True" in state.diff
    assert b"GIT binary patch" in state.diff
    assert state.skipped == ("weights.bin",)
    # the user's index is untouched: notes.md is still untracked, nothing was refreshed
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert "?? notes.md" in git(repo, "status", "--porcelain")

    # groundwork reproduce: a clean worktree of that commit plus the diff is the same tree
    clone = tmp_path / "clone"
    git(repo, "worktree", "add", "-q", "--detach", str(clone), state.commit or "")
    patch = tmp_path / "code.diff"
    patch.write_bytes(state.diff)
    git(clone, "apply", "--binary", str(patch))
    expected = tree_files(repo)
    del expected["weights.bin"]
    assert tree_files(clone) == expected


@needs_git
def test_only_untracked_files(repo: Path) -> None:
    (repo / "extra.txt").write_text("hello\n")
    state = git_state(repo)
    assert state.dirty is True
    assert b"new file mode" in state.diff and b"+hello" in state.diff


@needs_git
def test_large_untracked_file_is_skipped(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "MAX_UNTRACKED_FILE_BYTES", 10)
    (repo / "big.csv").write_text("a,b\n" * 10)
    state = git_state(repo)
    assert state.dirty is True
    assert state.diff == b""
    assert state.skipped == ("big.csv",)


@needs_git
def test_untracked_file_count_is_capped(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "MAX_UNTRACKED_FILES", 2)
    for name in ("a.txt", "b*.txt", "c.txt"):  # '*' is taken literally, not as a glob
        (repo / name).write_text(f"{name}\n")
    state = git_state(repo)
    assert b"+a.txt" in state.diff and b"+b*.txt" in state.diff
    assert state.skipped == ("c.txt",)


@needs_git
def test_files_under_untracked_or_ignored_folders_never_enter_the_diff(repo: Path) -> None:
    (repo / ".gitignore").write_text("cache/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore")
    (repo / "out" / "nested").mkdir(parents=True)  # an untracked folder, as an earlier run left it
    (repo / "out" / "model.txt").write_text("weights of an earlier run\n")
    (repo / "out" / "nested" / "log.txt").write_text("epoch 1\n")
    (repo / "cache").mkdir()
    (repo / "cache" / "x.txt").write_text("ignored\n")
    (repo / "data" / "new.txt").write_text("in a tracked folder\n")  # untracked file, tracked folder: code
    state = git_state(repo)
    assert state.dirty
    assert b"earlier run" not in state.diff and b"epoch 1" not in state.diff and b"ignored" not in state.diff
    assert b"+in a tracked folder" in state.diff
    assert state.skipped == ("out/",)
    assert state.note is None


@needs_git
def test_a_diff_over_the_cap_is_dropped_with_a_note(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "MAX_DIFF_BYTES", 200)
    (repo / "train.py").write_text("lr = 0.5\n" * 100)
    state = git_state(repo)
    assert state.dirty and state.diff == b""
    assert state.note is not None and "not recorded" in state.note and "cap" in state.note

    (repo / "train.py").write_text("lr = 0.5\nprint(lr)\n")  # a small change stays under it
    small = git_state(repo)
    assert b"lr = 0.5" in small.diff and small.note is None


@needs_git
def test_detached_head_and_repo_without_commits(repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    state = git_state(repo)
    assert state.branch is None and state.commit is not None

    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "trunk")
    (empty / "a.txt").write_text("first\n")
    state = git_state(empty)
    assert state.commit is None
    assert state.branch == "trunk"
    assert state.dirty is True
    assert b"+first" in state.diff


def test_not_a_repository(tmp_path: Path) -> None:
    assert git_state(tmp_path) == environment.GitState(None, None, False, b"", None)
    assert git_state(tmp_path / "does-not-exist").commit is None


def test_git_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "_git_executable", lambda: None)
    assert git_state(tmp_path).root is None


@needs_git
def test_git_state_is_repeatable(repo: Path) -> None:
    # How fast this is gets measured in benchmarks/tracking.py (start time), not here.
    (repo / "train.py").write_text("changed\n")
    (repo / "extra.txt").write_text("hello\n")
    first = git_state(repo)
    assert first.dirty and b"extra.txt" in first.diff
    assert all(git_state(repo) == first for _ in range(3))


# -- CPU ---------------------------------------------------------------------------------------------


def test_parse_cpuinfo() -> None:
    text = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 amx_tile sse4_2\n\nprocessor\t: 1\n"
    assert parse_cpuinfo(text) == ("Test CPU", frozenset({"fpu", "avx2", "amx_tile", "sse4_2"}))
    assert parse_cpuinfo("") == (None, frozenset())


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux /proc/cpuinfo")
def test_cpu_features_match_proc_cpuinfo() -> None:
    text = Path("/proc/cpuinfo").read_text()
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    expected = [f for f in CPU_FEATURES if f in flags]
    assert cpu_features() == expected
    assert capture_environment()["cpu"]["features"] == expected
    if "avx512f" in flags:  # the feature names are /proc/cpuinfo's, not translated
        assert "avx512f" in cpu_features()


def test_cpu_features_fall_back_gracefully(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    environment._cpu_identity.cache_clear()
    environment._cpu_features.cache_clear()
    try:
        assert environment.cpu_features() == []
    finally:
        monkeypatch.undo()
        environment._cpu_identity.cache_clear()
        environment._cpu_features.cache_clear()


# -- the whole environment ---------------------------------------------------------------------------


def test_capture_environment_shape() -> None:
    env = capture_environment()
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["python"]["executable"] == sys.executable
    lowered = {name.lower(): version for name, version in env["packages"].items()}
    assert "sqlalchemy" in lowered and "psutil" in lowered
    assert list(env["packages"]) == sorted(env["packages"], key=str.lower)
    assert env["os"]["system"] and env["os"]["platform"]
    assert env["cpu"]["cores_logical"] == os.cpu_count()
    assert env["memory_bytes"] > 0
    assert isinstance(env["gpus"], list)
    assert env["cwd"] == os.getcwd()
    assert env["argv"] == sys.argv
    json.dumps(env)  # JSON-able
    assert "packages" not in capture_environment(include_packages=False)


def test_cwd_and_argv_are_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    capture_environment()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "--lr", "0.1"])
    env = capture_environment()
    assert env["cwd"] == str(tmp_path)
    assert env["argv"] == ["train.py", "--lr", "0.1"]


def test_returned_dicts_do_not_share_the_cache() -> None:
    env = capture_environment()
    env["packages"]["fake"] = "1"
    env["cpu"]["features"].append("fake")
    env["python"]["version"] = "0"
    again = capture_environment()
    assert "fake" not in again["packages"]
    assert "fake" not in again["cpu"]["features"]
    assert again["python"]["version"] != "0"


def test_repeated_captures_give_the_same_digest() -> None:
    # The cost of a capture is measured in benchmarks/tracking.py (start time), not here.
    digests = {environment_digest(capture_environment()) for _ in range(5)}
    assert len(digests) == 1


def test_torch_is_never_imported() -> None:
    code = "import sys; from groundwork.core.environment import capture_environment as c; c(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_parse_nvidia_smi() -> None:
    text = "0, NVIDIA H100 80GB HBM3, 81559, 550.54.15, GPU-abc, 9.0\n1, NVIDIA H100 80GB HBM3, 81559, 550.54.15, GPU-def, 9.0\n"
    gpus = parse_nvidia_smi(text)
    assert [g["index"] for g in gpus] == [0, 1]
    assert gpus[0]["name"] == "NVIDIA H100 80GB HBM3"
    assert gpus[0]["memory_bytes"] == 81559 * 1024 * 1024
    assert gpus[0]["capability"] == "9.0" and gpus[0]["source"] == "nvidia-smi"
    assert parse_nvidia_smi("No devices were found\n") == []


# -- digests -----------------------------------------------------------------------------------------


def test_digest_is_stable_for_equal_dicts() -> None:
    a = {
        "python": {"version": "3.11", "implementation": "CPython"},
        "packages": {"b": "1", "a": "2"},
        "x": [1, 2.5],
    }
    b = {
        "x": [1, 2.5],
        "packages": {"a": "2", "b": "1"},
        "python": {"implementation": "CPython", "version": "3.11"},
    }
    assert environment_digest(a) == environment_digest(b)
    assert len(environment_digest(a)) == 64
    assert environment_digest(a) != environment_digest({**a, "x": [2.5, 1]})
    env = capture_environment()
    assert environment_digest(env) == environment_digest(json.loads(json.dumps(env)))
    assert environment_digest({"big": 2**70}) == environment_digest({"big": 2**70})


# -- installed distributions, cached between processes -----------------------------------------------


@pytest.fixture
def packages_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GROUNDWORK_CACHE_DIR", str(cache))
    environment._packages.cache_clear()
    yield cache
    environment._packages.cache_clear()


def test_packages_are_read_from_the_metadata_headers_as_the_email_parser_reads_them() -> None:
    expected: dict[str, str] = {}
    for dist in importlib_metadata.distributions():
        name = dist.metadata["Name"]
        if name and name not in expected:
            expected[name] = dist.version
    assert dict(environment._scan_packages()) == expected


def test_packages_are_cached_until_a_folder_on_sys_path_changes(
    packages_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    os.utime(site, ns=(0, 0))  # so that the install below surely changes the folder's time
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    environment._packages()
    [cached] = packages_cache.glob("packages-*.json")
    # The next process reads the file instead of the metadata: prove it with an entry only the file has.
    data = json.loads(cached.read_text())
    data["packages"].append(["zz-only-in-the-cache", "1.0"])
    cached.write_text(json.dumps(data))
    environment._packages.cache_clear()
    assert ("zz-only-in-the-cache", "1.0") in environment._packages()

    # Installing a distribution into a folder on sys.path changes that folder: the cache is not used.
    dist_info = site / "fresh_pkg-2.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fresh-pkg\nVersion: 2.0\n\nA description.\nName: not-the-name\n"
    )
    environment._packages.cache_clear()
    packages = dict(environment._packages())
    assert packages["fresh-pkg"] == "2.0"
    assert "zz-only-in-the-cache" not in packages
    assert ["fresh-pkg", "2.0"] in json.loads(cached.read_text())["packages"]  # and the cache is renewed


def test_a_damaged_cache_is_ignored_and_rewritten(packages_cache: Path) -> None:
    expected = environment._packages()
    [cached] = packages_cache.glob("packages-*.json")
    cached.write_bytes(b'{"version": 1, "packages": [')
    environment._packages.cache_clear()
    assert environment._packages() == expected
    assert json.loads(cached.read_text())["packages"] == [list(p) for p in expected]
    assert not list(packages_cache.glob(".packages-*"))  # no temporary file left behind


def test_an_unusable_cache_folder_only_costs_the_cache(packages_cache: Path) -> None:
    packages_cache.parent.mkdir(exist_ok=True)
    packages_cache.write_text("a file where the cache folder should be")
    packages = dict(environment._packages())
    assert "psutil" in {name.lower() for name in packages}
    assert packages_cache.read_text() == "a file where the cache folder should be"


def test_the_scripts_own_folder_is_not_part_of_the_cache_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "train.py"
    script.write_text("")
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[1:]])
    before = environment._packages_key()
    (tmp_path / "outputs.csv").write_text("a program writing next to itself\n")
    os.utime(tmp_path, ns=(1, 1))
    assert environment._packages_key() == before
