"""Runtime: run a model variant on this machine's CPU.

A *variant directory* holds ``variant.json`` (:class:`VariantManifest`) and the model
files it names. :func:`load_session` reads the manifest and builds the matching
:class:`Session`: ONNX Runtime, OpenVINO, or PyTorch (eager or ``torch.compile``).

    from groundwork.engines.runtime import load_session
    session = load_session("optimized/minilm/chosen")
    (embeddings,) = session.run({"input_ids": ids, "attention_mask": mask})

Importing this package is light; an engine's library is imported when a session
for it is built.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from groundwork.engines.runtime.base import Inputs, Outputs, Session
from groundwork.engines.runtime.manifest import (
    MANIFEST_NAME,
    TensorSpec,
    VariantManifest,
    read_manifest,
    write_manifest,
)


def load_session(
    variant_dir: str | os.PathLike[str],
    *,
    threads: int | None = None,
    streams: int | None = None,
    batch_size: int | None = None,
) -> Session:
    """The session for a variant directory; keyword arguments override the tuned settings."""
    directory = Path(variant_dir)
    manifest = read_manifest(directory)
    changes: dict[str, Any] = {}
    if threads is not None:
        changes["threads"] = threads
    if streams is not None:
        changes["streams"] = streams
    if batch_size is not None:
        changes["batch_size"] = batch_size
    if changes:
        manifest = replace(manifest, **changes)
    return session_for(manifest, directory)


def session_for(manifest: VariantManifest, directory: Path, module: Any = None) -> Session:
    """Build the session a manifest names (``module``: an in-memory torch module to use)."""
    if manifest.engine == "onnxruntime":
        from groundwork.engines.runtime.ort_session import OrtSession

        return OrtSession(manifest, directory)
    if manifest.engine == "openvino":
        from groundwork.engines.runtime.openvino_session import OpenVINOSession

        return OpenVINOSession(manifest, directory)
    from groundwork.engines.runtime.torch_session import TorchSession

    return TorchSession(manifest, directory, module=module)


__all__ = [
    "MANIFEST_NAME",
    "Inputs",
    "Outputs",
    "Session",
    "TensorSpec",
    "VariantManifest",
    "load_session",
    "read_manifest",
    "session_for",
    "write_manifest",
]
