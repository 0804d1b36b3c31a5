"""The window grid and weights are MONAI's; chunks and windows map onto each other both ways."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from monai.data.utils import compute_importance_map, dense_patch_slices
from monai.inferers.utils import _get_scan_interval

from groundwork.engines.infer.windows import Grid, importance_map
from groundwork.errors import InvalidInput


@pytest.mark.parametrize(
    ("size", "window", "overlap"),
    [((70, 80, 90), (32, 32, 32), 0.25), ((100, 96, 97), (96, 96, 96), 0.5), ((33, 200), (32, 17), 0.7),
     ((64, 64, 64), (64, 16, 9), 0.0), ((40,), (7,), 0.9)],
)
def test_windows_are_monais(size: tuple[int, ...], window: tuple[int, ...], overlap: float) -> None:
    grid = Grid.plan(2, size, window, overlap, batch=3)
    interval = _get_scan_interval(size, window, len(size), [overlap] * len(size))
    monai_starts = [tuple(s.start for s in sl) for sl in dense_patch_slices(size, window, interval)]
    ours = [grid.window_at(g) for g in range(grid.total_windows)]
    assert ours == [(n, s) for n in range(2) for s in monai_starts]


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("window", [(96, 96, 96), (32, 17, 5), (512, 384)])
def test_weights_are_monais(blend: str, window: tuple[int, ...]) -> None:
    ours = importance_map(window, blend, 0.125)
    theirs = compute_importance_map(window, mode=blend, sigma_scale=0.125, device="cpu", dtype=torch.float32).numpy()
    assert ours.dtype == np.float32 and ours.shape == window
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_chunks_and_windows_map_both_ways() -> None:
    grid = Grid.plan(2, (50, 41, 37), (16, 12, 20), 0.4, batch=5, chunks=(8, 16, 7))
    touching: dict[int, list[int]] = {c: [] for c in range(grid.total_chunks)}
    for g in range(grid.total_windows):
        for cid in grid.chunks_of_window(g):
            touching[cid].append(g)
    for cid, windows in touching.items():
        assert grid.windows_of_chunk(cid) == windows
        assert grid.batches_of_chunk(cid) == sorted({g // grid.batch for g in windows})
    # every voxel of every chunk is covered, and local() cuts matching regions
    for cid in range(grid.total_chunks):
        n, box = grid.chunk_box(cid)
        covered = np.zeros([b.stop - b.start for b in box], dtype=bool)
        for g in grid.windows_of_chunk(cid):
            in_window, in_chunk = grid.local(g, cid)
            assert [s.stop - s.start for s in in_window] == [s.stop - s.start for s in in_chunk]
            covered[in_chunk] = True
        assert covered.all()
    assert grid.chunk_id(*grid.chunk_index(17)) == 17
    assert list(itertools.islice(grid.chunks_of_window(0), 1)) == [0]


def test_bad_grids_are_refused_with_the_reason() -> None:
    with pytest.raises(InvalidInput, match=r"window \(96, 96, 96\) is larger than the volume \(64, 128, 128\) \(axis 0: 96 > 64\)"):
        Grid.plan(1, (64, 128, 128), (96, 96, 96), 0.25, 4)
    with pytest.raises(InvalidInput, match="window .* has 2 axes, the volume 3"):
        Grid.plan(1, (64, 64, 64), (32, 32), 0.25, 4)
    with pytest.raises(InvalidInput, match="overlap must be at least 0 and below 1"):
        Grid.plan(1, (64, 64, 64), (32, 32, 32), 1.0, 4)
