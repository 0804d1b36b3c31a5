"""Cache keys: what must be equal for a step's earlier result to be reused.

A step's key is the SHA-256 of a canonical JSON document holding

* ``code``: the digest of the step function's source and of the *project* code it
  reaches: functions, classes and modules defined under the project root (the git
  repository around the step's file, else its folder) that it names through its
  globals or closure, followed transitively. Installed packages (site-packages,
  the interpreter's prefix) and groundwork itself are not project code: declare
  the ones that matter with ``packages=``;
* ``params``: the JSON-able arguments;
* ``inputs``: the digests of the artifacts it receives (upstream outputs, files, constants);
* ``packages``: the installed version of each declared package;
* ``outputs``: the output names, and the materializer format version.

Nothing else (not the time, the host, or the step's place in the pipeline), so a
step whose code, params, inputs and declared packages are unchanged is never
recomputed, and a change to any of them reruns it, and then whatever its
changed outputs flow into.
"""

from __future__ import annotations

import dis
import functools
import hashlib
import inspect
import marshal
import sys
import sysconfig
import textwrap
import types
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from groundwork.core.pipelines.materializers import FORMAT_VERSION, canonical_json

#: Bumped when the shape of the keyed document changes (invalidates every cache).
KEY_VERSION = 1


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_key(
    *,
    code: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, Any],
    packages: Mapping[str, str | None],
    outputs: Iterable[str],
) -> str:
    """The cache key of one step call (a hex SHA-256)."""
    document = {
        "key_version": KEY_VERSION,
        "format_version": FORMAT_VERSION,
        "code": code,
        "params": params,
        "inputs": inputs,
        "packages": dict(packages),
        "outputs": list(outputs),
    }
    return sha256_hex(canonical_json(document))


