"""Search spaces: ``{"lr": gw.loguniform(1e-4, 1e-1), "width": gw.choice([64, 128])}``.

Four kinds of dimension, each a small frozen dataclass that turns into an Optuna
distribution (Optuna is imported only then):

=========================  =======================================  ==========================
Python                     YAML (``groundwork sweep --space``)       Optuna
=========================  =======================================  ==========================
``loguniform(lo, hi)``     ``lr: loguniform(1e-4, 1e-1)``            ``FloatDistribution(log)``
``uniform(lo, hi)``        ``x: uniform(-5, 5)``                     ``FloatDistribution``
``integer(lo, hi)``        ``layers: integer(1, 4)``                 ``IntDistribution``
``choice([a, b])``         ``width: choice([64, 128, 256])``         ``CategoricalDistribution``
=========================  =======================================  ==========================

A YAML value that is a plain list means ``choice`` of it; a plain scalar is a fixed value
(a one-element choice). Every mistake is one :class:`~groundwork.errors.InvalidInput` line
naming the parameter.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from groundwork.errors import InvalidInput

Scalar: TypeAlias = str | int | float | bool | None
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")


@dataclass(frozen=True)
class Uniform:
    """A float drawn evenly between ``low`` and ``high``; ``log=True`` evenly in log space."""

    low: float
    high: float
    log: bool = False

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)

    def describe(self) -> str:
        return f"{'loguniform' if self.log else 'uniform'}({self.low!r}, {self.high!r})"


@dataclass(frozen=True)
class Integer:
    """An integer between ``low`` and ``high`` inclusive (every ``step``; ``log=True`` in log space)."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        extra = f", {self.step}, True" if self.log else f", {self.step}" if self.step != 1 else ""
        return f"integer({self.low}, {self.high}{extra})"


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (numbers, strings, booleans or None)."""

    values: tuple[Scalar, ...]

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.values))

    def describe(self) -> str:
        return f"choice({json.dumps(list(self.values))})"


Dimension: TypeAlias = Uniform | Integer | Choice


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number, not {value!r}")
    return float(value)


def uniform(low: float, high: float) -> Uniform:
    """A float drawn evenly from ``[low, high]``."""
    lo, hi = _number(low, "uniform's low"), _number(high, "uniform's high")
    if not lo < hi:
        raise InvalidInput(f"uniform({low!r}, {high!r}) needs low < high")
    return Uniform(lo, hi)


def loguniform(low: float, high: float) -> Uniform:
    """A float drawn evenly in log space from ``[low, high]`` (both positive): learning rates."""
    lo, hi = _number(low, "loguniform's low"), _number(high, "loguniform's high")
    if not 0 < lo < hi:
        raise InvalidInput(f"loguniform({low!r}, {high!r}) needs 0 < low < high")
    return Uniform(lo, hi, log=True)


def integer(low: int, high: int, step: int = 1, log: bool = False) -> Integer:
    """An integer from ``low`` to ``high`` inclusive."""
    for value, what in ((low, "low"), (high, "high"), (step, "step")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"integer's {what} must be a whole number, not {value!r}")
    if not low <= high:
        raise InvalidInput(f"integer({low}, {high}) needs low <= high")
    if step < 1 or (log and step != 1):
        raise InvalidInput(f"integer's step must be 1 or more (and 1 with log=True), not {step}")
    if log and low < 1:
        raise InvalidInput(f"integer({low}, {high}, log=True) needs low >= 1")
    return Integer(low, high, step, log)


def choice(values: Sequence[Scalar]) -> Choice:
    """One of ``values``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidInput(f"choice needs a list of values, not {values!r}")
    items = tuple(values)
    if not items:
        raise InvalidInput("choice needs at least one value")
    for item in items:
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise InvalidInput(f"choice values must be numbers, strings, booleans or null, not {item!r}")
    if len({json.dumps(item) for item in items}) != len(items):
        raise InvalidInput(f"choice({list(items)!r}) lists a value twice")
    return Choice(items)


