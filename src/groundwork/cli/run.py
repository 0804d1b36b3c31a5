"""``groundwork run``: record any command as a run without changing a line of it."""

from __future__ import annotations

from typing import Annotated

import typer

from groundwork.cli._app import ArtifactsOption, StoreOption, app, err_console, make_config


@app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Example:  groundwork run --name baseline --param lr=0.01 --input data/ --output model.pt -- python train.py\n\n"
    "Resume a crashed run from its last checkpoint (run.checkpoint):  groundwork run --resume 3f2a9c",
)
def run_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Run name (default: the command's name).")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="KEY=VALUE, repeatable; passed to the command as GROUNDWORK_PARAM_<KEY>."),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="KEY=VALUE tag, repeatable.")] = None,
    input: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="A file or folder the command reads (digested and stored first).")
    ] = None,
    output: Annotated[
        list[str] | None, typer.Option("--output", "-o", help="A file or folder the command writes (stored as an artifact after).")
    ] = None,
    no_stdout_metrics: Annotated[
        bool, typer.Option("--no-stdout-metrics", help="Do not turn JSON-object stdout lines into metrics.")
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="A run to resume: its command and params again, run.last_checkpoint() finds its checkpoint."),
    ] = None,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> int:
    """Run CMD as a recorded run: code version, environment, params, output, metrics, inputs, outputs.

    Everything after [bold]--[/] is the command. Its exit code becomes groundwork's.
    """
    from groundwork.core.execution import execute_command, parse_params

    argv = list(ctx.args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    elif argv and argv[0].startswith("-"):
        # Before the command (and without --), an unknown option is a typo of ours, not the command.
        ctx.fail(f"No such option: {argv[0]} (put the command after --)")
    config = make_config(store, artifacts)
    params: dict[str, str] = parse_params(param or [])
    tags: dict[str, str] = parse_params(tag or [])
    extra_env: dict[str, str] = {}
    if resume:
        from groundwork.core.checkpoints import RESUME_ENV, TAG_RESUMED_FROM
        from groundwork.core.runs import get_run
        from groundwork.errors import InvalidInput

        old = get_run(resume, config=config)
        if old.status == "running":
            raise InvalidInput(f"run {old.id[:12]} is still running", hint="resume a run that has ended (crashed, failed)")
        argv = argv or list(old.command or [])
        params = {**old.params, **params}
        name = name or old.name
        tags[TAG_RESUMED_FROM] = old.id
        extra_env[RESUME_ENV] = old.id
    result = execute_command(
        argv,
        config=config,
        name=name,
        params=params,
        tags=tags,
        extra_env=extra_env,
        inputs=input or [],
        outputs=output or [],
        stdout_metrics=not no_stdout_metrics,
    )
    err_console.print(
        f"[dim]groundwork: run {result.run_id[:12]} {result.status} "
        f"(exit {result.exit_code}, {result.duration:.1f}s)[/]",
        highlight=False,
    )
    raise typer.Exit(result.exit_code)
