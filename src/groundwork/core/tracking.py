"""Recording runs: the run lifecycle, buffered metric logging and environment capture.

``run.log({"loss": 0.3}, step=7)`` appends to an in-memory buffer and returns
at once. One background thread per store and process
(:class:`groundwork.core.writer.Writer`) writes what is buffered while the run
logs, and the rest when it ends, at interpreter exit and on SIGTERM. A process
killed outright loses at most about :data:`~groundwork.core.writer.MAX_LAG_S` of
logging (the writer keeps up, or the logging call waits for it); its run is
later seen as ``crashed`` because its heartbeat stops.

A process started by ``groundwork run`` finds ``GROUNDWORK_RUN_ID`` in its
environment: its first ``start_run`` (or ``gw.log``) attaches to that run
instead of creating one, and the parent ``groundwork run`` owns its status.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import math
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from groundwork._process import current_user
from groundwork.config import Config
from groundwork.core.environment import capture_environment, environment_digest, git_state
from groundwork.core.writer import (
    flush_all as flush_all,  # re-exported: the SDK and readers use these names
    pending_writes as pending_writes,
    writer_for,
)
from groundwork.errors import InvalidInput, RunNotFound
from groundwork.storage.artifacts import ArtifactInfo, ArtifactStore
from groundwork.storage.records import MetricSegment, RunCreate, RunEnd
from groundwork.storage.stores import MetadataStore, open_stores

_GIT_CACHE_TTL_S = 2.0

logger = logging.getLogger("groundwork.core.tracking")




# -- the git state, cached briefly (creating thousands of runs must stay cheap) ---------------------
_git_cache: dict[str, tuple[float, Any]] = {}


def _cached_git_state(cwd: Path) -> Any:
    key = str(cwd)
    hit = _git_cache.get(key)
    now = time.monotonic()
    if hit and now - hit[0] < _GIT_CACHE_TTL_S:
        return hit[1]
    state = git_state(cwd)
    _git_cache[key] = (now, state)
    return state


_stored_diffs: dict[tuple[str, int], tuple[bytes, ArtifactInfo]] = {}


_time = time.time
#: Logging calls look at the writer's backlog every this many points.
_CHECK_EVERY = 1024


def _number(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"metric {key!r} must be a number, not {type(value).__name__} {value!r:.40}",
            hint="log numbers only; put text in params or tags",
        ) from None


class ActiveRun:
    """A run being recorded. Use it as a context manager, or call :meth:`end`."""

    def __init__(
        self,
        run_id: str,
        name: str,
        config: Config,
        store: MetadataStore,
        *,
        owned: bool,
    ) -> None:
        self.id = run_id
        self.name = name
        self.config = config
        self._store = store
        self._writer = writer_for(store)
        self._owned = owned
        self._pending = False  # created in the buffer, not yet written
        self._ended = False
        self._auto_step: dict[str, int] = {}
        self._append = self._writer.points.append
        self._until_check = _CHECK_EVERY
        self._writer.run_opened()
        if owned:
            self._writer.live.add(run_id)

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id[:12]} {self.name!r}>"

    # -- logging ---------------------------------------------------------
    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Buffer one point per metric; returns at once.

        ``step`` defaults to a per-metric counter (0, 1, 2, ...). Values may be
        Python numbers, numpy scalars or one-element tensors.
        """
        # The hot path of the SDK: one tuple per point onto a deque, and a countdown to the
        # next look at the backlog (every thousand points or so: cheap, and frequent enough).
        now = _time()
        append = self._append
        run_id = self.id
        if step is None:
            auto = self._auto_step
            for key, value in metrics.items():
                point_step = auto.get(key, 0)
                auto[key] = point_step + 1
                append((run_id, key, point_step, _number(key, value), now))
        else:
            if step.__class__ is not int:
                step = int(step)
            for key, value in metrics.items():
                append((run_id, key, step, value if value.__class__ is float else _number(key, value), now))
        self._until_check -= len(metrics)
        if self._until_check <= 0:
            self._until_check = _CHECK_EVERY
            self._writer.check_backlog()

    def log_points(self, key: str, values: Sequence[float], steps: Sequence[int] | None = None) -> None:
        """Buffer a whole series for one metric at once (the batch form of :meth:`log`)."""
        import numpy as np

        try:
            value_array = np.array(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InvalidInput(f"log_points needs numbers for {key!r}") from None
        if steps is None:
            start = self._auto_step.get(key, 0)
            step_array = np.arange(start, start + value_array.shape[0], dtype=np.int64)
            self._auto_step[key] = start + value_array.shape[0]
        else:
            step_array = np.array(steps, dtype=np.int64).reshape(-1)
            if step_array.shape != value_array.shape:
                raise InvalidInput(f"log_points got {len(value_array)} values but {len(step_array)} steps for {key!r}")
        stamps = np.full(value_array.shape[0], time.time(), dtype=np.float64)
        self._writer.segments.append(MetricSegment(self.id, key, step_array, value_array, stamps))
        self._writer.check_backlog()

    def _ensure_created(self) -> None:
        """Direct writes need the run's row: write it now if it is still buffered."""
        if self._pending:
            self._writer.flush()
            self._pending = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters (written at once; a later value for a key replaces the earlier)."""
        if params:
            self._ensure_created()
            self._store.log_params(self.id, params)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if tags:
            self._ensure_created()
            self._store.set_tags(self.id, tags)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None, kind: str = "file") -> ArtifactInfo:
        """Store a file or directory as an output of this run (content-addressed)."""
        return self._link(Path(path), "output", name, kind, store_bytes=True)

    def log_input(
        self, path: str | os.PathLike[str], name: str | None = None, kind: str = "dataset", store: bool = True
    ) -> ArtifactInfo:
        """Record a file or directory the run read. ``store=False`` records only its digest.

        It is recorded under ``name``, else its path relative to the current folder, else
        (outside it) its absolute path: ``groundwork reproduce`` restores it there in its
        workspace, and reads one outside the project where it is, never writing over it.
        """
        return self._link(Path(path), "input", _input_name(name), kind, store_bytes=store)

    def _link(self, path: Path, direction: str, name: str | None, kind: str, store_bytes: bool) -> ArtifactInfo:
        if not path.exists():
            raise InvalidInput(f"{direction} path {str(path)!r} does not exist")
        artifacts = open_stores(self.config).artifacts
        info = artifacts.put_path(path) if store_bytes else ArtifactStore.digest_path(path)
        self._ensure_created()
        self._store.add_artifact_link(
            self.id,
            direction,
            name or _display_path(path),
            digest=info.digest,
            size=info.size,
            is_dir=info.is_dir,
            file_count=info.file_count,
            kind=kind,
        )
        return info

    def log_text(self, text: str, stream: str = "stdout") -> None:
        """Buffer captured output (what ``groundwork run`` does with a child's stdout/stderr)."""
        self._writer.logs.append((self.id, stream, time.time(), text))

    def flush(self) -> None:
        """Write everything buffered so far (the run's own row included); returns when it is durable."""
        self._writer.flush()
        self._pending = False

    def log_model(self, obj: Any, name: str, signature: Any = None, example: Any = None, *,
                  code: Any = None, artifacts: Any = None) -> Any:
        """Register ``obj`` as version N+1 of model ``name`` (see :func:`groundwork.core.registry.log_model`).

        ``code=[paths]`` and ``artifacts={name: path}`` store a Python model (an object with
        ``predict``) with its code and files.
        """
        from groundwork.core.registry import log_model

        return log_model(self, obj, name, signature=signature, example=example, code=code, artifacts=artifacts)

    def checkpoint(self, state: Any) -> Any:
        """Store ``state`` as this run's next checkpoint, content-addressed (see :mod:`groundwork.core.checkpoints`)."""
        from groundwork.core.checkpoints import save

        return save(self, state)

    def last_checkpoint(self) -> Any:
        """The newest checkpoint's state: this run's, else that of the run it resumes; None if there is none."""
        from groundwork.core.checkpoints import load

        return load(self)

    # -- lifecycle -----------------------------------------------------------
    def end(self, status: str = "finished", *, error: str | None = None, exit_code: int | None = None) -> None:
        """Flush and record the end. Idempotent; a run this process merely attached to keeps its status."""
        if self._ended:
            return
        self._ended = True
        _forget_active(self)
        self._writer.live.discard(self.id)
        self._writer.run_closed()
        ending = RunEnd(self.id, status, exit_code, error) if self._owned else None
        self._writer.flush(end=ending)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.end("finished")
        else:
            detail = "".join(traceback.format_exception(exc_type, exc, tb))
            self.end("failed", error=detail)


def _display_path(path: Path) -> str:
    """``path`` relative to the current folder when inside it, else absolute (never with ``..``)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _input_name(name: str | None) -> str | None:
    """An input's given name, normalised: a relative path that stays in the run's folder."""
    if name is None:
        return None
    clean = os.path.normpath(name.replace("\\", "/")) if name.strip() else ""
    if clean in ("", ".", "..") or "\0" in clean or os.path.isabs(clean) or clean.startswith("../"):
        raise InvalidInput(
            f"input name {name!r} must be a relative path inside the run's folder (no '..', not absolute)",
            hint="leave the name out to record the input by its own path",
        )
    return clean


# -- the process's active runs ------------------------------------------------------------------------
_active: list[ActiveRun] = []
_active_lock = threading.Lock()
_attached_env_run = False
_hooks_installed = False


def _forget_active(run: ActiveRun) -> None:
    with _active_lock:
        if run in _active:
            _active.remove(run)


def active_run() -> ActiveRun | None:
    """The innermost run started (and not yet ended) in this process."""
    with _active_lock:
        return _active[-1] if _active else None


def start_run(
    name: str | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    parent: str | ActiveRun | None = None,
    kind: str = "run",
    command: Sequence[str] | None = None,
    config: Config | None = None,
    capture_code: bool = True,
) -> ActiveRun:
    """Start recording a run and make it the active one.

    >>> with gw.start_run(name="baseline", params={"lr": 0.01}) as run:
    ...     run.log({"loss": 0.5}, step=0)

    Inside a process started by ``groundwork run``, the first call attaches to
    that run (logging ``params`` into it) rather than creating another.
    """
    global _attached_env_run
    config = config or Config.from_env()
    store = open_stores(config).metadata
    _install_process_hooks()

    env_run_id = os.environ.get("GROUNDWORK_RUN_ID")
    if env_run_id and parent is None and not _attached_env_run and kind == "run":
        _attached_env_run = True
        return attach_run(env_run_id, config, store, params, tags)
    if parent is None and env_run_id:
        parent = env_run_id

    if isinstance(parent, ActiveRun):
        parent.flush()  # its row may still be buffered: it must exist before a child points at it
        parent_id: str | None = parent.id
    elif parent is not None:
        if pending_writes():
            flush_all()
        parent_id = store.resolve_run(parent)
    else:
        parent_id = None
    run_id = uuid.uuid4().hex
    name = name or _default_name(kind)
    cwd = Path.cwd()
    env = capture_environment()
    env_json = _environment_json(env)
    row: dict[str, Any] = {
        "id": run_id,
        "name": name,
        "kind": kind,
        "status": "running",
        "parent_id": parent_id,
        "command": list(command) if command is not None else [sys.executable, *sys.argv],
        "cwd": str(cwd),
        "user": _user(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "created_at": time.time(),
        "heartbeat_at": time.time(),
    }
    diff_info: ArtifactInfo | None = None
    if capture_code:
        git = _cached_git_state(cwd)
        row.update(git_commit=git.commit, git_branch=git.branch, git_dirty=git.dirty if git.commit else None)
        if git.diff:
            diff_info = _store_diff(config, git.diff)
            row["diff_digest"] = diff_info.digest
    all_tags = dict(tags or {})
    if capture_code and git.note:
        all_tags.setdefault("gw.code_note", git.note)  # e.g. the diff was over its size cap
    seed = os.environ.get("GROUNDWORK_SEED")
    if seed and "seed" not in all_tags:
        all_tags["seed"] = seed
    row["env_digest"] = environment_digest(env)
    links = []
    if diff_info is not None:
        links.append(
            {"direction": "input", "name": "code.diff", "digest": diff_info.digest, "size": diff_info.size,
             "is_dir": False, "file_count": 1, "kind": "code"}
        )
    run = ActiveRun(run_id, name, config, store, owned=True)
    # The run's rows go out with the next flush (at most FLUSH_INTERVAL_S away, or its end):
    # a short run costs one transaction. Reads in this process flush first.
    run._pending = True
    run._writer.creations.append(
        RunCreate(row, params=dict(params or {}), tags=all_tags, environment=(row["env_digest"], env_json), links=links)
    )
    with _active_lock:
        _active.append(run)
    return run


_env_json_cache: dict[str, str] = {}


def _environment_json(env: Mapping[str, Any]) -> str:
    digest = environment_digest(env)
    cached = _env_json_cache.get(digest)
    if cached is None:
        cached = _env_json_cache[digest] = json.dumps(env, sort_keys=True, separators=(",", ":"), default=str)
    return cached


def _store_diff(config: Config, diff: bytes) -> ArtifactInfo:
    # Keyed by the bytes object itself: the cached git state hands out the same one,
    # so the diff is hashed once per state rather than once per run.
    key = (config.artifacts_url, id(diff))
    hit = _stored_diffs.get(key)
    if hit is not None and hit[0] is diff:
        return hit[1]
    info = open_stores(config).artifacts.put_bytes(diff)
    _stored_diffs[key] = (diff, info)
    return info


@functools.cache
def _user() -> str | None:
    return current_user()


def _default_name(kind: str) -> str:
    # "-" (a script on stdin), "-c" (python -c) and "" (the interactive prompt) name no script.
    argv0 = sys.argv[0] if sys.argv else ""
    script = "" if argv0 in ("", "-", "-c") else Path(argv0).stem.strip("-. ")
    return f"{script or kind}-{time.strftime('%Y%m%d-%H%M%S')}"


_ATTACH_WAIT_S = 5.0


def attach_run(
    run_id: str,
    config: Config,
    store: MetadataStore,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
) -> ActiveRun:
    """Log into an existing run that another process owns (``groundwork run``'s).

    The owner queues a new run's creation into its first flush (at most half a second
    away), so a child started right after ``start_run`` may look before the row exists:
    wait for it a few seconds before calling the id unknown. A caller that knows the run
    is written (its owner said so) passes its ``name``, and no look-up is made.
    """
    if name is not None:
        run = ActiveRun(run_id, name, config, store, owned=False)
    else:
        deadline = time.monotonic() + _ATTACH_WAIT_S
        while True:
            try:
                row = store.get_run(run_id)
                break
            except RunNotFound:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        run = ActiveRun(row.id, row.name, config, store, owned=False)
    run.log_params(dict(params or {}))
    run.set_tags(dict(tags or {}))
    with _active_lock:
        _active.append(run)
    return run


def current_run(config: Config | None = None) -> ActiveRun:
    """The active run; else the ``groundwork run`` run of this process; else a new one."""
    run = active_run()
    if run is not None:
        return run
    env_run_id = os.environ.get("GROUNDWORK_RUN_ID")
    if env_run_id:
        global _attached_env_run
        _attached_env_run = True
        config = config or Config.from_env()
        _install_process_hooks()
        return attach_run(env_run_id, config, open_stores(config).metadata)
    return start_run(config=config)


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log metrics into the active run (started on first use if there is none)."""
    current_run().log(metrics, step=step)


def log_params(params: Mapping[str, Any]) -> None:
    current_run().log_params(params)


def log_artifact(path: str | os.PathLike[str], name: str | None = None, kind: str = "file") -> ArtifactInfo:
    return current_run().log_artifact(path, name=name, kind=kind)


def seed(value: int | None = None) -> int:
    """Seed Python's, NumPy's and (if imported) PyTorch's generators, and record the seed.

    Without ``value`` the seed comes from ``GROUNDWORK_SEED`` (set by ``groundwork
    reproduce``) or is drawn at random; either way it is recorded on the active run.
    """
    if value is None:
        env_seed = os.environ.get("GROUNDWORK_SEED")
        value = int(env_seed) if env_seed else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    value = int(value)
    random.seed(value)
    try:
        import numpy as np

        np.random.seed(value % (2**32))
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(value)
    os.environ["GROUNDWORK_SEED"] = str(value)
    run = active_run()
    if run is not None:
        run.set_tag("seed", value)
    return value


# -- process hooks: flush at exit, record failures, handle SIGTERM -------------------------------------
def _install_process_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    previous_hook = sys.excepthook

    def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        detail = "".join(traceback.format_exception(exc_type, exc, tb))
        _end_all("failed", detail)
        previous_hook(exc_type, exc, tb)

    sys.excepthook = _excepthook
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # pragma: no cover - not in the main interpreter
            pass


def _end_all(status: str, error: str | None = None) -> None:
    with _active_lock:
        runs = list(reversed(_active))
    for run in runs:
        try:
            run.end(status, error=error)
        except Exception as exc:  # the others must still end; flush_all retries what is left
            logger.warning("groundwork: could not record the end of run %s (%s): %s", run.id, status, exc)
    flush_all(final=True)


def _at_exit() -> None:
    _end_all("finished")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _end_all("failed", "terminated by SIGTERM")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def iter_numeric_json(line: str) -> Iterable[tuple[str, float]] | None:
    """If ``line`` is a JSON object whose values are all numbers, its items; else None."""
    line = line.strip()
    if not (line.startswith("{") and line.endswith("}")):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data:
        return None
    items = []
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        items.append((str(key), float(value)))
    return items


def is_finite(value: float) -> bool:
    return math.isfinite(value)
