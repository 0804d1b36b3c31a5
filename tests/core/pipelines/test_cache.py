"""Cache keys: the code digest follows project code, not installed packages; every keyed part counts."""

from __future__ import annotations

from groundwork.core.pipelines.cache import CodeDigest, cache_key, package_versions

from .conftest import Project

KEY = {"code": "c" * 64, "params": {"lr": 0.1}, "inputs": {"x": "d" * 64}, "packages": {"numpy": "2.0"},
       "outputs": ["output"]}


def test_cache_key_changes_with_each_part_and_only_with_them() -> None:
    base = cache_key(**KEY)  # type: ignore[arg-type]
    assert cache_key(**KEY) == base  # type: ignore[arg-type]
    assert cache_key(**{**KEY, "params": {"lr": 0.1}}) == base  # type: ignore[arg-type]
    for change in ({"code": "e" * 64}, {"params": {"lr": 0.2}}, {"inputs": {"x": "f" * 64}},
                   {"packages": {"numpy": "2.1"}}, {"outputs": ["a", "b"]}):
        assert cache_key(**{**KEY, **change}) != base, change  # type: ignore[arg-type]


def test_code_digest_follows_project_functions_and_modules(project: Project) -> None:
    project.write("util", "SCALE = 2\n\ndef helper(x):\n    return x * SCALE\n")
    project.write("steps", """
        import numpy as np

        import util
        from util import helper


        def direct(x):
            return helper(x) + np.sum([1])


        def via_module(x):
            return util.helper(x)


        def alone(x):
            return x
    """)
    def digests() -> dict[str, str]:
        project.forget()
        import importlib
        import sys

        sys.path.insert(0, str(project.root))
        try:
            steps = importlib.import_module("steps")
        finally:
            sys.path.remove(str(project.root))
        code = CodeDigest()
        return {name: code.of(getattr(steps, name)) for name in ("direct", "via_module", "alone")}

    before = digests()
    assert digests() == before
    project.write("util", "SCALE = 3\n\ndef helper(x):\n    return x * SCALE\n")
    after = digests()
    assert after["via_module"] != before["via_module"]  # the module file changed
    assert after["alone"] == before["alone"]
    # `direct` names helper (whose source is unchanged) and numpy (not project code): unchanged.
    assert after["direct"] == before["direct"]


def test_modules_reached_are_reported_for_pickling_by_value(project: Project) -> None:
    project.write("util2", "def helper(x):\n    return x\n")
    project.write("steps2", "import util2\n\ndef f(x):\n    return util2.helper(x)\n")
    import importlib
    import sys

    project.forget()
    sys.path.insert(0, str(project.root))
    try:
        steps = importlib.import_module("steps2")
    finally:
        sys.path.remove(str(project.root))
    names = {m.__name__ for m in CodeDigest().modules(steps.f)}
    assert names == {"steps2", "util2"}


def test_package_versions_of_installed_and_missing_distributions() -> None:
    memo: dict[str, str | None] = {}
    versions = package_versions(["numpy", "surely-not-installed-gw"], memo)
    assert versions["numpy"] and versions["surely-not-installed-gw"] is None
    assert memo == versions


def test_param_types_are_distinct_in_keys() -> None:
    keys = {cache_key(**{**KEY, "params": {"x": v}}) for v in (1, "1", 1.5)}  # type: ignore[arg-type]
    assert len(keys) == 3
