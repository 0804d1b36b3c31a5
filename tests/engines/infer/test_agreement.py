"""Streamed output equals MONAI's ``sliding_window_inference`` (FP32, 1e-4), in every format and mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _models import pointwise3d, tiny2d, tiny3d, unet3d
from monai.inferers import sliding_window_inference

from groundwork.engines.infer import infer_volume


def monai(x: np.ndarray, net: Any, window: tuple[int, ...], overlap: float, blend: str, batch: int = 4) -> np.ndarray:
    with torch.inference_mode():
        out = sliding_window_inference(torch.from_numpy(x), window, batch, net, overlap=overlap, mode=blend)
    return np.asarray(out.numpy())


def volume(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_unet_over_a_batch_of_volumes_matches_monai(tmp_path: Path, blend: str) -> None:
    net = unet3d()
    x = volume((2, 1, 32, 36, 40))
    np.save(tmp_path / "ct.npy", x)
    result = infer_volume(net, tmp_path / "ct.npy", tmp_path / "out.npy", window=(24, 24, 24), overlap=0.25,
                          blend=blend, batch=3, record=False)
    ours = np.load(tmp_path / "out.npy")
    reference = monai(x, net, (24, 24, 24), 0.25, blend, batch=3)
    assert ours.shape == reference.shape == (2, 2, 32, 36, 40)
    assert float(np.max(np.abs(ours - reference))) <= 1e-4
    assert result.windows == 2 * (2 * 2 * 2)  # per volume, starts 0,8 | 0,12 | 0,16 (MONAI's grid)
    assert result.chunks_skipped == 0 and result.chunks_written == 2 * (2 * 3 * 3)  # chunks of 16
    assert not (tmp_path / "out.npy.partial").exists()


def test_spilled_sums_and_checkpoints_give_the_same_bytes(tmp_path: Path) -> None:
    """A pool too small for a row of windows saves and reloads sums; the bytes do not change."""
    net = tiny3d()
    x = volume((1, 32, 24, 48), seed=1)
    np.save(tmp_path / "ct.npy", x)
    roomy = infer_volume(net, tmp_path / "ct.npy", tmp_path / "roomy.npy", window=(16, 16, 16), overlap=0.5,
                         batch=2, chunks=(8, 8, 8), record=False)
    tight = infer_volume(net, tmp_path / "ct.npy", tmp_path / "tight.npy", window=(16, 16, 16), overlap=0.5,
                         batch=2, chunks=(8, 8, 8), cache_mb=0.01, checkpoint_s=0, record=False)
    assert (tmp_path / "roomy.npy").read_bytes() == (tmp_path / "tight.npy").read_bytes()
    assert roomy.windows == tight.windows and tight.sums_saved > 0
    np.testing.assert_allclose(np.load(tmp_path / "tight.npy")[None], monai(x[None], net, (16, 16, 16), 0.5, "gaussian"),
                               atol=1e-4)


@pytest.mark.parametrize("cache_mb", [0.02, 0.2])
def test_every_voxel_is_right_whatever_the_cache(tmp_path: Path, cache_mb: float) -> None:
    """A voxel-wise model's blended output is the model's output: any mix-up of chunk sums shows."""
    x = volume((1, 32, 28, 48), seed=6)
    np.save(tmp_path / "ct.npy", x)
    result = infer_volume(pointwise3d(), tmp_path / "ct.npy", tmp_path / "out.npy", window=(16, 12, 16), overlap=0.4,
                          batch=3, chunks=(8, 8, 8), cache_mb=cache_mb, checkpoint_s=0.05, record=False)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), x * 0.5 + 0.25, atol=1e-5)
    assert result.sums_saved > 0


def test_labels_float16_and_softmax(tmp_path: Path) -> None:
    net = tiny3d()
    x = volume((1, 30, 34, 38), seed=2)
    np.save(tmp_path / "ct.npy", x)
    reference = monai(x[None], net, (16, 16, 16), 0.25, "gaussian")[0]
    infer_volume(net, tmp_path / "ct.npy", tmp_path / "labels.npy", window=(16, 16, 16), output_type="labels",
                 record=False)
    labels = np.load(tmp_path / "labels.npy")
    assert labels.dtype == np.uint8 and labels.shape == (1, 30, 34, 38)
    confident = np.abs(reference[0] - reference[1]) > 1e-3  # ties may go either way
    assert np.array_equal(labels[0][confident], np.argmax(reference, axis=0)[confident])
    infer_volume(net, tmp_path / "ct.npy", tmp_path / "half.npy", window=(16, 16, 16), output_type="float16",
                 activation="softmax", record=False)
    half = np.load(tmp_path / "half.npy")
    soft = torch.softmax(torch.from_numpy(reference), dim=0).numpy()
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), soft, atol=2e-3)


def test_zarr_in_zarr_out(tmp_path: Path) -> None:
    import zarr

    net = tiny3d()
    x = volume((1, 36, 40, 44), seed=3)
    src = zarr.create_array(store=str(tmp_path / "ct.zarr"), shape=x.shape, chunks=(1, 16, 16, 16), dtype="float32")
    src[...] = x
    infer_volume(net, tmp_path / "ct.zarr", tmp_path / "out.zarr", window=(20, 20, 20), record=False)
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert out.shape == (2, 36, 40, 44) and out.chunks[0] == 2
    np.testing.assert_allclose(out[...], monai(x[None], net, (20, 20, 20), 0.25, "gaussian")[0], atol=1e-4)


def test_nifti_keeps_its_axes_and_affine(tmp_path: Path) -> None:
    import nibabel as nib

    net = tiny3d()
    x = volume((30, 32, 34), seed=4)  # NIfTI: (X, Y, Z), one channel
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    nib.save(nib.Nifti1Image(x, affine), str(tmp_path / "ct.nii.gz"))
    infer_volume(net, tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz", window=(16, 16, 16), output_type="labels",
                 record=False)
    infer_volume(net, tmp_path / "ct.nii.gz", tmp_path / "prob.nii", window=(16, 16, 16), record=False)
    seg, prob = nib.load(str(tmp_path / "seg.nii.gz")), nib.load(str(tmp_path / "prob.nii"))
    reference = monai(x[None, None], net, (16, 16, 16), 0.25, "gaussian")[0]
    assert seg.shape == (30, 32, 34) and np.allclose(seg.affine, affine)
    assert prob.shape == (30, 32, 34, 2)  # channels last, as NIfTI keeps them
    np.testing.assert_allclose(np.asarray(prob.dataobj), np.moveaxis(reference, 0, -1), atol=1e-4)
    confident = np.abs(reference[0] - reference[1]) > 1e-3
    assert np.array_equal(np.asarray(seg.dataobj)[confident], np.argmax(reference, axis=0)[confident])


def test_a_large_2d_image_in_tiff(tmp_path: Path) -> None:
    import tifffile

    net = tiny2d()
    x = volume((3, 300, 260), seed=5)  # (C, H, W)
    tifffile.imwrite(tmp_path / "slide.tif", x, photometric="minisblack")
    tifffile.imwrite(tmp_path / "tiled.tif", x, photometric="minisblack", tile=(64, 64), compression="zlib")
    reference = monai(x[None], net, (64, 64), 0.25, "gaussian")[0]
    for name in ("slide.tif", "tiled.tif"):
        out = tmp_path / f"out-{name}"
        infer_volume(net, tmp_path / name, out, window=(64, 64), batch=8, record=False)
        np.testing.assert_allclose(tifffile.imread(out), reference, atol=1e-4)
