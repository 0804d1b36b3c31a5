"""Materializers: each built-in type survives a save and a load, bit for bit where it should."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import groundwork as gw
from groundwork.core.pipelines.materializers import (
    NoMaterializer,
    get_materializer,
    materializer_for,
    no_materializer_error,
)
from groundwork.storage.artifacts import hash_file

#: Pickle-based formats store equal objects to equal bytes, but not always a *reloaded* object
#: (the pickle memo sees shared strings differently); their stability is per computation.
PICKLED = {"torch-module", "sklearn", "pandas-series"}


def roundtrip(value: Any, tmp_path: Path) -> tuple[str, Any, str]:
    materializer = materializer_for(value)
    assert materializer is not None, f"no materializer for {type(value)}"
    path = tmp_path / (materializer.filename or "value")
    materializer.save(value, path)
    twice = tmp_path / "twice"
    materializer.save(value, twice)
    assert hash_file(path) == hash_file(twice), "saving the same value twice must give the same bytes"
    if materializer.name not in PICKLED:
        again = tmp_path / "again"
        materializer.save(materializer.load(path), again)
        assert hash_file(path) == hash_file(again), "a loaded value must store to the same bytes"
    return materializer.name, get_materializer(materializer.name).load(path), materializer.kind


def test_json_numpy_and_scalars(tmp_path: Path) -> None:
    assert roundtrip({"b": [1, 2.5, None, True], "a": "x"}, tmp_path)[:2] == ("json", {"a": "x", "b": [1, 2.5, None, True]})
    name, array, kind = roundtrip(np.arange(6, dtype=np.float32).reshape(2, 3), tmp_path)
    assert (name, kind) == ("numpy", "dataset") and array.dtype == np.float32 and array.shape == (2, 3)
    name, scalar, _ = roundtrip(np.float32(1.5), tmp_path)
    assert name == "numpy-scalar" and scalar == np.float32(1.5) and isinstance(scalar, np.float32)
    assert materializer_for(np.array([object()], dtype=object)) is None


def test_pandas_and_arrow(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}, index=[10, 11, 12])
    name, loaded, kind = roundtrip(frame, tmp_path)
    assert (name, kind) == ("pandas", "dataset")
    pd.testing.assert_frame_equal(loaded, frame)
    series = pd.Series([1.0, 2.0], name="s")
    assert roundtrip(series, tmp_path / "s" if (tmp_path / "s").mkdir() is None else tmp_path)[0] == "pandas-series"
    table = pa.table({"x": [1, 2]})
    name, loaded, _ = roundtrip(table, tmp_path / "t" if (tmp_path / "t").mkdir() is None else tmp_path)
    assert name == "arrow" and loaded.equals(table)


def test_torch_modules_state_dicts_and_tensors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    for sub, value, expected in (
        ("m", model, "torch-module"),
        ("s", model.state_dict(), "torch-state-dict"),
        ("t", torch.ones(3), "torch-tensor"),
    ):
        (tmp_path / sub).mkdir()
        name, loaded, _ = roundtrip(value, tmp_path / sub)
        assert name == expected
    assert torch.equal(loaded, torch.ones(3))


def test_sklearn_estimators(tmp_path: Path) -> None:
    linear = pytest.importorskip("sklearn.linear_model")
    model = linear.LinearRegression().fit(np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 3.0, 5.0]))
    name, loaded, kind = roundtrip(model, tmp_path)
    assert (name, kind) == ("sklearn", "model")
    assert loaded.predict(np.array([[3.0]]))[0] == pytest.approx(7.0)


def test_paths_are_stored_as_files_or_folders(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    for value in (folder, gw.File(folder / "a.txt")):
        materializer = materializer_for(value)
        assert materializer is not None and materializer.name == "file" and materializer.kind == "file"
        assert materializer.source is not None and materializer.source(value).exists()


def test_registered_materializers_win_and_unknown_values_get_one_clear_error(tmp_path: Path) -> None:
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    assert materializer_for(Point(1)) is None
    error = no_materializer_error("make", Point(1))
    assert isinstance(error, NoMaterializer)
    assert "step 'make' returned a Point" in error.message and "register_materializer" in (error.hint or "")
    gw.register_materializer(Point, lambda p, path: path.write_text(str(p.x)), lambda path: Point(int(path.read_text())),
                             name="test-point", filename="point.txt")
    name, loaded, kind = roundtrip(Point(7), tmp_path)
    assert (name, kind, loaded.x) == ("test-point", "value", 7)
    with pytest.raises(NoMaterializer, match="no materializer named 'nope'"):
        get_materializer("nope")


def test_loading_a_frame_or_a_table_lets_the_interpreter_exit_cleanly(tmp_path: Path) -> None:
    """A step's process that loaded a Parquet input must exit 0: after a threaded read, pyarrow
    could abort the interpreter on its way out (exit 134, apache/arrow#34314)."""
    import subprocess
    import sys

    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(2000, 32)), columns=[f"c{i}" for i in range(32)])
    frame["inputs"] = [list(row) for row in rng.normal(size=(2000, 16))]
    for value, name in ((frame, "frame"), (pa.Table.from_pandas(frame), "table")):
        materializer = materializer_for(value)
        assert materializer is not None
        materializer.save(value, tmp_path / name)
        script = ("import sys; from pathlib import Path\n"
                  "from groundwork.core.pipelines.materializers import get_materializer\n"
                  f"value = get_materializer({materializer.name!r}).load(Path(sys.argv[1]))  # alive at the exit\n"
                  "print(len(value))\n")
        for _ in range(5):
            done = subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], capture_output=True, text=True,
                                  timeout=120)
            assert (done.returncode, done.stdout.strip()) == (0, "2000"), done.stderr[-500:]
