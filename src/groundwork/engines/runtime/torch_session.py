"""PyTorch sessions: eager (FP32, BF16 autocast) and torch.compile (inductor, freezing).

A torch variant stores its module as an exported program (``model.pt2``, from
``torch.export``, self-contained) or, when the module cannot be exported, as a
pickled module (``model.pkl``; its classes must be importable where it is loaded).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.engines.runtime.base import Inputs, Outputs, check_inputs, flatten_outputs, run_split
from groundwork.engines.runtime.manifest import VariantManifest


def load_module(path: Path) -> Any:
    """The torch module stored at ``path`` (``.pt2`` exported program or pickled ``.pkl``)."""
    import torch

    if path.suffix == ".pt2":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.load(str(path)).module()
    return torch.load(str(path), weights_only=False)


@contextlib.contextmanager
def torch_context(precision: str, compiled: bool) -> Iterator[None]:
    """Inference mode, plus BF16 autocast and inductor freezing where asked."""
    import torch

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        if precision == "bf16":
            stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        if compiled:
            import torch._inductor.config as inductor_config

            stack.enter_context(inductor_config.patch(freezing=True))
        yield


class TorchSession:
    """A PyTorch module run eagerly or through ``torch.compile`` (one stream)."""

    def __init__(self, manifest: VariantManifest, variant_dir: Path | None = None, module: Any = None) -> None:
        import torch

        self.manifest = manifest
        if module is None:
            assert variant_dir is not None
            module = load_module(variant_dir / manifest.files["model"])
        set_eval(module)
        self.compiled = manifest.engine == "torch-compile"
        self._module = torch.compile(module, dynamic=False) if self.compiled else module
        self._names = manifest.input_names

    def _run_one(self, feed: dict[str, np.ndarray]) -> Outputs:
        import torch

        if torch.get_num_threads() != self.manifest.threads:
            torch.set_num_threads(max(1, self.manifest.threads))
        args = [torch.from_numpy(feed[name]) for name in self._names]
        with torch_context(self.manifest.precision, self.compiled):
            result = self._module(*args)
        return [to_numpy(t) for t in flatten_outputs(result)]

    def run(self, inputs: Inputs) -> Outputs:
        feed = check_inputs(inputs, self.manifest.inputs)
        return run_split(feed, max(1, self.manifest.batch_size), 1, self._run_one, None)

    def close(self) -> None:
        self._module = None


def set_eval(module: Any) -> Any:
    """``module.eval()``, where the module supports it (a torch.export program is inference-only already)."""
    if hasattr(module, "eval"):
        try:
            module.eval()
        except NotImplementedError:
            pass
    return module


def to_numpy(value: Any) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        return np.asarray(value.cpu().numpy())
    return np.asarray(value)


def torch_args(inputs: Inputs, names: Sequence[str]) -> tuple[Any, ...]:
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in names)
