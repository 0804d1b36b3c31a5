"""Model flavors: how each kind of model is saved, converted to ONNX, and loaded to predict.

    predictor = gw.load_model("digits@production")     # or "digits/3", or "digits"
    predictor.predict(x)                               # ONNX Runtime when an ONNX form exists

=============  =======================================  ======================================
flavor         native form                              ONNX form (kept when it agrees)
=============  =======================================  ======================================
``sklearn``    cloudpickle of the estimator             skl2onnx (classifiers without ZipMap)
``pytorch``    torch.export program (.pt2)              torch.onnx.export
``onnx``       the .onnx file itself                    the same file
``optimized``  a ``groundwork optimize`` variant folder (loaded by the runtime engine)
``python``     any object with ``predict``, pickled with its ``code=`` and ``artifacts=`` (:mod:`.python`)
=============  =======================================  ======================================

Each flavor module defines ``FLAVOR`` with ``accepts``/``save`` (called by
:func:`groundwork.core.registry.log_model`) and ``load`` (called here). They are
registered in :mod:`groundwork.core.flavors` by the package root, so the core finds
them without importing this layer.
"""

from __future__ import annotations

from typing import Any

from groundwork.config import Config
from groundwork.core.flavors import get_flavor
from groundwork.core.registry import ModelVersion, get_model_version
from groundwork.engines.flavors.base import ModelFiles, Predictor
from groundwork.errors import InvalidInput

BACKENDS = ("auto", "onnx", "native")


def load_model(
    ref: str | ModelVersion,
    *,
    backend: str = "auto",
    threads: int | None = None,
    config: Config | None = None,
) -> Predictor:
    """A predictor for the version ``ref`` names (``name@alias``, ``name/3`` or ``name``).

    ``backend="auto"`` runs the ONNX form on ONNX Runtime when the version has one
    and the native flavor otherwise; ``"onnx"`` and ``"native"`` insist. ``threads``
    caps ONNX Runtime's intra-op threads (the server uses 1 per worker).
    """
    if backend not in BACKENDS:
        raise InvalidInput(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
    config = config or Config.from_env()
    version = ref if isinstance(ref, ModelVersion) else get_model_version(ref, config=config)
    predictor = _load(version, backend, threads, config)
    predictor.name, predictor.version = version.name, version.version
    return predictor


def _load(version: ModelVersion, backend: str, threads: int | None, config: Config) -> Predictor:
    from groundwork.storage.stores import open_stores

    artifacts = open_stores(config).artifacts
    if backend != "native" and version.onnx_digest and version.flavor != "optimized":
        from groundwork.engines.flavors.onnx import OnnxPredictor

        return OnnxPredictor(artifacts.get_bytes(version.onnx_digest), version.signature, version.flavor,
                             threads=threads)
    if backend == "onnx":
        raise InvalidInput(
            f"model {version.ref} has no ONNX form ({version.info.get('onnx_note', 'not converted')})",
            hint="load it with backend='auto' or 'native'",
        )
    files = ModelFiles(artifacts, version.artifact_digest)
    document = files.document()
    flavor: Any = get_flavor(version.flavor)
    return flavor.load(files, document, version.signature, threads=threads)  # type: ignore[no-any-return]


def input_example(version: ModelVersion, *, config: Config | None = None) -> Any | None:
    """The few example rows kept with a version (None when it was logged without an example)."""
    from groundwork.storage.stores import open_stores

    files = ModelFiles(open_stores(config or Config.from_env()).artifacts, version.artifact_digest)
    return files.example()


__all__ = ["ModelFiles", "Predictor", "input_example", "load_model"]
