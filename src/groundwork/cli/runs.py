"""``groundwork runs``, ``show`` and ``compare``: query recorded runs."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from groundwork._text import plural
from groundwork.cli._app import ArtifactsOption, JsonOption, StoreOption, app, console, make_config

STATUS_STYLES = {
    "running": "bold blue",
    "finished": "green",
    "failed": "bold red",
    "crashed": "bold magenta",
    "cached": "cyan",
    "pruned": "yellow",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:.6g}"
    return str(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command(
    "runs",
    epilog="Example:  groundwork runs --filter \"metrics.acc > 0.9 and params.lr = 0.01\" --order-by -metrics.acc --limit 10",
)
def runs_command(
    filter: Annotated[str | None, typer.Option("--filter", "-f", help="Filter expression (see docs/filters.md).")] = None,
    order_by: Annotated[
        str | None, typer.Option("--order-by", "-o", help="Sort key, '-' for descending: -metrics.acc, params.lr, name.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many runs.")] = 20,
    columns: Annotated[
        str | None, typer.Option("--columns", "-c", help="Comma-separated params.X / metrics.X / tags.X to show.")
    ] = None,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """List runs, newest first, filtered and sorted by params, metrics, tags and attributes."""
    from groundwork.core.runs import runs

    found = runs(filter=filter, order_by=order_by, limit=limit, config=make_config(store, artifacts))
    if json_out:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        console.print("[dim]No runs match.[/]" if filter else "[dim]No runs yet. Record one: groundwork run -- python train.py[/]")
        return
    if columns:
        cols = [c.strip() for c in columns.split(",") if c.strip()]
    else:
        metric_keys = sorted({k for r in found for k in r.metrics})[:6]
        param_keys = sorted({k for r in found for k in r.params})[:5]
        cols = [f"params.{k}" for k in param_keys] + [f"metrics.{k}" for k in metric_keys]
    table = Table(title=f"{len(found)} run{'s' if len(found) != 1 else ''}", header_style="bold", pad_edge=False)
    table.add_column("id", style="dim", no_wrap=True)
    table.add_column("name", no_wrap=True, max_width=32)
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("duration", justify="right")
    for col in cols:
        table.add_column(col, justify="right" if col.startswith("metrics.") else "left", max_width=24)
    for run in found:
        cells: list[Any] = [run.id[:12], run.name, status_text(run.status), fmt_time(run.created_at), fmt_duration(run.duration)]
        for col in cols:
            namespace, _, key = col.partition(".")
            sources: dict[str, dict[str, Any]] = {"params": run.params, "metrics": run.metrics, "tags": run.tags}
            source = sources.get(namespace, {})
            value = source.get(key)
            cells.append("" if value is None else fmt_value(value))
        table.add_row(*cells)
    console.print(table)


@app.command("show", epilog="Example:  groundwork show 3f9a2c   (an id, a unique id prefix, or a run name)")
def show_command(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id, unique id prefix, or name.")],
    logs: Annotated[bool, typer.Option("--logs", help="Print the whole captured stdout/stderr.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Print the uncommitted diff recorded with the run.")] = False,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Everything about one run: code version, environment, params, metrics, inputs, outputs, logs."""
    from groundwork.core.runs import get_run

    config = make_config(store, artifacts)
    run = get_run(run_ref, config=config)
    if diff:
        if not run.diff_digest:
            console.print("[dim]No uncommitted changes were recorded with this run.[/]")
            return
        from groundwork.storage.stores import open_stores

        sys.stdout.write(open_stores(config).artifacts.get_bytes(run.diff_digest).decode("utf-8", errors="replace"))
        return
    if logs:
        sys.stdout.write(run.logs())
        return
    if json_out:
        data = run.to_dict(environment=True)
        data["metric_history_lengths"] = {k: len(run.history(k)) for k in run.metric_keys()}
        print_json(data)
        return
    console.print(_run_panel(run))


def _kv_table(title: str, items: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False, title_style="bold")
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for key in sorted(items):
        table.add_row(key, fmt_value(items[key]))
    return table


