"""Tiny volume models for the infer tests (importable as ``path/to/_models.py:factory`` by a child process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def model_ref(factory: str) -> str:
    """``/path/to/_models.py:factory``: a reference a child process can load."""
    return f"{Path(__file__)}:{factory}"


def tiny3d() -> Any:
    """Two output channels from one, with a 3x3x3 receptive field: fast, and blending matters."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 2, 3, padding=1)
    ).eval()


def pointwise3d() -> Any:
    """One channel in, one out, voxel by voxel: the cheapest model (for the memory tests).

    (A 1x1x1 Conv3d would do the same, but oneDNN runs a one-channel 3D convolution
    slowly and with large scratch buffers: the test would measure those.)
    """
    import torch

    class Pointwise(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(0.5))
            self.shift = torch.nn.Parameter(torch.tensor(0.25))

        def forward(self, x: Any) -> Any:
            return x * self.scale + self.shift

    return Pointwise().eval()


def tiny2d() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)).eval()


def unet3d() -> Any:
    """A small MONAI U-Net (instance norm, residual units, transposed convolutions)."""
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2),
                num_res_units=1).eval()


def slow3d() -> Any:
    """``tiny3d`` that takes 30 ms a call: slow enough to be killed at chosen points."""
    import time

    import torch

    class Slow(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny3d()

        def forward(self, x: Any) -> Any:
            time.sleep(0.03)
            return self.net(x)

    return Slow().eval()
