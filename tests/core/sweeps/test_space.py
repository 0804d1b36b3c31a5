"""Search spaces: the Python helpers, the YAML form, and one clear line for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

import groundwork as gw
from groundwork.core.sweeps.space import (
    Choice,
    Integer,
    Uniform,
    check_space,
    load_space,
    parse_space,
    space_from_json,
    space_to_json,
)
from groundwork.errors import InvalidInput


def test_python_and_yaml_forms_agree() -> None:
    python = check_space({
        "lr": gw.loguniform(1e-4, 1e-1), "x": gw.uniform(-5, 5), "layers": gw.integer(1, 4),
        "width": gw.choice([64, 128, 256]), "act": ["relu", "gelu"], "fixed": 3,
    })
    yaml = parse_space(
        "lr: loguniform(1e-4, 1e-1)\nx: uniform(-5, 5)\nlayers: integer(1, 4)\n"
        "width: choice([64, 128, 256])\nact: [relu, gelu]\nfixed: 3\n"
    )
    assert python == yaml
    assert yaml["lr"] == Uniform(1e-4, 1e-1, log=True)
    assert yaml["layers"] == Integer(1, 4)
    assert yaml["width"] == Choice((64, 128, 256))
    assert yaml["fixed"] == Choice((3,))
    # Kept on the sweep run as JSON and read back the same (log-spaced integers included).
    wide = {**python, "units": gw.integer(1, 64, log=True), "even": gw.integer(0, 10, step=2)}
    assert space_from_json(space_to_json(wide)) == wide


def test_to_optuna() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    assert gw.loguniform(1e-4, 1e-1).to_optuna() == FloatDistribution(1e-4, 1e-1, log=True)
    assert gw.integer(1, 4).to_optuna() == IntDistribution(1, 4)
    assert gw.choice(["a", "b"]).to_optuna() == CategoricalDistribution(["a", "b"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr: loguniform(0, 1)", "'lr': loguniform(0, 1) needs 0 < low < high"),
        ("x: uniform(5, -5)", "'x': uniform(5, -5) needs low < high"),
        ("n: integer(1.5, 4)", "'n': integer's low must be a whole number"),
        ("w: choice([])", "'w': choice needs at least one value"),
        ("w: choice([1, 1])", "lists a value twice"),
        ("lr: logunifrom(1e-4, 1)", "'lr': cannot read 'logunifrom(1e-4, 1)'"),
        ("lr: loguniform(1e-4, __import__('os'))", "are not plain values"),
        ("lr: [unclosed", "is not valid YAML"),
        ("- a\n- b", "must be a mapping"),
        ("lr: {a: 1}", "'lr': {'a': 1} is not a range"),
    ],
)
def test_bad_space_is_one_clear_line(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_space(text)
    assert expected in caught.value.one_line()
    assert "\n" not in caught.value.one_line()


def test_bad_python_space() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        check_space({})
    with pytest.raises(InvalidInput, match="parameter name"):
        check_space({"has space": gw.uniform(0, 1)})
    with pytest.raises(InvalidInput, match="finite"):
        gw.uniform(0, float("inf"))


def test_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_space(tmp_path / "nope.yaml")
