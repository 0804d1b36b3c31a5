"""Recording any command as a run (what ``groundwork run -- CMD`` does).

The command runs as a child process with ``GROUNDWORK_RUN_ID`` and one
``GROUNDWORK_PARAM_<NAME>`` variable per parameter in its environment, so SDK
calls inside it log into the same run. Its stdout and stderr are streamed to
the terminal and stored; a stdout line that is a JSON object of numbers becomes
metric points (a ``"step"`` key, when present, is the step). Inputs are
digested (and stored) before it starts, outputs stored after it ends.

Both stores are opened and checked (the artifact store by writing and removing a probe)
before the command starts: a command that ran for hours must not lose its outputs to a
store that was never usable. A run whose outputs could not be stored ends ``failed``,
with the reason and the command's exit code.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from groundwork.config import Config
from groundwork.core.tracking import ActiveRun, iter_numeric_json, start_run
from groundwork.errors import GroundworkError, InvalidInput, StoreError
from groundwork.storage.stores import open_stores

#: How long a child gets to exit after Ctrl-C or SIGTERM before it is killed.
STOP_GRACE_S = 5.0


class CommandNotFound(GroundworkError):
    headline = "Command not found"
    exit_code = 127


@dataclass(frozen=True)
class ExecutionResult:
    run_id: str
    exit_code: int
    status: str
    duration: float


def param_env_name(key: str) -> str:
    """``learning-rate`` -> ``GROUNDWORK_PARAM_LEARNING_RATE``."""
    return "GROUNDWORK_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """``["lr=0.01", "opt=adam"]`` -> ``{"lr": "0.01", "opt": "adam"}``, with clear errors."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param {item!r} is not KEY=VALUE", hint="for example --param lr=0.01")
        params[key.strip()] = value
    return params


def check_artifact_store(config: Config) -> None:
    """Open the artifact store and write, then remove, a probe object: a one-line error if it cannot."""
    store = open_stores(config).artifacts
    probe = getattr(store.blobs, "probe", None)
    if probe is not None:  # a store with its own check (a team server's: no keys of our choosing there)
        probe()
        return
    key = f"probe/{uuid.uuid4().hex}"
    try:
        store.blobs.put_bytes(key, b"groundwork probe\n")
        delete = getattr(store.blobs, "delete", None)
        if delete is not None:
            delete(key)
    except OSError as error:  # a backend that does not say it in our terms
        raise StoreError(f"cannot write to the artifact store {store.url.split('?', 1)[0]}: {error}") from None


