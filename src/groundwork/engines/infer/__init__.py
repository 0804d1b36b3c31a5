"""Sliding-window inference over volumes larger than memory: streamed, resumable, recorded.

    import groundwork as gw
    gw.infer_volume("seg@production", "ct.zarr", "mask.zarr", window=(96, 96, 96), overlap=0.25)

    groundwork infer seg@production --input ct.zarr --output mask.zarr --window 96,96,96

The answer is MONAI's ``sliding_window_inference`` (same grid, same Gaussian or
constant blending), computed without holding the volume: windows are read a batch
at a time, blended into per-chunk sums, and each output chunk is written as soon as
the last window touching it is in. Memory depends on the window, batch and chunk
sizes, not on the volume (:func:`groundwork.engines.infer.stream.memory_estimate`).
Progress is journaled per chunk beside the output (:mod:`.progress`): after a crash
the same call resumes and gives byte-identical output. With ``GROUNDWORK_RAY_ADDRESS``
the output is split into regions computed on a Ray cluster (:mod:`.ray`). Each call
is a run: the input and model are its inputs, the output its artifact.

Modules: :mod:`.windows` (grid, chunks, weights), :mod:`.volume` (zarr, .npy, NIfTI,
TIFF), :mod:`.model` (what MODEL may be), :mod:`.stream` (the loop), :mod:`.progress`
(the partial folder), :mod:`.ray` (the split).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.engines.infer.progress import Progress, partial_folder
from groundwork.engines.infer.stream import (
    ACTIVATIONS,
    OUTPUT_TYPES,
    Blending,
    Tick,
    memory_estimate,
    pool_slots,
    run_stream,
)
from groundwork.engines.infer.volume import (
    REMAP_BYTES,
    Layout,
    Volume,
    create_output,
    format_of,
    nifti_affine,
    open_input,
    publish,
    remove,
    reopen_output,
    working_name,
)
from groundwork.engines.infer.windows import BLENDS, Grid, importance_map
from groundwork.errors import Conflict, GroundworkError, InvalidInput


@dataclass
class VolumePlan:
    """What a call is about to do, said before the work starts."""

    input: str
    output: str
    model: str
    engine: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    output_dtype: str
    grid: dict[str, Any]
    windows: int
    batches: int
    chunks: int
    resumed: bool
    chunks_done: int
    memory: dict[str, int]
    process_rss: int
    parts: int = 1

    @property
    def memory_total(self) -> int:
        return self.process_rss + self.memory["total"]


@dataclass
class VolumeResult:
    """What a call did."""

    output: str
    shape: tuple[int, ...]
    dtype: str
    run_id: str | None
    seconds: float
    voxels_per_s: float
    windows: int
    batches: int
    chunks_written: int
    chunks_skipped: int
    chunks_redone: int
    resumed: bool
    sums_saved: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)
    parts: int = 1

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape"] = list(self.shape)
        return out


def parse_window(value: str | Sequence[int]) -> tuple[int, ...]:
    """``"96,96,96"`` or ``(96, 96, 96)`` as a tuple of positive sizes."""
    try:
        items = [int(v) for v in (value.split(",") if isinstance(value, str) else value) if str(v).strip()]
    except (TypeError, ValueError):
        raise InvalidInput(f"window must be sizes like 96,96,96; got {value!r}") from None
    if not items or any(v < 1 for v in items):
        raise InvalidInput(f"window must be positive sizes like 96,96,96; got {value!r}")
    return tuple(items)


def infer_volume(
    model: Any,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    window: str | Sequence[int] = (96, 96, 96),
    overlap: float = 0.25,
    blend: str = "gaussian",
    sigma_scale: float = 0.125,
    batch: int = 4,
    output_type: str = "float32",
    activation: str = "none",
    chunks: Sequence[int] | None = None,
    threads: int | None = None,
    resume: bool | None = None,
    restart: bool = False,
    overwrite: bool = False,
    cache_mb: float | None = None,
    checkpoint_s: float = 10.0,
    record: bool = True,
    store_output: bool = True,
    parts: int | None = None,
    on_plan: Callable[[VolumePlan], None] | None = None,
    on_tick: Callable[[Tick], None] | None = None,
    config: Config | None = None,
) -> VolumeResult:
    """Run ``model`` over ``input`` window by window and write ``output``; see the module docstring.

    ``output_type``: ``float32`` or ``float16`` (the blended outputs, after ``activation``:
    ``none``, ``softmax`` or ``sigmoid``) or ``labels`` (argmax over channels; a single
    channel is thresholded at 0.5). ``chunks``: the output chunk edge per spatial axis
    (default: a power of two near half the window step). ``resume``: ``None`` resumes an
    unfinished output of the same input, model and settings; ``True`` insists there is one,
    and accepts an input whose bytes changed (repaired). ``restart`` drops an
    unfinished output and starts over; ``overwrite`` replaces a finished one (at the end).
    ``cache_mb``: memory for chunk sums (default four batches of window outputs).
    ``checkpoint_s``: seconds between saves of the chunk sums (what a crash may lose).
    ``parts``: regions to split the output into on Ray (default: one per cluster CPU,
    when ``GROUNDWORK_RAY_ADDRESS`` is set; 1 runs here). ``record``: make the call a run;
    ``store_output``: keep the output in the artifact store too.
    """
    config = config or Config.from_env()
    window_t = parse_window(window)
    spatial = len(window_t)
    if blend not in BLENDS:
        raise InvalidInput(f"unknown blend {blend!r}", hint=f"use one of {', '.join(BLENDS)}")
    if output_type not in OUTPUT_TYPES:
        raise InvalidInput(f"unknown output type {output_type!r}", hint=f"use one of {', '.join(OUTPUT_TYPES)}")
    if activation not in ACTIVATIONS:
        raise InvalidInput(f"unknown activation {activation!r}", hint=f"use one of {', '.join(ACTIVATIONS)}")
    if not (math.isfinite(sigma_scale) and sigma_scale > 0):
        raise InvalidInput(f"sigma scale must be a positive number, got {sigma_scale!r}")
    if checkpoint_s < 0 or (cache_mb is not None and cache_mb <= 0):
        raise InvalidInput("checkpoint seconds must be >= 0 and the cache size positive")
    if restart and resume:
        raise InvalidInput("use just one of --resume and --restart")
    threads = threads or _cores()
    if threads < 1:
        raise InvalidInput(f"threads must be at least 1, got {threads}")

    source = open_input(input, spatial)
    target = Path(output)
    out_format = format_of(target)
    _check_output_path(source.path, target, overwrite)
    grid = Grid.plan(source.volumes, source.size, window_t, overlap, batch, chunks)

    from groundwork.engines.infer.model import resolve

    vm = resolve(model, spatial, threads, config)
    try:
        if vm.window is not None and vm.window != grid.window:
            raise InvalidInput(
                f"model {vm.reference} takes windows of {'x'.join(map(str, vm.window))} only (the input "
                f"example it was registered with fixed that size), not {'x'.join(map(str, grid.window))}",
                hint=f"use --window {','.join(map(str, vm.window))}, or register the model with an example "
                     "of the window size you want",
            )
        if vm.in_channels is not None and vm.in_channels != source.channels:
            raise InvalidInput(
                f"the model takes {vm.in_channels} channel(s) but {source.path} has {source.channels} "
                f"(its shape is {tuple(source.array.shape)}, read as (volumes, channels, *spatial) = {source.shape})",
                hint="channels come first: (C, *spatial), or (N, C, *spatial) for a batch of volumes",
            )
        out_channels = _probe(vm, source, grid)
        blending = Blending(importance_map(grid.window, blend, sigma_scale), out_channels, activation, output_type)
        layout = _output_layout(source, out_format, blending.stored_channels)
        view_shape = (grid.volumes, blending.stored_channels, *grid.size)
        stored_shape = layout.stored_shape(grid.volumes, blending.stored_channels, grid.size)
        slots = pool_slots(grid, out_channels, None if cache_mb is None else int(cache_mb * 1024 * 1024))
        mapped = REMAP_BYTES * sum(fmt in ("npy", "tiff", "nifti") for fmt in (source.format, out_format))
        memory = memory_estimate(grid, source.channels, source.dtype.itemsize, blending, slots, mapped)
        progress = Progress(partial_folder(target))
        if restart:
            progress.discard()
        if resume and not progress.exists:
            raise InvalidInput(f"there is no unfinished output to resume at {target}",
                               hint="run without --resume to start it")
        return _run(
            vm, source, target, out_format, grid, blending, layout, view_shape, stored_shape, slots, memory,
            progress, checkpoint_s, record, store_output, parts, threads, on_plan, on_tick, config, resume,
            {"blend": blend, "sigma_scale": sigma_scale, "activation": activation, "output_type": output_type},
        )
    finally:
        vm.close()
        source.close()


def _run(
    vm: Any, source: Volume, target: Path, out_format: str, grid: Grid, blending: Blending, layout: Layout,
    view_shape: tuple[int, ...], stored_shape: tuple[int, ...], slots: int, memory: dict[str, int],
    progress: Progress, checkpoint_s: float, record: bool, store_output: bool, parts: int | None,
    threads: int, on_plan: Callable[[VolumePlan], None] | None, on_tick: Callable[[Tick], None] | None,
    config: Config, resume: bool | None, settings: dict[str, Any],
) -> VolumeResult:
    from groundwork.core.tracking import start_run
    from groundwork.storage.artifacts import ArtifactStore

    params = {
        "model": vm.reference, "input": str(source.path), "output": str(target),
        "window": ",".join(map(str, grid.window)), "overlap": grid.overlap, "batch": grid.batch,
        "chunks": ",".join(map(str, grid.chunks)), **settings, "threads": threads,
    }
    run = None
    if record:
        run = start_run(name=f"infer {Path(str(vm.reference)).name}", params=params,
                        tags={"kind": "infer", "engine": str(vm.info.get("engine", ""))},
                        kind="infer", config=config, capture_code=False)
    try:
        if run is not None:
            input_digest = run.log_input(source.path, kind="dataset", store=False).digest
            if vm.lineage_path is not None:
                registered = vm.info.get("kind") == "registered"  # named by its reference, else by its path
                run.log_input(vm.lineage_path, name=str(vm.reference) if registered else None, kind="model",
                              store=not registered)
        else:
            input_digest = ArtifactStore.digest_path(source.path).digest
        plan = {
            "input": {"path": str(source.path.resolve()), "digest": input_digest},
            "model": {"digest": vm.digest},
            "grid": grid.to_dict(), **settings, "output": {"format": out_format, "shape": list(stored_shape),
                                                         "dtype": blending.dtype.name},
        }
        work = progress.folder / working_name(out_format)
        resumed = progress.exists
        if resumed:
            progress.check_same(plan, accept_input_change=resume is True)
            if not work.exists():
                raise Conflict(f"{progress.folder} has a plan but no data", hint="pass --restart to start over")
            out = reopen_output(work, out_format, layout, source.spatial)
        else:
            progress.create(plan)
            out = create_output(work, "npy" if out_format == "nifti" else out_format, layout, view_shape,
                                blending.dtype, grid.chunks, source.spatial)
        try:
            result = _compute(vm, source, out, progress, grid, blending, slots, checkpoint_s, memory, resumed,
                              parts, threads, on_plan, on_tick, run, config, target, stored_shape)
        finally:
            out.close()
            progress.close()
        if target.exists():
            remove(target)  # overwrite was asked for (checked at the start)
        publish(work, out_format, target, nifti_affine(source.path))
        progress.discard()
        result.output = str(target)
        result.shape = stored_shape
        if run is not None:
            if store_output:
                run.log_artifact(target, name=target.name, kind="dataset")
            result.run_id = run.id
    except BaseException as exc:
        if run is not None:
            run.end("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    if run is not None:
        run.end("finished")
    return result


def _compute(
    vm: Any, source: Volume, out: Volume, progress: Progress, grid: Grid, blending: Blending, slots: int,
    checkpoint_s: float, memory: dict[str, int], resumed: bool, parts: int | None, threads: int,
    on_plan: Callable[[VolumePlan], None] | None, on_tick: Callable[[Tick], None] | None, run: Any,
    config: Config, target: Path, stored_shape: tuple[int, ...],
) -> VolumeResult:
    state = progress.state()
    progress.tidy(state)
    n_parts = parts if parts is not None else (0 if config.ray_address else 1)
    ray_split = n_parts != 1
    if ray_split:
        from groundwork.engines.infer.ray import cluster_parts

        n_parts = n_parts or cluster_parts(config)
    plan = VolumePlan(
        input=str(source.path), output=str(target), model=str(vm.reference), engine=str(vm.info.get("engine", "")),
        input_shape=tuple(source.array.shape), output_shape=stored_shape, output_dtype=blending.dtype.name,
        grid=grid.to_dict(), windows=grid.total_windows, batches=grid.total_batches, chunks=grid.total_chunks,
        resumed=resumed, chunks_done=len(state.finished), memory=memory, process_rss=_rss(), parts=n_parts,
    )
    if on_plan is not None:
        on_plan(plan)
    if run is not None:
        run.log_params({"memory_estimate_mb": round(plan.memory_total / 2**20), "parts": n_parts})
    ticker = _Ticker(run, on_tick, math.prod(grid.chunks))
    if ray_split:
        from groundwork.engines.infer.ray import run_parts

        stats = run_parts(vm, source, out, progress, grid, blending, slots, checkpoint_s, n_parts, config, ticker)
    else:
        stats = run_stream(grid, vm.run, vm.input_dtype, source, out, progress, blending,
                           slots=slots, checkpoint_s=checkpoint_s, on_tick=ticker)
    voxels = stats.chunks_written * math.prod(grid.chunks)
    rate = voxels / stats.seconds if stats.seconds > 0 else 0.0
    if run is not None:
        run.log({"voxels_per_s": rate, "seconds": stats.seconds, "progress": 1.0, "windows": stats.windows,
                 "chunks_written": stats.chunks_written}, step=ticker.step)
    return VolumeResult(
        output=str(target), shape=out.shape, dtype=blending.dtype.name, run_id=None, seconds=stats.seconds,
        voxels_per_s=rate, windows=stats.windows,
        batches=stats.batches, chunks_written=stats.chunks_written, chunks_skipped=stats.chunks_skipped,
        chunks_redone=stats.chunks_redone, resumed=resumed, sums_saved=stats.sums_saved, model={"reference": str(vm.reference), **vm.info},
        memory={**memory, "process_rss": plan.process_rss}, parts=n_parts,
    )


class _Ticker:
    """Progress: to the caller's callback at every batch, to the run at most once a second."""

    def __init__(self, run: Any, on_tick: Callable[[Tick], None] | None, chunk_voxels: int) -> None:
        self.run = run
        self.on_tick = on_tick
        self.chunk_voxels = chunk_voxels
        self.last = 0.0
        self.step = 0

    def __call__(self, tick: Tick) -> None:
        if self.on_tick is not None:
            self.on_tick(tick)
        now = time.monotonic()
        if self.run is not None and now - self.last >= 1.0 and tick.seconds > 0:
            self.last = now
            self.run.log({"progress": tick.chunks_done / max(1, tick.chunks_total),
                          "windows_per_s": tick.windows / tick.seconds}, step=self.step)
            self.step += 1