def check_space(space: Mapping[str, Any]) -> dict[str, Dimension]:
    """``space`` with every value a :data:`Dimension` (a plain list is a choice, a scalar fixed)."""
    if not isinstance(space, Mapping) or not space:
        raise InvalidInput(
            "the search space is empty or not a mapping",
            hint='give names and ranges, e.g. {"lr": gw.loguniform(1e-4, 1e-1)}',
        )
    checked: dict[str, Dimension] = {}
    for name, value in space.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(f"parameter name {name!r} must be letters, digits, '_', '-' or '.'")
        if isinstance(value, (Uniform, Integer, Choice)):
            checked[name] = value
        elif isinstance(value, (list, tuple)):
            checked[name] = _in(name, choice, value)
        elif value is None or isinstance(value, (str, int, float, bool)):
            checked[name] = Choice((value,))
        else:
            raise InvalidInput(
                f"parameter {name!r}: {value!r} is not a range",
                hint="use gw.loguniform, gw.uniform, gw.integer or gw.choice",
            )
    return checked


def _in(name: str, make: Any, *args: Any) -> Dimension:
    try:
        result: Dimension = make(*args)
    except InvalidInput as exc:
        raise InvalidInput(f"parameter {name!r}: {exc.message}", hint=exc.hint) from None
    except TypeError as exc:
        raise InvalidInput(f"parameter {name!r}: {exc}") from None
    return result


_MAKERS: dict[str, Any] = {"uniform": uniform, "loguniform": loguniform, "integer": integer, "choice": choice}
_CALL = re.compile(r"^\s*([a-z]+)\s*\((.*)\)\s*$", re.S)


def parse_dimension(name: str, text: str) -> Dimension:
    """``"loguniform(1e-4, 1e-1)"`` -> :class:`Uniform` (the YAML form of one dimension)."""
    match = _CALL.match(text)
    if not match or match.group(1) not in _MAKERS:
        raise InvalidInput(
            f"parameter {name!r}: cannot read {text!r}",
            hint="write loguniform(1e-4, 1e-1), uniform(-5, 5), integer(1, 4) or choice([64, 128])",
        )
    try:
        args = ast.literal_eval(f"({match.group(2)},)") if match.group(2).strip() else ()
    except (ValueError, SyntaxError):
        raise InvalidInput(f"parameter {name!r}: the arguments of {text!r} are not plain values") from None
    return _in(name, _MAKERS[match.group(1)], *args)


def parse_space(text: str, source: str = "the space") -> dict[str, Dimension]:
    """A YAML (or JSON) mapping of ``name: loguniform(1e-4, 1e-1)`` lines."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidInput(f"{source} is not valid YAML{where}") from None
    if not isinstance(data, dict) or not data:
        raise InvalidInput(f"{source} must be a mapping of names to ranges, e.g. 'lr: loguniform(1e-4, 1e-1)'")
    space: dict[str, Any] = {}
    for name, value in data.items():
        space[str(name)] = parse_dimension(str(name), value) if isinstance(value, str) and "(" in value else value
    return check_space(space)


def load_space(path: str | Path) -> dict[str, Dimension]:
    """:func:`parse_space` of a file, with a clear line when it is missing."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"space file {str(file)!r} does not exist")
    return parse_space(file.read_text(encoding="utf-8"), source=f"space file {str(file)!r}")


def space_to_json(space: Mapping[str, Dimension]) -> str:
    """The space as JSON text (kept on the sweep run, so a resumed sweep searches the same space)."""
    return json.dumps({name: dim.describe() for name, dim in space.items()}, sort_keys=True)


def space_from_json(text: str) -> dict[str, Dimension]:
    return {name: parse_dimension(name, value) for name, value in json.loads(text).items()}


__all__ = [
    "Choice",
    "Dimension",
    "Integer",
    "Uniform",
    "check_space",
    "choice",
    "integer",
    "load_space",
    "loguniform",
    "parse_dimension",
    "parse_space",
    "space_from_json",
    "space_to_json",
    "uniform",
]
