"""What runs a step, wherever it runs: a local worker process, a Ray task, or the calling process.

The orchestrator sends a :class:`StepTask` (the pickled function, where each
argument comes from, the output names, the config); :func:`execute_task` loads
the inputs from the artifact store, calls the function with the step's run as
the active run (so ``gw.log`` inside a step logs into it), stores each output
through its materializer, and answers a :class:`StepOutcome`. It never raises:
every failure comes back as an outcome, with the traceback of the user's code,
or the one-line message of a groundwork error.

This module is imported by every worker, so it imports little at the top.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.errors import GroundworkError
from groundwork.storage.stores import open_stores


@dataclass(frozen=True)
class InputSpec:
    """One argument as the worker receives it.

    ``kind``: ``artifact`` (``digest`` + ``materializer`` + ``filename``), ``artifacts``
    (``items``: a list of such), ``file`` (``path``; ``digest`` to restore it where the
    path does not exist) or ``value`` (a JSON-able ``value``).
    """

    kind: str
    digest: str | None = None
    materializer: str | None = None
    filename: str | None = None
    path: str | None = None
    value: Any = None
    items: tuple[InputSpec, ...] = ()


@dataclass(frozen=True)
class StepTask:
    run_id: str
    node: str
    fn: bytes  # cloudpickle of the step (its function and options)
    inputs: Mapping[str, InputSpec]
    outputs: tuple[str, ...]
    multiple: bool  # the step returns a tuple of len(outputs) values
    config: Config
    materializers: bytes = b""  # cloudpickle of the user-registered materializers
    sys_path: tuple[str, ...] = ()
    cwd: str | None = None
    seed: str | None = None
    echo: bool = True
    capture_environment: bool = False
    attempt: int = 1


@dataclass(frozen=True)
class OutputInfo:
    name: str
    digest: str
    size: int
    is_dir: bool
    file_count: int
    kind: str
    materializer: str
    type: str
    filename: str


@dataclass
class StepOutcome:
    run_id: str
    node: str
    ok: bool
    outputs: list[OutputInfo] = field(default_factory=list)
    error: str | None = None  # one line
    traceback: str | None = None  # the user's code failed: its traceback
    user_error: bool = False  # retrying may help (the step's own code raised)
    started_at: float = 0.0
    ended_at: float = 0.0
    worker: str = ""
    environment: tuple[str, str] | None = None  # (digest, JSON) when asked to capture it


_task_lock = threading.Lock()


def execute_task(task: StepTask) -> StepOutcome:
    """Run one step; always returns an outcome (never raises)."""
    started = time.time()
    outcome = StepOutcome(task.run_id, task.node, ok=False, started_at=started,
                          worker=f"{socket.gethostname()}:{os.getpid()}")
    try:
        with _task_lock:  # the in-process executor may call this from several threads
            _execute(task, outcome)
    except GroundworkError as exc:
        outcome.ok = False
        outcome.error = exc.one_line()
    except BaseException as exc:  # never let a worker die on a step's failure
        if isinstance(exc, KeyboardInterrupt):
            outcome.error = "interrupted"
        else:
            outcome.error = f"internal error while running step {task.node!r}: {type(exc).__name__}: {exc}"
            outcome.traceback = traceback.format_exc()
    outcome.ended_at = time.time()
    return outcome


class _Tee(io.TextIOBase):
    """Captures what a step prints into its run's logs, and passes it on when echoing."""

    def __init__(self, run: Any, stream: str, passthrough: Any) -> None:
        self._run = run
        self._stream = stream
        self._passthrough = passthrough

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            self._run.log_text(text, self._stream)
            if self._passthrough is not None:
                try:
                    self._passthrough.write(text)
                except (OSError, ValueError):
                    pass
        return len(text)

    def flush(self) -> None:
        if self._passthrough is not None:
            try:
                self._passthrough.flush()
            except (OSError, ValueError):
                pass