def _probe(vm: Any, source: Volume, grid: Grid) -> int:
    """Run one window; the model's output channels (or one clear error)."""
    n, start = grid.window_at(0)
    x = source.read(n, [slice(s, s + w) for s, w in zip(start, grid.window, strict=True)])[None]
    shape = (1, source.channels, *grid.window)
    try:
        y = vm.run(x.astype(vm.input_dtype, copy=False))
    except GroundworkError as exc:
        raise InvalidInput(f"the model rejected a window of shape {shape}: {exc.message}") from None
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise InvalidInput(
            f"the model failed on a window of shape {shape}: {type(exc).__name__}: {text[0][:300] if text else ''}",
            hint="check the window size and the number of channels the model takes",
        ) from None
    if y.ndim != len(shape) or tuple(y.shape[2:]) != grid.window or y.shape[0] != 1:
        raise InvalidInput(
            f"the model maps a window of shape {shape} to {tuple(y.shape)}; sliding-window inference needs "
            f"(1, channels, {', '.join(map(str, grid.window))}): a dense model whose output is the window's size"
        )
    return int(y.shape[1])


def _output_layout(source: Volume, out_format: str, channels: int) -> Layout:
    if out_format == "nifti":
        if source.volumes > 1:
            raise InvalidInput("a NIfTI output holds one volume; write a batch of volumes to .zarr or .npy")
        return Layout(lead=0, channels_last=True, has_channel_axis=channels > 1)
    lead = 2 if source.volumes > 1 else (1 if source.layout.channels_last else source.layout.lead)
    if source.layout.channels_last:
        lead = 1 if source.layout.has_channel_axis or channels > 1 else 0
    if lead == 0 and channels > 1:
        lead = 1
    return Layout(lead=lead)


def _check_output_path(source: Path, target: Path, overwrite: bool) -> None:
    if target.resolve() == source.resolve():
        raise InvalidInput("the output must not be the input", hint="choose another output path")
    if target.exists() and not overwrite:
        raise Conflict(f"output {str(target)!r} already exists", hint="choose another path, or pass --overwrite")
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot write output {str(target)!r}: {exc.strerror or exc}",
                           hint="choose an output in a folder you can write to") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"cannot write output {str(target)!r}: folder {str(parent)!r} is not writable",
                           hint="choose an output in a folder you can write to")


def _cores() -> int:
    from groundwork.engines.optimize.hardware import usable_cores

    return usable_cores()


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


__all__ = ["VolumePlan", "VolumeResult", "infer_volume", "parse_window"]
