"""Python models: any object with ``predict(inputs)``, saved with its code, its files and its environment.

    class Embedder:
        def load_context(self, context):               # optional: once, where the model is loaded
            self.session = load_session(context.artifacts["encoder"], threads=context.threads)
        def preprocess(self, texts): ...               # optional: the batch, before predict
        def predict(self, inputs): ...                 # required
        def postprocess(self, outputs): ...            # optional: after predict

    run.log_model(Embedder(), "minilm-text", code=["embedder.py"], artifacts={"encoder": "optimized/chosen"},
                  example=["a sentence"])

This is MLflow's pyfunc, made small. ``code`` files and folders are copied into the
version (``code/``), ``artifacts`` into ``artifacts/NAME``; the object itself is
pickled with cloudpickle (a class defined in ``__main__`` travels by value; one from a
module in ``code`` by reference, imported from the stored copy when loaded);
``environment.json`` and ``requirements.txt`` record the interpreter and the installed
distributions it was saved with.

Loading restores the version into its private folder (the model cache, one folder per
artifact digest; every path checked to stay inside it), puts its ``code/`` first on
``sys.path`` (a module of the same name imported from elsewhere is set aside, so two
versions of a model each import their own code), unpickles the object and calls
``load_context`` with the artifacts' paths there. A batch reaches ``preprocess`` /
``predict`` / ``postprocess`` as the server validated it: a list of texts for a model of
texts, a NumPy array of rows, or a dict of column arrays for a table. The result must
have one item per input row (the server hands each request its own rows of it).

At save time the object is unpickled once more and run on the example (when one is
given), so a model that cannot come back or cannot predict fails at ``log_model``, not
in production; its output gives the signature's outputs.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.core.flavors import SavedModel
from groundwork.core.signatures import Signature
from groundwork.engines.flavors.base import ModelFiles, Predictor, to_numpy
from groundwork.errors import InvalidInput

NATIVE_FILE = "model.pkl"
CODE_DIR = "code"
ARTIFACTS_DIR = "artifacts"
ENVIRONMENT_FILE = "environment.json"
REQUIREMENTS_FILE = "requirements.txt"
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".groundwork")
_IMPORT_LOCK = threading.Lock()


@dataclass(frozen=True)
class PythonModelContext:
    """What ``load_context`` gets: where the model's files are, and the threads its runtime may use."""

    artifacts: dict[str, Path] = field(default_factory=dict)
    folder: Path | None = None
    threads: int | None = None


class PythonPredictor(Predictor):
    backend = "python"

    def __init__(self, model: Any, signature: Signature | None) -> None:
        super().__init__(signature, "python")
        self.model = model
        self._pre = getattr(model, "preprocess", None)
        self._post = getattr(model, "postprocess", None)
        # A model of texts says so in its class, or its signature does.
        self._texts = bool(signature and not signature.columnar and signature.inputs
                           and signature.inputs[0].dtype == "str")

    @property
    def input_dtype(self) -> np.dtype[Any] | None:
        return None if self._texts else super().input_dtype

    def predict_array(self, batch: Any) -> Any:
        if isinstance(batch, np.ndarray) and batch.dtype.kind in "OUS" and batch.ndim == 1:
            batch = batch.tolist()  # texts: what tokenizers take
        if self._pre is not None:
            batch = self._pre(batch)
        out = self.model.predict(batch)
        if self._post is not None:
            out = self._post(out)
        if not isinstance(out, (np.ndarray, list)):
            out = to_numpy(out)
        return out

    def close(self) -> None:
        closer = getattr(self.model, "close", None)
        if callable(closer):
            closer()


class PythonFlavor:
    name = "python"

    def accepts(self, obj: Any) -> bool:
        """Any object with a ``predict`` method (tried after the library flavors)."""
        return not isinstance(obj, (str, bytes, type)) and callable(getattr(obj, "predict", None))

    def save(self, obj: Any, folder: Path, *, example: Any | None, signature: Signature | None,
             code: Sequence[str | Path] = (), artifacts: Mapping[str, str | Path] | None = None) -> SavedModel:
        import cloudpickle

        from groundwork.core.environment import capture_environment

        if not self.accepts(obj):
            raise InvalidInput(f"a Python model needs a predict(inputs) method; {type(obj).__qualname__} has none",
                               hint="define predict (and optionally preprocess, postprocess, load_context)")
        code_names = _copy_code(code, folder / CODE_DIR)
        artifact_paths = _copy_artifacts(artifacts or {}, folder / ARTIFACTS_DIR)
        data = cloudpickle.dumps(obj, protocol=5)
        (folder / NATIVE_FILE).write_bytes(data)
        environment = capture_environment()
        packages = environment.get("packages", {})
        (folder / ENVIRONMENT_FILE).write_text(json.dumps(
            {"python": environment["python"], "os": environment["os"], "packages": packages}, indent=1, sort_keys=True))
        (folder / REQUIREMENTS_FILE).write_text("".join(f"{n}=={v}\n" for n, v in packages.items()))
        signature = _checked_signature(data, folder, artifact_paths, example, signature)
        info: dict[str, Any] = {
            "format": "cloudpickle",
            "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "python": ".".join(map(str, sys.version_info[:3])),
            "code": code_names,
            "artifacts": {name: f"{ARTIFACTS_DIR}/{name}" for name in artifact_paths},
            "hooks": [h for h in ("load_context", "preprocess", "postprocess") if callable(getattr(obj, h, None))],
            "onnx_note": "not converted: a Python model runs its own code",
        }
        return SavedModel(native=NATIVE_FILE, onnx=None, signature=signature, info=info)

    def load(self, files: ModelFiles, document: Mapping[str, Any], signature: Signature | None,
             *, threads: int | None = None) -> Predictor:
        folder = files.folder()
        info = document.get("info") or {}
        model = _unpickle(folder, files.read(str(document.get("native") or NATIVE_FILE)))
        _load_context(model, folder, {name: folder / rel for name, rel in dict(info.get("artifacts") or {}).items()},
                      threads)
        return PythonPredictor(model, signature)


