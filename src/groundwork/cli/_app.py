"""The root Typer app and the options every command shares.

Command modules (``groundwork.cli.<noun>``) import :data:`app` and register
their commands on it; :mod:`groundwork.cli` imports them all. A command module
must import only light modules at top level: torch, ray and onnxruntime are
imported inside the command function, so ``groundwork --help`` stays quick.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from groundwork.config import Config

app = typer.Typer(
    name="groundwork",
    help=(
        "groundwork: every training run recorded and reproducible, cached pipelines, "
        "lineage, CPU-optimized models and serving.\n\n"
        "Example:  groundwork run --param lr=0.01 -- python train.py"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _print_version(value: bool) -> None:
    if value:
        from groundwork import __version__

        print(f"groundwork {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """groundwork: every training run recorded and reproducible, cached pipelines, lineage,
    CPU-optimized models and serving.

    Example:  groundwork run --param lr=0.01 -- python train.py
    """


def _width(stream: object) -> int | None:
    """Rich's width: $GROUNDWORK_WIDTH, else the terminal's, else 200 when piped.

    $COLUMNS is not trusted for pipes: readline exports a stale COLUMNS=80 into
    the environment of processes started from an interactive Python.
    """
    if os.environ.get("GROUNDWORK_WIDTH", "").isdigit():
        return int(os.environ["GROUNDWORK_WIDTH"])
    isatty = getattr(stream, "isatty", None)
    return None if isatty and isatty() else 200


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Metadata store URL (default: $GROUNDWORK_STORE or sqlite:///./.groundwork/meta.db).", show_default=False),
]
ArtifactsOption = Annotated[
    str | None,
    typer.Option("--artifacts", help="Artifact store URL (default: $GROUNDWORK_ARTIFACTS or ./.groundwork/artifacts).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def make_config(store: str | None = None, artifacts: str | None = None) -> Config:
    """The Config for a command: flags over environment over defaults."""
    return Config.from_env(store_url=store, artifacts_url=artifacts)
