"""``optimize()``: build every candidate, evaluate it against the baseline, measure it, choose.

The steps, in order:

1. check the arguments (metric, candidates, batch sizes) before any heavy work;
2. resolve the model and read the eval (and calibration) data, checking that the
   data fits the model;
3. run the baseline (PyTorch eager FP32, or ONNX Runtime without graph optimization
   for an ONNX file) on the eval data: its outputs are the reference;
4. export to ONNX once for the ONNX Runtime and OpenVINO candidates (when export
   fails, those are skipped with the operator named, and the PyTorch ones remain);
5. for each candidate: build it, score its outputs, measure latency at batch 1 and
   throughput at the largest batch over thread/stream/micro-batch settings; then measure
   the fastest few within budget again, interleaved with the baseline (shared machines);
6. choose the fastest candidate within ``max_drop``, copy it to ``out_dir/chosen``
   and write ``report.json``, ``report.md`` and ``speed_vs_quality.png``.
"""

from __future__ import annotations

import inspect
import math
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.config import Config
from groundwork.engines.optimize import candidates as cands
from groundwork.engines.optimize.data import Dataset, load_data
from groundwork.engines.optimize.export import export_onnx, save_torch_module
from groundwork.engines.optimize.hardware import HardwareInfo, detect
from groundwork.engines.optimize.measure import MeasureSettings, measure_latency, measure_throughput
from groundwork.engines.optimize.metrics import Metric, get_metric
from groundwork.engines.optimize.report import CandidateResult, OptimizeReport
from groundwork.engines.optimize.select import OBJECTIVES, choose, within_budget
from groundwork.engines.optimize.sources import ModelSource, resolve_model
from groundwork.engines.runtime import session_for, write_manifest
from groundwork.engines.runtime.base import Session, flatten_outputs
from groundwork.engines.runtime.manifest import TensorSpec, VariantManifest
from groundwork.errors import ExecutionError, GroundworkError, InvalidInput, ModelNotExportable

DEFAULT_SPARSITIES = (0.3, 0.5)


@dataclass(frozen=True)
class ProgressEvent:
    """One step of the search, for a progress display."""

    candidate: str
    stage: str  # building, evaluating, latency, throughput, done, skipped, failed, remeasure
    index: int
    total: int
    message: str = ""


ProgressFn = Callable[[ProgressEvent], None]


def parse_batch_sizes(value: str | Sequence[int]) -> list[int]:
    """``"1,32"`` or ``[1, 32]`` as a sorted list of distinct positive sizes, always with 1."""
    try:
        items = [int(v) for v in (value.split(",") if isinstance(value, str) else value) if str(v).strip()]
    except ValueError as exc:
        raise InvalidInput(f"batch sizes must be whole numbers like 1,32; got {value!r}") from exc
    if not items or any(v < 1 for v in items):
        raise InvalidInput(f"batch sizes must be positive whole numbers; got {value!r}")
    return sorted({1, *items})


