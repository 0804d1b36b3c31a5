"""Where the model to optimize comes from: a file, a Python factory, or a registry reference.

* ``model.onnx``: an ONNX file (ONNX Runtime and OpenVINO candidates only);
* ``program.pt2``: a program saved with ``torch.export.save``;
* ``module:factory`` or ``path/to/file.py:factory``: a function returning a
  ``torch.nn.Module``;
* ``name@alias`` or ``name/3``: a model registry reference (:func:`resolve_registry_reference`);
  the chosen variant is then registered as the next version of ``name``.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.engines.optimize.loading import load_callable
from groundwork.errors import ExecutionError, InvalidInput, ModelNotFound

_REGISTRY_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)(?:@(?P<alias>[A-Za-z0-9_.\-]+)|/(?P<version>\d+))$")
_FACTORY_REF = re.compile(r"^(?P<module>[^:]+):(?P<attr>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass
class ModelSource:
    """A resolved model: a torch module or an ONNX file, and where it came from."""

    reference: str
    kind: str  # "torch" or "onnx"
    name: str
    module: Any = None
    onnx_path: Path | None = None
    registry: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reference": self.reference, "kind": self.kind, "name": self.name}
        if self.registry:
            out["registry"] = self.registry
        return out


def is_registry_reference(text: str) -> bool:
    return bool(_REGISTRY_REF.match(text)) and not Path(text).exists()


def resolve_model(model: Any, config: Config | None = None) -> ModelSource:
    """Resolve ``model`` (a reference string, a path or a torch module) to a :class:`ModelSource`."""
    if _is_torch_module(model):
        return ModelSource(reference=type(model).__name__, kind="torch", name=type(model).__name__.lower(), module=model)
    if not isinstance(model, str | os.PathLike):
        raise InvalidInput(f"cannot optimize a {type(model).__name__}: pass a file, module:factory or a torch module")
    text = os.fspath(model)
    path = Path(text)
    if path.is_file():
        if path.suffix == ".onnx":
            return ModelSource(reference=text, kind="onnx", name=path.stem, onnx_path=path.resolve())
        if path.suffix == ".pt2":
            return ModelSource(reference=text, kind="torch", name=path.stem, module=_load_exported(path))
        raise InvalidInput(
            f"cannot optimize {text!r}: unknown model file type {path.suffix!r}",
            hint="pass an .onnx file, a torch.export .pt2 program, or module:factory",
        )
    if is_registry_reference(text):
        return resolve_registry_reference(text, config or Config.from_env())
    match = _FACTORY_REF.match(text)
    if match and (match["module"].endswith(".py") or re.fullmatch(r"[A-Za-z_][\w.]*", match["module"])):
        factory = load_callable(text, what="model factory")
        try:
            module = factory()
        except Exception as exc:
            raise ExecutionError(f"model factory {text!r} failed: {type(exc).__name__}: {exc}") from exc
        if not _is_torch_module(module):
            raise InvalidInput(f"model factory {text!r} returned a {type(module).__name__}, not a torch.nn.Module")
        return ModelSource(reference=text, kind="torch", name=match["attr"].lower(), module=module)
    raise ModelNotFound(
        f"model {text!r} does not exist",
        hint="pass an existing .onnx or .pt2 file, module:factory, or a registry reference like name@alias",
    )


def resolve_registry_reference(reference: str, config: Config) -> ModelSource:
    """Resolve ``name@alias`` or ``name/3`` through the model registry.

    A PyTorch version gives its module (``model.pt2``, ``model.torchscript`` or
    ``model.pth`` in the version's folder); any other flavor gives its ONNX form. A reference that names no version
    raises :class:`ModelNotFound` (from the registry, with its hint).
    """
    from groundwork.core.registry import get_model_version
    from groundwork.engines.flavors.base import ModelFiles
    from groundwork.storage.stores import open_stores

    version = get_model_version(reference, config=config)
    registry = {"reference": reference, "name": version.name, "version": version.version, "flavor": version.flavor}
    artifacts = open_stores(config).artifacts
    if version.flavor == "pytorch":
        folder = ModelFiles(artifacts, version.artifact_digest).folder()
        registry["folder"] = str(folder)
        for native in ("model.pt2", "model.torchscript", "model.pth"):
            path = folder / native
            if path.is_file():
                module = _load_native(path)
                return ModelSource(reference=reference, kind="torch", name=version.name, module=module, registry=registry)
    if version.onnx_digest:
        cache = Path(tempfile.gettempdir()) / "groundwork-optimize-sources"
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / f"{version.onnx_digest}.onnx"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(artifacts.get_bytes(version.onnx_digest))
            os.replace(tmp, path)
        return ModelSource(reference=reference, kind="onnx", name=version.name, onnx_path=path, registry=registry)
    raise InvalidInput(
        f"model {version.ref} ({version.flavor}) has neither a PyTorch module nor an ONNX form to optimize",
        hint="log a PyTorch model, or a model whose flavor converts to ONNX",
    )


def _load_native(path: Path) -> Any:
    """A registered PyTorch version's module: exported program, TorchScript, or pickled module."""
    if path.suffix == ".pt2":
        return _load_exported(path)
    if path.suffix == ".torchscript":
        import torch

        try:
            return torch.jit.load(str(path))  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise InvalidInput(f"cannot load TorchScript module {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    return _load_pickled(path)


def _load_pickled(path: Path) -> Any:
    import torch

    try:
        return torch.load(str(path), weights_only=False)
    except Exception as exc:
        raise InvalidInput(f"cannot load pickled module {str(path)!r}: {type(exc).__name__}: {exc}") from exc


def _is_torch_module(value: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is part of the ml extra
        return False
    return isinstance(value, torch.nn.Module)


def _load_exported(path: Path) -> Any:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.load(str(path)).module()
    except Exception as exc:
        raise InvalidInput(f"cannot load exported program {str(path)!r}: {type(exc).__name__}: {exc}") from exc
