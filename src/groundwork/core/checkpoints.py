"""Checkpoints: a run's training state as content-addressed artifacts, found again after a crash.

``run.checkpoint(state)`` serializes ``state`` (``torch.save`` when PyTorch is loaded, else
pickle), stores the bytes by their SHA-256 (stored once however often saved) and links them
to the run as the output ``checkpoints/NNNNNN.pt`` (kind ``checkpoint``), numbered in order.
``run.last_checkpoint()`` loads the newest: the run's own, else (a run started by
``groundwork run --resume OLD``, tagged ``gw.resumed_from``) the newest of the run it
resumes, and so on back. A process killed mid-save leaves no half checkpoint: the link is
written after the bytes are stored.
"""

from __future__ import annotations

import io
import pickle
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from groundwork.config import Config
from groundwork.errors import InvalidInput

if TYPE_CHECKING:
    from groundwork.core.tracking import ActiveRun

KIND = "checkpoint"
PREFIX = "checkpoints/"
TAG_RESUMED_FROM = "gw.resumed_from"
TAG_LAST = "gw.checkpoint"
#: ``groundwork run --resume OLD`` hands the old run's id to the command in this variable.
RESUME_ENV = "GROUNDWORK_RESUME_FROM"
#: Runs followed back through ``gw.resumed_from`` at most (a loop in the tags must end).
MAX_CHAIN = 100


@dataclass(frozen=True)
class Checkpoint:
    """One stored checkpoint: the run that saved it, its name, digest and size."""

    run_id: str
    name: str
    digest: str
    size: int

    @property
    def number(self) -> int:
        return int(self.name[len(PREFIX):].split(".", 1)[0])


def _serialize(state: Any) -> tuple[bytes, str]:
    torch = sys.modules.get("torch")
    buffer = io.BytesIO()
    if torch is not None:
        torch.save(state, buffer)
        return buffer.getvalue(), "pt"
    try:
        pickle.dump(state, buffer, protocol=5)
    except Exception as exc:
        raise InvalidInput(f"the checkpoint state cannot be saved: {type(exc).__name__}: {exc}") from None
    return buffer.getvalue(), "pkl"


def _deserialize(data: bytes, name: str) -> Any:
    if name.endswith(".pt"):
        import torch

        return torch.load(io.BytesIO(data), weights_only=False)
    return pickle.loads(data)


def _checkpoints(store: Any, run_id: str) -> list[Checkpoint]:
    links = store.run_artifacts(run_id, "output")
    found = [Checkpoint(run_id, a.name, a.digest, a.size) for a in links if a.kind == KIND and a.name.startswith(PREFIX)]
    return sorted(found, key=lambda c: c.number)


def save(run: ActiveRun, state: Any) -> Checkpoint:
    """Store ``state`` as the run's next checkpoint (see the module docstring)."""
    from groundwork.storage.stores import open_stores

    data, suffix = _serialize(state)
    info = open_stores(run.config).artifacts.put_bytes(data)
    run.flush()  # the run's row (and earlier checkpoints' links) are in the store
    store = run._store
    existing = _checkpoints(store, run.id)
    number = existing[-1].number + 1 if existing else 0
    name = f"{PREFIX}{number:06d}.{suffix}"
    store.add_artifact_link(run.id, "output", name, digest=info.digest, size=info.size, is_dir=False,
                            file_count=1, kind=KIND)
    run.set_tags({TAG_LAST: name})
    return Checkpoint(run.id, name, info.digest, info.size)


def find_last(store: Any, run_id: str) -> Checkpoint | None:
    """The newest checkpoint of ``run_id``, or of the runs it resumes (newest run first)."""
    seen: set[str] = set()
    current: str | None = run_id
    while current and current not in seen and len(seen) < MAX_CHAIN:
        seen.add(current)
        found = _checkpoints(store, current)
        if found:
            return found[-1]
        current = store.get_run(current).tags.get(TAG_RESUMED_FROM) or None
    return None


def load(run: ActiveRun) -> Any | None:
    """The state of the newest checkpoint :func:`find_last` finds for ``run``, or None."""
    from groundwork.storage.stores import open_stores

    run.flush()
    found = find_last(run._store, run.id)
    if found is None:
        return None
    return _deserialize(open_stores(run.config).artifacts.get_bytes(found.digest), found.name)


def load_from(run_id: str, config: Config | None = None) -> Any | None:
    """The newest checkpoint's state of a recorded run (by id), or None."""
    from groundwork.storage.stores import open_stores

    config = config or Config.from_env()
    found = find_last(open_stores(config).metadata, run_id)
    if found is None:
        return None
    return _deserialize(open_stores(config).artifacts.get_bytes(found.digest), found.name)


__all__ = ["Checkpoint", "find_last", "load", "load_from", "save"]
