"""``groundwork pipeline run``: run a ``@gw.pipeline`` with a live view of its steps."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from groundwork._text import plural
from groundwork.cli._app import (
    ArtifactsOption,
    JsonOption,
    StoreOption,
    app,
    console,
    err_console,
    make_config,
)
from groundwork.config import Config
from groundwork.errors import InvalidInput

if TYPE_CHECKING:
    from groundwork.core.pipelines import Pipeline, PipelineResult, StepEvent

pipeline_app = typer.Typer(
    name="pipeline",
    help="Run pipelines: steps joined into a DAG, cached by content.\n\n"
    "Example:  groundwork pipeline run groundwork.examples.digits.pipeline:digits_pipeline --param epochs=5",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(pipeline_app, name="pipeline")

_MARKS = {
    "pending": ("·", "dim"),
    "running": ("▶", "bold blue"),
    "retrying": ("↻", "yellow"),
    "finished": ("✓", "green"),
    "cached": ("≡", "cyan"),
    "failed": ("✗", "bold red"),
    "skipped": ("-", "dim"),
}


def coerce_params(pipeline: Pipeline, items: Sequence[str]) -> dict[str, Any]:
    """``["epochs=5", "lr=0.01"]`` -> typed values, by the pipeline function's annotations or defaults."""
    from groundwork.core.execution import parse_params

    raw = parse_params(items)
    parameters = pipeline.signature.parameters
    unknown = sorted(set(raw) - set(parameters))
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        raise InvalidInput(
            f"pipeline {pipeline.name!r} has no parameter {', '.join(map(repr, unknown))}",
            hint=f"it accepts: {', '.join(parameters) or 'none'}",
        )
    return {key: _coerce(key, value, parameters.get(key)) for key, value in raw.items()}


def _coerce(key: str, value: str, parameter: inspect.Parameter | None) -> Any:
    target: Any = None
    if parameter is not None:
        annotation = parameter.annotation
        if isinstance(annotation, str):
            target = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation.split("|")[0].strip())
        elif annotation in (int, float, bool, str):
            target = annotation
        elif parameter.default is not inspect.Parameter.empty and parameter.default is not None:
            target = type(parameter.default) if type(parameter.default) in (int, float, bool, str) else None
    try:
        if target is bool:
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        if target in (int, float):
            return target(value)
        if target is str:
            return value
    except ValueError:
        raise InvalidInput(f"--param {key}={value!r} is not a valid {target.__name__}") from None
    try:
        return json.loads(value)
    except ValueError:
        return value


class _Display:
    """A live table of step states on a terminal; one line per change elsewhere."""

    def __init__(self, names: Sequence[str], live: bool) -> None:
        self.states: dict[str, Any] = {name: None for name in names}
        self.status: dict[str, str] = dict.fromkeys(names, "pending")
        self.live: Live | None = Live(self._table(), console=err_console, refresh_per_second=8, transient=False) if live else None

    def __enter__(self) -> _Display:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.__exit__(*exc)

    def event(self, event: StepEvent) -> None:
        self.status[event.step] = event.status
        self.states[event.step] = event.result
        if self.live is not None:
            self.live.update(self._table())
        else:
            err_console.print(self._line(event.step), highlight=False)

    def _detail(self, name: str) -> str:
        result = self.states.get(name)
        status = self.status[name]
        if result is None:
            return ""
        if status == "cached" and result.cached_from:
            return f"reused {result.cached_from[:12]}"
        if status in ("finished", "failed") and result.duration is not None:
            text = f"{result.duration:.2f}s"
            if result.attempts > 1:
                text += f", attempt {result.attempts}"
            return text
        if status == "retrying":
            return f"attempt {result.attempts}"
        if status == "skipped":
            return result.error or ""
        return ""

    def _line(self, name: str) -> Text:
        status = self.status[name]
        mark, style = _MARKS.get(status, ("?", ""))
        result = self.states.get(name)
        run = f" {result.run_id[:12]}" if result is not None and result.run_id else ""
        detail = self._detail(name)
        return Text.assemble((f"  {mark} ", style), (f"{name:<20}", "bold"), (f" {status:<9}", style),
                             (run, "dim"), (f"  {detail}" if detail else "", "dim"))

    def _table(self) -> Table:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("", "step", "status", "run", ""):
            table.add_column(column)
        for name, status in self.status.items():
            mark, style = _MARKS.get(status, ("?", ""))
            result = self.states.get(name)
            run = result.run_id[:12] if result is not None and result.run_id else ""
            table.add_row(Text(mark, style), Text(name, "bold"), Text(status, style), Text(run, "dim"),
                          Text(self._detail(name), "dim"))
        return table