def optimize(
    model: Any,
    eval_data: Any,
    *,
    metric: str | Metric | Callable[..., float] = "cosine",
    max_drop: float = 0.01,
    calibration: Any = None,
    batch_sizes: str | Sequence[int] = (1, 32),
    budget_minutes: float | None = None,
    candidates: Sequence[str] | None = None,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    train: Callable[[Any, int], Any] | str | None = None,
    finetune_steps: int = 0,
    out_dir: str | Path | None = None,
    objective: str = "throughput",
    threads: int | None = None,
    settings: MeasureSettings | None = None,
    progress: ProgressFn | None = None,
    config: Config | None = None,
    keep_candidates: bool = False,
    record: bool | None = None,
) -> OptimizeReport:
    """Find the fastest variant of ``model`` on this CPU whose quality drop stays within ``max_drop``.

    ``model``: a file (``.onnx``, ``.pt2``), ``module:factory``, a registry reference or a
    torch module. ``eval_data``/``calibration``: see :mod:`groundwork.engines.optimize.data`.
    ``candidates``: ids or families (``torch``, ``compile``, ``ort``, ``openvino``,
    ``pruned``) to try; default all. Returns the report; the chosen variant is written
    to ``out_dir/chosen`` (``out_dir`` defaults to ``optimized/<model name>``).
    ``record``: store the optimize as a tracked run (kind ``optimize``); by default only
    for a registry reference, whose chosen variant then becomes the model's next version.
    """
    started = time.time()
    t0 = time.monotonic()
    # 1. arguments, checked before anything heavy
    metric_obj = get_metric(metric)
    if objective not in OBJECTIVES:
        raise InvalidInput(f"unknown objective {objective!r}", hint=f"one of {', '.join(OBJECTIVES)}")
    if not (isinstance(max_drop, int | float) and math.isfinite(max_drop) and max_drop >= 0):
        raise InvalidInput(f"max drop must be a number >= 0; got {max_drop!r}")
    sizes = parse_batch_sizes(batch_sizes)
    largest = max(sizes)
    spars = sorted({float(s) for s in sparsities})
    if any(not 0 < s < 1 for s in spars):
        raise InvalidInput(f"sparsity levels must be between 0 and 1 (exclusive); got {list(sparsities)}")
    if budget_minutes is not None and budget_minutes <= 0:
        raise InvalidInput(f"budget must be a positive number of minutes; got {budget_minutes}")
    train_fn = _train_callable(train)
    settings = settings or MeasureSettings()
    hardware = detect()
    n_threads = threads or hardware.cores
    if n_threads < 1:
        raise InvalidInput(f"threads must be at least 1; got {threads}")
    deadline = None if budget_minutes is None else t0 + budget_minutes * 60.0

    # 2. model and data
    source = resolve_model(model, config)
    specs, explicit = cands.plan(source.kind, spars, candidates)
    eval_ds = _as_float32(load_data(eval_data, role="eval"))
    calib_ds = None if calibration is None else _as_float32(load_data(calibration, role="calibration"))
    static = [s.id for s in specs if s.needs_calibration and s.id in explicit]
    if calib_ds is None and static:
        raise InvalidInput(
            f"static INT8 candidate(s) {', '.join(static)} need calibration data, and none was given",
            hint="pass --calibration DATA (a few hundred representative input rows), or choose ort-int8-dynamic",
        )
    input_specs, order = _input_specs(source, eval_ds)
    if calib_ds is not None:
        _check_same_inputs(calib_ds, eval_ds)
    torch_args = _torch_args_fn(order) if source.kind == "torch" else None

    out = Path(out_dir) if out_dir is not None else Path("optimized") / source.name
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=out))
    report = OptimizeReport(
        model=source.describe(),
        metric=metric_obj.name,
        higher_is_better=metric_obj.higher_is_better,
        max_drop=float(max_drop),
        batch_sizes=sizes,
        objective=objective,
        hardware=hardware.to_dict(),
        eval_rows=len(eval_ds),
        calibration_rows=0 if calib_ds is None else len(calib_ds),
        started=started,
        out_dir=str(out),
    )
    for spec in specs:
        report.rows.append(CandidateResult(id=spec.id, engine=spec.engine, precision=spec.precision, sparsity=spec.sparsity))
    notify = progress or (lambda event: None)
    try:
        chosen_built = _search(
            report, specs, source, eval_ds, calib_ds, input_specs, torch_args, metric_obj, sizes, largest,
            work, hardware, n_threads, settings, notify, deadline, train_fn, finetune_steps,
        )  # fmt: skip
        _remeasure_leaders(report, chosen_built, eval_ds, largest, float(max_drop), objective, settings, notify)
        best, reason = choose(report.rows, float(max_drop), objective)
        report.choice_reason = reason
        for row in report.rows:
            if row.status == "ok" and row.measured and not within_budget(row, float(max_drop)):
                row.status = "over-budget"
                row.reason = f"quality drop {row.drop:.4g} > {max_drop:g}"
        if best is not None:
            report.chosen = best.id
            built, manifest = chosen_built[best.id]
            _materialize(built, manifest, out / "chosen", source, torch_args, eval_ds)
        report.seconds = time.monotonic() - t0
        report.write(out)
    finally:
        if keep_candidates:
            target = out / "candidates"
            if target.exists():
                shutil.rmtree(target)
            work.rename(target)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if record or (record is None and source.registry):
        from groundwork.engines.optimize.record import record_report

        report.run_id = record_report(report, config or Config.from_env())
        report.write(out)
    return report


