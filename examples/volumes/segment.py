"""Segment a synthetic CT volume far larger than the training crops, streamed, and report Dice.

    python examples/volumes/train.py --minutes 3        # once: registers ctseg@production
    python examples/volumes/segment.py --size 256       # optimize, register, segment, Dice

Steps: write a SIZE^3 volume and its labels (never whole in memory); optimize
``ctseg@production`` for this CPU (the chosen variant becomes the next version of
``ctseg``); run both the FP32 version and the optimized one over the volume with
``gw.infer_volume`` (64^3 windows, Gaussian blending, argmax labels); print Dice per
structure and voxels/s. Every inference is a recorded run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import CLASSES, dice_by_slab, write_volume  # noqa: E402

import groundwork as gw  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="edge of the volume to segment")
    parser.add_argument("--window", type=int, default=64, help="window edge (a multiple of 4)")
    parser.add_argument("--candidates", default="ort,openvino",
                        help="optimize candidates (families or ids); 'none' skips optimizing")
    parser.add_argument("--out", type=Path, default=Path("ctseg-data"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    image, truth = args.out / f"ct{args.size}.npy", args.out / f"ct{args.size}_labels.npy"
    if not image.exists():
        write_volume(image, truth, (args.size,) * 3, seed=7)
    print(f"volume: {image} {(1, *(args.size,) * 3)} float32 ({image.stat().st_size / 2**20:.0f} MiB)")

    models = {"fp32": "ctseg@production"}
    if args.candidates != "none":
        report = gw.optimize("ctseg@production", "eval.npz", metric="cosine", max_drop=0.01,
                             candidates=args.candidates.split(","), batch_sizes=(1, 4),
                             out_dir=args.out / "optimized")
        if report.registered:
            models["optimized"] = report.registered
            print(f"optimized: {report.chosen} registered as {report.registered}")
        else:
            print(f"optimize chose nothing: {report.choice_reason}")

    for label, ref in models.items():
        output = args.out / f"seg-{label}-{args.size}.zarr"
        result = gw.infer_volume(ref, image, output, window=(args.window,) * 3, overlap=0.25, batch=4,
                                 output_type="labels", overwrite=True)
        import zarr

        scores = dice_by_slab(zarr.open_array(str(output), mode="r")[0], np.load(truth, mmap_mode="r"))
        print(f"{label:9s} {ref:18s} {result.voxels_per_s / 1e6:6.2f} Mvoxels/s  "
              + "  ".join(f"Dice {CLASSES[k]} {v:.3f}" for k, v in scores.items())
              + f"  (run {result.run_id[:12] if result.run_id else '-'})")


if __name__ == "__main__":
    main()
