"""scikit-learn estimators (and pipelines): pickled natively, converted to ONNX with skl2onnx.

The native form is ``model.pkl`` written by cloudpickle (classes defined in a
script's ``__main__`` travel by value; library classes by reference, so loading
needs the same scikit-learn release, recorded in ``info``). The ONNX form is kept
only when its predictions agree with the estimator's on the example (or, without
one, on random rows of the signature's shape); ``info["onnx_note"]`` says how it was checked, or why not.
Classifiers are converted without ZipMap, so the ONNX graph's first output is the
label, as ``estimator.predict`` returns.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.core.flavors import SavedModel
from groundwork.core.signatures import Signature, TensorSpec
from groundwork.engines.flavors.base import ModelFiles, Predictor, agreement, quiet_warnings, synthetic_input
from groundwork.engines.flavors.onnx import ONNX_FILE, OnnxPredictor
from groundwork.errors import UnprocessableInput

NATIVE_FILE = "model.pkl"


class SklearnPredictor(Predictor):
    backend = "sklearn"

    def __init__(self, estimator: Any, signature: Signature | None) -> None:
        super().__init__(signature, "sklearn")
        self.estimator = estimator

    def predict_array(self, batch: Any) -> Any:
        if isinstance(batch, Mapping):
            import pandas as pd

            batch = pd.DataFrame(batch)
        try:
            return self.estimator.predict(batch)
        except ValueError as exc:  # scikit-learn's input validation
            raise UnprocessableInput(f"the model rejected the inputs: {str(exc).splitlines()[0]}") from None


class SklearnFlavor:
    name = "sklearn"

    def accepts(self, obj: Any) -> bool:
        sklearn_base = sys.modules.get("sklearn.base")
        return sklearn_base is not None and isinstance(obj, sklearn_base.BaseEstimator)

    def save(self, obj: Any, folder: Path, *, example: Any | None, signature: Signature | None) -> SavedModel:
        import cloudpickle
        import sklearn

        (folder / NATIVE_FILE).write_bytes(cloudpickle.dumps(obj, protocol=5))
        info: dict[str, Any] = {
            "sklearn": sklearn.__version__,
            "python": ".".join(map(str, sys.version_info[:3])),
            "estimator": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "format": "cloudpickle",
        }
        native = SklearnPredictor(obj, signature)
        if signature is None:
            signature = _signature_of(obj, example)
        elif example is not None and not signature.outputs:
            signature = signature.with_outputs(obj.predict(example))
        native.signature = signature
        onnx_file, info["onnx_note"] = _convert(obj, folder, example, signature, native)
        return SavedModel(native=NATIVE_FILE, onnx=onnx_file, signature=signature, info=info)

    def load(self, files: ModelFiles, document: Mapping[str, Any], signature: Signature | None,
             *, threads: int | None = None) -> Predictor:
        import pickle

        estimator = pickle.loads(files.read(str(document.get("native") or NATIVE_FILE)))
        return SklearnPredictor(estimator, signature)


def _signature_of(estimator: Any, example: Any | None) -> Signature | None:
    if example is not None:
        return Signature.infer(example, estimator.predict(example))
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return Signature(tuple(TensorSpec(str(n), "float64", (-1,)) for n in names), (), True)
    width = getattr(estimator, "n_features_in_", None)
    if width is not None:
        return Signature((TensorSpec(None, "float64", (-1, int(width))),), ())
    return None


def _convert(
    estimator: Any, folder: Path, example: Any | None, signature: Signature | None, native: SklearnPredictor
) -> tuple[str | None, str]:
    """Write ``model.onnx`` when skl2onnx converts the estimator faithfully; (file or None, note)."""
    if signature is None or signature.columnar or len(signature.inputs) != 1:
        return None, "not converted: ONNX conversion covers estimators that take one numeric tensor"
    spec = signature.inputs[0]
    if spec.dtype == "str" or len(spec.shape) != 2:
        return None, f"not converted: input {spec.describe()} is not a numeric matrix"
    try:
        import skl2onnx
        from skl2onnx import to_onnx
    except ImportError:
        return None, "not converted: skl2onnx is not installed"
    probe = np.asarray(example, dtype=np.float32) if example is not None else synthetic_input(signature)
    if probe is None:
        return None, "not converted: no numeric example to check the conversion on"
    probe = probe[:1000]
    try:
        with quiet_warnings():
            try:
                graph = to_onnx(estimator, probe[:1], options={"zipmap": False})
            except (RuntimeError, NameError, TypeError, ValueError):
                graph = to_onnx(estimator, probe[:1])
    except Exception as exc:  # skl2onnx raises many kinds for "no converter"
        return None, f"not converted: skl2onnx {skl2onnx.__version__}: {str(exc).splitlines()[0][:200]}"
    data = graph.SerializeToString()
    try:
        converted = OnnxPredictor(data, signature, "sklearn", threads=1)
        ok, detail = agreement(native.predict(probe), converted.predict_array(probe))
    except Exception as exc:
        return None, f"not converted: the ONNX form does not run: {str(exc).splitlines()[0][:200]}"
    if not ok:
        return None, f"not kept: the ONNX form disagrees with the estimator ({detail})"
    (folder / ONNX_FILE).write_bytes(data)
    source = "the example" if example is not None else "random rows"
    return ONNX_FILE, f"skl2onnx {skl2onnx.__version__}; checked on {source}: {detail}"


FLAVOR = SklearnFlavor()
