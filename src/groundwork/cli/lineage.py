"""``groundwork lineage TARGET``: where a run, an artifact or a file came from (or what came of it)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from groundwork.cli._app import ArtifactsOption, JsonOption, StoreOption, app, console, make_config
from groundwork.errors import InvalidInput

_STYLES = {"run": "bold", "artifact": "cyan"}


@app.command(
    "lineage",
    epilog="Example:  groundwork lineage digits@production   ·   groundwork lineage out/model.pt   ·   "
    "groundwork lineage 3f9a2c --descendants --dot | dot -Tsvg",
)
def lineage_command(
    target: Annotated[
        str,
        typer.Argument(help="A run id, id prefix or name; an artifact digest or prefix; a file path; "
                       "or a model version: NAME@ALIAS, NAME/3."),
    ],
    descendants: Annotated[
        bool, typer.Option("--descendants", "-d", help="What was made from TARGET, instead of what it was made from.")
    ] = False,
    depth: Annotated[int | None, typer.Option("--depth", help="Follow at most this many edges.", min=0)] = None,
    dot: Annotated[bool, typer.Option("--dot", help="Print Graphviz DOT instead of a tree.")] = False,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Show the lineage of TARGET as a tree: runs, the artifacts they read and wrote, pipelines, model versions."""
    from groundwork.core.lineage import lineage

    if dot and json_out:
        raise InvalidInput("use just one of --json and --dot")
    graph = lineage(target, descendants=descendants, depth=depth, config=make_config(store, artifacts))
    if json_out:
        sys.stdout.write(graph.to_json() + "\n")
        return
    if dot:
        sys.stdout.write(graph.to_dot())
        return
    for line in graph.tree().splitlines():
        console.print(_styled(line), highlight=False, soft_wrap=True)
    runs, files = len(graph.runs()), len(graph.artifacts())
    direction = "descendants" if descendants else "ancestry"
    console.print(Text(f"{direction}: {runs} run{'s' if runs != 1 else ''}, {files} artifact{'s' if files != 1 else ''}"
                       + (" (truncated)" if graph.truncated else ""), style="dim"))


def _styled(line: str) -> Text:
    text = Text(line)
    for word, style in (("[failed]", "bold red"), ("[finished]", "green"), ("[cached]", "cyan"),
                        ("[running]", "blue"), ("(see above)", "dim")):
        start = line.find(word)
        if start >= 0:
            text.stylize(style, start, start + len(word))
    return text
