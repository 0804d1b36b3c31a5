"""The graph of a pipeline: named nodes, the edges between them, cycles, and a topological order.

A :class:`Graph` is what calling a ``@gw.pipeline`` function builds. Each node is
one call of a step; an edge ``a -> b`` means ``b`` needs ``a`` first, either
because ``b`` takes one of ``a``'s outputs as an argument (a data edge) or because
the pipeline said ``b_output.after(a_output)`` (an ordering edge).

The graph is plain data: it knows nothing of caches, runs or executors, so it
serializes to the JSON stored with every pipeline run (see ``docs/pipelines.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from groundwork.errors import InvalidInput

if TYPE_CHECKING:
    from groundwork.core.pipelines.step import Step

#: The version of the JSON form of a graph (``Graph.to_dict``).
GRAPH_FORMAT = "groundwork.pipeline/1"


class PipelineCycle(InvalidInput):
    """A pipeline whose steps depend on each other in a loop."""

    headline = "Pipeline has a cycle"


@dataclass(frozen=True)
class OutputRef:
    """One output of one node: ``node`` 's output called ``output``."""

    node: str
    output: str

    def label(self) -> str:
        return f"{self.node}.{self.output}"


@dataclass(frozen=True)
class Arg:
    """How one argument of a step call is supplied.

    ``kind`` is one of:

    * ``"input"``: an upstream output (``ref``);
    * ``"inputs"``: a list of upstream outputs (``refs``), received as a list;
    * ``"file"``: a local file or folder (``value`` is its path), digested by content;
    * ``"param"``: a JSON-able value (``value``), part of the step's params;
    * ``"const"``: any other value (``value``), stored as an artifact like an output.
    """

    kind: str
    value: Any = None
    ref: OutputRef | None = None
    refs: tuple[OutputRef, ...] = ()

    def upstream(self) -> tuple[OutputRef, ...]:
        if self.ref is not None:
            return (self.ref,)
        return self.refs


@dataclass
class Node:
    """One call of a step inside a pipeline."""

    name: str
    step: Step
    args: dict[str, Arg]
    outputs: tuple[str, ...]
    after: set[str] = field(default_factory=set)

    @property
    def params(self) -> dict[str, Any]:
        """The JSON-able arguments (what the run records as params)."""
        return {k: a.value for k, a in self.args.items() if a.kind == "param"}

    def dependencies(self) -> set[str]:
        """Names of the nodes this one needs first."""
        deps = {ref.node for arg in self.args.values() for ref in arg.upstream()}
        return deps | self.after


