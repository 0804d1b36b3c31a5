"""Benchmark: groundwork optimize's chosen variant against PyTorch eager and off-the-shelf engines.

One run measures, on this CPU:

* all-MiniLM-L6-v2 (the real weights) on 128-token passages, and
* a ResNet-18-shaped CNN (random weights, seeded) on 224x224 images,

each as: PyTorch eager FP32; the off-the-shelf variants a user gets by following each
tool's own documentation with its defaults (OpenVINO converted from PyTorch with its
default CPU settings (BF16 where the CPU has it), OpenVINO + NNCF INT8, ONNX Runtime INT8
dynamic and static QDQ, torch.compile BF16 with freezing); and groundwork's chosen
variant (``optimize()`` with every candidate, quality budget: mean cosine >= 0.99 to
FP32). Latency at batch 1 (median of runs), throughput at batch 32 (items/s), achieved
GFLOP/s against this CPU's GEMM ceilings measured in the same run.

The machine is shared, so variants are measured in interleaved rounds and the best
round is reported (medians beside it): compare ratios within one run only.

A third section runs the same recipe on a CNN trained on scikit-learn's digits, where
quality is accuracy (budget: at most 1 point lost).

    flock /tmp/gw-bench.lock .venv/bin/python benchmarks/optimize_cpu.py   # everything (~20 min on 2 cores)
    flock /tmp/gw-bench.lock .venv/bin/python benchmarks/optimize_cpu.py --models cnn --rounds 2
    flock /tmp/gw-bench.lock .venv/bin/python benchmarks/optimize_cpu.py --quick   # rough, ~10 min
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples" / "optimize"))

import data as exdata  # noqa: E402
import models as exmodels  # noqa: E402

BATCH = 32
BUDGET = 0.01  # quality: mean cosine >= 0.99 (accuracy: at most 1 point lost)
PAPER_CEILINGS = {"fp32": 170.0, "bf16": 600.0, "int8": 850.0}  # GFLOP/s on 2 cores, from the issue
AMX_PAPER = {"bf16": 4000.0, "int8": 8000.0}

Inputs = dict[str, np.ndarray]


@dataclass
class Variant:
    name: str
    precision: str
    run: Callable[[Inputs], np.ndarray]
    flops: float  # per item
    kind: str = "off-the-shelf"  # eager, off-the-shelf, groundwork
    quality: float | None = None
    latencies: list[float] = field(default_factory=list)  # ms, one median per round
    throughputs: list[float] = field(default_factory=list)  # items/s, one per round
    note: str = ""

    @property
    def best_latency(self) -> float:
        return min(self.latencies)

    @property
    def best_throughput(self) -> float:
        return max(self.throughputs)

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "run"}
        out.update(best_latency_ms=self.best_latency, best_items_per_s=self.best_throughput)
        return out


def say(msg: str) -> None:
    print(msg, flush=True)


@contextlib.contextmanager
def quiet() -> Any:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


# --- GEMM ceilings ------------------------------------------------------------------------------
def gemm_ceilings(threads: int) -> dict[str, float]:
    """Best GFLOP/s of large square GEMMs in FP32, BF16 (torch) and INT8 (torch._int_mm)."""
    import torch

    torch.set_num_threads(threads)
    out: dict[str, float] = {}
    n = 2048
    for name, make, op in (
        ("fp32", lambda: torch.randn(n, n), torch.mm),
        ("bf16", lambda: torch.randn(n, n).to(torch.bfloat16), torch.mm),
        ("int8", lambda: torch.randint(-100, 100, (n, n), dtype=torch.int8), torch._int_mm),
    ):
        try:
            a, b = make(), make()
            op(a, b)
            best = 0.0
            for _ in range(5):
                t = time.perf_counter()
                op(a, b)
                best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
            out[name] = best
        except Exception as exc:  # an engine without this kernel
            say(f"  (no {name} GEMM measurement: {type(exc).__name__})")
    return out


# --- off-the-shelf variants -------------------------------------------------------------------------
def torch_variants(model: Any, flops: float, threads: int) -> list[Variant]:
    import torch

    def eager(x: Inputs) -> np.ndarray:
        with torch.inference_mode():
            return model(*[torch.from_numpy(v) for v in x.values()]).float().numpy()

    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    compiled = torch.compile(model)

    def compiled_bf16(x: Inputs) -> np.ndarray:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return compiled(*[torch.from_numpy(v) for v in x.values()]).float().numpy()

    torch.set_num_threads(threads)
    return [
        Variant("PyTorch eager FP32", "fp32", eager, flops, kind="eager"),
        Variant("torch.compile BF16 (freezing)", "bf16", compiled_bf16, flops),
    ]


def openvino_variants(model: Any, example: Inputs, calib: Inputs, transformer: bool, flops: float) -> list[Variant]:
    import nncf
    import openvino as ov
    import torch

    core = ov.Core()
    with quiet(), torch.no_grad():
        ov_model = ov.convert_model(model, example_input=tuple(torch.from_numpy(v[:2]) for v in example.values()))
    names = list(example)

    def runner(compiled: Any) -> Callable[[Inputs], np.ndarray]:
        request = compiled.create_infer_request()

        def run(x: Inputs) -> np.ndarray:
            result = request.infer([x[n] for n in names])
            return np.array(result[compiled.outputs[0]])

        return run

    default = core.compile_model(ov_model, "CPU")
    hint = str(default.get_property("INFERENCE_PRECISION_HINT")).lower()  # e.g. "<Type: 'bfloat16'>"
    precision = "bf16" if ("bf16" in hint or "bfloat16" in hint) else "fp32"
    items = [{n: calib[n][i : i + 1] for n in names} for i in range(len(calib[names[0]]))]
    kwargs: dict[str, Any] = {"subset_size": len(items)}
    if transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    with quiet():
        quantized = nncf.quantize(ov_model, nncf.Dataset([[i[n] for n in names] for i in items]), **kwargs)
    int8 = core.compile_model(quantized, "CPU")
    return [
        Variant(f"OpenVINO defaults ({precision})", precision, runner(default), flops),
        Variant("OpenVINO + NNCF INT8", "int8", runner(int8), flops),
    ]


def ort_variants(model: Any, example: Inputs, calib: Inputs, flops: float, work: Path) -> list[Variant]:
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_dynamic, quantize_static

    names = list(example)
    path = work / "model.onnx"
    with quiet():
        torch.onnx.export(
            model,
            tuple(torch.from_numpy(v[:2]) for v in example.values()),
            str(path),
            input_names=names,
            output_names=["out"],
            dynamic_axes={**{n: {0: "batch"} for n in names}, "out": {0: "batch"}},
            dynamo=False,
        )
        quantize_dynamic(str(path), str(work / "dynamic.onnx"))

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self.items = iter([{n: calib[n][i : i + 1] for n in names} for i in range(len(calib[names[0]]))])

            def get_next(self) -> Inputs | None:
                return next(self.items, None)

        quantize_static(str(path), str(work / "static.onnx"), Reader(), quant_format=QuantFormat.QDQ)

    def runner(file: Path) -> Callable[[Inputs], np.ndarray]:
        session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        return lambda x: np.asarray(session.run(None, x)[0])

    return [
        Variant("ONNX Runtime INT8 dynamic", "int8", runner(work / "dynamic.onnx"), flops),
        Variant("ONNX Runtime INT8 static QDQ", "int8", runner(work / "static.onnx"), flops),
    ]


def groundwork_variant(
    model: Any,
    eval_data: Inputs,
    calib: Inputs,
    sparsities: list[float],
    out: Path,
    train: Any,
    steps: int,
    candidates: list[str] | None,
    settings: Any,
) -> tuple[Variant, Any]:
    from groundwork.engines.optimize import optimize
    from groundwork.engines.runtime import load_session

    t = time.perf_counter()
    report = optimize(
        model,
        eval_data,
        metric="cosine",
        max_drop=BUDGET,
        calibration=calib,
        batch_sizes=[1, 8, BATCH],
        sparsities=sparsities,
        train=train,
        finetune_steps=steps,
        out_dir=out,
        candidates=candidates,
        settings=settings,
        progress=lambda e: say(f"    {e.candidate:<24} {e.stage:<10} {e.message}") if e.stage in ("done", "skipped", "failed") else None,
    )
    say(f"  optimize() took {time.perf_counter() - t:.0f} s; chosen: {report.chosen} ({report.choice_reason})")
    row = report.chosen_row
    session = load_session(out / "chosen")
    variant = Variant(
        f"groundwork: {report.chosen}",
        row.precision,
        lambda x: session.run(x)[0],
        float(row.flops or 0),
        kind="groundwork",
        note=f"threads {row.threads}, streams {row.streams}, micro-batch {row.micro_batch}; " + "; ".join(row.notes),
    )
    return variant, report


# --- measurement ----------------------------------------------------------------------------------------
def measure_settings(quick: bool) -> Any:
    """How long optimize() measures each candidate inside the benchmark."""
    from groundwork.engines.optimize import MeasureSettings

    if quick:
        return MeasureSettings.quick()
    return MeasureSettings(latency_seconds=0.6, throughput_seconds=1.5, throughput_min_runs=2)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def outputs_of(variant: Variant, eval_data: Inputs) -> np.ndarray:
    n = len(next(iter(eval_data.values())))
    return np.concatenate([variant.run({k: v[i : i + BATCH] for k, v in eval_data.items()}) for i in range(0, n, BATCH)])


def measure(variants: list[Variant], batch: Inputs, rounds: int, lat_runs: int, thr_runs: int) -> None:
    one = {k: v[:1] for k, v in batch.items()}
    for v in variants:  # warm-up (compiles, allocations)
        for _ in range(3):
            v.run(one)
        v.run(batch)
    for r in range(rounds):
        for v in variants:
            times = []
            for _ in range(lat_runs):
                t = time.perf_counter()
                v.run(one)
                times.append((time.perf_counter() - t) * 1000)
            v.latencies.append(statistics.median(times))
            t = time.perf_counter()
            for _ in range(thr_runs):
                v.run(batch)
            v.throughputs.append(BATCH * thr_runs / (time.perf_counter() - t))
        say(f"  round {r + 1}/{rounds}: " + ", ".join(f"{v.name.split(':')[-1].strip()} {v.throughputs[-1]:.1f}/s" for v in variants))


def print_table(title: str, variants: list[Variant], ceilings: dict[str, float]) -> None:
    eager = next(v for v in variants if v.kind == "eager")
    say(f"\n{title}")
    header = (
        f"{'variant':<44} {'quality':>8} {'ok':>3} {'p50 ms b1':>10} {'items/s b32':>12} {'(median)':>9} "
        f"{'x eager':>8} {'GFLOP/s':>8} {'% ceil':>7} {'% AMX':>6}"
    )
    say(header)
    say("-" * len(header))
    for v in variants:
        gflops = v.flops * v.best_throughput / 1e9
        ceil = ceilings.get(v.precision) or PAPER_CEILINGS[v.precision]
        amx = AMX_PAPER.get(v.precision)
        ok = "yes" if v.quality is not None and 1 - v.quality <= BUDGET + 1e-12 else "no"
        say(
            f"{v.name[:44]:<44} {v.quality or 0:>8.4f} {ok:>3} {v.best_latency:>10.2f} {v.best_throughput:>12.1f} "
            f"{statistics.median(v.throughputs):>9.1f} {v.best_throughput / eager.best_throughput:>7.2f}x "
            f"{gflops:>8.0f} {100 * gflops / ceil:>6.0f}% {(f'{100 * gflops / amx:.1f}%' if amx else '-'):>6}"
        )


def verdict(name: str, variants: list[Variant]) -> dict[str, Any]:
    ours = next(v for v in variants if v.kind == "groundwork")
    eager = next(v for v in variants if v.kind == "eager")
    peers = [v for v in variants if v.kind == "off-the-shelf" and v.quality is not None and 1 - v.quality <= BUDGET + 1e-12]
    out: dict[str, Any] = {
        "model": name,
        "chosen": ours.name,
        "vs_eager_throughput": ours.best_throughput / eager.best_throughput,
        "vs_eager_latency": eager.best_latency / ours.best_latency,
    }
    say(f"\n{name}: groundwork {ours.best_throughput:.1f} items/s at batch {BATCH}, {ours.best_latency:.2f} ms at batch 1")
    say(f"  vs PyTorch eager FP32: {out['vs_eager_throughput']:.2f}x throughput, {out['vs_eager_latency']:.2f}x lower latency")
    if peers:
        best = max(peers, key=lambda v: v.best_throughput)
        out.update(
            best_peer=best.name,
            vs_peer_throughput=ours.best_throughput / best.best_throughput,
            peer_latency_ratio=ours.best_latency / best.best_latency,
        )
        met = out["vs_peer_throughput"] >= 1.25 and out["peer_latency_ratio"] <= 1.0
        out["target_met"] = met
        say(
            f"  vs best off-the-shelf within budget ({best.name}): {out['vs_peer_throughput']:.2f}x throughput "
            f"(target >= 1.25x), batch-1 latency {ours.best_latency:.2f} vs {best.best_latency:.2f} ms "
            f"(target: no worse) -> {'TARGET MET' if met else 'target missed'}"
        )
    return out


# --- the models ---------------------------------------------------------------------------------------
def bench_model(name: str, args: argparse.Namespace, ceilings: dict[str, float], work: Path) -> dict[str, Any]:
    import torch

    from groundwork.engines.optimize.prune import count_flops

    if name == "minilm":
        model = exmodels.minilm()
        calib, eval_data = exdata.minilm_data(exmodels.minilm_tokenizer(), calibration=64, held_out=48)
        transformer, sparsities = True, [float(s) for s in args.minilm_sparsity.split(",")]
        train = None
        if args.finetune_steps:
            import minilm as exminilm

            train = exminilm.distill
        title = "all-MiniLM-L6-v2, 128 tokens, quality = mean cosine to FP32 embeddings on held-out passages"
    else:
        model = exmodels.resnet18()
        calib, eval_data = exdata.noise_images(64, seed=0), exdata.noise_images(48, seed=1)
        transformer, sparsities, train = False, [float(s) for s in args.cnn_sparsity.split(",")], None
        title = "ResNet-18-shaped CNN (random weights), 224x224, quality = mean cosine of logits to FP32"
    batch = {k: np.concatenate([v] * 2)[:BATCH] for k, v in eval_data.items()}
    flops = float(count_flops(model, tuple(torch.from_numpy(v[:1]) for v in eval_data.values())))
    say(f"\n=== {name}: {flops / 1e9:.2f} GFLOP per item (dense FP32 model) ===")
    say("  groundwork optimize() ...")
    ours, report = groundwork_variant(
        model,
        eval_data,
        calib,
        sparsities,
        work / f"gw-{name}",
        train,
        args.finetune_steps,
        args.gw_candidates.split(",") if args.gw_candidates else None,
        measure_settings(args.quick),
    )
    say("  building off-the-shelf variants ...")
    variants = torch_variants(model, flops, args.threads)
    variants += openvino_variants(model, eval_data, calib, transformer, flops)
    (work / name).mkdir(exist_ok=True)
    variants += ort_variants(model, eval_data, calib, flops, work / name)
    variants.append(ours)
    reference = outputs_of(variants[0], eval_data)
    for v in variants:
        v.quality = cosine(outputs_of(v, eval_data), reference)
    say(f"  measuring {len(variants)} variants in {args.rounds} interleaved rounds ...")
    measure(variants, batch, args.rounds, args.latency_runs, args.throughput_runs)
    print_table(title, variants, ceilings)
    result = verdict(name, variants)
    result["variants"] = [v.summary() for v in variants]
    result["optimize_report"] = report.to_dict()
    return result


def bench_digits(work: Path, candidates: list[str] | None) -> dict[str, Any]:
    """The same recipe on a trained digits CNN: accuracy lost must stay within 1 point."""
    import digits_cnn

    from groundwork.engines.optimize import optimize

    model, (x_train, _y_train, x_test, y_test) = digits_cnn.trained_model(), exdata.digits_split()
    report = optimize(
        model,
        {"x": x_test, "labels": y_test},
        metric="accuracy",
        max_drop=BUDGET,
        calibration={"x": x_train[:256]},
        batch_sizes=[1, 8, BATCH],
        sparsities=[0.3, 0.5],
        train=digits_cnn.finetune,
        finetune_steps=200,
        out_dir=work / "gw-digits",
        candidates=candidates,
        settings=measure_settings(True),  # this section is about accuracy; speed is measured above
    )
    row = report.chosen_row
    base = report.row(report.baseline)
    say(
        f"\ndigits CNN (trained): baseline accuracy {report.baseline_score:.4f}; chosen {report.chosen}: "
        f"accuracy {row.score:.4f} ({(row.quality_change or 0) * 100:+.2f} points), "
        f"{row.throughput:.0f} items/s ({(row.speedup or 1):.2f}x eager {base.throughput:.0f}/s)"
    )
    for r in report.rows:
        if r.score is not None:
            say(f"  {r.id:<26} accuracy {r.score:.4f} ({(r.quality_change or 0) * 100:+.2f} pt)  {r.status}")
    return {"chosen": report.chosen, "accuracy_change_points": (row.quality_change or 0) * 100, "report": report.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="minilm,cnn,digits", help="comma-separated: minilm, cnn, digits")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="shorter measurements, one round, fewer pruning levels (rough numbers)"
    )
    parser.add_argument(
        "--gw-candidates", default=None, help="candidate ids/families groundwork's optimize() tries (default: all)"
    )
    parser.add_argument("--latency-runs", type=int, default=10)
    parser.add_argument("--throughput-runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--minilm-sparsity", default="0.1,0.2")
    parser.add_argument("--cnn-sparsity", default="0.3,0.5")
    parser.add_argument("--finetune-steps", type=int, default=0, help="distillation steps after pruning MiniLM")
    parser.add_argument("--json", type=Path, default=None, help="write all numbers here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.latency_runs, args.throughput_runs = 1, 5, 1
        args.minilm_sparsity, args.cnn_sparsity = args.minilm_sparsity.split(",")[0], args.cnn_sparsity.split(",")[0]
    say(f"command: {' '.join(sys.argv)}")

    from groundwork.engines.optimize.hardware import detect

    hw = detect()
    say(f"CPU: {hw.summary()}")
    if not hw.has_amx:
        say("AMX: not exposed on this CPU (no amx_tile in /proc/cpuinfo); the AMX peaks are shown for reference only")
    ceilings = gemm_ceilings(args.threads)
    say(
        "GEMM ceilings measured now (GFLOP/s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in ceilings.items())
        + "; issue's reference: fp32 170, bf16 600, int8 850; AMX on paper: bf16 4000, int8 8000"
    )
    results: dict[str, Any] = {"cpu": hw.to_dict(), "ceilings": ceilings, "argv": sys.argv}
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        work = Path(tmp)
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            if name == "digits":
                results["digits"] = bench_digits(work, args.gw_candidates.split(",") if args.gw_candidates else None)
            else:
                results[name] = bench_model(name, args, ceilings, work)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
        say(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
