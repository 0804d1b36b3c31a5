"""The rerun workspace: the recorded code in a temporary folder, never the user's own.

* A run with a git commit: ``git worktree add`` of the commit in a temporary folder,
  then ``git apply`` of the recorded uncommitted diff. Folders git does not carry
  (ignored or untracked, such as ``out/``) are recreated empty from the repository
  the commit was found in, so a script that writes into them finds them.
* A run without one (not in a git checkout): a temporary copy of the folder it ran in
  (without groundwork's own store), or a refusal when that folder is too big to copy.

Every path the rerun restores into goes through :meth:`Checkout.target`, which refuses
anything that would land outside the workspace (``..``, absolute paths, symlinks).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from groundwork.config import Config
from groundwork.errors import ArtifactNotFound, ExecutionError
from groundwork.storage.records import RunRow

_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}

#: A folder without git is copied for the rerun only up to this size and file count.
MAX_COPY_BYTES = 1 << 30
MAX_COPY_FILES = 50_000
#: At most this many ignored or untracked folders are recreated in a worktree.
MAX_FOLDERS = 2_000
#: Folders that are tools' own, never part of what a run reads or writes: not copied, not recreated.
_TOOL_FOLDERS = frozenset({
    ".git", ".groundwork", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".tox", ".nox", ".ipynb_checkpoints", ".hg", ".svn",
})


class NotReproducible(ExecutionError):
    """The recorded run cannot be rerun (its commit is gone, its diff does not apply...)."""

    headline = "Cannot reproduce"


def within(path: Path, base: Path) -> bool:
    """Whether ``path``, with every symlink and ``..`` resolved, is ``base`` or inside it."""
    real, top = Path(os.path.realpath(path)), Path(os.path.realpath(base))
    return real == top or top in real.parents


@dataclass
class Checkout:
    """The recorded code, ready to run.

    ``root`` is the workspace (a worktree, or a copy), ``cwd`` the run's folder inside it,
    ``original_root`` the folder the workspace stands for (the repository, or the copied
    folder), ``scratch`` a private folder beside it (inputs recorded outside the project).
    """

    root: Path
    cwd: Path
    original_root: Path | None
    description: str
    scratch: Path | None = None
    notes: list[str] = field(default_factory=list)

    def translate(self, path: str) -> str:
        """An absolute path under the original folder, moved into the workspace (others unchanged)."""
        if self.original_root is None or not os.path.isabs(path):
            return path
        try:
            rel = Path(os.path.normpath(path)).relative_to(self.original_root)
        except ValueError:
            return path
        return str(self.root / rel)

    def target(self, name: str, what: str = "input") -> Path:
        """Where the recorded ``name`` goes in the workspace: refused unless it stays inside it."""
        if "\0" in name or not name.strip():
            raise NotReproducible(f"refusing to restore {what} {name!r}: not a usable path")
        dest = Path(self.translate(name)) if os.path.isabs(name) else self.cwd / name
        return self.check(dest, f"{what} {name!r}")

    def check(self, dest: Path, what: str) -> Path:
        """``dest`` if it stays inside the workspace (or the scratch folder), else a one-line refusal."""
        real = Path(os.path.realpath(dest))
        if real in (Path(os.path.realpath(self.root)), Path(os.path.realpath(self.cwd))):
            raise NotReproducible(f"refusing to restore {what}: it would replace the whole rerun workspace")
        if not (within(dest, self.root) or (self.scratch is not None and within(dest, self.scratch))):
            raise NotReproducible(
                f"refusing to restore {what}: it would land outside the rerun workspace {self.root}",
                hint="the run's record names a path outside its project; reproduce never writes there",
            )
        return dest


# -- git ------------------------------------------------------------------------------------------------------


def _git(args: Sequence[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise NotReproducible("git is not installed", hint="install git to reproduce runs")
    done = subprocess.run([git, *args], cwd=cwd, env={**os.environ, **_GIT_ENV}, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise NotReproducible(f"git {args[0]} failed: {detail[-1] if detail else done.returncode}")
    return done


def _repository_with(commit: str, candidates: Sequence[Path]) -> Path | None:
    for candidate in candidates:
        if not candidate.is_dir():
            continue
        top = _git(["rev-parse", "--show-toplevel"], candidate, check=False)
        if top.returncode != 0:
            continue
        root = Path(top.stdout.strip())
        if _git(["cat-file", "-e", f"{commit}^{{commit}}"], root, check=False).returncode == 0:
            return root
    return None


def _recreate_folders(repository: Path, tree: Path) -> int:
    """Make the ignored and untracked folders of ``repository`` (empty) in ``tree``; how many were made."""
    listed = _git(["ls-files", "--others", "--directory", "-z", "--exclude-standard"], repository, check=False)
    ignored = _git(["ls-files", "--others", "--ignored", "--directory", "-z", "--exclude-standard"], repository,
                   check=False)
    tops = {entry.rstrip("/") for done in (listed, ignored) if done.returncode == 0
            for entry in done.stdout.split("\0") if entry.endswith("/")}
    made = 0
    for rel in sorted(tops):
        if made >= MAX_FOLDERS:
            break
        parts = Path(rel).parts
        if not parts or ".." in parts or any(p in _TOOL_FOLDERS or p.endswith(".egg-info") for p in parts):
            continue
        for folder, subfolders, _files in os.walk(repository / rel):
            subfolders[:] = sorted(s for s in subfolders if s not in _TOOL_FOLDERS and not s.endswith(".egg-info")
                                   and not Path(folder, s).is_symlink())
            dest = tree / Path(folder).relative_to(repository)
            if not within(dest, tree):
                continue
            dest.mkdir(parents=True, exist_ok=True)
            made += 1
            if made >= MAX_FOLDERS:
                break
    return made


# -- without git: a copy ----------------------------------------------------------------------------------------


def _store_paths(config: Config) -> set[Path]:
    """groundwork's own local store files and artifact folder (never copied)."""
    paths: set[Path] = set()
    if config.store_url.startswith("sqlite:///"):
        path = config.store_url[len("sqlite:///"):].partition("?")[0]
        if path and path != ":memory:":
            paths.update(Path(os.path.realpath(path + suffix)) for suffix in ("", "-wal", "-shm", "-journal"))
    if "://" not in config.artifacts_url:
        paths.add(Path(os.path.realpath(config.artifacts_url)))
    return paths