def run_and_show(
    target: str | Pipeline,
    params: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    executor: str = "local",
    cache: bool = True,
    config: Config | None = None,
    workers: int | None = None,
    json_out: bool = False,
    live: bool | None = None,
) -> PipelineResult:
    """Run a pipeline showing its steps as they go (what ``groundwork pipeline run`` does).

    ``params`` are typed values, or ``KEY=VALUE`` strings coerced by the pipeline's
    annotations. Raises :class:`~groundwork.core.pipelines.PipelineFailed` after
    printing the failing step's traceback.
    """
    from groundwork.core.pipelines import PipelineFailed, load_pipeline, run_pipeline
    from groundwork.core.pipelines.executors import executor_class

    config = config or Config.from_env()
    executor_class(executor)  # an unknown executor fails before the pipeline module is imported
    pipeline = load_pipeline(target) if isinstance(target, str) else target
    if params is None:
        values: dict[str, Any] = {}
    elif isinstance(params, Mapping):
        values = dict(params)
    else:
        values = coerce_params(pipeline, list(params))
    graph = pipeline.build(**values)
    use_live = (err_console.is_terminal and not json_out) if live is None else live
    command = ["groundwork", "pipeline", "run", pipeline.reference]
    command += [f"--param={k}={v}" for k, v in values.items()]
    command += [f"--executor={executor}"] + ([] if cache else ["--no-cache"])
    started = time.perf_counter()
    if not json_out:
        err_console.print(
            f"[bold]pipeline {pipeline.name}[/] · {plural(len(graph), 'step')} · executor {executor}"
            + ("" if cache else " · cache off"),
            highlight=False,
        )
    display = _Display(list(graph.nodes), live=use_live)
    try:
        with display:
            result = run_pipeline(
                pipeline, values, executor=executor, cache=cache, config=config, max_workers=workers,
                echo=not use_live and not json_out, on_event=None if json_out else display.event, command=command,
            )
    except PipelineFailed as failed:
        if failed.traceback and not json_out:
            err_console.print(f"\n[bold red]step {failed.step} failed:[/]", highlight=False)
            err_console.print(failed.traceback.rstrip(), highlight=False, markup=False)
        if json_out:
            console.print_json(json.dumps(failed.result.to_dict(), default=str))
        raise
    elapsed = time.perf_counter() - started
    if json_out:
        console.print_json(json.dumps(result.to_dict(), default=str))
    else:
        verdict = " (fully cached: nothing recomputed)" if result.fully_cached else ""
        err_console.print(
            f"[bold green]pipeline {result.pipeline} finished[/] in {elapsed:.2f}s: {result.summary()}{verdict}"
            f" · run {result.run_id[:12]}",
            highlight=False,
        )
    return result


@pipeline_app.command(
    "run",
    epilog="Example:  groundwork pipeline run groundwork.examples.digits.pipeline:digits_pipeline --param epochs=5 --executor local",
)
def pipeline_run_command(
    target: Annotated[str, typer.Argument(help="module:function or path/to/file.py:function of a @gw.pipeline.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE pipeline parameter, repeatable.")
    ] = None,
    executor: Annotated[str, typer.Option("--executor", "-e", help="Where steps run: local, ray or inline.")] = "local",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step even when a cached result exists.")] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Local executor: steps at once (default: the CPUs).", min=1)
    ] = None,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Run a pipeline: steps whose code, params, inputs and declared packages are unchanged are reused."""
    run_and_show(target, param or [], executor=executor, cache=not no_cache, config=make_config(store, artifacts),
                 workers=workers, json_out=json_out)