def _run_panel(run: Any) -> Panel:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    head.add_row("id", run.id)
    head.add_row("name", run.name)
    head.add_row("status", status_text(run.status))
    if run.kind != "run":
        head.add_row("kind", run.kind)
    if run.parent_id:
        head.add_row("parent", run.parent_id)
    if run.cached_from:
        head.add_row("cached from", run.cached_from)
    head.add_row("created", fmt_time(run.created_at))
    head.add_row("duration", fmt_duration(run.duration))
    if run.command:
        import shlex

        head.add_row("command", shlex.join(run.command))
    if run.exit_code is not None:
        head.add_row("exit code", str(run.exit_code))
    head.add_row("where", f"{run.user or '?'}@{run.host or '?'}:{run.cwd or '?'}")
    if run.git_commit:
        dirty = " [yellow](uncommitted changes recorded: groundwork show --diff)[/]" if run.diff_digest else ""
        head.add_row("code", f"{run.git_commit[:12]} on {run.git_branch or 'detached HEAD'}{dirty}")
    env = run.environment
    if env:
        cpu = env.get("cpu", {})
        py = env.get("python", {})
        os_info = env.get("os", {})
        head.add_row("python", f"{py.get('version', '?')} ({len(env.get('packages', {}))} packages)")
        head.add_row("os", str(os_info.get("platform") or os_info.get("system", "?")))
        features = ", ".join(cpu.get("features", [])) or "-"
        head.add_row("cpu", f"{cpu.get('model', '?')}, {cpu.get('cores_logical', '?')} cores; {features}")
        memory = env.get("memory_bytes")
        if memory:
            head.add_row("memory", f"{memory / 2**30:.1f} GiB")
        gpus = env.get("gpus") or []
        head.add_row("gpus", ", ".join(str(g.get("name", g)) if isinstance(g, dict) else str(g) for g in gpus) or "none")
    parts: list[Any] = [head]
    if run.params:
        parts.append(_kv_table("params", run.params))
    if run.metrics:
        metrics = Table(title="metrics", title_justify="left", box=None, pad_edge=False, title_style="bold", header_style="dim")
        metrics.add_column("key", style="cyan")
        metrics.add_column("last", justify="right")
        metrics.add_column("points", justify="right")
        for key in sorted(run.metrics):
            metrics.add_row(key, fmt_value(run.metrics[key]), str(len(run.history(key))))
        parts.append(metrics)
    if run.tags:
        parts.append(_kv_table("tags", run.tags))
    for title, links in (("inputs", run.inputs), ("outputs", run.outputs)):
        if links:
            table = Table(title=title, title_justify="left", box=None, pad_edge=False, title_style="bold", header_style="dim")
            table.add_column("name", style="cyan")
            table.add_column("kind")
            table.add_column("digest", style="dim")
            table.add_column("size", justify="right")
            for link in links:
                size = f"{link.size:,} B" + (f" in {plural(link.file_count, 'file')}" if link.is_dir else "")
                table.add_row(link.name, link.kind, link.digest[:16], size)
            parts.append(table)
    if run.error:
        parts.append(Panel(Text(run.error.rstrip()), title="error", border_style="red", title_align="left"))
    tail = run.logs(tail=15)
    if tail:
        parts.append(Panel(Text(tail.rstrip()), title="output (last lines; --logs for all)", border_style="dim", title_align="left"))
    return Panel(Group(*parts), title=f"run {run.id[:12]}", title_align="left")


@app.command("compare", epilog="Example:  groundwork compare 3f9a2c 81bd07 baseline")
def compare_command(
    run_refs: Annotated[list[str], typer.Argument(metavar="RUN...", help="Two or more runs (ids, prefixes or names).")],
    all_rows: Annotated[bool, typer.Option("--all", help="Show equal rows too (default: all rows, differences highlighted).")] = True,
    only_diff: Annotated[bool, typer.Option("--only-diff", help="Show only rows that differ.")] = False,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Params and last metrics of several runs side by side, differences highlighted."""
    from groundwork.core.runs import get_run
    from groundwork.errors import InvalidInput

    if len(run_refs) < 2:
        raise InvalidInput("compare needs at least two runs", hint="groundwork compare RUN RUN [RUN...]")
    config = make_config(store, artifacts)
    found = [get_run(ref, config=config) for ref in run_refs]
    rows: list[tuple[str, list[Any]]] = []
    for namespace in ("params", "metrics"):
        keys = sorted({k for r in found for k in getattr(r, namespace)})
        for key in keys:
            rows.append((f"{namespace}.{key}", [getattr(r, namespace).get(key) for r in found]))
    if json_out:
        print_json(
            {
                "runs": [{"id": r.id, "name": r.name, "status": r.status} for r in found],
                "rows": [
                    {"key": key, "values": values, "differs": len({json.dumps(v) for v in values}) > 1}
                    for key, values in rows
                ],
            }
        )
        return
    table = Table(header_style="bold", title="params and last metrics (differences in yellow)")
    table.add_column("", style="cyan", no_wrap=True)
    for run in found:
        table.add_column(f"{run.name}\n{run.id[:12]}", justify="right")
    table.add_row("status", *[status_text(r.status) for r in found])
    for key, values in rows:
        differs = len({json.dumps(v) for v in values}) > 1
        if only_diff and not differs:
            continue
        style = "bold yellow" if differs else ""
        table.add_row(key, *[Text("-" if v is None else fmt_value(v), style=style) for v in values])
    console.print(table)
