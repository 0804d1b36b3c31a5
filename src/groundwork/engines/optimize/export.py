"""Turn a torch module into files the other engines read: ONNX, or a saved torch program.

The ONNX exporter used is TorchScript-based (``dynamo=False``): it needs no extra
package and handles Hugging Face encoders. A module it cannot export raises
:class:`ModelNotExportable`, which names the operator when the exporter does.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from groundwork.engines.runtime.base import flatten_outputs
from groundwork.errors import ModelNotExportable

ONNX_OPSET = 17

_OPERATOR = re.compile(r"'?([A-Za-z_][\w]*::[A-Za-z_][\w.]*)'?")


def operator_from_error(text: str) -> str | None:
    """The ``namespace::op`` an exporter error names, if any (``aten::`` ones first)."""
    found = _OPERATOR.findall(text)
    for name in found:
        if not name.startswith(("torch::", "c10::", "onnx::")):
            return str(name)
    return None


def output_count(module: Any, args: Sequence[Any]) -> int:
    import torch

    with torch.inference_mode():
        return len(flatten_outputs(module(*args)))


@contextlib.contextmanager
def graph_friendly_attention(module: Any) -> Iterator[list[str]]:
    """Within the block, Hugging Face submodules use the plain ("eager") attention implementation.

    Exported, eager attention is MatMul-Softmax-MatMul, which OpenVINO fuses into its own
    attention kernel; the SDPA path exports as a longer graph with NaN guards and masks
    selected per layer (measured slower). Numerics are the same. Yields the names of the
    switched submodules.
    """
    switched: list[tuple[Any, Any]] = []
    for sub in module.modules():
        config = getattr(sub, "config", None)
        current = getattr(config, "_attn_implementation", None)
        if current is not None and current != "eager" and hasattr(sub, "set_attn_implementation"):
            try:
                sub.set_attn_implementation("eager")
            except Exception:
                continue
            switched.append((sub, current))
    try:
        yield [type(sub).__name__ for sub, _ in switched]
    finally:
        for sub, previous in switched:
            sub.set_attn_implementation(previous)


def export_onnx(
    module: Any, args: Sequence[Any], input_names: Sequence[str], path: Path, *, opset: int = ONNX_OPSET
) -> tuple[Path, list[str]]:
    """Export to ``path`` with a dynamic batch axis; returns the path and the output names."""
    import torch

    module = _switchable(module)
    outputs = [f"output_{i}" for i in range(output_count(module, args))]
    dynamic_axes = {name: {0: "batch"} for name in [*input_names, *outputs]}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            graph_friendly_attention(module),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(args),
                str(path),
                input_names=list(input_names),
                output_names=outputs,
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        raise ModelNotExportable(text.splitlines()[0][:500], operator_from_error(text)) from exc
    return path, outputs


def _switchable(module: Any) -> Any:
    """``module``, or a wrapper whose ``train()`` does nothing when the module refuses it.

    ``torch.onnx.export`` switches the module to eval mode; a program loaded with
    ``torch.export.load`` (a registered PyTorch version) raises on ``train()``: it is
    inference-only already, so the wrapper leaves it as it is.
    """
    import torch

    try:
        module.train(False)
        return module
    except NotImplementedError:
        pass

    class InferenceOnly(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def train(self, mode: bool = True) -> InferenceOnly:
            self.training = mode
            return self

        def forward(self, *args: Any) -> Any:
            return self.inner(*args)

    return InferenceOnly(module)


def save_torch_module(module: Any, args: Sequence[Any], directory: Path) -> str:
    """Save a module for a torch variant; returns the file name written into ``directory``.

    First as a ``torch.export`` program with a dynamic batch axis (``model.pt2``,
    needs no user code to load), else as a pickled module (``model.pkl``).
    """
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    try:
        batch = torch.export.Dim("batch", min=1, max=65536)
        dynamic_shapes = tuple({0: batch} for _ in args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(module, tuple(args), dynamic_shapes=dynamic_shapes, strict=False)
            torch.export.save(program, str(directory / "model.pt2"))
        return "model.pt2"
    except Exception:
        torch.save(module, str(directory / "model.pkl"))
        return "model.pkl"
