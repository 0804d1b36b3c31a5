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
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs of the digits MLP.")] = 20,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Train a PyTorch MLP on scikit-learn's digits as a recorded run, then list and show it."""
    from groundwork.cli.runs import runs_command, show_command
    from groundwork.core.execution import execute_command

    config = make_config(store, artifacts)
    script = examples_dir() / "digits" / "train.py"
    console.rule("[bold]1. groundwork run -- python examples/digits/train.py")
    result = execute_command(
        [sys.executable, str(script)],
        config=config,
        name="digits-mlp",
        params={"epochs": epochs, "lr": 0.01, "hidden": 128, "seed": 0},
        outputs=[],
    )
    if result.exit_code != 0:
        raise typer.Exit(result.exit_code)
    console.rule("[bold]2. groundwork runs")
    runs_command(filter=None, order_by=None, limit=10, columns=None, json_out=False, store=store, artifacts=artifacts)
    console.rule(f"[bold]3. groundwork show {result.run_id[:12]}")
    show_command(result.run_id, logs=False, diff=False, json_out=False, store=store, artifacts=artifacts)
    console.print(
        f"\n[bold green]Demo done.[/] Store: {config.store_url}  Artifacts: {config.artifacts_url}\n"
        "Try:  groundwork runs --filter \"metrics.acc > 0.9\"   ·   groundwork show digits-mlp --logs"
    )
