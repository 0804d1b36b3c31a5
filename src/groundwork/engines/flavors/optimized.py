"""Optimized variants made by ``groundwork optimize``: a folder that the runtime engine loads.

A variant folder (``variant.json`` plus the files it names) is logged as is::

    run.log_model(Path("optimized/digits/chosen"), "digits")

and loaded through :func:`groundwork.engines.runtime.load_session`, which builds the
session the optimizer chose (ONNX Runtime, OpenVINO, PyTorch eager or compiled). The
signature comes from the manifest's inputs (one tensor of rows, or several named
inputs) unless one is given. The whole folder is restored once per machine into a
cache (``GROUNDWORK_MODEL_CACHE``, default a folder under the system's temp dir).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.core.flavors import SavedModel
from groundwork.core.signatures import Signature, TensorSpec
from groundwork.engines.flavors.base import ModelFiles, Predictor, to_numpy
from groundwork.errors import InvalidInput

VARIANT_DIR = "variant"
MANIFEST = "variant.json"  # groundwork.engines.runtime.MANIFEST_NAME (kept light: no runtime import to detect)


def is_variant_dir(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def manifest_signature(manifest: Any) -> Signature:
    """The signature a variant's manifest declares: one tensor of rows, or named inputs."""
    specs = tuple(TensorSpec(s.name, s.dtype, tuple(s.shape)) for s in manifest.inputs)
    outputs = tuple(TensorSpec(name, "float32", (-1,)) for name in manifest.outputs[:1])
    if len(specs) == 1:
        return Signature((TensorSpec(None, specs[0].dtype, specs[0].shape),), outputs, False)
    return Signature(specs, outputs, True)


class OptimizedPredictor(Predictor):
    """A runtime session; ``predict`` returns its first output."""

    def __init__(self, session: Any, signature: Signature | None) -> None:
        manifest = session.manifest
        super().__init__(signature or manifest_signature(manifest), "optimized")
        self.session = session
        self.backend = str(manifest.engine)
        self._names = [spec.name for spec in manifest.inputs]

    @property
    def input_dtype(self) -> np.dtype[Any] | None:
        if len(self._names) != 1:
            return None
        dtype: np.dtype[Any] = np.dtype(self.session.manifest.inputs[0].dtype)
        return dtype

    def predict_array(self, batch: Any) -> Any:
        feed = dict(batch) if isinstance(batch, Mapping) else {self._names[0]: batch}
        return to_numpy(self.session.run(feed)[0])

    def close(self) -> None:
        self.session.close()


class OptimizedFlavor:
    name = "optimized"

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, (str, os.PathLike)) and is_variant_dir(Path(obj))

    def save(self, obj: Any, folder: Path, *, example: Any | None, signature: Signature | None) -> SavedModel:
        from groundwork.engines.runtime import load_session

        source = Path(obj)
        shutil.copytree(source, folder / VARIANT_DIR)
        predictor = OptimizedPredictor(load_session(folder / VARIANT_DIR), signature)
        try:
            manifest = predictor.session.manifest
            info: dict[str, Any] = {"format": "optimized variant", "engine": manifest.engine,
                                    "precision": manifest.precision, "variant": manifest.name or source.name}
            signature = predictor.signature
            if example is not None and signature is not None:
                out = predictor.predict(example)
                signature = Signature(signature.inputs, Signature.infer(out).inputs, signature.columnar)
        finally:
            predictor.close()
        return SavedModel(native=VARIANT_DIR, onnx=None, signature=signature, info=info)

    def load(self, files: ModelFiles, document: Mapping[str, Any], signature: Signature | None,
             *, threads: int | None = None) -> Predictor:
        from groundwork.engines.runtime import load_session

        variant = files.folder() / str(document.get("native") or VARIANT_DIR)
        if not variant.is_dir():
            raise InvalidInput(f"model artifact {files.digest[:12]} holds no variant folder")
        return OptimizedPredictor(load_session(variant, threads=threads), signature)


FLAVOR = OptimizedFlavor()
