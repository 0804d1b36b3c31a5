"""PyTorch modules: saved so that a fresh process loads them without the module's class.

The native form is chosen in this order, the first that works (``info["format"]``):

1. ``model.pt2``: ``torch.export`` with a dynamic batch dimension (needs an example
   or a signature to trace with). Loads anywhere torch is installed; no Python class.
2. ``model.torchscript``: ``torch.jit.trace``, for modules ``torch.export`` rejects.
3. ``model.pth``: the whole module pickled by ``torch.save``. Loading it needs the
   module's class importable under the same name (``info["module_class"]``): a
   class defined in a training script's ``__main__`` will not load elsewhere.

A state dict alone cannot be logged: it needs the class to mean anything. Log the
module itself. The ONNX form comes from ``torch.onnx.export`` (the dynamo exporter
when ``onnxscript`` is installed, else the TorchScript-based one) and is kept only
when it agrees with the module on the example.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.core.flavors import SavedModel
from groundwork.core.signatures import Signature
from groundwork.engines.flavors.base import (
    ModelFiles,
    Predictor,
    agreement,
    quiet_warnings,
    synthetic_input,
    to_numpy,
)
from groundwork.engines.flavors.onnx import ONNX_FILE, OnnxPredictor
from groundwork.errors import InvalidInput, UnprocessableInput

EXPORT_FILE = "model.pt2"
SCRIPT_FILE = "model.torchscript"
PICKLE_FILE = "model.pth"


class TorchPredictor(Predictor):
    backend = "torch"

    def __init__(self, module: Any, signature: Signature | None) -> None:
        super().__init__(signature, "pytorch")
        self.module = module

    def predict_array(self, batch: Any) -> Any:
        import torch

        if isinstance(batch, Mapping):
            raise UnprocessableInput("a PyTorch model takes one tensor of rows, not named columns")
        tensor = torch.from_numpy(np.ascontiguousarray(batch))
        try:
            with torch.inference_mode():
                return to_numpy(self.module(tensor))
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise UnprocessableInput(f"the model rejected the inputs: {str(exc).splitlines()[0][:300]}") from None


class PytorchFlavor:
    name = "pytorch"

    def accepts(self, obj: Any) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(obj, torch.nn.Module)

    def save(self, obj: Any, folder: Path, *, example: Any | None, signature: Signature | None) -> SavedModel:
        import torch

        info: dict[str, Any] = {
            "torch": torch.__version__.split("+")[0],
            "python": ".".join(map(str, sys.version_info[:3])),
            "module_class": f"{type(obj).__module__}.{type(obj).__qualname__}",
        }
        if signature is not None and signature.columnar:
            raise InvalidInput("a PyTorch model takes one tensor of rows; give an example or signature of rows")
        was_training = obj.training
        obj.eval()
        try:
            sample = _sample(example, signature)
            native_out = None
            if sample is not None:
                with torch.inference_mode():
                    native_out = to_numpy(obj(torch.from_numpy(sample)))
                if signature is None:
                    signature = Signature.infer(sample, native_out)
                elif not signature.outputs:
                    signature = signature.with_outputs(native_out)
            native, info["format"], info["native_note"] = _save_native(obj, folder, sample, native_out)
            onnx_file, info["onnx_note"] = _convert(obj, folder, sample, native_out, signature)
        finally:
            obj.train(was_training)
        return SavedModel(native=native, onnx=onnx_file, signature=signature, info=info)

    def load(self, files: ModelFiles, document: Mapping[str, Any], signature: Signature | None,
             *, threads: int | None = None) -> Predictor:
        import torch

        native = str(document.get("native") or EXPORT_FILE)
        buffer = io.BytesIO(files.read(native))
        if native.endswith(".pt2"):
            module = torch.export.load(buffer).module()
        elif native.endswith(".torchscript"):
            module = torch.jit.load(buffer)  # type: ignore[no-untyped-call]
        else:
            try:
                module = torch.load(buffer, weights_only=False)
            except (AttributeError, ModuleNotFoundError) as exc:
                cls = document.get("info", {}).get("module_class", "the module's class")
                raise InvalidInput(
                    f"this PyTorch model was pickled whole and needs {cls} importable to load: {exc}",
                    hint="define the class in an importable module, or log a model torch.export can trace",
                ) from None
            module.eval()
        return TorchPredictor(module, signature)


def _sample(example: Any | None, signature: Signature | None) -> np.ndarray[Any, Any] | None:
    """The example as a float array with at least two rows (so the batch dimension stays dynamic)."""
    if example is not None:
        if type(example).__module__.startswith("torch"):
            arr = example.detach().cpu().numpy()
        else:
            arr = np.asarray(example)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
    elif signature is not None and signature.inputs:
        arr = synthetic_input(signature, rows=2)
        if arr is None:
            return None
    else:
        return None
    if arr.ndim == 0:
        raise InvalidInput("the example must be a batch of rows, not a scalar")
    if len(arr) == 1:
        arr = np.concatenate([arr, arr])
    return np.ascontiguousarray(arr)


def _save_native(module: Any, folder: Path, sample: Any, expected: Any) -> tuple[str, str, str]:
    import torch

    problems = []
    if sample is not None:
        try:
            with quiet_warnings():
                batch = torch.export.Dim("batch", min=1)
                program = torch.export.export(module, (torch.from_numpy(sample),), dynamic_shapes=({0: batch},))
                buffer = io.BytesIO()
                torch.export.save(program, buffer)
                reloaded = torch.export.load(io.BytesIO(buffer.getvalue())).module()
                with torch.inference_mode():
                    ok, detail = agreement(expected, to_numpy(reloaded(torch.from_numpy(sample))))
            if ok:
                (folder / EXPORT_FILE).write_bytes(buffer.getvalue())
                return EXPORT_FILE, "torch.export", "loads without the module's class"
            problems.append(f"torch.export disagrees ({detail})")
        except Exception as exc:
            problems.append(f"torch.export: {str(exc).splitlines()[0][:160]}")
        try:
            with quiet_warnings():
                traced = torch.jit.trace(module, torch.from_numpy(sample))  # type: ignore[no-untyped-call]
                buffer = io.BytesIO()
                torch.jit.save(traced, buffer)
            (folder / SCRIPT_FILE).write_bytes(buffer.getvalue())
            return SCRIPT_FILE, "torchscript", "; ".join(problems)
        except Exception as exc:
            problems.append(f"torch.jit.trace: {str(exc).splitlines()[0][:160]}")
    else:
        problems.append("no example or signature to trace with")
    buffer = io.BytesIO()
    torch.save(module, buffer)
    (folder / PICKLE_FILE).write_bytes(buffer.getvalue())
    return PICKLE_FILE, "pickle", "; ".join(problems) + "; loading needs the module's class importable"


def _convert(module: Any, folder: Path, sample: Any, expected: Any, signature: Signature | None) -> tuple[str | None, str]:
    import importlib.util

    import torch

    if sample is None:
        return None, "not converted: no example or signature to export with"
    buffer = io.BytesIO()
    dynamo = importlib.util.find_spec("onnxscript") is not None
    try:
        with quiet_warnings():
            if dynamo:
                batch = torch.export.Dim("batch", min=1)
                program = torch.onnx.export(module, (torch.from_numpy(sample),), dynamo=True,
                                            input_names=["input"], output_names=["output"],
                                            dynamic_shapes=({0: batch},))
                assert program is not None
                program.save(str(folder / ONNX_FILE))
                data = (folder / ONNX_FILE).read_bytes()
            else:
                torch.onnx.export(module, (torch.from_numpy(sample),), buffer, dynamo=False,  # type: ignore[arg-type]
                                  input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
                data = buffer.getvalue()
    except Exception as exc:
        (folder / ONNX_FILE).unlink(missing_ok=True)
        return None, f"not converted: torch.onnx.export: {str(exc).splitlines()[0][:200]}"
    exporter = "dynamo" if dynamo else "torchscript-based"
    try:
        converted = OnnxPredictor(data, signature, "pytorch", threads=1)
        ok, detail = agreement(expected, converted.predict_array(sample))
    except Exception as exc:
        ok, detail = False, f"does not run: {str(exc).splitlines()[0][:200]}"
    if not ok:
        (folder / ONNX_FILE).unlink(missing_ok=True)
        return None, f"not kept: the ONNX form ({exporter} exporter) disagrees with the module ({detail})"
    (folder / ONNX_FILE).write_bytes(data)
    return ONNX_FILE, f"torch.onnx ({exporter} exporter); checked on the example: {detail}"


FLAVOR = PytorchFlavor()