def _copy_folder(source: Path, dest: Path, config: Config) -> None:
    """Copy ``source`` to ``dest`` (symlinks as symlinks), without tools' folders; refuse a huge one."""
    skip = _store_paths(config)
    total = files = 0

    def ignore(folder: str, names: list[str]) -> set[str]:
        nonlocal total, files
        left_out = set()
        for name in names:
            path = Path(folder, name)
            if name in _TOOL_FOLDERS or Path(os.path.realpath(path)) in skip:
                left_out.add(name)
            elif path.is_file() and not path.is_symlink():
                files += 1
                total += path.stat().st_size
        if total > MAX_COPY_BYTES or files > MAX_COPY_FILES:
            raise NotReproducible(
                f"the run recorded no git commit, and its folder {source} is too big to copy for the rerun "
                f"(more than {MAX_COPY_BYTES >> 20} MiB or {MAX_COPY_FILES} files)",
                hint="reproduce never reruns in your own folder: commit the code to git, or log big data as inputs",
            )
        return left_out

    try:
        shutil.copytree(source, dest, symlinks=True, ignore=ignore)
    except shutil.Error as error:
        raise NotReproducible(f"cannot copy {source} for the rerun: {error.args[0][0][2]}") from None
    except OSError as error:
        raise NotReproducible(f"cannot copy {source} for the rerun: {error.strerror or error}") from None


def _copy_source(recorded_cwd: Path, repository: str | None) -> tuple[Path, Path]:
    """The folder to copy and the run's folder within it: the larger of the project and the cwd."""
    project = Path(os.path.realpath(repository)) if repository and Path(repository).is_dir() else None
    cwd = Path(os.path.realpath(recorded_cwd)) if recorded_cwd.is_dir() else None
    if project is None and cwd is None:
        raise NotReproducible(
            f"the run recorded no git commit and its folder {recorded_cwd} no longer exists",
            hint="reproduce reruns the files as they are now: they must still be there",
        )
    if project is None:
        assert cwd is not None
        return cwd, cwd
    if cwd is not None and within(project, cwd):
        return cwd, cwd
    return project, cwd if cwd is not None and within(cwd, project) else project


