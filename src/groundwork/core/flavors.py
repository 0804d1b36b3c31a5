"""The registry of model flavors: how each kind of model object is saved (and loaded).

A flavor is an object with ``name``, ``accepts(obj)`` and ``save(obj, folder, ...)``
(and, for loading, ``load(files, document, signature, threads=...)``). The core
never imports a flavor's implementation: flavors are *registered* here, as an
object or as ``"module:attribute"`` imported on first use. The built-in ones live in
the engines layer (``groundwork.engines.flavors``) and are registered by the package
root exactly as a plugin registers its own::

    gw.register_flavor("xgboost", "my_plugin.flavors:XGBOOST")

This module imports only the standard library, so registering costs nothing at
``import groundwork`` time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from groundwork.core.signatures import Signature
from groundwork.errors import InvalidInput

if TYPE_CHECKING:
    from pathlib import Path


@dataclass
class SavedModel:
    """What a flavor wrote into a model folder.

    ``native`` and ``onnx`` are file names relative to the folder (``onnx`` None where
    conversion did not work or was not tried); ``info`` holds library versions and
    notes (why a conversion was skipped), shown by ``groundwork models show``.
    """

    native: str
    onnx: str | None = None
    signature: Signature | None = None
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ModelFlavor(Protocol):
    """Saves one kind of model object into a folder (the engines layer also loads it)."""

    name: str

    def accepts(self, obj: Any) -> bool:
        """Whether ``obj`` is a model of this flavor (cheap; must not import heavy libraries)."""
        ...

    def save(self, obj: Any, folder: Path, *, example: Any | None, signature: Signature | None) -> SavedModel:
        """Write ``obj`` into the empty folder ``folder``, and an ONNX form beside it where it converts."""
        ...


#: The flavor whose ``save`` also takes ``code=`` and ``artifacts=`` (a Python model with its own code).
CODE_FLAVOR = "python"

# name -> "module:attribute" (imported on first use) or the flavor object; tried in this order.
_FLAVORS: dict[str, str | ModelFlavor] = {}


def register_flavor(name: str, target: str | ModelFlavor) -> None:
    """Make ``run.log_model`` and ``gw.load_model`` know a flavor.

    ``target`` is the flavor object, or ``"module:attribute"`` to import when it is
    first needed. Registering a name again replaces it (in its place in the order).
    """
    if isinstance(target, str) and ":" not in target:
        raise InvalidInput(f"flavor {name!r}: {target!r} is not 'module:attribute'")
    _FLAVORS[name] = target


def flavor_names() -> list[str]:
    return list(_FLAVORS)


def get_flavor(name: str) -> ModelFlavor:
    """The flavor registered as ``name`` (imported on first use)."""
    target = _FLAVORS.get(name)
    if target is None:
        known = ", ".join(_FLAVORS) or "none (is groundwork installed whole?)"
        raise InvalidInput(f"unknown model flavor {name!r}", hint=f"known flavors: {known}")
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    flavor = cast(ModelFlavor, getattr(importlib.import_module(module_name), attribute))
    if _FLAVORS.get(name) == target:
        _FLAVORS[name] = flavor
    return flavor


def flavor_for(obj: Any) -> ModelFlavor:
    """The first registered flavor that accepts ``obj``."""
    for name in list(_FLAVORS):
        flavor = get_flavor(name)
        if flavor.accepts(obj):
            return flavor
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    raise InvalidInput(
        f"cannot log a {kind} as a model",
        hint="log a scikit-learn estimator, a torch.nn.Module, the path of an .onnx file, "
        "or an object with a predict(inputs) method",
    )
