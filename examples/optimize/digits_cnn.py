"""Optimize a small CNN trained on scikit-learn's digits; quality is accuracy on held-out digits.

    .venv/bin/python examples/optimize/digits_cnn.py          # trains (seconds), then optimize() via the API
    .venv/bin/python examples/optimize/digits_cnn.py --write-data
    groundwork optimize examples/optimize/models.py:digits_cnn --eval optimized/digits-data/eval.npz \\
        --calibration optimized/digits-data/calib.npz --metric accuracy --max-drop 0.01 \\
        --train examples/optimize/digits_cnn.py:finetune --finetune-steps 200 --batch-sizes 1,8,32

The budget is at most 1 point of accuracy lost (``--max-drop 0.01``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402
import models  # noqa: E402

WEIGHTS = Path("optimized/digits-data/digits_cnn.pt")


def train(model: Any, epochs: int = 12, seed: int = 0) -> Any:
    import torch

    x_train, y_train, _, _ = data.digits_split()
    torch.manual_seed(seed)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def trained_model() -> Any:
    """The trained DigitsCNN (trained once, then loaded from optimized/digits-data/)."""
    import torch

    model = models.DigitsCNN()
    if WEIGHTS.is_file():
        model.load_state_dict(torch.load(WEIGHTS))
        return model.eval()
    train(model)
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), WEIGHTS)
    return model.eval()


def finetune(model: Any, steps: int) -> Any:
    """``train(model, steps)`` for pruned digit CNNs: a few cross-entropy steps on the training digits."""
    import torch

    x_train, y_train, _, _ = data.digits_split()
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=generator)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


def write_data(folder: Path) -> tuple[Path, Path]:
    x_train, _, x_test, y_test = data.digits_split()
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "eval.npz", x=x_test, labels=y_test)
    np.savez(folder / "calib.npz", x=x_train[:256])
    return folder / "eval.npz", folder / "calib.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="optimized/digits-cnn")
    parser.add_argument("--write-data", action="store_true")
    args = parser.parse_args()
    eval_path, calib_path = write_data(Path("optimized/digits-data"))
    model = trained_model()
    if args.write_data:
        print(f"wrote {eval_path}, {calib_path} and {WEIGHTS}")
        return
    from groundwork.engines.optimize import optimize

    report = optimize(
        model,
        str(eval_path),
        metric="accuracy",
        max_drop=0.01,
        calibration=str(calib_path),
        batch_sizes=[1, 8, 32],
        train=finetune,
        finetune_steps=200,
        out_dir=args.out,
        progress=lambda e: print(f"  {e.candidate:<26} {e.stage:<10} {e.message}", flush=True),
    )
    print(report.to_markdown())


if __name__ == "__main__":
    main()
