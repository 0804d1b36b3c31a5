"""Benchmark: groundwork infer against MONAI's sliding_window_inference on synthetic CT volumes.

One run, on this CPU:

1. trains the example's small 3D U-Net (``examples/volumes/train.py``: MONAI UNet, 8-16-32
   channels, batch norm) for ``--train-minutes`` on synthetic CT crops and registers it;
2. optimizes it with ``groundwork optimize`` (candidates ``--candidates``; quality budget:
   mean cosine >= 0.99 to FP32 on eval windows); the chosen variant is the next version;
3. writes synthetic volumes with labels at each ``--sizes`` edge (128, 256, 512);
4. segments each volume (64^3 windows, overlap 0.25, Gaussian blending, batch 4, argmax
   labels) with each contender, in rounds whose order rotates (the machine is shared:
   compare ratios within one run):

   * ``monai``: MONAI 1.6 ``sliding_window_inference`` with the same U-Net in PyTorch
     eager FP32 (the whole volume and output in memory, as MONAI works); time from
     loading the model and the .npy to the labels saved;
   * ``gw-fp32``: ``gw.infer_volume`` with the registered FP32 version (time of the call:
     loading the model, digesting the input, streaming, writing a zarr store);
   * ``gw-opt``: ``gw.infer_volume`` with the optimized version.

Each measurement is a fresh process: voxels/s (volume voxels / seconds, best round) and
peak resident memory (VmHWM). Dice against the generated labels is printed for each,
and the optimized variant's Dice must be within 0.01 of FP32's.

    flock /tmp/gw-bench.lock .venv/bin/python benchmarks/volumes.py                  # 128, 256, 512; ~1 h on 2 cores
    flock /tmp/gw-bench.lock .venv/bin/python benchmarks/volumes.py --sizes 128,256 --repeat 1 --train-minutes 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "volumes"
sys.path.insert(0, str(EXAMPLE))

WINDOW = (64, 64, 64)
OVERLAP = 0.25
BATCH = 4
CONTENDERS = ("monai", "gw-fp32", "gw-opt")


def cpu_model() -> str:
    from groundwork.engines.optimize.hardware import detect

    return detect().summary()


def peak_rss_kb() -> int:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["VmHWM"].split()[0])


# --- one measurement (a child process) ------------------------------------------------------------
def child(contender: str, size: int, work: Path) -> dict[str, Any]:
    import zarr
    from synthetic import dice_by_slab

    image, truth = work / f"ct{size}.npy", work / f"ct{size}_labels.npy"
    refs = json.loads((work / "models.json").read_text())
    out = work / f"out-{contender}-{size}"
    shutil.rmtree(out.with_suffix(".zarr"), ignore_errors=True)
    shutil.rmtree(out.with_suffix(".zarr.partial"), ignore_errors=True)  # an interrupted earlier run's
    out.with_suffix(".npy").unlink(missing_ok=True)
    if contender == "monai":
        import torch
        from monai.inferers import sliding_window_inference

        from groundwork.engines.optimize.sources import resolve_registry_reference

        torch.set_num_threads(os.cpu_count() or 1)
        t0 = time.perf_counter()  # from loading the model, as gw.infer_volume's time is
        net = resolve_registry_reference(refs["fp32"], _config(work)).module  # an exported program: inference-only
        x = torch.from_numpy(np.load(image))[None]
        with torch.inference_mode():
            probs = sliding_window_inference(x, WINDOW, BATCH, net, overlap=OVERLAP, mode="gaussian")
        labels = probs[0].argmax(0).to(torch.uint8).numpy()
        np.save(out.with_suffix(".npy"), labels)
        seconds = time.perf_counter() - t0
        pred: Any = np.load(out.with_suffix(".npy"), mmap_mode="r")
    else:
        import groundwork as gw

        ref = refs["fp32" if contender == "gw-fp32" else "optimized"]
        t0 = time.perf_counter()
        gw.infer_volume(ref, image, out.with_suffix(".zarr"), window=WINDOW, overlap=OVERLAP, batch=BATCH,
                        output_type="labels", record=False, config=_config(work))
        seconds = time.perf_counter() - t0
        pred = zarr.open_array(str(out.with_suffix(".zarr")), mode="r")[0]
    hwm = peak_rss_kb()
    dice = dice_by_slab(pred, np.load(truth, mmap_mode="r"))
    return {"contender": contender, "size": size, "seconds": seconds, "voxels_per_s": size**3 / seconds,
            "peak_rss_mb": hwm / 1024, "dice": {str(k): v for k, v in dice.items()}}


def _config(work: Path) -> Any:
    from groundwork.config import Config

    return Config(store_url=f"sqlite:///{work / 'meta.db'}", artifacts_url=str(work / "artifacts"))


# --- setup: train, register, optimize, volumes ------------------------------------------------------
def setup(work: Path, sizes: list[int], train_minutes: float, candidates: str) -> dict[str, str]:
    env = {**os.environ, **_config(work).child_environ()}
    if not (work / "models.json").exists():
        print(f"training the example U-Net for {train_minutes:g} min ...", flush=True)
        subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "--minutes", str(train_minutes), "--out",
                        str(work / "train")], cwd=work, env=env, check=True)
        print("optimizing it ...", flush=True)
        code = (
            "import json, groundwork as gw\n"
            f"r = gw.optimize('ctseg@production', 'eval.npz', metric='cosine', max_drop=0.01, "
            f"candidates={candidates.split(',')!r}, batch_sizes=(1, {BATCH}), out_dir='optimized')\n"
            "print(json.dumps({'chosen': r.chosen, 'registered': r.registered}))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, check=True, capture_output=True,
                              text=True)
        chosen = json.loads(done.stdout.strip().splitlines()[-1])
        refs = {"fp32": "ctseg/1", "optimized": chosen["registered"] or "ctseg/1", "chosen": chosen["chosen"] or "-"}
        (work / "models.json").write_text(json.dumps(refs))
    from synthetic import write_volume

    for size in sizes:
        if not (work / f"ct{size}.npy").exists():
            print(f"writing a {size}^3 volume ...", flush=True)
            write_volume(work / f"ct{size}.npy", work / f"ct{size}_labels.npy", (size,) * 3, seed=7)
    refs = json.loads((work / "models.json").read_text())
    return dict(refs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256,512", help="volume edges")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (best kept; contender order rotates)")
    parser.add_argument("--train-minutes", type=float, default=3.0)
    parser.add_argument("--candidates", default="ort,openvino", help="groundwork optimize candidates")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "work" / "volumes")
    parser.add_argument("--child", nargs=2, metavar=("CONTENDER", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.work)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    refs = setup(args.work, sizes, args.train_minutes, args.candidates)
    print(f"models: FP32 {refs['fp32']}, optimized {refs['optimized']} ({refs['chosen']}); CPU: {cpu_model()}",
          flush=True)
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_ in range(args.repeat):
        for size in sizes:
            order = CONTENDERS[round_ % 3:] + CONTENDERS[:round_ % 3]
            for contender in order:
                done = subprocess.run([sys.executable, __file__, "--child", contender, str(size), "--work",
                                       str(args.work)], capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"{contender} {size}^3 failed:\n{done.stderr[-2000:]}", flush=True)
                    continue
                row = json.loads(done.stdout.strip().splitlines()[-1])
                results.setdefault((contender, size), []).append(row)
                print(f"round {round_ + 1} {size:4d}^3 {contender:8s} {row['voxels_per_s'] / 1e6:7.3f} Mvoxels/s "
                      f"{row['peak_rss_mb']:7.0f} MiB  Dice {row['dice']}", flush=True)
    print()
    print(f"| volume | contender | voxels/s (best of {args.repeat}) | vs MONAI | peak RSS | Dice organ | Dice lesion |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        base = max((r["voxels_per_s"] for r in results.get(("monai", size), [])), default=None)
        for contender in CONTENDERS:
            rows = results.get((contender, size))
            if not rows:
                continue
            best = max(rows, key=lambda r: r["voxels_per_s"])
            ratio = f"{best['voxels_per_s'] / base:.2f}x" if base else "-"
            print(f"| {size}^3 | {contender} | {best['voxels_per_s'] / 1e6:.3f} M | {ratio} | "
                  f"{max(r['peak_rss_mb'] for r in rows):.0f} MiB | {best['dice']['1']:.3f} | {best['dice']['2']:.3f} |")
    for size in sizes:
        fp32, opt = results.get(("gw-fp32", size)), results.get(("gw-opt", size))
        if fp32 and opt:
            gap = max(abs(fp32[0]["dice"][k] - opt[0]["dice"][k]) for k in ("1", "2"))
            print(f"{size}^3: optimized Dice within {gap:.4f} of FP32 ({'ok' if gap <= 0.01 else 'over 0.01'})")


if __name__ == "__main__":
    main()
