"""``groundwork infer``: sliding-window inference over a volume larger than memory, resumable, recorded."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

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
    "Example:  groundwork infer seg@production --input ct.zarr --output mask.zarr "
    "--window 96,96,96 --overlap 0.25 --output-type labels"
)


@app.command("infer", epilog=EXAMPLE)
def infer_command(
    model: Annotated[
        str,
        typer.Argument(help="NAME@ALIAS or NAME/VERSION, a variant folder from groundwork optimize, an ONNX file, "
                            "a .pt2 program, or module:factory.", show_default=False),
    ],
    input: Annotated[str, typer.Option("--input", "-i", help="Volume to read: .zarr, .npy, .nii/.nii.gz or .tif, "
                                                           "channels first ((C, *spatial) or (N, C, *spatial)).",
                                       show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write (same formats, chosen by the name).",
                                        show_default=False)],
    window: Annotated[str, typer.Option("--window", help="Window size per spatial axis.")] = "96,96,96",
    overlap: Annotated[float, typer.Option("--overlap", help="Fraction of a window its neighbour overlaps (0 to <1).")] = 0.25,
    blend: Annotated[str, typer.Option("--blend", help="gaussian or constant weighting of overlapping windows.")] = "gaussian",
    batch: Annotated[int, typer.Option("--batch", help="Windows per model call.")] = 4,
    output_type: Annotated[str, typer.Option("--output-type", help="float32, float16, or labels (argmax over channels).")] = "float32",
    activation: Annotated[str, typer.Option("--activation", help="none, softmax or sigmoid, applied after blending.")] = "none",
    chunks: Annotated[str | None, typer.Option("--chunks", help="Output chunk size per spatial axis (default: from the window).", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Threads for the model (default: every core).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Insist on resuming an unfinished output (the same command resumes anyway).")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Drop an unfinished output and start over.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a finished output at the end.")] = False,
    cache_mb: Annotated[float | None, typer.Option("--cache-mb", help="Memory for chunk sums (default: four batches of window outputs).", show_default=False)] = None,
    checkpoint_s: Annotated[float, typer.Option("--checkpoint-s", help="Seconds between saves of the chunk sums (what a crash can lose).")] = 10.0,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Record the inference as a run.")] = True,
    store_output: Annotated[bool, typer.Option("--store-output/--no-store-output", help="Keep a copy of the output in the artifact store (lineage from the output file needs it).")] = True,
    parts: Annotated[int | None, typer.Option("--parts", help="Regions to split the output into on Ray (default: one per cluster CPU when GROUNDWORK_RAY_ADDRESS is set).", show_default=False)] = None,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Run a segmentation model over a volume window by window (MONAI's sliding-window grid and blending).

    Memory depends on the window, batch and chunk sizes, not the volume. Finished output chunks are journaled in OUTPUT.partial/; if the command is stopped (even kill -9), the same command resumes and gives byte-identical output. Each inference is a recorded run: `groundwork lineage OUTPUT` walks back to the model's training data.
    """  # noqa: E501
    from groundwork.engines.infer import infer_volume, parse_window
    from groundwork.errors import InvalidInput

    if resume and restart:
        raise InvalidInput("use just one of --resume and --restart")
    chunk_sizes = parse_window(chunks) if chunks else None
    config = make_config(store, artifacts)
    bar = _Bar(quiet=json_out)
    try:
        result = infer_volume(
            model, input, output, window=window, overlap=overlap, blend=blend, batch=batch,
            output_type=output_type, activation=activation, chunks=chunk_sizes, threads=threads,
            resume=resume or None, restart=restart, overwrite=overwrite, cache_mb=cache_mb,
            checkpoint_s=checkpoint_s, record=record, store_output=store_output, parts=parts,
            on_plan=bar.plan, on_tick=bar.tick, config=config,
        )
    finally:
        bar.close()
    if json_out:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    redone = f", {result.chunks_redone} damaged chunks redone" if result.chunks_redone else ""
    skipped = f", {result.chunks_skipped} chunks already done" if result.chunks_skipped else ""
    console.print(
        f"[bold green]Wrote[/] {result.output} {tuple(result.shape)} {result.dtype}: {result.windows} windows, "
        f"{result.chunks_written} chunks in {result.seconds:.1f} s ({_rate(result.voxels_per_s)}){skipped}{redone}"
        + (f"; run {result.run_id[:12]}" if result.run_id else ""),
        highlight=False,
    )


def _rate(voxels_per_s: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if voxels_per_s >= size:
            return f"{voxels_per_s / size:.2f} {unit}voxels/s"
    return f"{voxels_per_s:.0f} voxels/s"


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


class _Bar:
    """The plan, said up front, then a progress bar over output chunks with voxels/s and ETA."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None

    def plan(self, plan: Any) -> None:
        if self.quiet:
            return
        grid = plan.grid
        where = f" on Ray in {plan.parts} parts" if plan.parts > 1 else ""
        resumed = f"; resuming: {plan.chunks_done} of {plan.chunks} chunks already done" if plan.resumed else ""
        err_console.print(
            f"groundwork infer: {plan.input} {plan.input_shape} -> {plan.output} {plan.output_shape} "
            f"{plan.output_dtype}\n  {plan.windows} windows of {'x'.join(map(str, grid['window']))} in "
            f"{plan.batches} batches of {grid['batch']}, {plan.chunks} output chunks of "
            f"{'x'.join(map(str, grid['chunks']))}, model on {plan.engine}{where}{resumed}\n"
            f"  memory: about {_mb(plan.memory_total)} ({_mb(plan.process_rss)} for the process and model, "
            f"{_mb(plan.memory['total'])} for windows and chunk sums), whatever the volume's size",
            highlight=False,
        )
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]chunks"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("infer", total=plan.chunks, completed=plan.chunks_done, rate="")

    def tick(self, tick: Any) -> None:
        if self.progress is None:
            return
        rate = f"{tick.windows / tick.seconds:.1f} windows/s" if tick.seconds > 0 and tick.windows else ""
        self.progress.update(self.task, completed=tick.chunks_done, rate=rate)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
