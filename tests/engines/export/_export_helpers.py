"""Helpers shared by the export tests (imported by conftest.py and the tests; tests/engines/export is on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from groundwork.config import Config

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "export"


def example(name: str) -> ModuleType:
    """``examples/export/<name>.py`` as a module (examples are scripts, not a package)."""
    key = f"_gw_export_example_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Models:
    config: Config
    home: Path
    digits_data: Path  # held-out digits (.npz) as a verification set
    digits_test: tuple[Any, Any]


def export_count(config: Config, name: str) -> int:
    from groundwork.core.exports import list_exports

    return len(list_exports(name, config=config, all_versions=True))


def agreement_of(result: Any) -> float:
    return float(result.verification["agreement"]["value"])
