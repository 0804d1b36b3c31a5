"""``@gw.step``: a plain Python function that becomes one node of a pipeline when called inside one.

Inside a ``@gw.pipeline`` function, calling a step does not run it: it adds a node
to the pipeline's graph and returns lazy :class:`Output` handles, which later
steps take as arguments. Outside a pipeline, a step is just its function.

    @gw.step(retries=2, resources={"cpus": 2}, packages=["scikit-learn"])
    def train(data: pd.DataFrame, *, c: float = 1.0) -> LogisticRegression: ...

Arguments of a call are sorted by what they are: an :class:`Output` (or a list of
them) is an input, a :class:`File` or :class:`pathlib.Path` is a file input
digested by content, a JSON-able value is a param, anything else a constant
stored like an output. Each is part of the step's cache key.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from groundwork.errors import InvalidInput

#: Resource names a step may ask for (``memory`` in bytes, or a string such as ``"2GB"``).
RESOURCE_KEYS = ("cpus", "memory", "gpus")


class File(os.PathLike[str]):
    """A file or folder passed to a step as data: the step's cache key covers its content.

    Any :class:`pathlib.Path` argument is treated the same way; ``File`` makes the
    intent explicit for string paths (``ingest(gw.File("data/raw.csv"))``). A step
    receives a :class:`pathlib.Path`, and a step returning a ``File`` or ``Path``
    stores that file or folder as its output.
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"File({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


@dataclass(frozen=True)
class StepOptions:
    """How a step is cached, retried, placed and keyed (set by ``@gw.step(...)``)."""

    name: str
    cache: bool = True
    retries: int = 0
    resources: Mapping[str, Any] = field(default_factory=dict)
    packages: tuple[str, ...] = ()
    outputs: tuple[str, ...] | None = None


class Output:
    """A lazy handle on one output of a step call inside a pipeline function.

    Pass it to another step to make that step depend on this one. It has no value
    while the pipeline is being built; after a run, ``result.output(handle)``
    loads it.
    """

    __slots__ = ("_graph", "node", "name")

    def __init__(self, graph: Any, node: str, name: str) -> None:
        self._graph = graph
        self.node = node
        self.name = name

    def __repr__(self) -> str:
        return f"<Output {self.node}.{self.name}>"

    def after(self, *others: Output | Iterable[Output]) -> Output:
        """Make this output's step wait for the steps of ``others`` (an ordering edge, no data)."""
        for other in _flatten_outputs(others):
            self._graph.add_order(other.node, self.node)
        return self

    def __bool__(self) -> bool:
        raise InvalidInput(
            f"the output of step {self.node!r} has no value while the pipeline is being built",
            hint="a pipeline function only wires steps together; put the condition inside a step",
        )

    def __iter__(self) -> Any:
        raise InvalidInput(
            f"step {self.node!r} has a single output and cannot be unpacked",
            hint="declare several outputs with @gw.step(outputs=('a', 'b')) or a tuple[...] return annotation",
        )


def _flatten_outputs(items: Iterable[Any]) -> list[Output]:
    found: list[Output] = []
    for item in items:
        if isinstance(item, Output):
            found.append(item)
        elif isinstance(item, (list, tuple)):
            found.extend(_flatten_outputs(item))
        else:
            raise InvalidInput(f"after() takes step outputs, not {type(item).__name__}")
    return found


class Step:
    """A function wrapped by ``@gw.step``. Calling it inside a pipeline adds a node."""

    def __init__(self, fn: Callable[..., Any], options: StepOptions) -> None:
        self.fn = fn
        self.options = options
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<Step {self.options.name} ({self.reference})>"

    @property
    def reference(self) -> str:
        """``module:qualname`` of the wrapped function."""
        return f"{getattr(self.fn, '__module__', '?')}:{getattr(self.fn, '__qualname__', self.options.name)}"

    @property
    def output_names(self) -> tuple[str, ...]:
        if self.options.outputs is not None:
            return self.options.outputs
        count = _tuple_arity(self.fn)
        if count is None:
            return ("output",)
        return tuple(f"output_{i}" for i in range(count))

    def with_options(self, **changes: Any) -> Step:
        """A copy with some options changed: ``train.with_options(name="train_big", retries=3)``."""
        return Step(self.fn, _make_options(self.fn, **{**_options_kwargs(self.options), **changes}))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from groundwork.core.pipelines.pipeline import current_builder

        builder = current_builder()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add_call(self, args, kwargs)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied; a clear error on a bad call."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"bad call of step {self.options.name!r}: {exc}") from None
        bound.apply_defaults()
        out: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                for i, item in enumerate(value):
                    out[f"{name}[{i}]"] = item
            elif kind is inspect.Parameter.VAR_KEYWORD:
                for key, item in value.items():
                    out[f"{name}[{key}]"] = item
            else:
                out[name] = value
        return out

    def call_with(self, values: Mapping[str, Any]) -> Any:
        """Call the function with arguments named as :meth:`bind` names them."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        var_pos: dict[int, Any] = {}
        var_kw: dict[str, Any] = {}
        params = self.signature.parameters
        for key, value in values.items():
            if key in params:
                param = params[key]
                if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                    args.append(value)
                else:
                    kwargs[key] = value
                continue
            base, _, rest = key.partition("[")
            index = rest.rstrip("]")
            if base in params and params[base].kind is inspect.Parameter.VAR_POSITIONAL:
                var_pos[int(index)] = value
            else:
                var_kw[index] = value
        if var_pos:
            # Positional-or-keyword parameters must then go positionally, in order, before *args.
            ordered = [n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
            args.extend(kwargs.pop(n) for n in ordered if n in kwargs)
            args.extend(var_pos[i] for i in sorted(var_pos))
        return self.fn(*args, **kwargs, **var_kw)


def _tuple_arity(fn: Callable[..., Any]) -> int | None:
    """N when ``fn`` is annotated ``-> tuple[A, B, ...]`` with N fixed items, else None."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the raw annotation
        hints = getattr(fn, "__annotations__", {})
    ret = hints.get("return")
    if typing.get_origin(ret) is tuple:
        items = typing.get_args(ret)
        if items and Ellipsis not in items and items != ((),):
            return len(items)
    return None


