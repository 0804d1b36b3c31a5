"""``@gw.pipeline``: a function that calls steps; calling it builds a graph, running it executes it.

    @gw.pipeline
    def digits(epochs: int = 20):
        raw = ingest()
        train_set, test_set = split(raw)
        model = train(train_set, epochs=epochs)
        return evaluate(model, test_set)

    result = digits(epochs=5)                 # build, then run on the local executor
    result = gw.run_pipeline(digits, params={"epochs": 5}, executor="ray")
    graph = digits.build(epochs=5)            # only the graph

The pipeline function runs once, in the calling process, while the graph is
built; step calls inside it return :class:`~groundwork.core.pipelines.step.Output`
handles, not values.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from groundwork.core.pipelines.dag import Arg, Graph, Node, OutputRef
from groundwork.core.pipelines.step import Output, Step, file_path, is_file_argument, is_json_value
from groundwork.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from groundwork.core.pipelines.run import PipelineResult


class PipelineNotFound(NotFound):
    headline = "Pipeline not found"


_builder: contextvars.ContextVar[_Builder | None] = contextvars.ContextVar("groundwork_pipeline_builder", default=None)


def current_builder() -> _Builder | None:
    """The graph builder of the pipeline function being called, if any."""
    return _builder.get()


class _Builder:
    """Collects the step calls of one pipeline function call into a :class:`Graph`."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def add_call(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Output | tuple[Output, ...]:
        name = self.graph.unique_name(step.options.name)
        values = step.bind(args, kwargs)
        spec: dict[str, Arg] = {}
        for arg_name, value in values.items():
            spec[arg_name] = self._classify(name, arg_name, value)
        outputs = step.output_names
        self.graph.add(Node(name=name, step=step, args=spec, outputs=outputs))
        handles = tuple(Output(self.graph, name, out) for out in outputs)
        if step.options.outputs is None and outputs == ("output",):
            return handles[0]
        return handles

    def _classify(self, node: str, arg_name: str, value: Any) -> Arg:
        if isinstance(value, Output):
            self._check_own(value, node)
            return Arg("input", ref=OutputRef(value.node, value.name))
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, Output) for v in value):
            for v in value:
                self._check_own(v, node)
            return Arg("inputs", refs=tuple(OutputRef(v.node, v.name) for v in value))
        if _contains_output(value):
            raise InvalidInput(
                f"step {node!r}: argument {arg_name!r} mixes step outputs with other values",
                hint="pass step outputs directly, or as a list made only of outputs",
            )
        if is_file_argument(value):
            return Arg("file", value=file_path(value))
        if is_json_value(value):
            return Arg("param", value=value)
        return Arg("const", value=value)

    def _check_own(self, output: Output, node: str) -> None:
        if output._graph is not self.graph:
            raise InvalidInput(
                f"step {node!r} got an output of step {output.node!r} from another pipeline call",
                hint="steps can only use outputs of steps called in the same pipeline function",
            )