# -- the entry point ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def checkout(row: RunRow, config: Config, *, keep: bool = False, repository: str | None = None) -> Iterator[Checkout]:
    """A temporary workspace with the run's recorded code (see the module docstring).

    ``repository`` is where the code was (a step's project root), tried before the run's cwd.
    """
    recorded_cwd = Path(row.cwd) if row.cwd else Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix="gw-reproduce-"))
    try:
        if not row.git_commit:
            source, cwd = _copy_source(recorded_cwd, repository)
            tree = scratch / (source.name or "workspace")
            _copy_folder(source, tree, config)
            (scratch / "inputs").mkdir()
            code = Checkout(
                tree, tree / cwd.relative_to(source), source.resolve(),
                f"no git commit was recorded: a copy of the files in {source} as they are now"
                + (f", in {tree}" if keep else ""),
                scratch=scratch / "inputs",
            )
            yield code
            return
        yield from _worktree(row, config, recorded_cwd, repository, scratch, keep)
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _worktree(
    row: RunRow, config: Config, recorded_cwd: Path, repository: str | None, scratch: Path, keep: bool,
) -> Iterator[Checkout]:
    assert row.git_commit is not None
    candidates = [Path(repository)] if repository else []
    root = _repository_with(row.git_commit, [*candidates, recorded_cwd, Path.cwd()])
    if root is None:
        raise NotReproducible(
            f"commit {row.git_commit[:12]} of run {row.id[:12]} is not in the repository at {recorded_cwd} "
            "nor in the current folder's",
            hint="run from a clone that has the commit (git fetch), or push the commit first",
        )
    try:
        rel_cwd: Path | None = recorded_cwd.resolve().relative_to(root.resolve())
    except ValueError:
        rel_cwd = None  # recorded in another clone: the run's folder is taken to be the repository's top
    tree = scratch / root.name
    _git(["worktree", "add", "--detach", "--force", str(tree), row.git_commit], root)
    try:
        description = f"commit {row.git_commit[:12]}"
        if row.diff_digest:
            description += _apply_diff(row, config, tree, scratch)
        notes = []
        if row.git_dirty and not row.diff_digest and row.tags.get("gw.code_note"):
            notes.append(f"{row.tags['gw.code_note']}: the rerun uses commit {row.git_commit[:12]} without them")
        _recreate_folders(root, tree)
        cwd = tree / rel_cwd if rel_cwd is not None else tree
        cwd.mkdir(parents=True, exist_ok=True)
        (scratch / "inputs").mkdir()
        yield Checkout(tree, cwd, root.resolve(), description + (f", in {tree}" if keep else ""),
                       scratch=scratch / "inputs", notes=notes)
    finally:
        if not keep:
            _git(["worktree", "remove", "--force", str(tree)], root, check=False)
            shutil.rmtree(tree, ignore_errors=True)
            _git(["worktree", "prune"], root, check=False)


def _apply_diff(row: RunRow, config: Config, tree: Path, scratch: Path) -> str:
    from groundwork.storage.stores import open_stores

    assert row.diff_digest is not None and row.git_commit is not None
    try:
        diff = open_stores(config).artifacts.get_bytes(row.diff_digest)
    except ArtifactNotFound:
        raise NotReproducible(
            f"the uncommitted changes of run {row.id[:12]} (diff {row.diff_digest[:12]}) are not in the artifact store",
            hint="point GROUNDWORK_ARTIFACTS at the store the run logged to",
        ) from None
    patch = scratch / "recorded.diff"
    patch.write_bytes(diff)
    # git apply refuses paths outside the tree and writes through no symlink it did not make.
    applied = _git(["apply", "--binary", "--whitespace=nowarn", str(patch)], tree, check=False)
    if applied.returncode != 0:
        lines = (applied.stderr or "").strip().splitlines()
        raise NotReproducible(
            f"the recorded uncommitted changes do not apply to commit {row.git_commit[:12]}: "
            f"{lines[-1] if lines else 'git apply failed'}"
        )
    files = sum(1 for line in diff.splitlines() if line.startswith(b"diff --git "))
    return f" + recorded uncommitted changes ({files} file{'s' if files != 1 else ''})"
