"""Import a user's ``module:attribute`` or ``path/to/file.py:attribute`` reference."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from groundwork.errors import ExecutionError, InvalidInput


def looks_like_callable_ref(text: str) -> bool:
    module, sep, attr = text.rpartition(":")
    return bool(sep and module and attr.isidentifier() and not module.startswith(("/", "\\")) or text.endswith(".py"))


def load_callable(ref: str, *, what: str = "function") -> Any:
    """The attribute ``ref`` names (``pkg.mod:name`` or ``file.py:name``), callable."""
    module_name, sep, attr = ref.rpartition(":")
    if not sep or not module_name or not attr:
        raise InvalidInput(f"{what} {ref!r} must look like module:name or path/to/file.py:name")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise InvalidInput(f"{what} {ref!r}: file {module_name!r} does not exist")
            name = f"_groundwork_user_{path.stem}_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise InvalidInput(f"{what} {ref!r}: cannot import {module_name!r}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path and "." not in sys.path:
                sys.path.insert(0, "")  # like `python -m`: the working directory is importable
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InvalidInput(f"{what} {ref!r}: module {module_name!r} not found ({exc})") from exc
    except InvalidInput:
        raise
    except Exception as exc:
        raise ExecutionError(f"{what} {ref!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    try:
        value = getattr(module, attr)
    except AttributeError as exc:
        raise InvalidInput(f"{what} {ref!r}: {module_name!r} has no attribute {attr!r}") from exc
    if not callable(value):
        raise InvalidInput(f"{what} {ref!r} is not callable")
    return value
