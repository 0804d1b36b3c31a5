"""The candidates ``optimize`` tries, when each applies, and how each is built.

A candidate is an (engine, precision, sparsity) recipe. :func:`plan` lists the
candidates for a model source; :func:`skip_reason` says why one does not apply here
(no torch module, no calibration data, no BF16 on this CPU, export failed...);
:func:`build` turns one into a variant directory plus its manifest.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from groundwork.engines.optimize.data import Dataset
from groundwork.engines.optimize.export import export_onnx
from groundwork.engines.optimize.hardware import HardwareInfo
from groundwork.engines.runtime.manifest import TensorSpec, VariantManifest
from groundwork.errors import InvalidInput, ModelNotExportable

FAMILIES = ("torch", "compile", "ort", "openvino", "pruned")


@dataclass(frozen=True)
class CandidateSpec:
    id: str
    engine: str
    precision: str
    family: str
    title: str
    sparsity: float = 0.0
    needs_torch: bool = False
    needs_onnx: bool = False
    needs_calibration: bool = False
    needs_bf16: bool = False
    baseline: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def sparsity_id(sparsity: float, precision: str = "int8") -> str:
    return f"pruned{round(sparsity * 100):d}-openvino-{precision}"


def all_candidates(source_kind: str, sparsities: Sequence[float]) -> list[CandidateSpec]:
    """Every candidate for a source, baseline first, the costly ones (compile, prune) last."""
    specs: list[CandidateSpec] = []
    if source_kind == "torch":
        specs.append(CandidateSpec("torch-fp32", "torch", "fp32", "torch", "PyTorch eager FP32", needs_torch=True, baseline=True))
        specs.append(CandidateSpec("torch-bf16", "torch", "bf16", "torch", "PyTorch eager BF16 autocast", needs_torch=True, needs_bf16=True))
    else:
        specs.append(
            CandidateSpec(
                "ort-reference",
                "onnxruntime",
                "fp32",
                "ort",
                "ONNX Runtime FP32, no graph optimization (reference)",
                needs_onnx=True,
                baseline=True,
                options={"graph_optimization": False},
            )
        )
    specs += [
        CandidateSpec("ort-fp32", "onnxruntime", "fp32", "ort", "ONNX Runtime FP32, all graph optimizations", needs_onnx=True),
        CandidateSpec("ort-int8-dynamic", "onnxruntime", "int8", "ort", "ONNX Runtime INT8 dynamic", needs_onnx=True),
        CandidateSpec(
            "ort-int8-static", "onnxruntime", "int8", "ort", "ONNX Runtime INT8 static QDQ", needs_onnx=True, needs_calibration=True
        ),
        CandidateSpec("openvino-fp32", "openvino", "fp32", "openvino", "OpenVINO FP32", needs_onnx=True),
        CandidateSpec("openvino-bf16", "openvino", "bf16", "openvino", "OpenVINO BF16", needs_onnx=True, needs_bf16=True),
        CandidateSpec(
            "openvino-int8", "openvino", "int8", "openvino", "OpenVINO INT8 (NNCF PTQ)", needs_onnx=True, needs_calibration=True
        ),
    ]
    if source_kind == "torch":
        specs.append(CandidateSpec("compile-fp32", "torch-compile", "fp32", "compile", "torch.compile FP32 (inductor, freezing)", needs_torch=True))
        specs.append(
            CandidateSpec(
                "compile-bf16", "torch-compile", "bf16", "compile", "torch.compile BF16 (inductor, freezing)", needs_torch=True, needs_bf16=True
            )
        )
        # one pruned model per sparsity level, then quantized (INT8) or run in BF16 (AMX)
        for s in sparsities:
            for precision in ("int8", "bf16"):
                specs.append(
                    CandidateSpec(
                        sparsity_id(s, precision),
                        "openvino",
                        precision,
                        "pruned",
                        f"structured pruning {s:.0%} + OpenVINO {precision.upper()}",
                        sparsity=s,
                        needs_torch=True,
                        needs_onnx=True,
                        needs_calibration=True,
                        needs_bf16=precision == "bf16",
                    )
                )
    return specs


def plan(source_kind: str, sparsities: Sequence[float], selection: Sequence[str] | None) -> tuple[list[CandidateSpec], set[str]]:
    """The candidates to try and the ids the user asked for by name (``selection``: ids or families).

    The baseline is always included. Unknown names are an error listing the known ones.
    """
    specs = all_candidates(source_kind, sparsities)
    if not selection:
        return specs, set()
    known = {s.id for s in specs}
    chosen: set[str] = set()
    explicit: set[str] = set()
    for name in selection:
        name = name.strip()
        if not name:
            continue
        if name in FAMILIES:
            chosen |= {s.id for s in specs if s.family == name}
        elif name in known:
            chosen.add(name)
            explicit.add(name)
        else:
            other = {s.id for s in all_candidates("torch" if source_kind == "onnx" else "onnx", sparsities)} - known
            if name in other:
                raise InvalidInput(
                    f"candidate {name!r} does not apply to {'an ONNX file' if source_kind == 'onnx' else 'a PyTorch model'}",
                    hint=f"choose from {', '.join(sorted(known))}",
                )
            raise InvalidInput(
                f"unknown candidate {name!r}", hint=f"choose from {', '.join(FAMILIES)} or {', '.join(s.id for s in specs)}"
            )
    return [s for s in specs if s.baseline or s.id in chosen], explicit


@dataclass
class BuildContext:
    """What every candidate build shares: the source, its ONNX export, data and settings."""

    source_kind: str
    module: Any
    onnx_path: Path | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    calibration: Dataset | None
    work_dir: Path
    hardware: HardwareInfo
    threads: int
    prune_rows: int = 64
    prune_batch: int = 16
    train: Callable[[Any, int], Any] | None = None
    finetune_steps: int = 0
    export_error: ModelNotExportable | None = None
    torch_args: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None
    #: sparsity -> (pruned model, its ONNX export, notes): built once, shared by the INT8 and BF16 variants
    pruned: dict[float, tuple[Any, Path, list[str]]] = field(default_factory=dict)


@dataclass
class Built:
    manifest: VariantManifest
    directory: Path
    module: Any = None
    notes: list[str] = field(default_factory=list)
    params: int | None = None
    flops: int | None = None
    seconds: float = 0.0


def skip_reason(spec: CandidateSpec, ctx: BuildContext) -> str | None:
    """Why ``spec`` cannot run here, or None when it can."""
    if spec.needs_torch and ctx.module is None:
        return "needs a PyTorch model; the source is an ONNX file"
    if spec.needs_bf16 and not ctx.hardware.has_bf16:
        return "this CPU has no BF16 instructions (avx512_bf16 or amx_bf16)"
    if spec.needs_calibration and ctx.calibration is None:
        what = "structured pruning and static INT8 need" if spec.family == "pruned" else "static INT8 needs"
        return f"{what} calibration data (pass --calibration)"
    if spec.needs_onnx and ctx.onnx_path is None:
        if ctx.export_error is not None:
            return f"{ctx.export_error.reason()}; falling back to the PyTorch engines"
        return "no ONNX model available"
    return None


def _manifest(spec: CandidateSpec, ctx: BuildContext, files: dict[str, str], **extra: Any) -> VariantManifest:
    return VariantManifest(
        engine=spec.engine,
        precision=spec.precision,
        inputs=ctx.inputs,
        outputs=ctx.outputs,
        files=files,
        threads=ctx.threads,
        streams=1,
        batch_size=1 << 30,
        sparsity=spec.sparsity,
        name=spec.id,
        options=dict(spec.options, **extra),
        hardware=ctx.hardware.to_dict(),
    )


def build(spec: CandidateSpec, ctx: BuildContext) -> Built:
    """Make the variant for ``spec`` under ``ctx.work_dir/<id>``."""
    from groundwork.engines.optimize import quantize

    start = time.perf_counter()
    directory = ctx.work_dir / spec.id
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    built: Built
    if spec.engine in ("torch", "torch-compile"):
        built = Built(_manifest(spec, ctx, {}), directory, module=ctx.module)
    elif spec.family == "pruned":
        built = _build_pruned(spec, ctx, directory)
    else:
        assert ctx.onnx_path is not None
        if spec.engine == "onnxruntime":
            target = directory / "model.onnx"
            if spec.id == "ort-int8-dynamic":
                quantize.ort_dynamic_int8(ctx.onnx_path, target)
            elif spec.id == "ort-int8-static":
                assert ctx.calibration is not None
                quantize.ort_static_qdq(ctx.onnx_path, target, ctx.calibration)
            else:
                _copy_onnx(ctx.onnx_path, target)
            built = Built(_manifest(spec, ctx, {"model": "model.onnx"}), directory)
        else:
            xml = directory / "model.xml"
            if spec.precision == "int8":
                assert ctx.calibration is not None
                quantize.nncf_int8(ctx.onnx_path, xml, ctx.calibration)
            else:
                quantize.openvino_ir(ctx.onnx_path, xml)
            built = Built(_manifest(spec, ctx, {"model": "model.xml", "weights": "model.bin"}), directory)
    built.seconds = time.perf_counter() - start
    return built


def _copy_onnx(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    data = src.with_name(src.name + ".data")
    if data.exists():
        shutil.copyfile(data, dst.with_name(dst.name + ".data"))


def _build_pruned(spec: CandidateSpec, ctx: BuildContext, directory: Path) -> Built:
    from groundwork.engines.optimize import quantize

    result, onnx_path, notes = _pruned_model(spec.sparsity, ctx)
    xml = directory / "model.xml"
    if spec.precision == "int8":
        assert ctx.calibration is not None
        quantize.nncf_int8(onnx_path, xml, ctx.calibration)
    else:
        quantize.openvino_ir(onnx_path, xml)
    manifest = _manifest(spec, ctx, {"model": "model.xml", "weights": "model.bin"})
    return Built(
        manifest,
        directory,
        module=result.module,
        notes=list(notes),
        params=result.params_after,
        flops=result.flops_after,
    )


def _pruned_model(sparsity: float, ctx: BuildContext) -> tuple[Any, Path, list[str]]:
    """The model pruned at ``sparsity`` (and fine-tuned), exported to ONNX; built once per level."""
    from groundwork.engines.optimize.prune import prune

    if sparsity in ctx.pruned:
        return ctx.pruned[sparsity]
    assert ctx.calibration is not None and ctx.torch_args is not None
    calib = ctx.calibration.head(ctx.prune_rows)
    batches = [ctx.torch_args(calib.rows(i, i + ctx.prune_batch)) for i in range(0, len(calib), ctx.prune_batch)]
    result = prune(ctx.module, sparsity, batches, train=ctx.train, train_steps=ctx.finetune_steps)
    notes = [result.summary()]
    if ctx.train is not None and ctx.finetune_steps > 0:
        notes.append(f"fine-tuned for {ctx.finetune_steps} steps after pruning")
    sample = ctx.torch_args(ctx.calibration.batch(2))
    folder = ctx.work_dir / f".pruned{round(sparsity * 100):d}"
    onnx_path, _ = export_onnx(result.module, sample, [s.name for s in ctx.inputs], folder / "pruned.onnx")
    ctx.pruned[sparsity] = (result, onnx_path, notes)
    return ctx.pruned[sparsity]


def with_tuning(manifest: VariantManifest, threads: int, streams: int, micro_batch: int) -> VariantManifest:
    return replace(manifest, threads=threads, streams=streams, batch_size=micro_batch)
