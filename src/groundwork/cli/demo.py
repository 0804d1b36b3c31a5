"""``groundwork demo``: the end-to-end demo on the embedded default store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from groundwork.cli._app import ArtifactsOption, StoreOption, app, console, make_config
from groundwork.errors import ConfigError


def examples_dir() -> Path:
    """The repository's ``examples/`` folder (the demo runs from a checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples" / "digits"
        if candidate.is_dir():
            return candidate.parent
    raise ConfigError(
        "the demo's examples/ folder was not found next to this groundwork",
        hint="run the demo from a checkout of the groundwork repository: make demo",
    )


@app.command("demo", epilog="Example:  groundwork demo --epochs 10")
def demo_command(
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs of the digits MLP.")] = 10,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """The end-to-end demo on the embedded store: a recorded run, a cached pipeline, lineage, reproduction.

    1. [bold]groundwork run[/] records examples/digits/train.py (a PyTorch MLP on scikit-learn's digits);
    2. [bold]groundwork pipeline run[/] runs examples/digits/pipeline.py, then again: fully cached;
    3. [bold]groundwork lineage[/] shows how the evaluation was made, from the raw data;
    4. [bold]groundwork reproduce[/] reruns the training step and checks every output digest.
    """
    from groundwork.cli.lineage import lineage_command
    from groundwork.cli.pipeline import run_and_show
    from groundwork.cli.reproduce import print_reproduction
    from groundwork.cli.runs import runs_command
    from groundwork.core.execution import execute_command
    from groundwork.core.reproduce import reproduce

    config = make_config(store, artifacts)
    examples = examples_dir()

    console.rule("[bold]1. groundwork run -- python examples/digits/train.py")
    result = execute_command(
        [sys.executable, str(examples / "digits" / "train.py")],
        config=config,
        name="digits-mlp",
        params={"epochs": epochs, "lr": 0.01, "hidden": 128, "seed": 0},
    )
    if result.exit_code != 0:
        raise typer.Exit(result.exit_code)

    target = f"{examples / 'digits' / 'pipeline.py'}:digits_pipeline"
    console.rule("[bold]2. groundwork pipeline run examples/digits/pipeline.py:digits_pipeline")
    first = run_and_show(target, {"epochs": epochs}, config=config)
    console.rule("[bold]3. the same pipeline again: every step comes from the cache")
    second = run_and_show(target, {"epochs": epochs}, config=config)

    console.rule("[bold]4. groundwork lineage: how the evaluation was made")
    lineage_command(second.run_id, descendants=False, depth=None, dot=False, json_out=False, store=store, artifacts=artifacts)

    console.rule("[bold]5. groundwork reproduce: rerun the training step and compare digests")
    reproduction = reproduce(first["train"].run_id, config=config, echo=False)
    print_reproduction(reproduction)

    console.rule("[bold]6. groundwork runs --filter \"kind != 'step'\"")
    runs_command(filter="kind != 'step'", order_by=None, limit=10, columns=None, json_out=False, store=store, artifacts=artifacts)
    console.print(
        f"\n[bold green]Demo done.[/] Store: {config.store_url}  Artifacts: {config.artifacts_url}\n"
        "Next:  groundwork show digits-mlp   ·   groundwork runs --filter \"metrics.acc > 0.9\"   ·   groundwork ui"
    )
