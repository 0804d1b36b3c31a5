"""Synthetic CT-like volumes with labelled structures, written slab by slab (never whole in memory).

A body (soft tissue, about 40 HU) in air (-1000 HU) holds organs (label 1, about 150 HU) and
small bright lesions (label 2, about 300 HU), with noise, shown through a soft-tissue
window (-160 to 240 HU, scaled to [0, 1]). Structures are ellipsoids placed at random from
a seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AIR, TISSUE, ORGAN, LESION = -1000.0, 40.0, 150.0, 300.0
LEVEL, WIDTH = 40.0, 400.0  # the display window
CLASSES = ("background", "organ", "lesion")


@dataclass(frozen=True)
class Ellipsoid:
    center: tuple[float, float, float]
    radii: tuple[float, float, float]

    def inside(self, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        (cz, cy, cx), (rz, ry, rx) = self.center, self.radii
        return np.asarray(((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0)

    def box(self, z0: int, z1: int, shape: tuple[int, int, int]) -> tuple[slice, slice, slice] | None:
        """The part of slab ``z0:z1`` (of a volume of ``shape``) that can hold this ellipsoid, or None."""
        lo = [max(0, int(np.floor(c - r))) for c, r in zip(self.center, self.radii, strict=True)]
        hi = [min(n, int(np.ceil(c + r)) + 1) for c, r, n in zip(self.center, self.radii, shape, strict=True)]
        lo[0], hi[0] = max(lo[0], z0), min(hi[0], z1)
        if any(a >= b for a, b in zip(lo, hi, strict=True)):
            return None
        return slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])


def layout(shape: tuple[int, int, int], seed: int) -> tuple[Ellipsoid, list[Ellipsoid], list[Ellipsoid]]:
    """A body, organs inside it, lesions (some inside organs); more of them in larger volumes."""
    rng = np.random.default_rng(seed)
    d, h, w = shape
    body = Ellipsoid((d / 2, h / 2, w / 2), (d * 0.48, h * 0.42, w * 0.45))
    scale = min(shape)
    n_organs = max(2, int(round(np.prod(shape) / 48**3 / 4)))
    organs, lesions = [], []
    for _ in range(n_organs):
        center = tuple(float(c + rng.uniform(-0.3, 0.3) * s) for c, s in zip(body.center, shape, strict=True))
        radii = tuple(float(rng.uniform(0.10, 0.20) * scale) for _ in range(3))
        organs.append(Ellipsoid(center, radii))  # type: ignore[arg-type]
    for _ in range(n_organs * 3):
        host = organs[int(rng.integers(len(organs)))]
        center = tuple(float(c + rng.uniform(-0.8, 0.8) * r) for c, r in zip(host.center, host.radii, strict=True))
        radii = tuple(float(rng.uniform(3.0, 6.0)) for _ in range(3))
        lesions.append(Ellipsoid(center, radii))  # type: ignore[arg-type]
    return body, organs, lesions


def write_volume(image_path: Path, label_path: Path, shape: tuple[int, int, int], seed: int = 0,
                 slab: int = 16) -> None:
    """``image_path``: (1, D, H, W) float32 .npy; ``label_path``: (D, H, W) uint8 .npy."""
    body, organs, lesions = layout(shape, seed)
    image_tmp, label_tmp = image_path.with_name(f".tmp-{image_path.name}"), label_path.with_name(f".tmp-{label_path.name}")
    image = np.lib.format.open_memmap(image_tmp, mode="w+", dtype=np.float32, shape=(1, *shape))
    labels = np.lib.format.open_memmap(label_tmp, mode="w+", dtype=np.uint8, shape=shape)
    rng = np.random.default_rng(seed + 1)
    _, h, w = shape
    y, x = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    for z0 in range(0, shape[0], slab):
        z1 = min(shape[0], z0 + slab)
        z = np.arange(z0, z1, dtype=np.float32)[:, None, None]
        hu = np.full((z1 - z0, h, w), AIR, dtype=np.float32)
        lab = np.zeros((z1 - z0, h, w), dtype=np.uint8)
        in_body = body.inside(z, y, x)
        hu[in_body] = TISSUE
        for shapes, value, label in ((organs, ORGAN, 1), (lesions, LESION, 2)):
            for item in shapes:  # each only over its bounding box: the work grows with the volume, no faster
                box = item.box(z0, z1, shape)
                if box is None:
                    continue
                local = (slice(box[0].start - z0, box[0].stop - z0), box[1], box[2])
                inside = item.inside(z[local[0]], y[box[1], box[2]], x[box[1], box[2]]) & in_body[local]
                hu[local][inside], lab[local][inside] = value, label
        hu += rng.normal(0.0, 20.0, size=hu.shape).astype(np.float32)
        image[0, z0:z1] = np.clip((hu - (LEVEL - WIDTH / 2)) / WIDTH, 0.0, 1.0)
        labels[z0:z1] = lab
    image.flush()
    labels.flush()
    del image, labels
    os.replace(label_tmp, label_path)
    os.replace(image_tmp, image_path)  # last: a volume that exists is whole


def dice(pred: np.ndarray, truth: np.ndarray, label: int) -> float:
    """Dice overlap of one label (1.0 when neither has it)."""
    a, b = pred == label, truth == label
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def dice_by_slab(pred: np.ndarray, truth: np.ndarray, labels: tuple[int, ...] = (1, 2), slab: int = 32) -> dict[int, float]:
    """Dice per label over arrays too large to compare at once (read slab by slab)."""
    inter = dict.fromkeys(labels, 0)
    total = dict.fromkeys(labels, 0)
    for z0 in range(0, truth.shape[0], slab):
        p, t = np.asarray(pred[z0:z0 + slab]), np.asarray(truth[z0:z0 + slab])
        for label in labels:
            a, b = p == label, t == label
            inter[label] += int(np.logical_and(a, b).sum())
            total[label] += int(a.sum()) + int(b.sum())
    return {label: (1.0 if total[label] == 0 else 2.0 * inter[label] / total[label]) for label in labels}
