"""The model a volume is run through, as a runtime :class:`~groundwork.engines.runtime.Session`.

MODEL is what ``groundwork serve`` and ``groundwork optimize`` take:

* ``name@alias`` / ``name/3``: a registered version. An optimized variant runs on the
  engine ``groundwork optimize`` chose (OpenVINO, ONNX Runtime, PyTorch; BF16/INT8);
  a PyTorch version on PyTorch; any other version through its ONNX form.
* a variant folder written by ``groundwork optimize`` (``optimized/seg/chosen``);
* an ONNX file, a ``torch.export`` program (``.pt2``), or ``module:factory``;
* in the SDK, a ``torch.nn.Module``.

Every kind ends as a runtime session (:func:`groundwork.engines.runtime.session_for`),
whose ``run`` takes ``(batch, channels, *window)`` and gives the model's outputs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.config import Config
from groundwork.engines.runtime import TensorSpec, VariantManifest, load_session, session_for
from groundwork.engines.runtime.base import Session
from groundwork.errors import InvalidInput


@dataclass
class VolumeModel:
    """A loaded model, what it is, and what to record as the run's model input."""

    reference: str
    session: Session
    digest: str
    info: dict[str, Any] = field(default_factory=dict)
    lineage_path: Path | None = None
    in_channels: int | None = None
    window: tuple[int, ...] | None = None  # the only window it takes, when its shape is fixed
    origin: Any = None  # what the caller passed (a Ray worker resolves it again)

    @property
    def input_name(self) -> str:
        return self.session.manifest.inputs[0].name

    @property
    def input_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.session.manifest.inputs[0].dtype)

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run({self.input_name: batch})
        return np.asarray(out[0])

    def close(self) -> None:
        self.session.close()


def _torch_manifest(spatial: int, threads: int) -> VariantManifest:
    return VariantManifest(
        engine="torch", precision="fp32", inputs=(TensorSpec("input", "float32", (-1,) * (spatial + 2)),),
        outputs=("output",), files={}, threads=threads, batch_size=1 << 16,
    )


def _torch_model(reference: str, module: Any, spatial: int, threads: int, info: dict[str, Any],
                 lineage: Path | None = None) -> VolumeModel:
    from groundwork.engines.runtime.torch_session import TorchSession

    session = TorchSession(_torch_manifest(spatial, threads), module=module)
    return VolumeModel(reference, session, _module_digest(module), {**info, "engine": "torch", "precision": "fp32"},
                       lineage, _first_conv_channels(module))


def _variant_model(reference: str, folder: Path, threads: int | None, info: dict[str, Any], digest: str,
                   lineage: Path | None) -> VolumeModel:
    session = load_session(folder, threads=threads)
    manifest = session.manifest
    shape = manifest.inputs[0].shape
    channels = shape[1] if len(shape) > 1 and shape[1] > 0 else None
    info = {**info, "engine": manifest.engine, "precision": manifest.precision, "variant": manifest.name}
    return VolumeModel(reference, session, digest, info, lineage, channels)


def _onnx_model(reference: str, path: Path, spatial: int, threads: int, info: dict[str, Any], digest: str,
                lineage: Path | None) -> VolumeModel:
    specs, outputs = onnx_io(path)
    if len(specs) != 1:
        raise InvalidInput(f"ONNX model {str(path)!r} takes {len(specs)} inputs; a volume model takes one")
    if len(specs[0].shape) != spatial + 2:
        raise InvalidInput(
            f"ONNX model {str(path)!r} takes rank-{len(specs[0].shape)} input {specs[0].shape}; "
            f"a {spatial}-axis window needs rank {spatial + 2} (batch, channels, *window)"
        )
    manifest = VariantManifest(engine="onnxruntime", precision="fp32", inputs=specs, outputs=outputs,
                               files={"model": path.name}, threads=threads, batch_size=1 << 16)
    session = session_for(manifest, path.parent)
    channels = specs[0].shape[1] if specs[0].shape[1] > 0 else None
    return VolumeModel(reference, session, digest, {**info, "engine": "onnxruntime", "precision": "fp32"},
                       lineage, channels)