class Graph:
    """Nodes in the order they were added, and the edges between them."""

    def __init__(self, name: str = "pipeline") -> None:
        self.name = name
        self.nodes: dict[str, Node] = {}
        #: What the pipeline function returned: output references (possibly nested in a tuple/dict).
        self.returns: Any = None
        #: The pipeline's own parameters (bound arguments of the pipeline function).
        self.params: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    # -- building ---------------------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        """``base``, or ``base_2``, ``base_3``... when a step is called more than once."""
        if base not in self.nodes:
            return base
        n = 2
        while f"{base}_{n}" in self.nodes:
            n += 1
        return f"{base}_{n}"

    def add(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise InvalidInput(f"pipeline {self.name!r} already has a step named {node.name!r}")
        for dep in node.dependencies():
            if dep not in self.nodes:
                raise InvalidInput(
                    f"step {node.name!r} uses the output of {dep!r}, which is not a step of pipeline {self.name!r}",
                    hint="pass outputs of steps called in the same pipeline function",
                )
        self.nodes[node.name] = node
        return node

    def add_order(self, before: str, after: str) -> None:
        """Make ``after`` wait for ``before`` (no data passes); refuses an edge that closes a cycle."""
        for name in (before, after):
            if name not in self.nodes:
                raise InvalidInput(f"pipeline {self.name!r} has no step named {name!r}")
        self.nodes[after].after.add(before)
        cycle = self.find_cycle()
        if cycle:
            self.nodes[after].after.discard(before)
            raise self._cycle_error(cycle)

    # -- queries ------------------------------------------------------------------------------------
    def edges(self) -> list[tuple[str, str]]:
        """Every ``(upstream, downstream)`` pair, in node order, without duplicates."""
        out: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        for node in self.nodes.values():
            for dep in sorted(node.dependencies(), key=self._position):
                if (dep, node.name) not in seen:
                    seen.add((dep, node.name))
                    out.append((dep, node.name))
        return out

    def _position(self, name: str) -> int:
        return list(self.nodes).index(name) if name in self.nodes else len(self.nodes)

    def downstream(self, name: str) -> set[str]:
        """Every node that (transitively) depends on ``name``."""
        children: dict[str, set[str]] = {n: set() for n in self.nodes}
        for up, down in self.edges():
            children[up].add(down)
        found: set[str] = set()
        stack = [name]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def find_cycle(self) -> list[str] | None:
        """One cycle as a list of node names (first == last), or None."""
        return find_cycle({n.name: n.dependencies() for n in self.nodes.values()})

    def check(self) -> None:
        """Raise :class:`PipelineCycle` if the graph has a cycle."""
        cycle = self.find_cycle()
        if cycle:
            raise self._cycle_error(cycle)

    def _cycle_error(self, cycle: Sequence[str]) -> PipelineCycle:
        return PipelineCycle(
            f"pipeline {self.name!r} has a cycle: {' -> '.join(cycle)}",
            hint="a step cannot depend, directly or through others, on its own output",
        )

    def topological_order(self) -> list[str]:
        """Node names such that every node comes after all it depends on (ties keep call order)."""
        self.check()
        return topological_order({n.name: n.dependencies() for n in self.nodes.values()})

    def to_dict(self, *, ref: str | None = None) -> dict[str, Any]:
        """The JSON form stored with every pipeline run (documented in docs/pipelines.md)."""
        nodes = []
        for node in self.nodes.values():
            options = node.step.options
            inputs: dict[str, Any] = {}
            for arg_name, arg in node.args.items():
                if arg.kind == "input" and arg.ref is not None:
                    inputs[arg_name] = arg.ref.label()
                elif arg.kind == "inputs":
                    inputs[arg_name] = [r.label() for r in arg.refs]
                elif arg.kind == "file":
                    inputs[arg_name] = {"file": str(arg.value)}
                elif arg.kind == "const":
                    inputs[arg_name] = {"const": type(arg.value).__name__}
            nodes.append(
                {
                    "name": node.name,
                    "step": options.name,
                    "function": node.step.reference,
                    "inputs": inputs,
                    "params": node.params,
                    "outputs": list(node.outputs),
                    "after": sorted(node.after),
                    "cache": options.cache,
                    "retries": options.retries,
                    "resources": dict(options.resources),
                    "packages": list(options.packages),
                }
            )
        return {
            "format": GRAPH_FORMAT,
            "pipeline": self.name,
            "ref": ref,
            "params": self.params,
            "nodes": nodes,
            "edges": [{"from": a, "to": b} for a, b in self.edges()],
            "returns": _returns_json(self.returns),
        }


def _returns_json(value: Any) -> Any:
    if isinstance(value, OutputRef):
        return value.label()
    if isinstance(value, (list, tuple)):
        return [_returns_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _returns_json(v) for k, v in value.items()}
    return None


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle in a ``{node: dependencies}`` mapping, as ``[a, b, ..., a]``; None when acyclic.

    Iterative depth-first search (a deep chain must not hit the recursion limit).
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(deps, white)
    for start in deps:
        if color[start] != white:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(deps[start])))]
        path = [start]
        color[start] = grey
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                color[node] = black
                stack.pop()
                path.pop()
                continue
            if child not in color:  # a dependency outside the mapping cannot close a loop
                continue
            if color[child] == grey:
                # `path` runs start..node; the cycle runs child..node, back to child. Report it
                # in execution order (dependency first).
                loop = path[path.index(child) :]
                return [*reversed(loop), loop[-1]]
            if color[child] == white:
                color[child] = grey
                path.append(child)
                stack.append((child, iter(sorted(deps.get(child, ())))))
    return None


def topological_order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Kahn's algorithm; among nodes ready at once, the mapping's order wins. Assumes no cycle."""
    position = {name: i for i, name in enumerate(deps)}
    remaining = {name: {d for d in ds if d in deps} for name, ds in deps.items()}
    children: dict[str, list[str]] = {name: [] for name in deps}
    for name, ds in remaining.items():
        for d in ds:
            children[d].append(name)
    ready = sorted((n for n, ds in remaining.items() if not ds), key=position.__getitem__)
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        newly = []
        for child in children[name]:
            remaining[child].discard(name)
            if not remaining[child]:
                newly.append(child)
        if newly:
            ready = sorted([*ready, *newly], key=position.__getitem__)
    if len(order) != len(deps):
        cycle = find_cycle(deps)
        raise PipelineCycle(f"the graph has a cycle: {' -> '.join(cycle or [])}")
    return order