def _execute(task: StepTask, outcome: StepOutcome) -> None:
    import cloudpickle

    from groundwork.core import tracking
    from groundwork.core.pipelines.materializers import install_materializers

    for entry in reversed(task.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if task.cwd and os.path.isdir(task.cwd) and os.getcwd() != task.cwd:
        os.chdir(task.cwd)
    if task.materializers:
        install_materializers(cloudpickle.loads(task.materializers))
    from groundwork.core.pipelines.step import Step

    fn, options = cloudpickle.loads(task.fn)
    step = Step(fn, options)
    if task.seed is not None:
        os.environ["GROUNDWORK_SEED"] = task.seed
    if task.capture_environment:
        outcome.environment = _environment()

    artifacts = open_stores(task.config).artifacts
    store = open_stores(task.config).metadata
    run = tracking.attach_run(task.run_id, task.config, store)
    scratch = _Scratch(task.node)
    try:
        values = {name: _load(spec, artifacts, scratch) for name, spec in task.inputs.items()}
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout = _Tee(run, "stdout", stdout if task.echo else None)
        sys.stderr = _Tee(run, "stderr", stderr if task.echo else None)
        try:
            result = step.call_with(values)
        except GroundworkError:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            outcome.user_error = True
            outcome.error = f"step {task.node!r} raised {type(exc).__name__}: {exc}"
            outcome.traceback = _user_traceback(exc)
            return
        finally:
            sys.stdout, sys.stderr = stdout, stderr
        outcome.outputs = _store_outputs(task, result, artifacts, scratch)
        outcome.ok = True
    finally:
        run.end("finished")  # attached, not owned: flushes its metrics and logs, leaves the status alone
        scratch.remove()


class _Scratch:
    """A temporary folder, made only if a step needs files on disk (most values travel as bytes)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._path: Path | None = None

    def path(self, *parts: str) -> Path:
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix=f"gw-step-{self.node}-"))
        target = self._path.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def remove(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the step function down (groundwork's own frames left out)."""
    tb = exc.__traceback__
    here = os.path.dirname(os.path.abspath(__file__))
    while tb is not None and os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) == here:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _environment() -> tuple[str, str]:
    import json

    from groundwork.core.environment import capture_environment, environment_digest

    env = capture_environment()
    return environment_digest(env), json.dumps(env, sort_keys=True, separators=(",", ":"), default=str)


def _load(spec: InputSpec, artifacts: Any, scratch: _Scratch) -> Any:
    from groundwork.core.pipelines.materializers import get_materializer

    if spec.kind == "value":
        return spec.value
    if spec.kind == "artifacts":
        return [_load(item, artifacts, scratch) for item in spec.items]
    if spec.kind == "file":
        assert spec.path is not None
        path = Path(spec.path)
        if path.exists() or spec.digest is None:
            return path
        return artifacts.restore(spec.digest, scratch.path("files", spec.digest[:16], path.name))
    assert spec.digest is not None and spec.materializer is not None
    materializer = get_materializer(spec.materializer)
    if materializer.loads is not None and materializer.dumps is not None:
        return materializer.loads(artifacts.get_bytes(spec.digest))  # verified against its digest
    filename = spec.filename or materializer.filename or "value"
    dest = scratch.path("in", spec.digest[:16], filename)
    if not dest.exists():
        artifacts.restore(spec.digest, dest)
    return materializer.load(dest)


def _store_outputs(task: StepTask, result: Any, artifacts: Any, scratch: _Scratch) -> list[OutputInfo]:
    from groundwork.core.pipelines.materializers import materializer_for, no_materializer_error, type_name
    from groundwork.errors import UnprocessableInput

    if task.multiple:
        if not isinstance(result, (tuple, list)) or len(result) != len(task.outputs):
            got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
            raise UnprocessableInput(
                f"step {task.node!r} declares {len(task.outputs)} outputs ({', '.join(task.outputs)}) but returned {got}",
                hint="return a tuple with one value per output",
            )
        values = list(zip(task.outputs, result, strict=True))
    else:
        values = [(task.outputs[0], result)]
    infos = []
    for name, value in values:
        materializer = materializer_for(value)
        if materializer is None:
            raise no_materializer_error(task.node, value)
        try:
            if materializer.source is not None:
                path = materializer.source(value)
                info = artifacts.put_path(path)
                filename = path.name
            else:
                data = materializer.to_bytes(value)
                if data is not None:
                    info = artifacts.put_bytes(data)
                else:
                    path = scratch.path("out", name, materializer.filename)
                    materializer.save(value, path)
                    info = artifacts.put_path(path)
                filename = materializer.filename
        except GroundworkError:
            raise
        except Exception as exc:
            raise UnprocessableInput(
                f"step {task.node!r}: storing output {name!r} with materializer {materializer.name!r} "
                f"failed: {type(exc).__name__}: {exc}"
            ) from None
        infos.append(
            OutputInfo(
                name=name, digest=info.digest, size=info.size, is_dir=info.is_dir, file_count=info.file_count,
                kind=materializer.kind, materializer=materializer.name, type=type_name(value), filename=filename,
            )
        )
    return infos
