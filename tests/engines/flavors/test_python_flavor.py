"""Python models: an object with predict, stored with its code, files and environment; loaded from a private folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.errors import InvalidInput, ModelNotFound

#: A toy text model in a module of its own: characters (times SCALE, times a factor read from a file) and words.
TOY = '''
import json

import numpy as np

SCALE = {scale}


class Lengths:
    def load_context(self, context):
        with open(context.artifacts["factor"]) as fh:
            self.factor = json.load(fh)["factor"]

    def preprocess(self, texts):
        return [t.strip() for t in texts]

    def predict(self, texts):
        return [[len(t) * self.factor * SCALE, len(t.split())] for t in texts]

    def postprocess(self, rows):
        return np.asarray(rows, dtype=np.int64)
'''


def log_toy(config: Config, tmp: Path, scale: int, factor: int = 1, name: str = "lengths") -> gw.ModelVersion:
    """Log the toy model from a module the test imports, then forget that module (as a fresh process would)."""
    folder = tmp / f"src-{scale}-{factor}"
    folder.mkdir(parents=True)
    module = folder / "toylengths.py"
    module.write_text(TOY.format(scale=scale))
    factor_file = folder / "factor.json"
    factor_file.write_text(json.dumps({"factor": factor}))
    sys.path.insert(0, str(module.parent))
    try:
        import toylengths

        with gw.start_run(name="toy", config=config, capture_code=False) as run:
            version: gw.ModelVersion = run.log_model(toylengths.Lengths(), name, code=[module],
                                                     artifacts={"factor": factor_file}, example=[" a b ", "ccc"])
    finally:
        sys.path.remove(str(module.parent))
        sys.modules.pop("toylengths", None)
    return version


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("GROUNDWORK_MODEL_CACHE", str(tmp_path / "cache"))
    return Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))


def test_a_python_model_is_stored_with_its_code_files_and_environment(config: Config, tmp_path: Path) -> None:
    version = log_toy(config, tmp_path, 1, factor=2)
    assert version.flavor == "python"
    assert version.signature.describe() == "str[N] -> int64[N, 2]"
    assert version.info["code"] == ["toylengths.py"] and version.info["artifacts"] == {"factor": "artifacts/factor"}
    assert version.info["hooks"] == ["load_context", "preprocess", "postprocess"]
    restored = tmp_path / "restored"
    gw_artifacts(config).restore(version.artifact_digest, restored)
    names = sorted(str(p.relative_to(restored)) for p in restored.rglob("*") if p.is_file())
    assert names == ["artifacts/factor", "code/toylengths.py", "environment.json", "groundwork-model.json",
                     "input_example.json", "model.pkl", "requirements.txt"]
    assert f"numpy=={np.__version__}" in (restored / "requirements.txt").read_text().splitlines()
    assert json.loads((restored / "environment.json").read_text())["python"]["version"] == ".".join(
        map(str, sys.version_info[:3]))


def test_it_loads_in_a_fresh_process_from_its_private_folder_and_writes_nothing_else(
        config: Config, tmp_path: Path) -> None:
    log_toy(config, tmp_path, 1, factor=3)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, **config.child_environ(), "GROUNDWORK_MODEL_CACHE": str(tmp_path / "cache")}
    code = """
        import groundwork as gw, sys, json
        model = gw.load_model("lengths")
        out = model.predict(["hello world", " x "]).tolist()
        code_dirs = [p for p in sys.path if p.endswith("/code")]
        print(json.dumps({"out": out, "file": sys.modules["toylengths"].__file__, "code": code_dirs,
                          "backend": model.backend}))
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=empty, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["out"] == [[33, 2], [3, 1]] and result["backend"] == "python"
    cache = (tmp_path / "cache").resolve()
    assert Path(result["file"]).resolve().is_relative_to(cache)
    assert [Path(p).resolve().is_relative_to(cache) for p in result["code"]] == [True]
    assert list(empty.iterdir()) == []  # nothing written where it ran


def test_two_versions_with_the_same_module_name_each_run_their_own_code(config: Config, tmp_path: Path) -> None:
    log_toy(config, tmp_path, 1)
    log_toy(config, tmp_path, 10)  # the same module name, other code
    first = gw.load_model("lengths/1", config=config)
    second = gw.load_model("lengths/2", config=config)
    assert first.predict(["abcd"]).tolist() == [[4, 1]]
    assert second.predict(["abcd"]).tolist() == [[40, 1]]
    assert first.predict(["abcd"]).tolist() == [[4, 1]]
    sys.modules.pop("toylengths", None)


def test_a_model_defined_in_the_script_needs_no_code(config: Config) -> None:
    class Doubler:
        def predict(self, rows: Any) -> Any:
            return np.asarray(rows) * 2

    with gw.start_run(name="toy", config=config, capture_code=False) as run:
        version = run.log_model(Doubler(), "doubler", example=np.arange(6.0).reshape(3, 2))
    assert version.flavor == "python" and version.signature.describe() == "float64[N, 2] -> float64[N, 2]"
    np.testing.assert_array_equal(gw.load_model("doubler", config=config).predict([[1.0, 2.0]]), [[2.0, 4.0]])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"code": ["no/such/file.py"]}, "code path 'no/such/file.py' does not exist"),
    ({"artifacts": {"../up": "x"}}, "artifact name '../up' is not a plain name"),
    ({"artifacts": {"weights": "no/such/dir"}}, "artifact 'weights': 'no/such/dir' does not exist"),
])
def test_bad_code_or_artifacts_are_one_clear_error_and_register_nothing(config: Config, kwargs: dict[str, Any],
                                                                        message: str) -> None:
    class Model:
        def predict(self, rows: Any) -> Any:
            return rows

    with gw.start_run(name="toy", config=config, capture_code=False) as run, \
            pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        run.log_model(Model(), "bad", **kwargs)
    with pytest.raises(ModelNotFound):
        gw.get_model_version("bad", config=config)


def test_an_object_without_predict_or_a_model_failing_its_example_is_refused(config: Config) -> None:
    class Broken:
        def predict(self, rows: Any) -> Any:
            raise KeyError("embedding")

    with gw.start_run(name="toy", config=config, capture_code=False) as run:
        with pytest.raises(InvalidInput, match="needs a predict"):
            run.log_model(object(), "none", code=[])
        with pytest.raises(InvalidInput, match="fails on its example: KeyError: 'embedding'"):
            run.log_model(Broken(), "broken", example=[[1.0]])


def gw_artifacts(config: Config) -> Any:
    from groundwork.storage.stores import open_stores

    return open_stores(config).artifacts