def package_versions(names: Iterable[str], memo: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """Installed version of each distribution (None when it is not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        if memo is not None and name in memo:
            out[name] = memo[name]
            continue
        try:
            version: str | None = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            version = None
        out[name] = version
        if memo is not None:
            memo[name] = version
    return out


# -- what counts as project code ------------------------------------------------------------------------


@cache
def _excluded_roots() -> tuple[str, ...]:
    """Folders whose code is never project code: the interpreter, site-packages, groundwork."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            roots.add(sysconfig.get_path(key))
        except KeyError:
            continue
    import groundwork

    roots.add(str(Path(groundwork.__file__).resolve().parent))
    return tuple(sorted({str(Path(r).resolve()) for r in roots if r}))


@cache
def project_root(file: str) -> str:
    """The git repository around ``file``, else its folder."""
    folder = Path(file).resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return str(candidate)
    return str(folder)


@cache
def _is_project_file(file: str, root: str) -> bool:
    path = str(Path(file).resolve())
    if not (path == root or path.startswith(root.rstrip("/") + "/")):
        return False
    parts = Path(path).parts
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not any(path.startswith(r.rstrip("/") + "/") for r in _excluded_roots())


def _module_file(obj: Any) -> str | None:
    module = obj if isinstance(obj, types.ModuleType) else sys.modules.get(getattr(obj, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    return file if isinstance(file, str) and file.endswith(".py") else None


class CodeDigest:
    """Digests of step code, memoized for one pipeline run (files do not change under a run)."""

    def __init__(self) -> None:
        self._functions: dict[int, tuple[str, list[types.ModuleType]]] = {}

    def of(self, fn: Any) -> str:
        return self.walk(fn)[0]

    def modules(self, fn: Any) -> list[types.ModuleType]:
        """The project modules ``fn`` reaches (pickled by value for worker processes)."""
        return self.walk(fn)[1]

    def walk(self, fn: Any) -> tuple[str, list[types.ModuleType]]:
        hit = self._functions.get(id(fn))
        if hit is not None:
            return hit
        file = getattr(getattr(fn, "__code__", None), "co_filename", None) or _module_file(fn)
        root = project_root(file) if file and Path(file).exists() else str(Path.cwd().resolve())
        walker = _Walker(root)
        walker.visit(fn)
        digest = sha256_hex("\n".join(walker.parts).encode("utf-8", "surrogateescape"))
        result = (digest, walker.modules)
        self._functions[id(fn)] = result
        return result


class _Walker:
    def __init__(self, root: str) -> None:
        self.root = root
        self.parts: list[str] = []
        self.seen: set[int] = set()
        self.modules: list[types.ModuleType] = []

    def is_project(self, obj: Any) -> bool:
        if isinstance(obj, types.ModuleType):
            file = _module_file(obj)
            return file is not None and _is_project_file(file, self.root)
        code = getattr(obj, "__code__", None)
        file = getattr(code, "co_filename", None) if code is not None else _module_file(obj)
        if not file:
            return getattr(obj, "__module__", None) == "__main__"  # a class typed into an interpreter
        if file.startswith("<"):
            # Defined by exec() or in a notebook cell: project code unless it belongs to a module file.
            return _module_file(obj) is None
        return _is_project_file(file, self.root)

    def visit(self, obj: Any) -> None:
        from groundwork.core.pipelines.pipeline import Pipeline
        from groundwork.core.pipelines.step import Step

        if isinstance(obj, (Step, Pipeline)):
            obj = obj.fn
        if isinstance(obj, functools.partial):
            self.visit(obj.func)
            return
        if id(obj) in self.seen:
            return
        if isinstance(obj, types.MethodType):
            obj = obj.__func__
        if isinstance(obj, types.FunctionType):
            if not self.is_project(obj):
                return
            self.seen.add(id(obj))
            self._function(obj)
        elif isinstance(obj, type):
            if not self.is_project(obj):
                return
            self.seen.add(id(obj))
            self._class(obj)
        elif isinstance(obj, types.ModuleType):
            if not self.is_project(obj):
                return
            self.seen.add(id(obj))
            self._module(obj)

    def _note_module(self, obj: Any) -> None:
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
        if module is not None and module not in self.modules and getattr(module, "__name__", "") != "__main__":
            self.modules.append(module)

    def _function(self, fn: types.FunctionType) -> None:
        self._note_module(fn)
        # Sources, not module names: the same file run as `pkg.mod:fn` or `path/mod.py:fn` shares its cache.
        self.parts.append(f"def {fn.__qualname__}\n{_source(fn)}")
        for name in sorted(_global_names(fn.__code__)):
            if name in fn.__globals__:
                self.visit(fn.__globals__[name])
        for cell in fn.__closure__ or ():
            try:
                self.visit(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        for default in (*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()):
            self.visit(default)

    def _class(self, cls: type) -> None:
        self._note_module(cls)
        try:
            text = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            text = repr(sorted(vars(cls)))
        self.parts.append(f"class {cls.__qualname__}\n{text}")
        for value in vars(cls).values():
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                for accessor in (value.fget, value.fset, value.fdel):
                    if accessor is not None:
                        self._references(accessor)
            elif isinstance(value, types.FunctionType):
                self._references(value)
        for base in cls.__bases__:
            self.visit(base)

    def _references(self, fn: Any) -> None:
        """What a method names (its source is already part of its class's source)."""
        code = getattr(fn, "__code__", None)
        if code is None:
            return
        for name in sorted(_global_names(code)):
            if name in fn.__globals__:
                self.visit(fn.__globals__[name])

    def _module(self, module: types.ModuleType) -> None:
        if module not in self.modules and module.__name__ != "__main__":
            self.modules.append(module)
        file = _module_file(module)
        text = Path(file).read_bytes() if file else b""
        self.parts.append(f"module {sha256_hex(text)}")
        for value in list(vars(module).values()):
            if isinstance(value, types.ModuleType):
                self.visit(value)
            elif isinstance(value, (types.FunctionType, type)) and _module_file(value) != file:
                self.visit(value)  # imported from another project module


def _source(fn: types.FunctionType) -> str:
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        # No source file (exec, some notebooks): the compiled code stands in for it.
        return sha256_hex(marshal.dumps(fn.__code__))


def _global_names(code: types.CodeType) -> set[str]:
    """Global (and attribute) names a code object and its nested code objects use."""
    names: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME", "IMPORT_NAME"):
                names.add(str(instruction.argval).split(".")[0])
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return names