def execute_command(
    argv: Sequence[str],
    *,
    config: Config,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    stdout_metrics: bool = True,
    cwd: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    echo: bool = True,
) -> ExecutionResult:
    """Run ``argv`` as a recorded run and return its exit code and status."""
    if not argv:
        raise InvalidInput(
            "no command given", hint="put the command after --, e.g. groundwork run -- python train.py"
        )
    for path in inputs:
        if not Path(path).exists():
            raise InvalidInput(f"--input {path!r} does not exist")
    check_artifact_store(config)  # before anything runs or is recorded
    params = dict(params or {})
    parent = os.environ.get("GROUNDWORK_RUN_ID") or None
    run = start_run(
        name=name or Path(argv[0]).name,
        params=params,
        tags=tags,
        parent=parent,
        command=list(argv),
        config=config,
    )
    run.flush()  # the child may attach to the run at once: its row must exist
    started = time.time()
    try:
        for path in inputs:
            run.log_input(path, kind="dataset")
    except BaseException as exc:
        run.end("failed", error=f"could not record inputs: {exc}")
        raise

    env = dict(os.environ)
    env.update(config.child_environ())
    env.update({param_env_name(k): str(v) for k, v in params.items()})
    env.update(extra_env or {})
    env["GROUNDWORK_RUN_ID"] = run.id
    env.setdefault("PYTHONUNBUFFERED", "1")

    try:
        child = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL if not sys.stdin or not sys.stdin.isatty() else None,
            env=env,
            cwd=str(cwd) if cwd else None,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        run.end("failed", error=f"could not start {argv[0]!r}: {exc.strerror or exc}", exit_code=127)
        raise CommandNotFound(
            f"cannot run {argv[0]!r}: {exc.strerror or exc}", hint="check the command name and PATH"
        ) from None

    readers = [
        threading.Thread(
            target=_pump, args=(child.stdout, "stdout", run, stdout_metrics, echo), daemon=True, name="gw-stdout"
        ),
        threading.Thread(target=_pump, args=(child.stderr, "stderr", run, False, echo), daemon=True, name="gw-stderr"),
    ]
    reason: str | None = None
    previous_term: Any = None
    # Ctrl-C reaches us and the child together, and may land anywhere from here to the
    # readers' end: wherever it lands, stop the child and record the run as interrupted.
    try:
        try:
            for reader in readers:
                reader.start()
            previous_term = _forward_sigterm(child)
            exit_code = child.wait()
        except KeyboardInterrupt:
            reason = "interrupted (Ctrl-C)"
            exit_code = _stop(child, signal.SIGINT)
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    if exit_code == -signal.SIGINT:
        reason = "interrupted (Ctrl-C)"
    for reader in readers:
        try:
            if reader.ident is not None:  # started
                reader.join(timeout=10)
        except KeyboardInterrupt:
            reason = "interrupted (Ctrl-C)"
    if _terminated.is_set():
        reason = "terminated by SIGTERM"
        _terminated.clear()

    missing = []
    lost: GroundworkError | None = None
    for path in outputs:
        if not Path(path).exists():
            missing.append(path)
            continue
        try:
            run.log_artifact(path, kind="file")
        except GroundworkError as exc:
            lost = exc
            break
        except OSError as exc:
            lost = StoreError(f"could not store output {path!r}: {exc.strerror or exc}")
            break
    if missing and echo:
        print(f"groundwork: warning: --output not produced: {', '.join(missing)}", file=sys.stderr)

    if exit_code == 0 and reason is None and lost is None:
        status, error = "finished", None
    else:
        status = "failed"
        if reason is None and exit_code != 0:
            if exit_code < 0:
                reason = f"killed by signal {signal.Signals(-exit_code).name}"
            else:
                reason = f"exited with code {exit_code}"
        if lost is not None:
            reason = "; ".join(filter(None, [reason, f"outputs not stored: {lost.one_line()}"]))
        error = reason
    run.end(status, error=error, exit_code=exit_code)
    if lost is not None:
        raise lost
    shell_code = exit_code if exit_code >= 0 else 128 - exit_code
    if reason and reason.startswith("interrupted"):
        shell_code = 130
    return ExecutionResult(run.id, shell_code, status, time.time() - started)


_terminated = threading.Event()


def _forward_sigterm(child: subprocess.Popen[bytes]) -> Any:
    """While the child runs, SIGTERM to us is passed on to it (and the run marked failed)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        _terminated.set()
        try:
            child.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    return signal.signal(signal.SIGTERM, handler)


def _stop(child: subprocess.Popen[bytes], first: signal.Signals) -> int:
    """Ask the child to stop, then insist."""
    for sig in (first, signal.SIGTERM, signal.SIGKILL):
        try:
            if child.poll() is None:
                child.send_signal(sig)
            return child.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
            continue
    return child.wait()


def _pump(stream: IO[bytes] | None, name: str, run: ActiveRun, metrics: bool, echo: bool) -> None:
    if stream is None:
        return
    sink = getattr(sys.stdout if name == "stdout" else sys.stderr, "buffer", None)
    for raw in iter(stream.readline, b""):
        if echo and sink is not None:
            try:
                sink.write(raw)
                sink.flush()
            except (OSError, ValueError):
                pass
        line = raw.decode("utf-8", errors="replace")
        run.log_text(line, name)
        if metrics:
            items = iter_numeric_json(line)
            if items is not None:
                values = dict(items)
                step = values.pop("step", None)
                if values:
                    run.log(values, step=None if step is None else int(step))
    stream.close()
