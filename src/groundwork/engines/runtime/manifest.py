"""``variant.json``: what a variant directory holds and how to run it.

A variant directory is self-describing: :func:`groundwork.engines.runtime.load_session`
needs nothing but the directory. The manifest names the engine, the precision, the
tuned thread/stream/batch settings, the inputs (name, dtype, shape; ``-1`` for a
dynamic axis), the output names and the files (paths relative to the directory).

This module is light: it imports no ML framework.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from groundwork.errors import InvalidInput

MANIFEST_NAME = "variant.json"
FORMAT_VERSION = 1

#: Engines a manifest may name, each built by one session class.
ENGINES = ("torch", "torch-compile", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class TensorSpec:
    """One model input: its name, NumPy dtype name and shape (``-1`` = dynamic axis)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=str(data["name"]), dtype=str(data["dtype"]), shape=tuple(int(d) for d in data["shape"]))


@dataclass(frozen=True)
class VariantManifest:
    """The contents of ``variant.json``.

    ``threads`` is the thread count for one request (latency); ``streams`` parallel
    streams of ``threads // streams`` threads each serve a large batch split into
    micro-batches of ``batch_size`` (throughput). ``files`` maps a role (``model``,
    ``weights``) to a path relative to the variant directory.
    """

    engine: str
    precision: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    files: dict[str, str]
    threads: int = 1
    streams: int = 1
    batch_size: int = 1
    sparsity: float = 0.0
    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidInput(f"unknown engine {self.engine!r} in {MANIFEST_NAME}", hint=f"one of {', '.join(ENGINES)}")
        if self.precision not in PRECISIONS:
            raise InvalidInput(
                f"unknown precision {self.precision!r} in {MANIFEST_NAME}", hint=f"one of {', '.join(PRECISIONS)}"
            )

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [spec.to_dict() for spec in self.inputs]
        data["outputs"] = list(self.outputs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantManifest:
        version = int(data.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise InvalidInput(
                f"{MANIFEST_NAME} has format version {version}, newer than this groundwork understands",
                hint="upgrade groundwork",
            )
        return cls(
            engine=str(data["engine"]),
            precision=str(data["precision"]),
            inputs=tuple(TensorSpec.from_dict(d) for d in data["inputs"]),
            outputs=tuple(str(o) for o in data.get("outputs", [])),
            files={str(k): str(v) for k, v in data["files"].items()},
            threads=int(data.get("threads", 1)),
            streams=int(data.get("streams", 1)),
            batch_size=int(data.get("batch_size", 1)),
            sparsity=float(data.get("sparsity", 0.0)),
            name=str(data.get("name", "")),
            options=dict(data.get("options", {})),
            source=dict(data.get("source", {})),
            hardware=dict(data.get("hardware", {})),
            format_version=version,
        )


def write_manifest(variant_dir: str | os.PathLike[str], manifest: VariantManifest) -> Path:
    """Write ``variant.json`` atomically (temporary name, then rename)."""
    directory = Path(variant_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / MANIFEST_NAME
    fd, tmp = tempfile.mkstemp(prefix=".variant-", suffix=".json", dir=directory)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest.to_dict(), fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, target)
    return target


def read_manifest(variant_dir: str | os.PathLike[str]) -> VariantManifest:
    """The manifest of a variant directory, or a clear error when there is none."""
    directory = Path(variant_dir)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise InvalidInput(
            f"{directory} is not a model variant: it has no {MANIFEST_NAME}",
            hint="pass the directory `groundwork optimize` wrote (its chosen/ folder)",
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    try:
        manifest = VariantManifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{path} is malformed: missing or bad field {exc}") from exc
    for role, rel in manifest.files.items():
        if not (directory / rel).exists():
            raise InvalidInput(f"{path} names {role} file {rel!r}, which is missing from {directory}")
    return manifest