def _contains_output(value: Any) -> bool:
    if isinstance(value, Output):
        return True
    if isinstance(value, (list, tuple, set)):
        return any(_contains_output(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_output(v) for v in value.values())
    return False


def _returns(value: Any) -> Any:
    """The pipeline function's return value with handles turned into output references."""
    if isinstance(value, Output):
        return OutputRef(value.node, value.name)
    if isinstance(value, (list, tuple)):
        return tuple(_returns(v) for v in value)
    if isinstance(value, dict):
        return {k: _returns(v) for k, v in value.items()}
    return None


class Pipeline:
    """A function decorated with ``@gw.pipeline``."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = str(name or getattr(fn, "__name__", "pipeline"))
        self.signature = inspect.signature(fn)
        #: ``module:function`` or ``path/to/file.py:function`` when loaded by :func:`load_pipeline`.
        self.ref: str | None = None
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}>"

    @property
    def reference(self) -> str:
        return self.ref or f"{getattr(self.fn, '__module__', '?')}:{getattr(self.fn, '__qualname__', self.name)}"

    def bind_params(self, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **dict(kwargs or {}))
        except TypeError as exc:
            accepted = ", ".join(self.signature.parameters) or "none"
            raise InvalidInput(
                f"bad parameters for pipeline {self.name!r}: {exc}", hint=f"it accepts: {accepted}"
            ) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def build(self, *args: Any, **kwargs: Any) -> Graph:
        """Call the pipeline function to collect its steps into a graph (no step runs)."""
        params = self.bind_params(args, kwargs)
        graph = Graph(self.name)
        graph.params = {k: v for k, v in params.items() if is_json_value(v)}
        token = _builder.set(_Builder(graph))
        try:
            returned = self.fn(**params)
        finally:
            _builder.reset(token)
        graph.returns = _returns(returned)
        graph.check()
        if not graph.nodes:
            raise InvalidInput(
                f"pipeline {self.name!r} calls no steps",
                hint="decorate the functions it calls with @gw.step",
            )
        return graph

    def run(self, *args: Any, **options: Any) -> PipelineResult:
        """Run with options: ``run(executor="ray", cache=False, params={...}, config=...)``."""
        from groundwork.core.pipelines.run import run_pipeline

        if args:
            raise InvalidInput("Pipeline.run takes keyword options; give pipeline parameters as params={...}")
        return run_pipeline(self, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> PipelineResult:
        """Run the pipeline with these parameters on the local executor (cache on)."""
        from groundwork.core.pipelines.run import run_pipeline

        return run_pipeline(self, params=self.bind_params(args, kwargs))


def pipeline(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Make ``fn`` a pipeline: ``@gw.pipeline`` or ``@gw.pipeline(name="digits")``."""

    def wrap(func: Callable[..., Any]) -> Pipeline:
        if not callable(func):
            raise InvalidInput(f"@gw.pipeline decorates a function, not {type(func).__name__}")
        return Pipeline(func, name=name)

    if fn is not None:
        return wrap(fn)
    return wrap


# -- finding a pipeline from `module:function` or `path/to/file.py:function` ----------------------------


def load_module(target: str) -> Any:
    """Import ``package.module`` or execute ``path/to/file.py`` (as a module named after the file)."""
    looks_like_path = target.endswith(".py") or "/" in target or "\\" in target
    if looks_like_path:
        path = Path(target).expanduser()
        if not path.is_file():
            raise PipelineNotFound(f"no Python file {target!r}", hint="give module:function or path/to/file.py:function")
        path = path.resolve()
        name = path.stem
        existing = sys.modules.get(name)
        existing_file = getattr(existing, "__file__", None)
        if existing is not None and existing_file and Path(existing_file).resolve() == path:
            return existing
        # Like `python path/to/file.py`: the file's folder goes first on sys.path (and stays, for
        # the imports the module makes later and for worker processes).
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PipelineNotFound(f"cannot load {target!r} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise _import_error(target, exc) from exc
        return module
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # `groundwork pipeline run pkg.module:fn` finds modules of the current folder
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == target or target.startswith(exc.name + ".")):
            raise PipelineNotFound(
                f"cannot import module {target!r}: no module named {exc.name!r}",
                hint="give module:function (importable from the current folder) or path/to/file.py:function",
            ) from None
        raise _import_error(target, exc) from exc
    except SyntaxError as exc:
        raise _import_error(target, exc) from exc
    except Exception as exc:
        raise _import_error(target, exc) from exc


def _import_error(target: str, exc: BaseException) -> InvalidInput:
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else "?"
        detail = f"SyntaxError at {where}: {exc.msg}"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return InvalidInput(f"importing {target!r} failed: {detail}")


def load_pipeline(ref: str) -> Pipeline:
    """The pipeline named by ``module:function`` or ``path/to/file.py:function``."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise InvalidInput(
            f"{ref!r} does not name a pipeline",
            hint="write module:function (e.g. myproject.pipelines:train) or path/to/file.py:function",
        )
    module = load_module(target)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = sorted(n for n, v in vars(module).items() if isinstance(v, Pipeline))
            hint = f"pipelines in {target}: {', '.join(found)}" if found else f"{target} defines no @gw.pipeline"
            raise PipelineNotFound(f"{target!r} has no attribute {attr!r}", hint=hint)
        obj = getattr(obj, part)
    if not isinstance(obj, Pipeline):
        raise InvalidInput(
            f"{ref!r} is a {type(obj).__name__}, not a pipeline",
            hint="decorate the function with @gw.pipeline",
        )
    obj.ref = ref
    return obj
