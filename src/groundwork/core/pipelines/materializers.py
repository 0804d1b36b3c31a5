"""Materializers turn the values steps pass between them into artifacts, and back.

A materializer has a ``save(value, path)`` that writes a file (or a folder) at
``path`` and a ``load(path)`` that reads it back. The file is stored in the
content-addressed artifact store, so equal values stored the same way have equal
digests, which is what makes a downstream step's cache key stable.

Built in, tried in this order (type names are matched without importing the
libraries, so a pipeline that never touches torch never imports it):

=====================  ==========================================  ========  ==================
name                   values                                      kind      file
=====================  ==========================================  ========  ==================
``file``               :class:`pathlib.Path`, ``gw.File``          file      the file or folder
``torch-module``       ``torch.nn.Module``                         model     ``module.pt``
``torch-state-dict``   a dict whose values are all tensors         model     ``state_dict.pt``
``torch-tensor``       ``torch.Tensor``                            value     ``tensor.pt``
``numpy``              ``numpy.ndarray`` (not of objects)          dataset   ``array.npy``
``numpy-scalar``       numpy scalars (``np.float32(1)``)           value     ``scalar.npy``
``pandas``             ``pandas.DataFrame``                        dataset   ``frame.parquet``
``pandas-series``      ``pandas.Series``                           dataset   ``series.pkl``
``arrow``              ``pyarrow.Table``                           dataset   ``table.parquet``
``sklearn``            scikit-learn estimators                     model     ``estimator.pkl``
``json``               None, bool, numbers, str, lists, dicts      value     ``value.json``
=====================  ==========================================  ========  ==================

Users add their own with :func:`register_materializer`; theirs are tried first,
newest first. A value none of them takes fails its step with one clear error.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundwork.errors import InvalidInput, UnprocessableInput

#: Bumped when a built-in materializer changes how it writes (part of every cache key).
FORMAT_VERSION = 1


class NoMaterializer(UnprocessableInput):
    """A step returned (or was given) a value groundwork does not know how to store."""

    headline = "No materializer"


@dataclass(frozen=True)
class Materializer:
    """How one family of values is written to a file and read back."""

    name: str
    kind: str
    filename: str
    save: Callable[[Any, Path], None]
    load: Callable[[Path], Any]
    matches: Callable[[Any], bool]
    #: For values that already are files (paths): where the bytes are, so they are stored without a copy.
    source: Callable[[Any], Path] | None = None
    #: In-memory forms of save/load (no temporary file); used when both are given.
    dumps: Callable[[Any], bytes] | None = None
    loads: Callable[[bytes], Any] | None = None

    def to_bytes(self, value: Any) -> bytes | None:
        return self.dumps(value) if self.dumps is not None and self.loads is not None else None


def type_name(value_or_type: Any) -> str:
    cls = value_or_type if isinstance(value_or_type, type) else type(value_or_type)
    return f"{cls.__module__}.{cls.__qualname__}"


def _mro_names(value: Any) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(value).__mro__}


def _has_type(*names: str) -> Callable[[Any], bool]:
    wanted = set(names)
    return lambda value: bool(_mro_names(value) & wanted)


# -- the built-ins ----------------------------------------------------------------------------------------


def _is_path(value: Any) -> bool:
    from groundwork.core.pipelines.step import File

    return isinstance(value, (Path, File))


def _path_source(value: Any) -> Path:
    from groundwork.core.pipelines.step import file_path

    path = file_path(value)
    if not path.exists():
        raise InvalidInput(f"the returned path {str(path)!r} does not exist")
    return path


def _save_path(value: Any, path: Path) -> None:  # used only when a caller insists on a copy
    src = _path_source(value)
    if src.is_dir():
        shutil.copytree(src, path)
    else:
        shutil.copyfile(src, path)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return type(value) in (type(None), str, bool, int, float)
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict) and type(value) is dict:
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _via_path(dumps: Callable[[Any], bytes]) -> Callable[[Any, Path], None]:
    def save(value: Any, path: Path) -> None:
        path.write_bytes(dumps(value))

    return save


def _from_path(loads: Callable[[bytes], Any]) -> Callable[[Path], Any]:
    def load(path: Path) -> Any:
        return loads(path.read_bytes())

    return load


def _dumps_numpy(value: Any) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=False)
    return buffer.getvalue()


def _loads_numpy(data: bytes) -> Any:
    import io

    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def _dumps_numpy_scalar(value: Any) -> bytes:
    import numpy as np

    return _dumps_numpy(np.asarray(value))


def _loads_numpy_scalar(data: bytes) -> Any:
    return _loads_numpy(data)[()]


def _dumps_pickle(value: Any) -> bytes:
    import cloudpickle

    return bytes(cloudpickle.dumps(value, protocol=5))


def _loads_pickle(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)


def _dumps_frame(value: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    try:
        value.to_parquet(buffer, engine="pyarrow")
    except (ValueError, TypeError) as exc:
        raise NoMaterializer(
            f"this DataFrame cannot be stored as Parquet: {exc}",
            hint="give it string column names and Arrow-compatible column types",
        ) from None
    return buffer.getvalue()


def _loads_frame(data: bytes) -> Any:
    import io

    import pandas as pd

    # On this thread: after a threaded read, pyarrow's thread pool can abort the interpreter as it
    # exits (exit 134, apache/arrow#34314); on a few cores the threads gained nothing measurable.
    return pd.read_parquet(io.BytesIO(data), engine="pyarrow", use_threads=False)


def _dumps_arrow(value: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(value, sink)
    return bytes(sink.getvalue().to_pybytes())


def _loads_arrow(data: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data), use_threads=False)  # see _loads_frame


def _dumps_torch(value: Any) -> bytes:
    import io

    import torch

    # Through a buffer: torch names the archive's folder after the file, which would make
    # equal values stored under other names differ.
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _loads_torch_weights(data: bytes) -> Any:
    import io

    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


def _dumps_torch_module(value: Any) -> bytes:
    import io

    import cloudpickle
    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer, pickle_module=cloudpickle)
    return buffer.getvalue()


def _loads_torch_module(data: bytes) -> Any:
    import io

    import torch

    return torch.load(io.BytesIO(data), weights_only=False)


def _is_ndarray(value: Any) -> bool:
    if "numpy.ndarray" not in _mro_names(value):
        return False
    return bool(value.dtype.kind != "O")


def _is_state_dict(value: Any) -> bool:
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, dict) or not value:
        return False
    return all(isinstance(k, str) for k in value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _load_file(path: Path) -> Any:
    return path


def _bytes_materializer(
    name: str, kind: str, filename: str, dumps: Callable[[Any], bytes], loads: Callable[[bytes], Any],
    matches: Callable[[Any], bool],
) -> Materializer:
    return Materializer(name, kind, filename, _via_path(dumps), _from_path(loads), matches, dumps=dumps, loads=loads)


_BUILTINS: tuple[Materializer, ...] = (
    Materializer("file", "file", "", _save_path, _load_file, _is_path, source=_path_source),
    _bytes_materializer("torch-module", "model", "module.pt", _dumps_torch_module, _loads_torch_module,
                        _has_type("torch.nn.modules.module.Module")),
    _bytes_materializer("torch-state-dict", "model", "state_dict.pt", _dumps_torch, _loads_torch_weights,
                        _is_state_dict),
    _bytes_materializer("torch-tensor", "value", "tensor.pt", _dumps_torch, _loads_torch_weights,
                        _has_type("torch.Tensor")),
    _bytes_materializer("numpy", "dataset", "array.npy", _dumps_numpy, _loads_numpy, _is_ndarray),
    _bytes_materializer("numpy-scalar", "value", "scalar.npy", _dumps_numpy_scalar, _loads_numpy_scalar,
                        _has_type("numpy.generic")),
    _bytes_materializer("pandas", "dataset", "frame.parquet", _dumps_frame, _loads_frame,
                        _has_type("pandas.DataFrame", "pandas.core.frame.DataFrame")),
    _bytes_materializer("pandas-series", "dataset", "series.pkl", _dumps_pickle, _loads_pickle,
                        _has_type("pandas.Series", "pandas.core.series.Series")),
    _bytes_materializer("arrow", "dataset", "table.parquet", _dumps_arrow, _loads_arrow,
                        _has_type("pyarrow.lib.Table")),
    _bytes_materializer("sklearn", "model", "estimator.pkl", _dumps_pickle, _loads_pickle,
                        _has_type("sklearn.base.BaseEstimator")),
    _bytes_materializer("json", "value", "value.json", canonical_json, json.loads, _is_json),
)

#: Registered by users, newest first; tried before the built-ins.
_registered: list[Materializer] = []
_broken: set[int] = set()  # materializers whose predicate raised (logged once)
logger = logging.getLogger("groundwork.core.pipelines.materializers")


def register_materializer(
    type_: type | str,
    save: Callable[[Any, Path], None],
    load: Callable[[Path], Any],
    *,
    name: str | None = None,
    kind: str = "value",
    filename: str = "value.bin",
) -> Materializer:
    """Teach groundwork to store values of ``type_`` (a class, or ``"module.QualName"``).

    ``save(value, path)`` writes one file (or folder) at ``path``; ``load(path)``
    returns the value. Both run in whichever process runs the step, so they are
    sent along with the step (they must be importable or picklable).

    >>> gw.register_materializer(Vocabulary, lambda v, p: p.write_text(v.dumps()),
    ...                          lambda p: Vocabulary.loads(p.read_text()))
    """
    if isinstance(type_, str):
        wanted = type_
        label = type_
    elif isinstance(type_, type):
        wanted = type_name(type_)
        label = wanted
    else:
        raise InvalidInput(f"register_materializer takes a class or 'module.QualName', not {type_!r}")
    if not callable(save) or not callable(load):
        raise InvalidInput("register_materializer needs callable save(value, path) and load(path)")
    if "/" in filename or not filename or filename.startswith("."):
        raise InvalidInput(f"materializer filename must be a plain file name, not {filename!r}")
    materializer = Materializer(
        name=name or label,
        kind=kind,
        filename=filename,
        save=save,
        load=load,
        matches=_has_type(wanted) if isinstance(type_, str) else _instance_of(type_),
    )
    _registered[:] = [m for m in _registered if m.name != materializer.name]
    _registered.insert(0, materializer)
    return materializer


def _instance_of(cls: type) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, cls)


def registered_materializers() -> list[Materializer]:
    """The user-registered materializers (sent to worker processes with each step)."""
    return list(_registered)


def install_materializers(materializers: list[Materializer]) -> None:
    """Make materializers shipped from the orchestrator known in this (worker) process."""
    known = {m.name for m in _registered}
    for m in reversed(materializers):
        if m.name not in known:
            _registered.append(m)


def materializer_for(value: Any) -> Materializer | None:
    for materializer in (*_registered, *_BUILTINS):
        try:
            if materializer.matches(value):
                return materializer
        except Exception as exc:  # a broken predicate must not hide the others
            if id(materializer) not in _broken:
                _broken.add(id(materializer))
                logger.warning("materializer %r failed to test a %s (skipped): %s", materializer, type(value).__name__, exc)
            continue
    return None


def get_materializer(name: str) -> Materializer:
    for materializer in (*_registered, *_BUILTINS):
        if materializer.name == name:
            return materializer
    raise NoMaterializer(
        f"no materializer named {name!r} is registered in this process",
        hint="call gw.register_materializer(...) at import time of the module that defines the pipeline",
    )


def no_materializer_error(step: str, value: Any, what: str = "returned") -> NoMaterializer:
    return NoMaterializer(
        f"step {step!r} {what} a {type(value).__name__} ({type_name(value)}), which groundwork cannot store",
        hint=(
            "return numpy, pandas, Arrow, a Path, torch, scikit-learn or JSON-able values, "
            "or register one: gw.register_materializer(TheType, save, load)"
        ),
    )