# --- the search -------------------------------------------------------------------------------
def _search(
    report: OptimizeReport,
    specs: list[cands.CandidateSpec],
    source: ModelSource,
    eval_ds: Dataset,
    calib_ds: Dataset | None,
    input_specs: tuple[TensorSpec, ...],
    torch_args: Callable[[dict[str, Any]], tuple[Any, ...]] | None,
    metric: Metric,
    sizes: list[int],
    largest: int,
    work: Path,
    hardware: HardwareInfo,
    threads: int,
    settings: MeasureSettings,
    notify: ProgressFn,
    deadline: float | None,
    train: Callable[[Any, int], Any] | None,
    finetune_steps: int,
) -> dict[str, tuple[cands.Built, VariantManifest]]:
    """Build, score and measure every candidate; returns the tuned variant of each measured one."""
    total = len(specs)
    outputs = _output_names(source, eval_ds, torch_args)
    ctx = cands.BuildContext(
        source_kind=source.kind,
        module=source.module,
        onnx_path=source.onnx_path,
        inputs=input_specs,
        outputs=outputs,
        calibration=calib_ds,
        work_dir=work,
        hardware=hardware,
        threads=threads,
        train=train,
        finetune_steps=finetune_steps,
        torch_args=torch_args,
    )
    base_flops = base_params = None
    if source.kind == "torch":
        from groundwork.engines.optimize.prune import count_flops, count_params

        assert torch_args is not None
        base_params = count_params(source.module)
        try:
            base_flops = count_flops(source.module, torch_args(eval_ds.rows(0, 1)))
        except Exception:
            base_flops = None
        if any(s.needs_onnx for s in specs):
            try:
                ctx.onnx_path, _ = export_onnx(
                    source.module, torch_args(eval_ds.batch(2)), [s.name for s in input_specs], work / "source.onnx"
                )
            except ModelNotExportable as exc:
                ctx.export_error = exc
    built_ok: dict[str, tuple[cands.Built, VariantManifest]] = {}
    reference: np.ndarray | None = None
    baseline_row: CandidateResult | None = None
    for index, spec in enumerate(specs):
        row = report.row(spec.id)
        row.batch = largest
        if not spec.baseline and deadline is not None and time.monotonic() > deadline:
            _skip(row, "the time budget was used up before this candidate", notify, index, total)
            continue
        reason = cands.skip_reason(spec, ctx)
        if reason:
            _skip(row, reason, notify, index, total)
            continue
        notify(ProgressEvent(spec.id, "building", index, total, spec.title))
        session: Session | None = None
        try:
            built = cands.build(spec, ctx)
            row.build_seconds = built.seconds
            row.notes += built.notes
            row.params = built.params if built.params is not None else base_params
            row.flops = built.flops if built.flops is not None else base_flops
            manifest = cands.with_tuning(built.manifest, threads, 1, largest)
            session = session_for(manifest, built.directory, module=built.module)
            notify(ProgressEvent(spec.id, "evaluating", index, total, f"{len(eval_ds)} eval rows"))
            first = _first_outputs(session, eval_ds, largest)
            if spec.baseline:
                reference = first
                report.baseline = spec.id
                report.baseline_score = metric.score(first, first, eval_ds.labels)
            assert reference is not None and report.baseline_score is not None
            row.score = metric.score(first, reference, eval_ds.labels)
            row.quality_change = row.score - report.baseline_score
            row.drop = metric.drop(report.baseline_score, row.score)
            if not all(np.isfinite(o).all() for o in (first,)):
                row.notes.append("outputs contain NaN or infinity")
            notify(ProgressEvent(spec.id, "latency", index, total, "batch 1"))
            latency = measure_latency(session.run, eval_ds.batch(1), settings)
            row.threads = threads
            row.latency_p50_ms, row.latency_p99_ms, row.latency_runs = latency.p50_ms, latency.p99_ms, latency.runs
            notify(ProgressEvent(spec.id, "throughput", index, total, f"batch {largest}"))
            tuned, row.throughput = _tune_throughput(session, built, manifest, eval_ds.batch(largest), sizes, threads, settings)
            row.streams, row.micro_batch = tuned.streams, min(tuned.batch_size, largest)
            row.status = "ok"
            built_ok[spec.id] = (built, tuned)
            if spec.baseline:
                baseline_row = row
            if baseline_row is not None and baseline_row.throughput and row.throughput:
                row.speedup = row.throughput / baseline_row.throughput
            if baseline_row is not None and baseline_row.latency_p50_ms and row.latency_p50_ms:
                row.latency_speedup = baseline_row.latency_p50_ms / row.latency_p50_ms
            notify(ProgressEvent(spec.id, "done", index, total, _done_text(row)))
        except GroundworkError as exc:
            if spec.baseline:
                raise
            _fail(row, exc.one_line(), notify, index, total)
        except Exception as exc:
            if spec.baseline:
                raise _baseline_error(exc, eval_ds) from exc
            _fail(row, f"{type(exc).__name__}: {_first_line(exc)}", notify, index, total)
            row.notes.append("".join(traceback.format_exception_only(type(exc), exc)).strip()[:400])
        finally:
            if session is not None:
                session.close()
    return built_ok


