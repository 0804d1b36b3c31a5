"""Tune the digits MLP with ASHA, then train the best configuration on 2 data-parallel workers and register it.

    python examples/sweep/digits.py --trials 20 --parallel 2

Step 1, the sweep: learning rate, width, dropout and epochs, searched by Optuna's TPE; each
epoch logs ``val_acc`` with its step, so ASHA stops poor trials early (they end ``pruned``).
Every trial is a child run of the sweep: ``groundwork sweep show SWEEP``, the UI's Sweeps page.

Step 2, the best configuration on 2 workers (``gw.distributed``, gloo): each rank trains on
its half of every global batch, gradients are averaged, rank 0 logs the averaged metrics,
checkpoints each epoch (a killed worker restarts from there) and registers the model as
``digits-mlp``. Runs in a minute or two on a laptop CPU.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

import groundwork as gw

SPACE = {
    "lr": gw.loguniform(1e-4, 3e-1),
    "width": gw.choice([16, 32, 64, 128]),
    "dropout": gw.uniform(0.0, 0.5),
    "epochs": gw.integer(5, 20),
}


@functools.cache
def digits_data() -> tuple[Any, Any, Any, Any]:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], split 80/20 with a fixed seed (once per process)."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=0.2, random_state=0, stratify=y)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.int64)  # noqa: E731
    return as_x(x_train), as_y(y_train), as_x(x_val), as_y(y_val)


def mlp(width: int, dropout: float) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(width, 10)
    )


def accuracy(model: Any, x: Any, y: Any) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return float(correct)


def objective(params: dict[str, Any], epochs: int | None = None) -> float:
    """Train one configuration; ``val_acc`` each epoch (the pruner watches it); returns the last."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y, x_val, y_val = digits_data()
    model = mlp(int(params["width"]), float(params["dropout"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))
    order = torch.Generator().manual_seed(0)
    val_acc = 0.0
    for epoch in range(int(epochs or params["epochs"])):
        for batch in torch.randperm(len(x), generator=order).split(64):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val_acc = accuracy(model, x_val, y_val)
        gw.log({"val_acc": val_acc, "loss": loss.item()}, step=epoch)
    return val_acc


def train_best(ctx: Any) -> float:
    """Data-parallel training of the best configuration (every rank runs this)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    params = ctx.params
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y, x_val, y_val = digits_data()
    net = mlp(int(params["width"]), float(params["dropout"]))
    model = DistributedDataParallel(net) if ctx.world_size > 1 else net
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))
    first = 0
    state = ctx.last_checkpoint()  # after a worker died: go on from the last epoch saved
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first = state["epoch"] + 1
    for epoch in range(first, int(params["epochs"])):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for batch in order.split(64 * ctx.world_size):  # the global batch; each rank takes its share
            loss = torch.nn.functional.cross_entropy(model(ctx.shard(x[batch])), ctx.shard(y[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        ctx.log({"val_acc": accuracy(net, x_val, y_val), "loss": loss.item()}, step=epoch)
        ctx.checkpoint({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch})
    final = accuracy(net, x_val, y_val)
    if ctx.is_main:
        ctx.run.log_model(net.eval(), "digits-mlp", example=x_val[:5])
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    result = gw.sweep(objective, SPACE, trials=args.trials, parallel=args.parallel, pruner="asha",
                      direction="max", metric="val_acc", seed=args.seed, name="digits-sweep")
    pruned = sum(t.status == "pruned" for t in result.trials)
    print(f"sweep {result.id[:12]}: best val_acc {result.best_value:.4f} with {result.best_params} "
          f"({pruned} of {len(result.trials)} trials pruned)")

    trained = gw.distributed(train_best, workers=args.workers, name="digits-best", params=result.best_params)
    final = gw.get_run(trained.run_id)
    print(f"trained on {args.workers} workers: run {trained.run_id[:12]} {trained.status}, "
          f"val_acc {final.metrics['val_acc']:.4f}, registered as digits-mlp")


if __name__ == "__main__":
    main()
