"""The model registry SDK: log_model, references, aliases with history, signatures.

Store-facing behaviour runs on SQLite and on a real PostgreSQL (``store_url``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core import registry
from groundwork.core.registry import ModelRef
from groundwork.core.signatures import Signature, TensorSpec
from groundwork.errors import InvalidInput, ModelNotFound


@pytest.fixture
def config(store_url: str, tmp_path: Path) -> Config:
    return Config(store_url=store_url, artifacts_url=str(tmp_path / "artifacts"))


@pytest.fixture(scope="module")
def digits() -> tuple[Any, Any, Any]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    return LogisticRegression(max_iter=2000).fit(x, y), x, y


def log(config: Config, model: Any, name: str = "digits", **kwargs: Any) -> registry.ModelVersion:
    with gw.start_run(name="train", config=config, capture_code=False) as run:
        version: registry.ModelVersion = run.log_model(model, name, **kwargs)
    return version


def test_log_model_creates_numbered_versions_linked_to_the_run(config: Config, digits: Any) -> None:
    model, x, _ = digits
    with gw.start_run(name="train", config=config, capture_code=False) as run:
        v1 = run.log_model(model, "digits", example=x[:10])
        v2 = run.log_model(model, "digits", signature=Signature.infer(x[:3]))
    assert (v1.version, v2.version, v1.ref) == (1, 2, "digits/1")
    assert v1.run_id == run.id and v1.flavor == "sklearn" and v1.onnx_digest
    assert v1.signature == Signature((TensorSpec(None, "float64", (-1, 64)),), (TensorSpec(None, "int64", (-1,)),))
    assert v2.signature is not None and v2.signature.inputs == v1.signature.inputs  # outputs unknown: no example
    outputs = gw.get_run(run.id, config=config).outputs
    assert {(o.name, o.kind) for o in outputs} >= {("models/digits/1", "model"), ("models/digits/2", "model")}
    assert v1.info["sklearn"] and "checked on the example" in v1.info["onnx_note"]


def test_references_resolve_alias_number_and_latest(config: Config, digits: Any) -> None:
    model, x, _ = digits
    for _ in range(3):
        log(config, model, example=x[:5])
    gw.promote_model("digits", 2, alias="production", reason="best acc", config=config)
    get = registry.get_model_version
    assert get("digits@production", config=config).version == 2
    assert get("digits@production", config=config).aliases == ("production",)
    assert get("digits/1", config=config).version == 1
    assert get("digits", config=config).version == 3
    assert get("digits@latest", config=config).version == 3
    assert [v.version for v in registry.model_versions("digits", config=config)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("ref", "error", "message", "hint"),
    [
        ("digts", ModelNotFound, "no model named 'digts'", "did you mean 'digits'"),
        ("digits@staging", ModelNotFound, "has no alias 'staging' (aliases: production -> 1)",
         "groundwork models promote digits VERSION --alias staging"),
        ("digits/9", ModelNotFound, "has no version 9 (versions: 1)", "groundwork models show digits"),
        ("digits/x", InvalidInput, "is not a version number", "NAME@ALIAS"),
        ("bad name", InvalidInput, "not a valid model name", "letters, digits"),
        ("digits@1abc", InvalidInput, "not a valid alias", "starts with a letter"),
        ("", InvalidInput, "empty model reference", "NAME/VERSION"),
    ],
)
def test_bad_references_say_what_exists(
    config: Config, digits: Any, ref: str, error: type[Exception], message: str, hint: str
) -> None:
    model, x, _ = digits
    log(config, model, example=x[:5])
    gw.promote_model("digits", 1, alias="production", config=config)
    with pytest.raises(error) as caught:
        registry.get_model_version(ref, config=config)
    assert message in str(caught.value)
    assert hint in (getattr(caught.value, "hint", "") or "")


def test_empty_registry_says_how_to_register(config: Config) -> None:
    with pytest.raises(ModelNotFound, match="the registry is empty") as caught:
        registry.get_model_version("digits", config=config)
    assert "log_model" in (caught.value.hint or "")


def test_promote_records_who_when_from_to_and_why(config: Config, digits: Any) -> None:
    model, x, _ = digits
    for _ in range(2):
        log(config, model, example=x[:5])
    first = registry.promote("digits", 1, alias="production", config=config)
    second = registry.promote("digits", 2, alias="production", reason="retrained", config=config)
    assert (first.from_version, first.to_version, second.from_version, second.to_version) == (None, 1, 1, 2)
    assert second.who and second.reason == "retrained" and second.changed_at >= first.changed_at
    registry.promote("digits", 1, alias="staging", config=config)
    assert registry.remove_alias("digits", "staging", reason="done", config=config) == 1
    history = registry.alias_history("digits", config=config)
    assert [(h.alias, h.from_version, h.to_version) for h in history] == [
        ("staging", 1, None), ("staging", None, 1), ("production", 1, 2), ("production", None, 1)]
    with pytest.raises(ModelNotFound, match="has no version 5"):
        registry.promote("digits", 5, alias="production", config=config)
    with pytest.raises(InvalidInput, match="reserved|not a valid alias"):
        registry.promote("digits", 1, alias="latest", config=config)
    summary = registry.list_models(config=config)
    assert [(m.name, m.latest_version, m.aliases) for m in summary] == [("digits", 2, {"production": 2})]


def test_concurrent_log_model_calls_get_distinct_versions(config: Config, digits: Any) -> None:
    model, x, _ = digits
    got: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            got.append(log(config, model, signature=Signature.infer(x[:2])).version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got) == [1, 2, 3, 4]


def test_unknown_objects_are_refused_with_a_hint(config: Config) -> None:
    with pytest.raises(InvalidInput, match="cannot log a builtins.dict as a model") as caught:
        log(config, {"not": "a model"})
    assert "scikit-learn estimator" in (caught.value.hint or "")


# --- signatures (no store) -------------------------------------------------------------
def test_signature_inference_from_arrays_tables_and_tensors() -> None:
    import pandas as pd
    import torch

    arr = Signature.infer(np.zeros((4, 8), dtype=np.float32), np.zeros(4, dtype=np.int64))
    assert arr.describe() == "float32[N, 8] -> int64[N]"
    table = Signature.infer(pd.DataFrame({"age": [1, 2], "city": ["a", "b"]}), pd.Series([0.5, 1.0]))
    assert table.columnar and [(s.name, s.dtype) for s in table.inputs] == [("age", "int64"), ("city", "str")]
    assert table.describe() == "(age: int64[N], city: str[N]) -> float64[N]"
    mapping = Signature.infer({"x": [[1.0, 2.0]], "y": [3]})
    assert mapping.columnar and mapping.inputs[0].shape == (-1, 2)
    tensor = Signature.infer(torch.zeros(3, 2, 5))
    assert tensor.inputs == (TensorSpec(None, "float32", (-1, 2, 5)),)
    assert Signature.from_dict(arr.to_dict()) == arr
    with pytest.raises(InvalidInput, match="ragged or mixed"):
        Signature.infer([[1, 2], [3]])
    with pytest.raises(InvalidInput, match="scalar"):
        Signature.infer(3.0)
    with pytest.raises(InvalidInput, match="not a model signature"):
        Signature.from_dict({"inputs": [{"shape": [1]}]})


def test_reference_parsing() -> None:
    assert ModelRef.parse("digits@production") == ModelRef("digits", alias="production")
    assert ModelRef.parse("digits/3") == ModelRef("digits", version=3)
    assert ModelRef.parse(" digits ") == ModelRef("digits")
    assert ModelRef.parse("digits@latest") == ModelRef("digits")
    assert str(ModelRef.parse("a.b-c_d/12")) == "a.b-c_d/12"


def test_lineage_walks_from_the_alias_to_the_run_inputs(config: Config, digits: Any, tmp_path: Path) -> None:
    from groundwork.core.lineage import lineage

    model, x, _ = digits
    data = tmp_path / "x.npy"
    np.save(data, x)
    with gw.start_run(name="train", config=config, capture_code=False) as run:
        run.log_input(data, name="x.npy")
        version = run.log_model(model, "digits", example=x[:5])
    gw.promote_model("digits", version.version, alias="production", config=config)
    graph = lineage("digits@production", config=config)
    ids = set(graph.nodes)
    assert {"alias:digits@production", "model:digits/1", f"artifact:{version.artifact_digest}", f"run:{run.id}"} <= ids
    assert any(n.kind == "artifact" and n.attrs.get("name") == "x.npy" for n in graph.nodes.values())
    down = lineage(str(data), descendants=True, config=config)
    assert "alias:digits@production" in down.nodes and "model:digits/1" in down.nodes
    assert lineage("digits/1", config=config).root.id == "model:digits/1"
    with pytest.raises(ModelNotFound, match="has no alias 'staging'"):
        lineage("digits@staging", config=config)