def _remeasure_leaders(
    report: OptimizeReport,
    built: dict[str, tuple[cands.Built, VariantManifest]],
    eval_ds: Dataset,
    largest: int,
    max_drop: float,
    objective: str,
    settings: MeasureSettings,
    notify: ProgressFn,
) -> None:
    """Measure the fastest candidates within budget again, in interleaved rounds, with the baseline.

    Candidates are first measured one after the other, so on a shared machine a burst of
    load can make one look slower than it is. The leaders (and the baseline, so speedups
    stay comparable) are measured again round-robin; each keeps its best throughput and its
    lowest median latency over all its measurements (load only ever slows a run down).
    """
    if settings.final_rounds < 1 or settings.leaders < 1:
        return
    eligible = [r for r in report.rows if r.status == "ok" and r.measured and within_budget(r, max_drop)]
    if objective == "throughput":
        eligible.sort(key=lambda r: -(r.throughput or 0.0))
    else:
        eligible.sort(key=lambda r: r.latency_p50_ms if r.latency_p50_ms is not None else float("inf"))
    leaders = [r for r in eligible if r.id != report.baseline][: settings.leaders]
    if len(leaders) < 2:
        return  # one contender: nothing to decide between
    rows = [report.row(report.baseline), *leaders] if report.baseline in built else leaders
    sessions: dict[str, Session] = {}
    try:
        for row in rows:
            variant, manifest = built[row.id]
            sessions[row.id] = session_for(manifest, variant.directory, module=variant.module)
        one, big = eval_ds.batch(1), eval_ds.batch(largest)
        total = settings.final_rounds
        for round_index in range(total):
            for row in rows:
                notify(ProgressEvent(row.id, "remeasure", round_index, total, f"round {round_index + 1} of {total}"))
                session = sessions[row.id]
                latency = measure_latency(session.run, one, settings)
                if row.latency_p50_ms is None or latency.p50_ms < row.latency_p50_ms:
                    row.latency_p50_ms, row.latency_p99_ms = latency.p50_ms, latency.p99_ms
                row.latency_runs += latency.runs
                throughput = measure_throughput(session.run, big, largest, settings)
                row.throughput = max(row.throughput or 0.0, throughput)
    finally:
        for session in sessions.values():
            session.close()
    for row in rows:
        row.notes.append(f"measured again in {settings.final_rounds} interleaved round(s) with the other leaders; best kept")
    base = report.row(report.baseline) if report.baseline else None
    if base is not None and base.throughput and base.latency_p50_ms:
        for row in report.rows:
            if row.throughput:
                row.speedup = row.throughput / base.throughput
            if row.latency_p50_ms:
                row.latency_speedup = base.latency_p50_ms / row.latency_p50_ms


