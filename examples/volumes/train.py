"""Train a small 3D U-Net (MONAI) on crops of synthetic CT volumes, record the run, register the model.

    python examples/volumes/train.py --minutes 3

Trains on 32^3 crops; registers ``ctseg`` (next version, alias ``production``) exported for
64^3 windows, and writes ``eval.npz`` (a few 64^3 windows, for ``groundwork optimize``). The training volumes are the run's inputs, so
``groundwork lineage`` leads from any segmentation back to them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import CLASSES, dice, write_volume  # noqa: E402

import groundwork as gw  # noqa: E402

CROP = 32  # training crops
WINDOW = 64  # inference windows: the model is registered (exported) for this size


def unet() -> torch.nn.Module:
    """The network: 3 classes, 8-16-32 channels, one residual unit per level, batch norm (about 0.1M
    parameters; batch norm folds into the convolutions when the model is optimized)."""
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=len(CLASSES), channels=(8, 16, 32), strides=(2, 2),
                num_res_units=1, norm="batch", act="relu")


def crops(image: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator,
          size: int = CROP) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random ``size``^3 crops, half of them centred on a foreground voxel."""
    d, h, w = labels.shape
    fg = np.argwhere(labels > 0)
    xs, ys = [], []
    for i in range(n):
        if i % 2 == 0 and len(fg):
            c = fg[rng.integers(len(fg))]
            start = [int(np.clip(c[k] - size // 2, 0, s - size)) for k, s in enumerate((d, h, w))]
        else:
            start = [int(rng.integers(0, s - size + 1)) for s in (d, h, w)]
        z, y, x = start
        xs.append(image[:, z:z + size, y:y + size, x:x + size])
        ys.append(labels[z:z + size, y:y + size, x:x + size])
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training time (CPU)")
    parser.add_argument("--size", type=int, default=96, help="edge of each training volume")
    parser.add_argument("--out", type=Path, default=Path("ctseg-data"), help="folder for the training volumes")
    args = parser.parse_args()
    from monai.losses import DiceCELoss

    args.out.mkdir(parents=True, exist_ok=True)
    volumes = []
    for seed in (1, 2):
        image, labels = args.out / f"train{seed}.npy", args.out / f"train{seed}_labels.npy"
        write_volume(image, labels, (args.size,) * 3, seed=seed)
        volumes.append((np.load(image), np.load(labels)))
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = unet()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    params = {"crop": CROP, "channels": "8,16,32", "lr": 3e-3, "minutes": args.minutes, "batch": 4}
    with gw.start_run(name="train ctseg", params=params) as run:
        for seed in (1, 2):
            run.log_input(args.out / f"train{seed}.npy")
            run.log_input(args.out / f"train{seed}_labels.npy")
        deadline, step = time.monotonic() + args.minutes * 60, 0
        net.train()
        while time.monotonic() < deadline:
            image, labels = volumes[step % len(volumes)]
            x, y = crops(image, labels, 4, rng)
            loss = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y)[:, None])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log({"loss": loss.item()}, step=step)
            if step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.3f}", flush=True)
            step += 1
        net.eval()
        image, labels = volumes[0]
        x, y = crops(image, labels, 8, np.random.default_rng(99), size=WINDOW)
        with torch.inference_mode():
            pred = net(torch.from_numpy(x)).argmax(1).numpy()
        scores = {f"dice_{CLASSES[k]}": dice(pred, y, k) for k in (1, 2)}
        run.log(scores)
        np.savez("eval.npz", x=x)
        version = run.log_model(net, "ctseg", example=x[:1])
    gw.promote_model("ctseg", version.version, alias="production", reason="trained by examples/volumes/train.py")
    print(f"registered {version.ref} (ctseg@production) after {step} steps: "
          + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
