"""``groundwork optimize``: the fastest variant of a model on this CPU that keeps its quality."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from groundwork.cli._app import (
    ArtifactsOption,
    JsonOption,
    StoreOption,
    app,
    console,
    err_console,
    make_config,
)

EXAMPLE = (
    "Example:  groundwork optimize examples/optimize/models.py:digits_cnn --eval eval.npz "
    "--metric accuracy --max-drop 0.01 --calibration calib.npz --batch-sizes 1,32"
)


@app.command("optimize", epilog=EXAMPLE)
def optimize_command(
    model: Annotated[
        str,
        typer.Argument(help="An ONNX file, a torch.export .pt2 program, module:factory (or file.py:factory), or name@alias."),
    ],
    eval_data: Annotated[
        str,
        typer.Option("--eval", help="Eval data: .npz (one array per input, plus 'labels'), .npy, or module:function."),
    ],
    metric: Annotated[
        str, typer.Option("--metric", help="accuracy, cosine, mse, or module:function(outputs, reference, labels).")
    ] = "cosine",
    max_drop: Annotated[
        float, typer.Option("--max-drop", help="Largest quality drop allowed vs the FP32 baseline, in metric units.")
    ] = 0.01,
    calibration: Annotated[
        str | None,
        typer.Option("--calibration", help="Calibration data for static INT8 and pruning (same forms as --eval)."),
    ] = None,
    batch_sizes: Annotated[
        str, typer.Option("--batch-sizes", help="Batch sizes: latency at 1, throughput at the largest.")
    ] = "1,32",
    budget_minutes: Annotated[
        float | None, typer.Option("--budget-minutes", help="Stop starting new candidates after this many minutes.")
    ] = None,
    candidates: Annotated[
        str | None,
        typer.Option(
            "--candidates",
            help="Comma-separated candidate ids or families (torch, compile, ort, openvino, pruned); default all.",
        ),
    ] = None,
    sparsity: Annotated[
        str, typer.Option("--sparsity", help="Structured-pruning levels to try, comma-separated fractions.")
    ] = "0.3,0.5",
    train: Annotated[
        str | None,
        typer.Option("--train", help="module:function train(model, steps) to fine-tune each pruned model."),
    ] = None,
    finetune_steps: Annotated[int, typer.Option("--finetune-steps", help="Steps for --train.")] = 0,
    objective: Annotated[
        str, typer.Option("--objective", help="What 'fastest' means: throughput or latency.")
    ] = "throughput",
    threads: Annotated[
        int | None, typer.Option("--threads", help="Threads to use (default: every core this process may use).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default optimized/<model name>).")
    ] = None,
    keep_candidates: Annotated[
        bool, typer.Option("--keep-candidates", help="Keep every candidate's variant under OUT/candidates.")
    ] = False,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Record the optimize as a tracked run.")] = True,
    quick: Annotated[
        bool, typer.Option("--quick", help="Short measurements (rough numbers): for trying the command out.")
    ] = False,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Build, measure and compare CPU variants of a model; keep the fastest one within --max-drop.

    Candidates: PyTorch eager FP32 (the baseline) and BF16, torch.compile FP32/BF16,
    ONNX Runtime FP32 and INT8 (dynamic, static QDQ), OpenVINO FP32/BF16/INT8 (NNCF),
    and structured pruning + INT8. Writes OUT/report.json, report.md,
    speed_vs_quality.png and OUT/chosen/ (a variant directory any runtime session loads).
    """
    from groundwork.engines.optimize import MeasureSettings, optimize
    from groundwork.errors import InvalidInput

    try:
        levels = [float(s) for s in sparsity.split(",") if s.strip()]
    except ValueError as exc:
        raise InvalidInput(f"--sparsity takes fractions like 0.3,0.5; got {sparsity!r}") from exc
    config = make_config(store, artifacts)
    chosen_list = [c.strip() for c in candidates.split(",")] if candidates else None
    with _Progress(quiet=json_out) as progress:
        report = optimize(
            model,
            eval_data,
            metric=metric,
            max_drop=max_drop,
            calibration=calibration,
            batch_sizes=batch_sizes,
            budget_minutes=budget_minutes,
            candidates=chosen_list,
            sparsities=levels,
            train=train,
            finetune_steps=finetune_steps,
            out_dir=out,
            objective=objective,
            threads=threads,
            progress=progress.update,
            config=config,
            keep_candidates=keep_candidates,
            record=record,
            settings=MeasureSettings.quick() if quick else None,
        )
    if json_out:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        return
    _print_report(report)


class _Progress:
    """A Rich progress bar over candidates, with the current stage as its description."""

    def __init__(self, quiet: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.quiet = quiet
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
            disable=quiet,
        )
        self.task: Any = None

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, event: Any) -> None:
        if self.task is None:
            self.task = self.progress.add_task("starting", total=event.total)
        if event.stage == "remeasure":  # the leaders, measured again: the bar stays full
            self.progress.update(self.task, description=f"{event.candidate}: measuring again ({event.message})")
            return
        finished = event.stage in ("done", "skipped", "failed")
        self.progress.update(
            self.task,
            description=f"{event.candidate}: {event.stage}",
            completed=event.index + (1 if finished else 0),
        )
        if finished and not self.quiet:
            style = {"done": "green", "skipped": "yellow", "failed": "red"}[event.stage]
            self.progress.console.print(f"  [{style}]{event.stage:>7}[/] {event.candidate}: {event.message}", highlight=False)


def _print_report(report: Any) -> None:
    table = Table(title=f"optimize {report.model.get('name', '')} on {report.hardware.get('cpu_model', 'CPU')}")
    rows = report.table()
    for header in rows[0] if rows else []:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row.values())
    console.print(table)
    chosen = report.chosen_row
    if chosen is None:
        console.print(f"[bold red]Nothing chosen[/]: {report.choice_reason}", highlight=False)
    else:
        console.print(
            f"[bold green]Chosen[/] {chosen.id}: {chosen.throughput:.1f} items/s at batch {chosen.batch} "
            f"({chosen.speedup or 1:.2f}x the baseline), p50 {chosen.latency_p50_ms:.2f} ms at batch 1, "
            f"quality {chosen.score:.4f} ({chosen.quality_change or 0:+.4f})",
            highlight=False,
        )
        console.print(f"Variant: {Path(report.out_dir) / 'chosen'}", highlight=False)
    console.print(f"Report: {Path(report.out_dir) / 'report.md'}", highlight=False)
    if report.run_id:
        console.print(f"Run: {report.run_id}", highlight=False)
    if report.registered:
        console.print(f"Registered: {report.registered}", highlight=False)
