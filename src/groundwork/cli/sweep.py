"""``groundwork sweep``: a hyperparameter search over a command; ``resume`` and ``show`` a sweep."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from typer._click.core import Context as ClickContext
from typer.core import TyperGroup

from groundwork.cli._app import (
    ArtifactsOption,
    JsonOption,
    StoreOption,
    app,
    console,
    err_console,
    make_config,
)
from groundwork.cli.runs import fmt_duration, fmt_value, print_json, status_text

_EXAMPLE = (
    "groundwork sweep --space space.yaml --trials 100 --parallel 2 --metric val_acc --direction max "
    "--pruner asha -- python train.py"
)


class _DefaultStart(TyperGroup):
    """``groundwork sweep --space ... -- CMD`` means ``groundwork sweep start --space ... -- CMD``."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


sweep_app = typer.Typer(
    cls=_DefaultStart,
    help="Hyperparameter sweeps (Optuna's samplers and pruners): the sweep is a run, each trial a child run.\n\n"
    f"Example:  {_EXAMPLE}",
    no_args_is_help=True,
)
app.add_typer(sweep_app, name="sweep")


@sweep_app.command(
    "start",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=f"Example:  {_EXAMPLE}",
)
def start_command(
    ctx: typer.Context,
    # Checked below, after the options: with the command's own options let through, a misspelt
    # option would otherwise be reported as a missing --space.
    space: Annotated[str | None, typer.Option(
        "--space", "-s", help="YAML file: one 'name: loguniform(1e-4, 1e-1)' per line. [required]")] = None,
    trials: Annotated[int, typer.Option("--trials", help="How many trials to run.")] = 20,
    metric: Annotated[str, typer.Option("--metric", "-m", help="The metric to optimize (its last value is the trial's).")] = "value",
    direction: Annotated[str, typer.Option("--direction", "-d", help="min or max.")] = "min",
    parallel: Annotated[int, typer.Option("--parallel", "-P", help="Trials at once.")] = 1,
    sampler: Annotated[str, typer.Option("--sampler", help="tpe, random, grid or cmaes.")] = "tpe",
    pruner: Annotated[str | None, typer.Option("--pruner", help="asha or median (default: none).")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (worker processes) or ray ($GROUNDWORK_RAY_ADDRESS).")] = "local",
    name: Annotated[str | None, typer.Option("--name", "-n", help="The sweep's run name.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed the sampler.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not echo the trials' output.")] = False,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Run CMD once per trial, each a recorded run with its params as GROUNDWORK_PARAM_<NAME>.

    Everything after [bold]--[/] is the command. It reports the metric as a JSON line on stdout
    ({"val_acc": 0.93, "step": 3}) or with gw.log; a line with a step feeds the pruner.
    """
    from groundwork.core.sweeps.command import sweep_command
    from groundwork.core.sweeps.space import load_space

    argv = list(ctx.args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    elif argv and argv[0].startswith("-"):
        ctx.fail(f"No such option: {argv[0]} (put the command after --)")
    if space is None:
        ctx.fail("Missing option '--space' / '-s'.")
    config = make_config(store, artifacts)
    result = sweep_command(
        argv, load_space(space), trials=trials, metric=metric, direction=direction, sampler=sampler,
        pruner=pruner, parallel=parallel, executor=executor, name=name, seed=seed,
        echo=not quiet and not json_out, config=config,
    )
    _report(result.id, json_out, config)


@sweep_app.command("resume", epilog="Example:  groundwork sweep resume 3f2a9c")
def resume_command(
    sweep: Annotated[str, typer.Argument(help="The sweep: run id, id prefix or name.")],
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Continue a stopped sweep: finished trials stay, interrupted ones run again, the rest run.

    A command sweep resumes here; a Python sweep (gw.sweep) re-runs its script, whose
    gw.sweep call then continues the same sweep.
    """
    from groundwork.core.runs import get_run
    from groundwork.core.sweeps.sweep import RESUME_ENV, resume

    config = make_config(store, artifacts)
    run = get_run(sweep, config=config)
    if run.kind == "sweep" and "gw.sweep.command" not in run.tags:
        if not run.command:
            raise typer.BadParameter(f"sweep {run.id[:12]} recorded no command to re-run")
        env = {**os.environ, **config.child_environ(), RESUME_ENV: run.id}
        env.pop("GROUNDWORK_RUN_ID", None)
        err_console.print(f"[dim]groundwork: resuming sweep {run.id[:12]} by re-running: {' '.join(run.command)}[/]")
        try:
            code = subprocess.call(run.command, cwd=run.cwd or None, env=env,
                                   stdout=sys.stderr if json_out else None)
        except OSError as exc:
            from groundwork.errors import ExecutionError

            raise ExecutionError(f"cannot re-run {run.command[0]!r}: {exc.strerror or exc}") from None
        if code != 0:
            raise typer.Exit(code)
    else:
        resume(sweep, config=config)
    _report(run.id, json_out, config)


@sweep_app.command("show", epilog="Example:  groundwork sweep show 3f2a9c --json")
def show_command(
    sweep: Annotated[str, typer.Argument(help="The sweep: run id, id prefix or name.")],
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """The best trial and every trial: number, run, status, value, params, reason."""
    _report(sweep, json_out, make_config(store, artifacts))


def _report(ref: str, json_out: bool, config: Any) -> None:
    from groundwork.core.sweeps.sweep import describe_sweep

    info = describe_sweep(ref, config=config)
    if json_out:
        print_json(info)
        return
    counts = ", ".join(f"{n} {s}" for s, n in sorted(info["counts"].items())) or "no trials yet"
    console.print(
        f"[bold]sweep {info['id'][:12]}[/] {info['name']}  ({info['status']}; {counts} of {info['trials']})",
        highlight=False,
    )
    console.print(
        f"{info['direction']} {info['metric']}, sampler {info['sampler']}, pruner {info['pruner'] or 'none'}, "
        f"parallel {info['parallel']} ({info['executor']})",
        highlight=False,
    )
    best = info["best"]
    if best:
        params = ", ".join(f"{k}={fmt_value(v)}" for k, v in best["params"].items())
        console.print(f"best: trial {best['number']} ({best['id'][:12]}) {info['metric']}={fmt_value(best['value'])}  {params}",
                      highlight=False)
    names = list(info["space"])
    table = Table(show_edge=False, header_style="bold")
    for column in ("#", "run", "status", info["metric"], *names, "duration", "reason"):
        table.add_column(column)
    for row in info["rows"]:
        table.add_row(
            str(row["number"]), row["id"][:12], status_text(row["status"]),
            fmt_value(row["value"]) if row["value"] is not None else "-",
            *(fmt_value(row["params"].get(n, "-")) for n in names),
            fmt_duration(row["duration"]), (row["reason"] or "")[:60],
        )
    console.print(table)
