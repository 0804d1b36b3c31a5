"""``groundwork reproduce RUN``: rerun a recorded run from its recorded code and inputs, and compare."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from groundwork.cli._app import (
    ArtifactsOption,
    JsonOption,
    StoreOption,
    app,
    console,
    err_console,
    make_config,
)

if TYPE_CHECKING:
    from groundwork.core.reproduce import Reproduction


@app.command(
    "reproduce",
    epilog="Example:  groundwork reproduce 3f9a2c --tolerance 1e-6   (exit 0 only when reproduced)",
)
def reproduce_command(
    run: Annotated[str, typer.Argument(help="The run to reproduce: an id, a unique id prefix, or a run name.")],
    tolerance: Annotated[
        float | None,
        typer.Option("--tolerance", help="Accept metric deltas up to this size even when outputs differ.", min=0.0),
    ] = None,
    current_inputs: Annotated[
        bool, typer.Option("--current-inputs", help="Use the input files as they are now instead of the recorded ones.")
    ] = False,
    keep_worktree: Annotated[
        bool, typer.Option("--keep-worktree", help="Leave the temporary worktree in place to inspect it.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not show the rerun's own output.")] = False,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Rerun RUN from its recorded code, inputs, params and seed; compare outputs, metrics, environments.

    The code is a git worktree at the run's commit with its uncommitted diff applied (without
    git: a temporary copy of the run's folder; yours is never written); inputs are restored
    from the artifact store into it. The rerun is recorded as a new run.
    """
    from groundwork.core.reproduce import reproduce

    config = make_config(store, artifacts)
    if not json_out:
        err_console.print(f"[bold]reproducing run {run}[/]", highlight=False)
    result = reproduce(run, config=config, tolerance=tolerance, current_inputs=current_inputs,
                       keep_worktree=keep_worktree, echo=not (quiet or json_out))
    if json_out:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    else:
        print_reproduction(result)
    raise typer.Exit(0 if result.ok else 1)


def print_reproduction(result: Reproduction) -> None:
    """The human report: what was rerun, the verdict, then what differs and what may explain it."""
    console.print(f"[dim]code:[/]   {result.code}", highlight=False)
    if result.inputs:
        from_store = sum(1 for i in result.inputs if i.source == "store")
        external = sum(1 for i in result.inputs if i.source == "external")
        where = f", {external} outside the project read where they are" if external else ""
        console.print(f"[dim]inputs:[/] {len(result.inputs)} ({from_store} restored from the artifact store{where})",
                      highlight=False)
    if result.rerun_id:
        console.print(f"[dim]rerun:[/]  run {result.rerun_id[:12]} \\[{result.rerun_status}] "
                      f"tagged reproduces={result.original_id[:12]}", highlight=False)
    for note in result.notes:
        console.print(f"[dim]note:[/]   {note}", highlight=False)
    style = "bold green" if result.exact else "bold yellow" if result.ok else "bold red"
    console.print(Text(result.verdict(), style=style))
    if result.rerun_error:
        console.print(f"  rerun error: {result.rerun_error}", highlight=False)
    changed_inputs = [i for i in result.inputs if i.changed]
    if changed_inputs:
        console.print("[bold]inputs that differ from the recorded ones:[/]")
        for changed_input in changed_inputs:
            used = changed_input.used[:12] if changed_input.used else "missing"
            console.print(f"  {changed_input.name}: recorded {changed_input.recorded[:12]}, used {used} "
                          f"({changed_input.source})", highlight=False)
    differing = [o for o in result.outputs if not o.same]
    if differing:
        table = Table("output", "recorded", "reproduced", box=None, header_style="bold", title_justify="left")
        for o in differing:
            table.add_row(o.name, (o.recorded or "(none)")[:12], (o.reproduced or "(none)")[:12])
        console.print(table)
    changed = [m for m in result.metrics if not m.same]
    if changed:
        table = Table("metric", "recorded", "reproduced", "delta", box=None, header_style="bold")
        for m in changed:
            delta = m.delta
            within = "" if result.tolerance is None else (" ✓" if m.within(result.tolerance) else " ✗")
            table.add_row(m.key, _num(m.recorded), _num(m.reproduced), (f"{delta:+.6g}" if delta is not None else "-") + within)
        console.print(table)
    if result.environment:
        heading = "environment differences" + ("" if not result.exact else " (the result did not change)")
        console.print(f"[bold]{heading}:[/]")
        for diff in result.environment:
            console.print(f"  {diff.describe()}", highlight=False)
    elif not result.exact:
        console.print("[dim]the two runs' environments are the same (packages, Python, CPU and its features)[/]")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
