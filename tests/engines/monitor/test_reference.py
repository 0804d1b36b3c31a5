"""The reference: the demo's digits@production finds its raw training split through lineage; bad ones are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.engines.monitor.reference import (
    ReferenceMismatch,
    ReferenceNotFound,
    find_reference,
    load_reference,
)
from groundwork.engines.monitor.segment import Layout, layout_from_signature
from groundwork.engines.monitor.sketch import NumberSketch

PIXELS = Layout("tensor", tuple(f"x{i}" for i in range(64)), ("number",) * 64, "<f4", "vector", ("prediction",),
                "category", "<i8")


@pytest.mark.slow
def test_the_demo_model_finds_the_raw_training_split_through_lineage(workspace: Config) -> None:
    from groundwork.cli.demo import register_digits
    from groundwork.examples.digits.pipeline import digits_pipeline

    result = gw.run_pipeline(digits_pipeline, {"epochs": 1}, config=workspace, echo=False)
    version, _reason = register_digits(result, workspace)
    served = gw.get_model_version("digits@production", config=workspace)
    assert served.version == version
    layout = layout_from_signature(served.signature)
    assert layout is not None and layout.inputs == "tensor" and len(layout.names) == 64
    reference = find_reference("digits", version, layout, config=workspace)
    split_train = result["split"].outputs["train"]
    assert reference.source == "lineage"
    assert reference.digest == split_train.digest  # the raw pixels the model takes, not the standardized copy
    assert reference.target == "label"
    assert list(reference.names.values()) == [f"pixel_{i}" for i in range(64)]
    assert reference.rows == len(result.output("split", "train"))
    kinds = [step["type"] for step in reference.path]
    assert kinds == ["model", "artifact", "run", "artifact"]  # version -> its files -> the run that logged it -> data
    pixel = reference.features["x10"]
    assert isinstance(pixel, NumberSketch) and pixel.high <= 16.0  # raw pixels (0-16), as requests carry them


def test_a_model_without_recorded_training_data_says_how_to_give_one(workspace: Config) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(50, 3))
    with gw.start_run(name="train", config=workspace, capture_code=False) as run:
        run.log_model(LogisticRegression().fit(x, x[:, 0] > 0), "bare", example=x[:2])
    layout = Layout("tensor", ("x0", "x1", "x2"), ("number",) * 3, "<f8", "vector", ("prediction",), "category", "|b1")
    with pytest.raises(ReferenceNotFound, match="no training data is recorded upstream of bare/1") as caught:
        find_reference("bare", 1, layout, config=workspace)
    assert "--reference" in (caught.value.hint or "")


def test_references_that_do_not_fit_are_one_clear_error(workspace: Config, tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(other, index=False)
    with pytest.raises(ReferenceMismatch, match=r"has 2 columns \(a, b\); the model takes rows of 64 values"):
        load_reference(str(other), PIXELS, config=workspace)
    columns = Layout("columns", ("age", "city"), ("number", "category"), "", "vector", ("prediction",), "number", "<f8")
    frame = tmp_path / "frame.parquet"
    pd.DataFrame({"age": [1.0, 2.0], "town": ["a", "b"], "y": [0.1, 0.2]}).to_parquet(frame)
    with pytest.raises(ReferenceMismatch, match=r"lacks the model's input column 'city' \(it has age, town, y\)"):
        load_reference(str(frame), columns, config=workspace)
    (tmp_path / "notes.txt").write_bytes(b"\x00\x01 not a table")
    with pytest.raises(ReferenceMismatch, match="is not a Parquet, CSV or .npy file"):
        load_reference(str(tmp_path / "notes.txt"), columns, config=workspace)
    with pytest.raises(ReferenceNotFound, match="no such file"):
        load_reference(str(tmp_path / "missing.parquet"), columns, config=workspace)


def test_a_given_reference_maps_columns_and_its_target(workspace: Config, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = np.column_stack([rng.normal(size=(300, 64)), rng.integers(0, 10, 300)])
    path = tmp_path / "ref.npy"
    np.save(path, data)
    reference = load_reference(str(path), PIXELS, config=workspace)
    assert reference.rows == 300 and reference.target == "x64" and reference.prediction is not None
    assert reference.features["x5"].count == 300
    frame = pd.DataFrame({"age": rng.normal(40, 5, 200), "city": rng.choice(["a", "b"], 200),
                          "label": rng.normal(size=200)})
    frame.to_parquet(tmp_path / "t.parquet")
    columns = Layout("columns", ("age", "city"), ("number", "category"), "", "vector", ("prediction",), "number", "<f8")
    table = load_reference(str(tmp_path / "t.parquet"), columns, config=workspace)
    assert table.target == "label" and table.features["city"].count == 200
