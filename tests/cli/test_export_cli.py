"""``groundwork export`` from the command line: a passed export, and bad input as one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from groundwork.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engines" / "export"))
from _export_helpers import example  # noqa: E402

_ENV: dict[str, str] = {}


def gw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**env, **_ENV})


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """One store with digits@production for the module (registering takes a while); children use it by env."""
    home = tmp_path_factory.mktemp("export-cli")
    config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=str(home / "artifacts"))
    example("digits").register(config)
    _ENV.update(config.child_environ())
    yield config
    _ENV.clear()


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_export_onnx_json_then_models_show(digits: Config, tmp_path: Path) -> None:
    done = gw("export", "digits@production", "--target", "onnx", "--precision", "int8", "--out", "onnx-digits",
              "--repeat", "3", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["passed"] and answer["export_id"] and answer["target"] == "onnx"
    assert answer["verification"]["agreement"]["value"] >= 0.99
    assert (tmp_path / "onnx-digits" / "model.onnx").is_file()
    shown = gw("models", "show", "digits@production", "--json", cwd=tmp_path)
    exports = json.loads(shown.stdout)["exports"]
    assert answer["export_id"] in [e["id"] for e in exports]
    assert next(e for e in exports if e["id"] == answer["export_id"])["precision"] == "int8"
    table = gw("models", "show", "digits", cwd=tmp_path)
    assert "onnx int8" in table.stdout and "label agreement" in table.stdout
    tree = gw("lineage", "onnx-digits", cwd=tmp_path)
    assert tree.returncode == 0 and "model digits/1" in tree.stdout and "export" in tree.stdout


@pytest.mark.browser
def test_export_web_prints_the_check(digits: Config, tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (make system-deps)")
    done = gw("export", "digits@production", "--precision", "fp16", "--out", "web-digits", "--repeat", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "label agreement 100.0%" in done.stdout or "label agreement 9" in done.stdout
    assert "no request left 127.0.0.1" in done.stdout and "passed: wrote web-digits/" in done.stdout


def test_bad_input_is_one_clear_line(digits: Config, tmp_path: Path) -> None:
    import torch

    import groundwork as gw_sdk

    with gw_sdk.start_run(name="no-onnx", config=digits, capture_code=False) as run:
        run.log_model(torch.nn.Linear(4, 2), "plain")  # no example: no ONNX form
    line = _one_error_line(gw("export", "plain", "--out", "x", cwd=tmp_path))
    assert "model plain/1 (pytorch) has no ONNX form to export" in line
    (tmp_path / "a-file").write_text("not a folder\n")
    line = _one_error_line(gw("export", "digits@production", "--out", "a-file/bundle", cwd=tmp_path))
    assert "cannot write to a-file/bundle" in line
    line = _one_error_line(gw("export", "digits@production", "--out", "a-file", cwd=tmp_path))
    assert "it is a file" in line
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine\n")
    line = _one_error_line(gw("export", "digits@production", "--out", "full", cwd=tmp_path))
    assert "full is not empty" in line and (tmp_path / "full" / "keep.txt").read_text() == "mine\n"
    line = _one_error_line(gw("export", "digits@staging", "--out", "y", cwd=tmp_path))
    assert "has no alias 'staging'" in line
    line = _one_error_line(gw("export", "digits@production", "--precision", "fp8", "--out", "z", cwd=tmp_path))
    assert "unknown precision 'fp8'" in line
    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((3, 10), np.float32))
    line = _one_error_line(gw("export", "digits@production", "--target", "onnx", "--data", "wrong.npz", "--out", "w",
                              cwd=tmp_path))
    assert "pixels" in line or "shaped like the example" in line
    assert not any((tmp_path / name).exists() for name in ("x", "y", "z", "w"))
