"""Splitting one output into regions computed on a Ray cluster.

The output's chunks are cut into ``parts`` slabs along the first spatial axis (and
the batch of volumes). Each slab is one Ray task running the same streaming loop on
its own chunks, with its own journal (``journal-p<i>.jsonl``) in the shared partial
folder: windows on a slab's border are computed by both neighbours (each keeps the
part of the window that falls in its own chunks), batches are the same windows as in
a run on one machine, so the output is the same. Workers must see the input, the
output's partial folder and the model where the caller does: a shared filesystem, and
the same metadata and artifact stores for a registry reference.

Ray is reached as the pipelines' Ray executor reaches it
(:func:`groundwork.core.pipelines.executors.ray.connect`): ``GROUNDWORK_RAY_ADDRESS``,
a Ray already initialized in this process, or a local one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.engines.infer.progress import Progress
from groundwork.engines.infer.stream import Blending, StreamStats, Tick, run_stream
from groundwork.engines.infer.volume import Layout, Volume, open_input, reopen_output
from groundwork.engines.infer.windows import Grid
from groundwork.errors import GroundworkError


@dataclass(frozen=True)
class PartSpec:
    """Everything one region's task needs (sent to the worker)."""

    model: Any
    input: str
    work: str
    format: str
    layout: Layout
    spatial: int
    grid: Grid
    blending: Blending
    folder: str
    part: str
    first_chunk: int
    stop_chunk: int
    slots: int
    checkpoint_s: float
    threads: int
    config: Config


def regions(grid: Grid, parts: int) -> list[tuple[int, int]]:
    """``parts`` (at most) contiguous chunk-id ranges, each whole slabs along the first spatial axis."""
    per_row = grid.chunks_per_volume // grid.chunks_per_axis[0]
    rows = grid.volumes * grid.chunks_per_axis[0]
    parts = max(1, min(parts, rows))
    bounds = [round(i * rows / parts) for i in range(parts + 1)]
    return [(bounds[i] * per_row, bounds[i + 1] * per_row) for i in range(parts) if bounds[i + 1] > bounds[i]]


def cluster_parts(config: Config) -> int:
    """One part per CPU of the cluster."""
    ray = _connect(config)
    return max(1, int(float(ray.cluster_resources().get("CPU", 1))))


def _connect(config: Config) -> Any:
    from groundwork.core.pipelines.executors.ray import connect

    return connect(config)


def run_part(spec: PartSpec) -> StreamStats:
    """One region, in a Ray worker: load the model and volumes there, run the loop on the region's chunks."""
    from groundwork.engines.infer.model import resolve

    vm = resolve(spec.model, spec.spatial, spec.threads, spec.config)
    source = open_input(spec.input, spec.spatial)
    out = reopen_output(Path(spec.work), spec.format, spec.layout, spec.spatial)
    progress = Progress(Path(spec.folder), part=spec.part)
    try:
        return run_stream(spec.grid, vm.run, vm.input_dtype, source, out, progress, spec.blending,
                          chunks=range(spec.first_chunk, spec.stop_chunk), slots=spec.slots,
                          checkpoint_s=spec.checkpoint_s)
    finally:
        out.close()
        progress.close()
        source.close()
        vm.close()


def run_parts(
    vm: Any, source: Volume, out: Volume, progress: Progress, grid: Grid, blending: Blending, slots: int,
    checkpoint_s: float, parts: int, config: Config, on_tick: Any,
) -> StreamStats:
    """Run every region as a Ray task; reports progress from the journals while they run."""
    ray = _connect(config)
    cpus = max(1, int(float(ray.cluster_resources().get("CPU", 1))))
    spans = regions(grid, parts)
    threads = max(1, cpus // len(spans))
    remote = ray.remote(run_part)
    t0 = time.monotonic()
    refs = []
    for i, (first, stop) in enumerate(spans):
        spec = PartSpec(
            model=vm.origin, input=str(source.path.resolve()), work=str(out.path.resolve()), format=out.format,
            layout=out.layout, spatial=source.spatial, grid=grid, blending=blending,
            folder=str(progress.folder.resolve()), part=f"p{i}", first_chunk=first, stop_chunk=stop,
            slots=slots, checkpoint_s=checkpoint_s, threads=threads, config=config,
        )
        refs.append(remote.options(num_cpus=threads, max_retries=0).remote(spec))
    pending = list(refs)
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        if on_tick is not None:
            done = len(progress.state().finished)
            on_tick(Tick(done, grid.total_chunks, 0, grid.total_windows, time.monotonic() - t0))
    results: list[StreamStats] = []
    for ref in refs:
        try:
            results.append(ray.get(ref))
        except Exception as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, GroundworkError):
                raise cause from None
            raise
    total = StreamStats(seconds=time.monotonic() - t0)
    for part in results:
        total.windows += part.windows
        total.batches += part.batches
        total.chunks_written += part.chunks_written
        total.chunks_skipped += part.chunks_skipped
        total.chunks_redone += part.chunks_redone
        total.sums_saved += part.sums_saved
        total.sums_loaded += part.sums_loaded
    return total
