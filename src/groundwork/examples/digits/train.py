"""Train a small PyTorch MLP on scikit-learn's digits, recorded by groundwork.

Run it plainly (`python -m groundwork.examples.digits.train`) or under `groundwork run`
(`groundwork run --param epochs=30 -- python -m groundwork.examples.digits.train`): the
SDK attaches to the run that `groundwork run` created and params given with
--param arrive as GROUNDWORK_PARAM_<NAME>.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import groundwork as gw


def param(name: str, default: str) -> str:
    return os.environ.get(f"GROUNDWORK_PARAM_{name.upper()}", default)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=int(param("epochs", "20")))
    parser.add_argument("--lr", type=float, default=float(param("lr", "0.01")))
    parser.add_argument("--hidden", type=int, default=int(param("hidden", "128")))
    parser.add_argument("--seed", type=int, default=int(param("seed", "0")))
    parser.add_argument("--out", default="out/digits")
    args = parser.parse_args()

    params = {"epochs": args.epochs, "lr": args.lr, "hidden": args.hidden, "seed": args.seed}
    with gw.start_run(name="digits-mlp", params=params) as run:
        gw.seed(args.seed)
        torch.use_deterministic_algorithms(True)
        digits = load_digits()
        x = (digits.data / 16.0).astype(np.float32)
        y = digits.target.astype(np.int64)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=args.seed, stratify=y)
        xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
        xv, yv = torch.from_numpy(x_test), torch.from_numpy(y_test)

        model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        loss_fn = nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(args.seed)
        for epoch in range(args.epochs):
            model.train()
            order = torch.randperm(len(xt), generator=generator)
            total = 0.0
            for start in range(0, len(xt), 64):
                batch = order[start : start + 64]
                optimizer.zero_grad()
                loss = loss_fn(model(xt[batch]), yt[batch])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
            model.eval()
            with torch.no_grad():
                acc = float((model(xv).argmax(1) == yv).float().mean())
            run.log({"loss": total / len(xt), "acc": acc}, step=epoch)
            print(f"epoch {epoch:3d}  loss {total / len(xt):.4f}  acc {acc:.4f}")

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out / "model.pt")
        run.log_artifact(out / "model.pt", kind="model")
        print(f"final accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
