"""ONNX models: log an ``.onnx`` file (or an ``onnx.ModelProto``), and run any ONNX form with ONNX Runtime.

:class:`OnnxPredictor` is what every flavor's ONNX form loads into: ``predict``
returns the graph's first output (``label`` for a converted scikit-learn
classifier, the logits of a converted PyTorch module).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.core.flavors import SavedModel
from groundwork.core.signatures import Signature, TensorSpec, dtype_name
from groundwork.engines.flavors.base import ModelFiles, Predictor, to_numpy
from groundwork.errors import InvalidInput, UnprocessableInput

ONNX_FILE = "model.onnx"

# ONNX Runtime's type strings -> NumPy dtypes
_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def session_options(threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No busy-waiting threads: on a shared CPU a spinning pool steals the cores it waits on.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class OnnxPredictor(Predictor):
    """An ONNX graph on ONNX Runtime's CPU provider."""

    backend = "onnxruntime"

    def __init__(self, model: bytes | str | os.PathLike[str], signature: Signature | None, flavor: str = "onnx",
                 *, threads: int | None = None) -> None:
        import onnxruntime as ort

        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise InvalidInput(f"ONNX Runtime cannot load this model: {str(exc).splitlines()[0]}") from None
        inputs = self.session.get_inputs()
        self._inputs = [(i.name, _ORT_TYPES.get(i.type, np.float32), len(i.shape or ())) for i in inputs]
        self._output = [self.session.get_outputs()[0].name]
        super().__init__(signature or graph_signature(self.session), flavor)
        self._single = self._inputs[0][0] if len(self._inputs) == 1 else None
        self._dtype = np.dtype(self._inputs[0][1])

    @property
    def input_dtype(self) -> np.dtype[Any] | None:
        if self._single is None or self.columnar:
            return None
        return self._dtype

    def predict_array(self, batch: Any) -> Any:
        if isinstance(batch, Mapping):
            feed = {}
            for name, dtype, rank in self._inputs:
                if name not in batch:
                    raise UnprocessableInput(f"missing input {name!r}")
                column: np.ndarray[Any, Any] = np.asarray(batch[name], dtype=dtype)
                feed[name] = column.reshape(-1, 1) if rank == 2 and column.ndim == 1 else column
            return self.session.run(self._output, feed)[0]
        if self._single is None:
            raise UnprocessableInput(f"this model takes several inputs: {', '.join(n for n, _, _ in self._inputs)}")
        if batch.dtype != self._dtype:
            batch = batch.astype(self._dtype)
        return self.session.run(self._output, {self._single: batch})[0]

    def run_all(self, x: Any) -> dict[str, Any]:
        """Every output of the graph by name (probabilities beside labels, for instance)."""
        batch = self.prepare(x)
        feed = batch if isinstance(batch, Mapping) else {self._single or self._inputs[0][0]: batch}
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feed), strict=True))


def graph_signature(session: Any) -> Signature:
    """The signature an ONNX graph declares (symbolic dimensions become -1)."""

    def spec(node: Any, named: bool) -> TensorSpec:
        dims = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (node.shape or [-1]))
        dtype = _ORT_TYPES.get(node.type, np.float32)
        return TensorSpec(node.name if named else None, dtype_name(dtype), dims or (-1,))

    inputs = session.get_inputs()
    columnar = len(inputs) > 1
    return Signature(
        tuple(spec(i, columnar) for i in inputs),
        tuple(spec(o, True) for o in session.get_outputs()),
        columnar,
    )


class OnnxFlavor:
    """An ONNX file logged as is: the file is both the native and the ONNX form."""

    name = "onnx"

    def accepts(self, obj: Any) -> bool:
        if isinstance(obj, (str, os.PathLike)):
            return str(obj).lower().endswith(".onnx")
        onnx = sys.modules.get("onnx")
        return onnx is not None and isinstance(obj, onnx.ModelProto)

    def save(self, obj: Any, folder: Path, *, example: Any | None, signature: Signature | None) -> SavedModel:
        target = folder / ONNX_FILE
        if isinstance(obj, (str, os.PathLike)):
            path = Path(obj)
            if not path.is_file():
                raise InvalidInput(f"no such ONNX file: {path}")
            shutil.copyfile(path, target)
        else:
            target.write_bytes(obj.SerializeToString())
        import onnxruntime

        predictor = OnnxPredictor(target, signature)
        inferred = signature or predictor.signature
        if example is not None:
            out = to_numpy(predictor.predict(example))
            inferred = Signature.infer(example, out) if signature is None else inferred
        return SavedModel(native=ONNX_FILE, onnx=ONNX_FILE, signature=inferred,
                          info={"onnxruntime": onnxruntime.__version__, "format": "onnx"})

    def load(self, files: ModelFiles, document: Mapping[str, Any], signature: Signature | None,
             *, threads: int | None = None) -> Predictor:
        return OnnxPredictor(files.read(str(document.get("onnx") or ONNX_FILE)), signature, "onnx", threads=threads)


FLAVOR = OnnxFlavor()