def _copy_code(paths: Sequence[str | Path], dest: Path) -> list[str]:
    names: list[str] = []
    if isinstance(paths, (str, Path)):
        paths = [paths]
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InvalidInput(f"code path {str(raw)!r} does not exist",
                               hint="name the .py files or package folders the model's code lives in")
        name = path.resolve().name
        if name in names:
            raise InvalidInput(f"two code paths are named {name!r}", hint="each file or folder in code= needs its own name")
        dest.mkdir(exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=_SKIP)
        else:
            shutil.copy2(path, dest / name)
        names.append(name)
    return names


def _copy_artifacts(artifacts: Mapping[str, str | Path], dest: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name, raw in artifacts.items():
        if not _ARTIFACT_NAME.match(str(name)) or str(name) in (".", ".."):
            raise InvalidInput(f"artifact name {name!r} is not a plain name",
                               hint="use letters, digits, '.', '_' and '-' (it becomes a folder name)")
        path = Path(raw)
        if not path.exists():
            raise InvalidInput(f"artifact {name!r}: {str(raw)!r} does not exist")
        dest.mkdir(exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=_SKIP)
        else:
            shutil.copy2(path, dest / name)
        out[str(name)] = dest / name
    return out


def _checked_signature(data: bytes, folder: Path, artifacts: Mapping[str, Path], example: Any | None,
                       signature: Signature | None) -> Signature | None:
    """Unpickle the saved object, load it from the saved files and run it on the example; the signature it shows."""
    import cloudpickle

    if example is None:
        return signature
    predictor: PythonPredictor | None = None
    try:
        probe = cloudpickle.loads(data)
        _load_context(probe, folder, dict(artifacts), None)
        predictor = PythonPredictor(probe, signature or Signature.infer(example))
        out = predictor.predict_array(predictor.prepare(example))
    except InvalidInput:
        raise
    except Exception as exc:
        detail = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise InvalidInput(f"the Python model fails on its example: {type(exc).__name__}: {detail}",
                           hint="log_model loads the saved model and predicts on the example before registering it") from None
    finally:
        if predictor is not None:
            predictor.close()
    inputs = signature or Signature.infer(example)
    if inputs.outputs:
        return inputs
    try:
        return inputs.with_outputs(out)
    except InvalidInput:
        return inputs  # outputs that are not a tensor (lists of records): the signature says nothing about them


def _unpickle(folder: Path, data: bytes) -> Any:
    """The pickled object, its code imported from ``folder/code`` (and nothing outside ``folder``)."""
    import pickle

    code = folder / CODE_DIR
    root = folder.resolve()
    if code.exists():
        for path in code.rglob("*"):
            if not path.resolve().is_relative_to(root):
                raise InvalidInput(f"model folder {folder.name[:12]}: {path.name!r} points outside the model's folder")
    with _IMPORT_LOCK:
        if code.is_dir():
            _set_aside_modules(code)
            entry = str(code)
            if entry in sys.path:
                sys.path.remove(entry)
            sys.path.insert(0, entry)
        return pickle.loads(data)


def _set_aside_modules(code: Path) -> None:
    """Forget modules named like this model's code but imported from elsewhere (another version, the user's copy)."""
    names = {p.stem for p in code.glob("*.py")} | {p.name for p in code.iterdir() if p.is_dir()}
    for module_name in list(sys.modules):
        top = module_name.partition(".")[0]
        if top not in names:
            continue
        origin = getattr(sys.modules[module_name], "__file__", None)
        if origin is None or not Path(origin).resolve().is_relative_to(code.resolve()):
            del sys.modules[module_name]


def _load_context(model: Any, folder: Path, artifacts: dict[str, Path], threads: int | None) -> None:
    hook = getattr(model, "load_context", None)
    if not callable(hook):
        return
    root = folder.resolve()
    for name, path in artifacts.items():
        if not path.resolve().is_relative_to(root):
            raise InvalidInput(f"artifact {name!r} points outside the model's folder")
    hook(PythonModelContext(artifacts, folder, threads))


FLAVOR = PythonFlavor()