def onnx_io(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[str, ...]]:
    """An ONNX file's inputs (name, dtype, shape with -1 for named axes) and output names."""
    import onnx
    from onnx import helper

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:
        raise InvalidInput(f"cannot read ONNX model {str(path)!r}: {type(exc).__name__}: {exc}") from None
    initialized = {i.name for i in graph.initializer}
    specs = []
    for value in graph.input:
        if value.name in initialized:
            continue
        tensor = value.type.tensor_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
        dims = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        specs.append(TensorSpec(value.name, dtype, dims))
    return tuple(specs), tuple(o.name for o in graph.output)


def resolve(model: Any, spatial: int, threads: int, config: Config) -> VolumeModel:
    """Load ``model`` (see the module docstring) for a ``spatial``-axis window."""
    vm = _resolve(model, spatial, threads, config)
    vm.origin = model
    return vm


def _resolve(model: Any, spatial: int, threads: int, config: Config) -> VolumeModel:
    from groundwork.engines.optimize.sources import is_registry_reference, resolve_model
    from groundwork.storage.artifacts import ArtifactStore

    if not isinstance(model, str | os.PathLike):
        source = resolve_model(model, config)  # a torch module (anything else is refused there)
        return _torch_model(source.reference, source.module, spatial, threads, {"kind": "torch module"})
    text = os.fspath(model)
    path = Path(text)
    if path.is_dir():
        if not (path / "variant.json").is_file():
            raise InvalidInput(f"{text!r} is a folder but not a model variant (no variant.json)",
                               hint="pass the folder `groundwork optimize` wrote (its chosen/ folder)")
        digest = ArtifactStore.digest_path(path).digest
        return _variant_model(text, path, None, {"kind": "variant"}, digest, path)
    if path.is_file() and path.suffix == ".onnx":
        digest = ArtifactStore.digest_path(path).digest
        return _onnx_model(text, path, spatial, threads, {"kind": "onnx"}, digest, path)
    if is_registry_reference(text):
        return _registered(text, spatial, threads, config)
    source = resolve_model(text, config)  # .pt2, module:factory (errors name what is wrong)
    lineage = path if path.is_file() else None
    return _torch_model(text, source.module, spatial, threads, {"kind": "torch"}, lineage)


def _registered(reference: str, spatial: int, threads: int, config: Config) -> VolumeModel:
    from groundwork.core.registry import get_model_version
    from groundwork.engines.flavors.base import ModelFiles
    from groundwork.engines.optimize.sources import resolve_registry_reference
    from groundwork.storage.stores import open_stores

    version = get_model_version(reference, config=config)
    files = ModelFiles(open_stores(config).artifacts, version.artifact_digest)
    info = {"kind": "registered", "name": version.name, "version": version.version, "flavor": version.flavor}
    folder = files.folder()
    if version.flavor == "optimized":
        native = str(files.document().get("native") or "variant")
        return _variant_model(reference, folder / native, None, info, version.artifact_digest, folder)
    source = resolve_registry_reference(reference, config)
    if source.kind == "torch":
        vm = _torch_model(reference, source.module, spatial, threads, info, folder)
    else:
        assert source.onnx_path is not None
        vm = _onnx_model(reference, source.onnx_path, spatial, threads, info, version.artifact_digest, folder)
    vm.digest = version.artifact_digest
    shape = tuple(version.signature.inputs[0].shape) if version.signature and version.signature.inputs else ()
    if len(shape) == spatial + 2 and all(d > 0 for d in shape[2:]):
        vm.window = tuple(int(d) for d in shape[2:])  # exported for this window size only
    return vm


def _module_digest(module: Any) -> str:
    """A digest of a torch module's weights (what decides its outputs, for resuming safely)."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    try:
        state = module.state_dict()
    except Exception:
        return h.hexdigest()
    for key in sorted(state):
        value = state[key]
        h.update(key.encode())
        if hasattr(value, "detach"):
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _first_conv_channels(module: Any) -> int | None:
    for sub in getattr(module, "modules", lambda: [])():
        channels = getattr(sub, "in_channels", None)
        if isinstance(channels, int) and channels > 0:
            return channels
    return None
