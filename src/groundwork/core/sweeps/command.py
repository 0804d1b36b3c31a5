"""Sweeps over a command: each trial is a ``groundwork run`` of it (``groundwork sweep -- CMD``).

The trial's params reach the command as ``GROUNDWORK_PARAM_<NAME>`` variables, its
stdout lines that are JSON objects of numbers become metric points (a ``"step"`` key is
the step), exactly as for ``groundwork run``; SDK calls inside the command log into the
trial's run. The trial's value is the last value of the sweep's metric. A stdout line
that reports the metric with a step goes to the pruner at once; a pruned command is
stopped (SIGTERM) and its trial ends ``pruned``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.core.execution import _pump, param_env_name
from groundwork.core.runs import get_run
from groundwork.core.sweeps.trial import Pruned, current_trial
from groundwork.errors import ExecutionError, InvalidInput

TAG_COMMAND = "gw.sweep.command"
TAG_CWD = "gw.sweep.cwd"


@dataclass(frozen=True)
class CommandObjective:
    """``objective(params)`` that runs ``argv`` in the trial's run and answers the metric's last value."""

    argv: tuple[str, ...]
    metric: str
    cwd: str | None = None
    echo: bool = False

    def __call__(self, params: Mapping[str, Any]) -> float | None:
        context = current_trial()
        if context is None:
            raise InvalidInput("a command objective runs only inside a sweep's trial")
        run = context.run
        env = dict(os.environ)
        env.update(run.config.child_environ())
        env.update({param_env_name(k): str(v) for k, v in params.items()})
        env["GROUNDWORK_RUN_ID"] = run.id
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            child = subprocess.Popen(
                list(self.argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                env=env, cwd=self.cwd,
            )
        except OSError as exc:
            raise ExecutionError(f"cannot run {self.argv[0]!r}: {exc.strerror or exc}") from None

        def stop(reason: str) -> None:
            if child.poll() is None:
                child.terminate()

        context.on_prune = stop
        readers = [
            threading.Thread(target=_pump, args=(child.stdout, "stdout", run, True, self.echo), daemon=True),
            threading.Thread(target=_pump, args=(child.stderr, "stderr", run, False, self.echo), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            code = child.wait()
        except BaseException:
            child.kill()
            child.wait()
            raise
        for reader in readers:
            reader.join(timeout=10)
        if context.reason is not None:
            raise Pruned(context.reason)
        run.flush()
        recorded = get_run(run.id, config=run.config)
        if code != 0:
            tail = recorded.logs(stream="stderr", tail=1).strip()
            detail = f": {tail.splitlines()[-1]}" if tail else ""
            raise ExecutionError(f"the command exited with code {code}{detail}")
        return recorded.metrics.get(self.metric)


def check_command(argv: Sequence[str], cwd: str | None = None) -> tuple[str, ...]:
    if not argv:
        raise InvalidInput("no command given", hint="put the command after --, e.g. groundwork sweep ... -- python train.py")
    program = argv[0]
    where = Path(cwd or ".")
    if shutil.which(program) is None and not (where / program).is_file():
        raise InvalidInput(f"cannot find the command {program!r}", hint="check the command name and PATH")
    return tuple(argv)


def objective_from_tags(tags: Mapping[str, str]) -> CommandObjective:
    """The command objective a sweep recorded (for ``groundwork sweep resume``)."""
    if TAG_COMMAND not in tags:
        raise InvalidInput(
            "this sweep ran a Python objective, not a command",
            hint="groundwork sweep resume re-runs its script; or call gw.sweep(..., resume=SWEEP)",
        )
    return CommandObjective(tuple(json.loads(tags[TAG_COMMAND])), tags.get("gw.sweep.metric", "value"),
                            tags.get(TAG_CWD) or None)


def sweep_command(
    argv: Sequence[str],
    space: Mapping[str, Any],
    *,
    trials: int,
    metric: str,
    direction: str = "min",
    sampler: str = "tpe",
    pruner: str | None = None,
    parallel: int = 1,
    executor: str = "local",
    name: str | None = None,
    seed: int | None = None,
    echo: bool = False,
    config: Config | None = None,
) -> Any:
    """Run a sweep whose trials each run ``argv`` (see the module docstring)."""
    from groundwork.core.sweeps.sweep import SweepSettings, _Driver, check_settings

    config = config or Config.from_env()
    cwd = os.getcwd()
    command = check_command(argv, cwd)
    checked, optuna_direction = check_settings(space, trials, sampler, pruner, parallel, executor, direction, metric)
    settings = SweepSettings(checked, trials, sampler, pruner, parallel, executor, optuna_direction, metric, seed)
    objective = CommandObjective(command, metric, cwd, echo)
    driver = _Driver(
        config, settings, objective=objective, sampler=sampler, pruner=pruner,
        extra_tags={TAG_COMMAND: json.dumps(list(command)), TAG_CWD: cwd}, trial_command=command,
    )
    return driver.run(name=name or f"{Path(command[0]).name}-sweep")


__all__ = ["CommandObjective", "check_command", "objective_from_tags", "sweep_command"]
