"""Inputs of a rerun: restored from the artifact store into the workspace, or read where they are.

An input recorded under a relative name goes to that name under the run's folder in the
workspace; one recorded by an absolute path inside the project goes to the same place in
the workspace; one outside the project is *external*: it is read where it is (its digest
compared with the recorded one) and never restored over anything. Every restore target
is checked by :meth:`Checkout.target` first.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundwork.core.reproduce.checkout import Checkout, NotReproducible, within
from groundwork.storage.artifacts import ArtifactStore
from groundwork.storage.records import ArtifactLink


@dataclass(frozen=True)
class InputNote:
    name: str
    recorded: str
    used: str | None  # the digest the rerun read; None when missing
    source: str  # store, working tree, external, missing

    @property
    def changed(self) -> bool:
        return self.used != self.recorded


def _clear(dest: Path) -> None:
    """Make room at ``dest`` (a path already checked to be inside the workspace)."""
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.is_dir():
        shutil.rmtree(dest)


def _digest(path: Path) -> str | None:
    return ArtifactStore.digest_path(path).digest if path.exists() else None


def place_input(
    name: str, digest: str, dest: Path, current: Path | None, *, prefer_current: bool, artifacts: ArtifactStore,
) -> InputNote:
    """Put the input at ``dest`` (inside the workspace): from the store, or a copy of ``current`` (read only)."""
    stored = artifacts.exists(digest)
    if stored and not prefer_current:
        _clear(dest)
        artifacts.restore(digest, dest)
        return InputNote(name, digest, digest, "store")
    if current is not None and current.exists():
        used = _digest(current)
        if os.path.realpath(current) != os.path.realpath(dest):
            _clear(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if current.is_dir():
                shutil.copytree(current, dest, symlinks=False)
            else:
                shutil.copyfile(current, dest)
        return InputNote(name, digest, used, "working tree")
    if stored:
        _clear(dest)
        artifacts.restore(digest, dest)
        return InputNote(name, digest, digest, "store")
    return InputNote(name, digest, None, "missing")


def external_input(name: str, digest: str) -> InputNote:
    """An input outside the project: read where it is, never written."""
    used = _digest(Path(name))
    return InputNote(name, digest, used, "external" if used else "missing")


def restore_command_inputs(
    links: list[ArtifactLink], code: Checkout, recorded_cwd: Path | None, artifacts: ArtifactStore,
    *, current_inputs: bool,
) -> tuple[list[InputNote], list[str]]:
    """Restore a command run's inputs into the workspace; the notes, and the names the rerun records."""
    # Check every target before anything is written: a record naming one path outside the workspace
    # is refused as a whole.
    placed: list[tuple[ArtifactLink, Path | None]] = []
    for link in links:
        if os.path.isabs(link.name) and code.translate(link.name) == link.name:
            placed.append((link, None))  # outside the project: external
        else:
            placed.append((link, code.target(link.name)))
    notes, names = [], []
    for link, dest in placed:
        if dest is None:
            notes.append(external_input(link.name, link.digest))
        else:
            current = _current(link.name, code, recorded_cwd)
            notes.append(place_input(link.name, link.digest, dest, current, prefer_current=current_inputs,
                                     artifacts=artifacts))
        if notes[-1].used is not None:
            names.append(link.name)
    return notes, names


def _current(name: str, code: Checkout, recorded_cwd: Path | None) -> Path | None:
    """Where a recorded input is in the user's folder now (only ever read), if it stays in the project."""
    if os.path.isabs(name):
        return Path(name)
    if recorded_cwd is None:
        return None
    current = recorded_cwd / name
    base = code.original_root or recorded_cwd
    return current if within(current, base) or within(current, recorded_cwd) else None


def make_output_folders(names: list[str], code: Checkout) -> list[str]:
    """Create the parent folders of a run's declared outputs; the names the rerun declares again.

    Only outputs recorded under a relative name are compared (an absolute one is outside the
    run's folder); one whose folder would leave the workspace is left out.
    """
    kept = []
    for name in names:
        if os.path.isabs(name):
            continue
        try:
            dest = code.target(name, "output")
        except NotReproducible:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        kept.append(name)
    return kept


def prepare_step_input(
    name: str, spec: dict[str, Any], root: str | None, code: Checkout, artifacts: ArtifactStore,
    notes: list[InputNote], current_inputs: bool,
) -> dict[str, Any]:
    """One input of a step's recorded ``gw.step`` tag, made ready for the rerun."""
    kind = spec.get("kind")
    if kind == "artifacts":
        spec["items"] = [prepare_step_input(f"{name}[{i}]", dict(item), root, code, artifacts, notes, current_inputs)
                         for i, item in enumerate(spec.get("items") or [])]
        return spec
    digest = str(spec.get("digest") or "")
    if kind == "file":
        original = str(spec.get("path") or "")
        moved = in_checkout(original, root, code)
        if moved == original:  # outside the project: restored beside the workspace, or read where it is
            if current_inputs or not artifacts.exists(digest):
                notes.append(external_input(original, digest))
                spec["path"], spec["digest"] = original, None
                return spec
            assert code.scratch is not None
            dest = code.check(code.scratch / digest[:16] / (Path(original).name or "input"), f"input {name!r}")
        else:
            dest = code.check(Path(moved), f"input {name!r}")
        notes.append(place_input(name, digest, dest, Path(original), prefer_current=current_inputs,
                                 artifacts=artifacts))
        spec["path"] = str(dest)
        spec["digest"] = None  # the file is in place: the step reads it there
        return spec
    if not artifacts.exists(digest):
        raise NotReproducible(
            f"input {name!r} (artifact {digest[:12]}) is no longer in the artifact store",
            hint="point GROUNDWORK_ARTIFACTS at the store the run logged to",
        )
    notes.append(InputNote(name, digest, digest, "store"))
    return spec


def in_checkout(path: str, root: str | None, code: Checkout) -> str:
    """A file of the recorded project (``root``), moved into the workspace; others unchanged."""
    if root and os.path.isabs(path):
        try:
            rel = Path(os.path.normpath(path)).relative_to(root)
        except ValueError:
            return code.translate(path)
        if code.original_root is not None:
            try:  # the workspace holds the folder above the project (a copy of the run's cwd)
                return str(code.root / Path(root).relative_to(code.original_root) / rel)
            except ValueError:
                pass
        return str(code.root / rel)
    return code.translate(path)