def _tune_throughput(
    session: Session,
    built: cands.Built,
    manifest: VariantManifest,
    batch: dict[str, np.ndarray],
    sizes: list[int],
    threads: int,
    settings: MeasureSettings,
) -> tuple[VariantManifest, float]:
    """Throughput at the largest batch over stream/micro-batch settings; the best one wins."""
    largest = max(sizes)
    middles = [m for m in sizes if 1 < m < largest]
    configs: list[tuple[int, int]] = [(1, largest)] + [(1, m) for m in middles]
    if manifest.engine in ("onnxruntime", "openvino") and threads >= 2 and largest >= 2:
        streams = min(threads, largest)
        configs.append((streams, -(-largest // streams)))
        configs += [(streams, m) for m in middles if m < -(-largest // streams)]
    best: tuple[VariantManifest, float] | None = None
    for streams, micro in configs:
        candidate = cands.with_tuning(manifest, threads, streams, micro)
        if streams == 1:
            session.manifest = candidate  # same engine objects; only the split changes
            current: Session = session
        else:
            current = session_for(candidate, built.directory, module=built.module)
        try:
            value = measure_throughput(current.run, batch, largest, settings)
        finally:
            if current is not session:
                current.close()
        if best is None or value > best[1]:
            best = (candidate, value)
    session.manifest = manifest
    assert best is not None
    return best


# --- pieces -----------------------------------------------------------------------------------
def _skip(row: CandidateResult, reason: str, notify: ProgressFn, index: int, total: int) -> None:
    row.status, row.reason = "skipped", reason
    notify(ProgressEvent(row.id, "skipped", index, total, reason))


def _fail(row: CandidateResult, reason: str, notify: ProgressFn, index: int, total: int) -> None:
    row.status, row.reason = "failed", reason
    notify(ProgressEvent(row.id, "failed", index, total, reason))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]


def _done_text(row: CandidateResult) -> str:
    return (
        f"p50 {row.latency_p50_ms:.2f} ms, {row.throughput:.1f} items/s, "
        f"{row.score:.4f} ({(row.quality_change or 0):+.4f})"
    )


def _baseline_error(exc: Exception, eval_ds: Dataset) -> GroundworkError:
    shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in eval_ds.inputs.items())
    return ExecutionError(f"the baseline failed on the eval data ({shapes}): {type(exc).__name__}: {_first_line(exc)}")


def _first_outputs(session: Session, data: Dataset, batch: int) -> np.ndarray:
    chunks = [session.run(rows)[0] for rows in data.batches(batch)]
    return np.concatenate(chunks, axis=0)


def _as_float32(data: Dataset) -> Dataset:
    """float64 arrays (NumPy's default) become float32, what models take."""
    inputs = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in data.inputs.items()}
    return replace(data, inputs=inputs)


def _train_callable(train: Callable[[Any, int], Any] | str | None) -> Callable[[Any, int], Any] | None:
    if train is None or callable(train):
        return train
    from groundwork.engines.optimize.loading import load_callable

    fn: Callable[[Any, int], Any] = load_callable(train, what="train function")
    return fn


def _check_same_inputs(calib: Dataset, eval_ds: Dataset) -> None:
    if calib.names != eval_ds.names:
        raise InvalidInput(f"calibration data has inputs {calib.names}, the eval data {eval_ds.names}; they must match")
    for name in eval_ds.names:
        a, b = calib.inputs[name], eval_ds.inputs[name]
        if a.shape[1:] != b.shape[1:]:
            raise InvalidInput(
                f"calibration input {name!r} has rows of shape {a.shape[1:]}, the eval data {b.shape[1:]}; they must match"
            )


def _input_specs(source: ModelSource, data: Dataset) -> tuple[tuple[TensorSpec, ...], list[str]]:
    """Input specs (in call order) and the order of the data's inputs, checked against the model."""
    if source.kind == "onnx":
        return _onnx_input_specs(source, data)
    names = data.names
    order = names
    try:
        params = inspect.signature(source.module.forward).parameters.values()
    except (TypeError, ValueError):
        params = []  # type: ignore[assignment]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
    if len(names) > 1 and not has_varargs:
        if set(names) <= set(positional):
            order = sorted(names, key=positional.index)
            if order != positional[: len(order)]:
                raise InvalidInput(
                    f"eval data inputs {names} must be the model's first forward arguments {positional[: len(names) + 1]}"
                )
        else:
            raise InvalidInput(
                f"eval data inputs {names} do not match the model's forward arguments {positional}",
                hint="name the arrays in the .npz after the forward arguments",
            )
    specs = tuple(TensorSpec(n, str(data.inputs[n].dtype), (-1, *data.inputs[n].shape[1:])) for n in order)
    args = _torch_args_fn(order)(data.rows(0, 1))
    try:
        import torch

        from groundwork.engines.runtime.torch_session import set_eval

        with torch.inference_mode():
            set_eval(source.module)
            source.module(*args)
    except Exception as exc:
        shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in data.inputs.items())
        raise InvalidInput(
            f"eval data does not fit the model: rows of shape {shapes} -> {type(exc).__name__}: {_first_line(exc)}",
            hint="check the input shapes (first axis = batch) and dtypes",
        ) from exc
    return specs, order


_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _onnx_input_specs(source: ModelSource, data: Dataset) -> tuple[tuple[TensorSpec, ...], list[str]]:
    import onnxruntime as ort

    assert source.onnx_path is not None
    try:
        session = ort.InferenceSession(str(source.onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InvalidInput(f"cannot load ONNX model {str(source.onnx_path)!r}: {_first_line(exc)}") from exc
    model_inputs = session.get_inputs()
    wanted = [i.name for i in model_inputs]
    names = data.names
    if len(wanted) == 1 and len(names) == 1 and names != wanted:
        data.inputs[wanted[0]] = data.inputs.pop(names[0])
        names = wanted
    if sorted(names) != sorted(wanted):
        raise InvalidInput(f"eval data inputs {names} do not match the ONNX model's inputs {wanted}")
    specs = []
    for i in model_inputs:
        value = data.inputs[i.name]
        dims = list(i.shape)
        if value.ndim != len(dims):
            raise InvalidInput(
                f"eval data input {i.name!r} has shape {value.shape}; the ONNX model expects rank {len(dims)} ({dims})"
            )
        for axis, want in enumerate(dims[1:], start=1):
            if isinstance(want, int) and want > 0 and value.shape[axis] != want:
                raise InvalidInput(f"eval data input {i.name!r} has shape {value.shape}; the ONNX model expects {dims}")
        dtype = _ONNX_TYPES.get(i.type, str(value.dtype))
        data.inputs[i.name] = value.astype(dtype)
        specs.append(TensorSpec(i.name, dtype, (-1, *value.shape[1:])))
    return tuple(specs), wanted


def _torch_args_fn(order: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def make(rows: dict[str, Any]) -> tuple[Any, ...]:
        import torch

        return tuple(torch.from_numpy(np.ascontiguousarray(rows[name])) for name in order)

    return make


def _output_names(
    source: ModelSource, data: Dataset, torch_args: Callable[[dict[str, Any]], tuple[Any, ...]] | None
) -> tuple[str, ...]:
    if source.kind == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(source.onnx_path), providers=["CPUExecutionProvider"])
        return tuple(o.name for o in session.get_outputs())
    import torch

    assert torch_args is not None
    with torch.inference_mode():
        count = len(flatten_outputs(source.module(*torch_args(data.rows(0, 1)))))
    return tuple(f"output_{i}" for i in range(count))


def _materialize(
    built: cands.Built,
    manifest: VariantManifest,
    target: Path,
    source: ModelSource,
    torch_args: Callable[[dict[str, Any]], tuple[Any, ...]] | None,
    eval_ds: Dataset,
) -> None:
    """Write the chosen variant to ``target`` (temporary name, then rename)."""
    staging = Path(tempfile.mkdtemp(prefix=".chosen-", dir=target.parent))
    try:
        files = dict(manifest.files)
        if manifest.engine in ("torch", "torch-compile"):
            assert torch_args is not None and built.module is not None
            files = {"model": save_torch_module(built.module, torch_args(eval_ds.batch(2)), staging)}
        else:
            for rel in files.values():
                src = built.directory / rel
                shutil.copyfile(src, staging / rel)
                data = src.with_name(src.name + ".data")
                if data.exists():
                    shutil.copyfile(data, staging / data.name)
        final = replace(manifest, files=files, source=source.describe())
        write_manifest(staging, final)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
