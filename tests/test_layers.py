"""Rules of the house, enforced: layers import downwards only, and storage alone speaks SQL.

Layers (docs/development.md): storage < core < engines < surfaces (cli, server, ui).
A lower layer never imports a higher one, even lazily inside a function. Outside
``groundwork.storage`` no module imports SQLAlchemy, Alembic, the schema or the SQL
implementations of the stores: everything goes through ``groundwork.storage.stores``
(the Protocols and ``open_stores``) and ``groundwork.storage.records``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import groundwork

ROOT = Path(groundwork.__file__).parent

LAYERS = {"storage": 1, "core": 2, "engines": 3, "cli": 4, "server": 4, "ui": 4}
SQL_MODULES = ("sqlalchemy", "alembic", "psycopg", "groundwork.storage.schema", "groundwork.storage.metadata",
               "groundwork.storage.registry", "groundwork.storage.pipelines", "groundwork.storage.search",
               "groundwork.storage.migrations")


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module a file imports (at any depth), with its line; string constants naming modules too."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body and isinstance(n.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and node.value.startswith("groundwork.") and " " not in node.value
        ):
            yield node.lineno, node.value.split(":")[0]


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "groundwork" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def _sources() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] == "examples":
            continue  # examples are users of the SDK, not a layer
        yield relative.parts[0], path


def test_lower_layers_never_import_higher_ones() -> None:
    offenders = []
    for top, path in _sources():
        own = LAYERS.get(top)
        if own is None:
            continue
        for line, module in _imports(path):
            other = _layer_of(module)
            if other is not None and other > own:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offenders == []


def test_only_storage_speaks_sql() -> None:
    offenders = []
    for top, path in _sources():
        if top == "storage":
            continue
        for line, module in _imports(path):
            if module == "sqlalchemy" or module.startswith(tuple(f"{m}." for m in SQL_MODULES)) or module in SQL_MODULES:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offenders == []


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""groundwork.engines in a docstring is fine."""\n'
        "def f():\n    from sqlalchemy import select\n    import groundwork.cli\n    return 'groundwork.engines.serve:app'\n"
    )
    found = [m for _, m in _imports(sample)]
    assert "sqlalchemy" in found and "groundwork.cli" in found and "groundwork.engines.serve" in found
    assert not any("docstring" in m for m in found)


def test_the_flavors_register_through_the_core() -> None:
    """Flavors reach the core by name (groundwork.core.flavors), registered by the package root."""
    from groundwork.core.flavors import flavor_names

    assert {"sklearn", "pytorch", "onnx"} <= set(flavor_names())


def _code_imports(path: Path) -> set[str]:
    """Modules a file imports in code (at any depth), not under ``if TYPE_CHECKING:`` nor named in strings."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner) for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _core_cycle() -> list[str] | None:
    """A cycle of imports between the core's top-level modules (tracking, registry, lineage...), if any."""
    modules = {f"groundwork.core.{p.stem}": p for p in (ROOT / "core").glob("*.py") if p.stem != "__init__"}
    edges = {name: sorted(m for m in _code_imports(path) if m in modules and m != name) for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(modules):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def test_the_core_modules_import_each_other_without_a_circle() -> None:
    """tracking -> registry -> lineage -> ... never leads back: providers and flavors are found by name."""
    assert _core_cycle() is None, " -> ".join(_core_cycle() or [])