def _options_kwargs(options: StepOptions) -> dict[str, Any]:
    return {
        "name": options.name,
        "cache": options.cache,
        "retries": options.retries,
        "resources": dict(options.resources),
        "packages": list(options.packages),
        "outputs": options.outputs,
    }


def _make_options(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    resources: Mapping[str, Any] | None = None,
    packages: Iterable[str] = (),
    outputs: Iterable[str] | str | None = None,
) -> StepOptions:
    step_name = str(name or getattr(fn, "__name__", "step"))
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise InvalidInput(f"step {step_name!r}: retries must be a whole number >= 0, not {retries!r}")
    res = dict(resources or {})
    unknown = sorted(set(res) - set(RESOURCE_KEYS))
    if unknown:
        raise InvalidInput(
            f"step {step_name!r}: unknown resource {', '.join(map(repr, unknown))}",
            hint=f"use {', '.join(RESOURCE_KEYS)}",
        )
    for key in ("cpus", "gpus"):
        if key in res and (not isinstance(res[key], (int, float)) or res[key] < 0):
            raise InvalidInput(f"step {step_name!r}: resources[{key!r}] must be a number >= 0, not {res[key]!r}")
    if "memory" in res:
        res["memory"] = parse_memory(res["memory"], step_name)
    if isinstance(packages, str):
        packages = [packages]
    names: tuple[str, ...] | None
    if outputs is None:
        names = None
    else:
        names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise InvalidInput(f"step {step_name!r}: outputs must be distinct non-empty names, not {outputs!r}")
    return StepOptions(
        name=step_name, cache=bool(cache), retries=retries, resources=res, packages=tuple(packages), outputs=names
    )


_MEMORY_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
                 "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_memory(value: Any, step_name: str = "step") -> int:
    """``2_000_000``, ``"512MB"``, ``"2GiB"`` -> bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(number) :]
        if unit in _MEMORY_UNITS:
            try:
                return int(float(number) * _MEMORY_UNITS[unit])
            except ValueError:
                pass
    raise InvalidInput(
        f"step {step_name!r}: resources['memory'] must be bytes or a size such as '2GB', not {value!r}"
    )


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    resources: Mapping[str, Any] | None = None,
    packages: Iterable[str] = (),
    outputs: Iterable[str] | str | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    resources: Mapping[str, Any] | None = None,
    packages: Iterable[str] = (),
    outputs: Iterable[str] | str | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make ``fn`` a pipeline step. Use bare (``@gw.step``) or with options:

    * ``cache=False``: always run (never reuse a result, never offer one);
    * ``retries=N``: run again up to N times when it raises;
    * ``resources={"cpus": 2, "memory": "4GB", "gpus": 1}``: what the step needs
      (Ray reserves it; the local executor counts ``cpus`` against its workers);
    * ``packages=["scikit-learn"]``: distributions whose installed version is part of the cache key;
    * ``outputs=("train", "test")``: names of several outputs (the step returns a tuple);
      a ``-> tuple[A, B]`` annotation gives ``output_0``, ``output_1`` without it.
    """
    kwargs: dict[str, Any] = {
        "name": name, "cache": cache, "retries": retries, "resources": resources,
        "packages": packages, "outputs": outputs,
    }

    def wrap(func: Callable[..., Any]) -> Step:
        if isinstance(func, Step):
            return func.with_options(**{k: v for k, v in kwargs.items() if v is not None})
        if not callable(func):
            raise InvalidInput(f"@gw.step decorates a function, not {type(func).__name__}")
        return Step(func, _make_options(func, **kwargs))

    if fn is not None:
        return wrap(fn)
    return wrap


def is_json_value(value: Any) -> bool:
    """Whether ``value`` survives JSON unchanged in meaning (tuples become lists)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    try:
        json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return False
    return isinstance(value, (list, tuple, dict))


def is_file_argument(value: Any) -> bool:
    return isinstance(value, (File, Path))


def file_path(value: Any) -> Path:
    return value.path if isinstance(value, File) else Path(value)

