"""One lineage graph over artifacts, runs and pipelines (and, through providers, model versions).

Nodes have stable ids: ``artifact:<sha256>``, ``run:<run id>``; providers add
their own kinds (the registry adds ``model:<name>/<version>`` and
``alias:<name>@<alias>``). Every edge points the way data flows, from cause to
effect:

==============  ==============================  =========================================
relation        edge                            meaning
==============  ==============================  =========================================
``input``       artifact -> run                 the run read the artifact
``output``      run -> artifact                 the run wrote the artifact
``step``        step run -> pipeline run        the step ran as part of the pipeline run
``cached``      original run -> cached run      the cached run reused the original's result
``reproduced``  original run -> reproduction    ``groundwork reproduce`` reran the original
==============  ==============================  =========================================

:func:`lineage` starts at a TARGET (a run id, id prefix or name; an artifact digest
or prefix; a file path, digested and looked up; or whatever a provider resolves,
such as ``digits@production``) and walks the edges backwards (ancestry, what it
was made from) or forwards (``descendants=True``, what was made from it), one
batch of queries per hop. Cached runs are left out of the walk unless they are the
target: they add no new data, only "this was reused".

Providers extend the graph (datasette-style hooks, the built-in provider uses the
same interface)::

    class ModelProvider:
        def resolve(self, ref, ctx): ...            # -> LineageNode | None
        def expand(self, nodes, direction, ctx): ...  # -> [(LineageEdge, LineageNode)]

    register_lineage_provider(ModelProvider())
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from groundwork.config import Config
from groundwork.errors import AmbiguousReference, ArtifactNotFound, InvalidInput, NotFound, RunNotFound
from groundwork.storage.records import ArtifactLink, RunRow
from groundwork.storage.stores import MetadataStore, PipelineStore, RegistryStore, Stores

UP = "up"
DOWN = "down"
#: A walk stops adding nodes past this many (the graph says it was truncated).
MAX_NODES = 2000


class TargetNotFound(NotFound):
    headline = "Lineage target not found"


@dataclass(frozen=True)
class LineageNode:
    """A run, an artifact, or a provider's node (a model version, an alias...)."""

    id: str
    kind: str
    label: str
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The one JSON shape of a node, for ``groundwork lineage --json`` and ``/api/v1/lineage``.

        ``type`` is the node's kind (run, artifact, model, alias, or a provider's); ``title``
        the full label; ``label`` a short one; ``ref`` what ``groundwork show`` / ``models show``
        / ``artifacts get`` accept for it; ``kind`` the run's or artifact's own kind, where it has one.
        """
        attrs = self.attrs
        out: dict[str, Any] = {"id": self.id, "type": self.kind, "title": self.label, "label": self.label,
                               "ref": None, "attrs": attrs}
        if self.kind == "run":
            out.update(label=attrs.get("name") or self.id[4:16], ref=attrs.get("run_id"), status=attrs.get("status"),
                       kind=attrs.get("run_kind"))
        elif self.kind == "artifact":
            name = str(attrs.get("name") or attrs.get("digest", "")[:12])
            out.update(label=_short_name(name), ref=attrs.get("digest"), kind=attrs.get("artifact_kind"),
                       size=attrs.get("size"))
        elif self.kind == "model" and "name" in attrs and "version" in attrs:
            out.update(label=f"{attrs['name']} v{attrs['version']}", ref=f"{attrs['name']}/{attrs['version']}",
                       aliases=attrs.get("aliases", []), flavor=attrs.get("flavor"))
        elif self.kind == "alias" and "name" in attrs and "alias" in attrs:
            out.update(label=f"{attrs['name']}@{attrs['alias']}", ref=f"{attrs['name']}@{attrs['alias']}")
        return out


def _short_name(name: str) -> str:
    """The last part of an artifact's path, or the last two when the last says little (``models/digits/1``)."""
    parts = [p for p in name.split("/") if p]
    if not parts:
        return name
    if len(parts) > 1 and (parts[-1].isdigit() or len(parts[-1]) <= 2):
        return "/".join(parts[-2:])
    return parts[-1]


@dataclass(frozen=True)
class LineageEdge:
    """``source`` -> ``target`` in the direction data flows."""

    source: str
    target: str
    relation: str
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "relation": self.relation,
                "label": self.label or self.relation}


class LineageContext:
    """What providers get: the config and stores, and helpers that build nodes with the standard ids."""

    def __init__(self, config: Config, stores: Stores) -> None:
        self.config = config
        self.store: MetadataStore = stores.metadata
        self.registry: RegistryStore = stores.registry
        self.pipelines: PipelineStore = stores.pipelines
        self._runs: dict[str, RunRow] = {}

    def runs(self, run_ids: Iterable[str]) -> dict[str, RunRow]:
        """Run rows by id (cached for the walk)."""
        missing = [r for r in dict.fromkeys(run_ids) if r not in self._runs]
        if missing:
            for row in self.store.get_runs(missing):
                self._runs[row.id] = row
        return {r: self._runs[r] for r in run_ids if r in self._runs}

    @staticmethod
    def run_node(row: RunRow) -> LineageNode:
        return run_node(row)

    @staticmethod
    def artifact_node(digest: str, link: ArtifactLink | None = None, **attrs: Any) -> LineageNode:
        return artifact_node(digest, link, **attrs)


def run_node(row: RunRow) -> LineageNode:
    kind = row.kind or "run"
    status = row.status
    label = f"{kind} {row.name} {row.id[:12]} [{status}]"
    attrs: dict[str, Any] = {
        "run_id": row.id, "name": row.name, "run_kind": kind, "status": status, "created_at": row.created_at,
        "parent_id": row.parent_id, "git_commit": row.git_commit, "params": dict(row.params),
    }
    if row.cached_from:
        attrs["cached_from"] = row.cached_from
        label += f" reusing {row.cached_from[:12]}"
    if row.metrics:
        attrs["metrics"] = {k: (None if v != v else v) for k, v in row.metrics.items()}
    return LineageNode(f"run:{row.id}", "run", label, attrs)


def artifact_node(digest: str, link: ArtifactLink | None = None, **attrs: Any) -> LineageNode:
    info: dict[str, Any] = {"digest": digest}
    if link is not None:
        info.update(name=link.name, artifact_kind=link.kind, size=link.size, is_dir=link.is_dir,
                    file_count=link.file_count)
    info.update(attrs)
    name = info.get("name") or "artifact"
    kind = info.get("artifact_kind") or "file"
    size = info.get("size")
    shown = f", {_size(size)}" if isinstance(size, int) else ""
    return LineageNode(f"artifact:{digest}", "artifact", f"{kind} {name} {digest[:12]}{shown}", info)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


@runtime_checkable
class LineageProvider(Protocol):
    """Adds nodes and edges to the lineage graph. Both methods may answer nothing."""

    def resolve(self, ref: str, ctx: LineageContext) -> LineageNode | None:
        """The node ``ref`` names, or None when this provider does not know it."""
        ...

    def expand(
        self, nodes: Sequence[LineageNode], direction: str, ctx: LineageContext
    ) -> Iterable[tuple[LineageEdge, LineageNode]]:
        """Edges that touch ``nodes``, with the node at their other end.

        ``direction`` is ``"up"`` (edges ending at one of ``nodes``) or ``"down"``
        (edges starting at one of them).
        """
        ...


# The registry's (name@alias, name/3) and the exports' (export:ID) providers, by name: imported
# when a lineage is first walked, as a plugin's would be, so that this module imports neither.
# Later ones resolve first: models, then exports.
_providers: list[LineageProvider | str] = ["groundwork.core.exports:EXPORT_LINEAGE",
                                           "groundwork.core.registry:MODEL_LINEAGE"]


def register_lineage_provider(provider: LineageProvider | str) -> LineageProvider | str:
    """Add a provider; later ones resolve targets first. Returns it (usable as a decorator on an instance).

    ``provider`` may be named as ``"package.module:ATTRIBUTE"``: it is imported when a lineage
    is first walked (the registry's and the exports' providers are named so), which keeps this
    module free of imports of the modules it serves.
    """
    if isinstance(provider, str):
        if ":" not in provider:
            raise InvalidInput(f"a lineage provider's name is 'package.module:ATTRIBUTE', not {provider!r}")
    elif not isinstance(provider, LineageProvider):
        raise InvalidInput("a lineage provider needs resolve(ref, ctx) and expand(nodes, direction, ctx) methods")
    if provider not in _providers:
        _providers.append(provider)
    return provider


def unregister_lineage_provider(provider: LineageProvider | str) -> None:
    if provider in _providers and provider is not BUILTIN:
        _providers.remove(provider)


def lineage_providers() -> list[LineageProvider]:
    """The providers, in registration order, with those registered by name imported now."""
    import importlib

    for i, entry in enumerate(_providers):
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            provider = getattr(importlib.import_module(module), attribute)
            if not isinstance(provider, LineageProvider):
                raise InvalidInput(f"{entry} is not a lineage provider (it needs resolve and expand methods)")
            _providers[i] = provider
    return [p for p in _providers if not isinstance(p, str)]


# -- the built-in provider: runs and artifacts ---------------------------------------------------------------

_HEX = re.compile(r"^[0-9a-f]+$")


class RunsAndArtifacts:
    """Runs, artifacts and pipelines, from the metadata store."""

    def resolve(self, ref: str, ctx: LineageContext) -> LineageNode | None:
        from groundwork.storage.artifacts import ArtifactStore

        text = ref.strip()
        if not text:
            raise InvalidInput("empty lineage target", hint="give a run id or name, an artifact digest, or a file path")
        lowered = text.lower().removeprefix("sha256:")
        path = Path(text).expanduser()
        looks_like_path = "/" in text or "\\" in text or path.suffix != "" or text.startswith(".")
        if path.exists() and (looks_like_path or not _HEX.match(lowered)):
            info = ArtifactStore.digest_path(path)
            if not ctx.pipelines.artifact_rows([info.digest]):
                raise ArtifactNotFound(
                    f"{text} (sha256 {info.digest[:12]}) was never recorded as an input or output",
                    hint="lineage knows files that a run logged; log it with run.log_artifact or --output",
                )
            return self._artifact(ctx, info.digest, name=path.name)
        if _HEX.match(lowered) and len(lowered) == 64:
            if not ctx.pipelines.artifact_rows([lowered]):
                raise ArtifactNotFound(f"no artifact {lowered[:12]}… is recorded in this store")
            return self._artifact(ctx, lowered)
        if _HEX.match(lowered) and len(lowered) >= 4:
            digests = ctx.store.find_artifacts(lowered)
            run_ids = self._run_prefix(ctx, lowered)
            if len(digests) + len(run_ids) > 1:
                shown = [f"artifact {d[:12]}" for d in digests[:3]] + [f"run {r[:12]}" for r in run_ids[:3]]
                raise AmbiguousReference(f"{text!r} matches {', '.join(shown)}", hint="type more characters")
            if digests:
                return self._artifact(ctx, digests[0])
            if run_ids:
                return run_node(ctx.runs([run_ids[0]])[run_ids[0]])
        if path.exists():
            info = ArtifactStore.digest_path(path)
            if ctx.pipelines.artifact_rows([info.digest]):
                return self._artifact(ctx, info.digest, name=path.name)
        try:
            run_id = ctx.store.resolve_run(text)
        except RunNotFound:
            return None
        return run_node(ctx.runs([run_id])[run_id])

    def _run_prefix(self, ctx: LineageContext, prefix: str) -> list[str]:
        try:
            return [ctx.store.resolve_run(prefix)] if len(prefix) >= 4 else []
        except AmbiguousReference:
            raise
        except RunNotFound:
            return []

    def _artifact(self, ctx: LineageContext, digest: str, name: str | None = None) -> LineageNode:
        links = ctx.pipelines.links_for_digests([digest]).get(digest, [])
        link = next((lk for lk in links if lk.direction == "output"), links[0] if links else None)
        extra = {"name": name} if name else {}
        return artifact_node(digest, link, **extra)

    def expand(
        self, nodes: Sequence[LineageNode], direction: str, ctx: LineageContext
    ) -> list[tuple[LineageEdge, LineageNode]]:
        run_ids = [n.attrs["run_id"] for n in nodes if n.kind == "run" and "run_id" in n.attrs]
        digests = [n.attrs["digest"] for n in nodes if n.kind == "artifact" and "digest" in n.attrs]
        rows = ctx.runs(run_ids)
        out: list[tuple[LineageEdge, LineageNode]] = []
        if direction == UP:
            for run_id, links in ctx.pipelines.links_for_runs(run_ids, "input").items():
                parent = rows[run_id].parent_id if run_id in rows else None
                for link in links:
                    # Remember the consumer's pipeline run: its sibling is the producer to show.
                    extra = {"consumer_parent": parent} if parent else {}
                    out.append((LineageEdge(f"artifact:{link.digest}", f"run:{run_id}", "input", link.name),
                                artifact_node(link.digest, link, **extra)))
            originals = {r.cached_from: r.id for r in rows.values() if r.cached_from}
            reproduced = {r.tags["reproduces"]: r.id for r in rows.values() if r.tags.get("reproduces")}
            pipelines = [r.id for r in rows.values() if r.kind == "pipeline"]
            steps = ctx.pipelines.runs_citing("parent_id", pipelines)
            wanted = [*originals, *reproduced, *(s for ids in steps.values() for s in ids)]
            producers = ctx.pipelines.links_for_digests(digests, "output")
            wanted += [link.run_id for links in producers.values() for link in links]
            found = ctx.runs(wanted)
            for original, cached_id in originals.items():
                if original in found:
                    out.append((LineageEdge(f"run:{original}", f"run:{cached_id}", "cached"), run_node(found[original])))
            for original, copy in reproduced.items():
                if original in found:
                    out.append((LineageEdge(f"run:{original}", f"run:{copy}", "reproduced"), run_node(found[original])))
            # A pipeline run is made of its steps: its last steps (whose outputs no sibling reads)
            # lead back through the rest. A cached step stands for the run it reused.
            reused = ctx.runs([found[s].cached_from or "" for ids in steps.values() for s in ids
                               if s in found and found[s].status == "cached"])
            step_links = ctx.pipelines.links_for_runs([s for ids in steps.values() for s in ids])
            for pipeline_id, step_ids in steps.items():
                consumed = {lk.digest for s in step_ids for lk in step_links.get(s, []) if lk.direction == "input"}
                last = [s for s in step_ids
                        if not any(lk.direction == "output" and lk.digest in consumed for lk in step_links.get(s, []))]
                for step_id in last or step_ids:
                    row = found.get(step_id)
                    if row is None:
                        continue
                    if row.status == "cached" and row.cached_from in reused:
                        original_row = reused[row.cached_from]
                        out.append((LineageEdge(f"run:{original_row.id}", f"run:{pipeline_id}", "step", "cached"),
                                    run_node(original_row)))
                    else:
                        out.append((LineageEdge(f"run:{step_id}", f"run:{pipeline_id}", "step"), run_node(row)))
            prefer = {n.attrs["digest"]: n.attrs.get("consumer_parent") for n in nodes if n.kind == "artifact"}
            for digest, links in producers.items():
                producer = _producer([found[lk.run_id] for lk in links if lk.run_id in found], prefer.get(digest))
                if producer is not None:
                    link = next(lk for lk in links if lk.run_id == producer.id)
                    out.append((LineageEdge(f"run:{producer.id}", f"artifact:{digest}", "output", link.name),
                                run_node(producer)))
        else:
            for run_id, links in ctx.pipelines.links_for_runs(run_ids, "output").items():
                for link in links:
                    out.append((LineageEdge(f"run:{run_id}", f"artifact:{link.digest}", "output", link.name),
                                artifact_node(link.digest, link)))
            copies = ctx.pipelines.runs_tagged("reproduces", run_ids)
            consumers = ctx.pipelines.links_for_digests(digests, "input")
            wanted = [*(c for ids in copies.values() for c in ids)]
            wanted += [link.run_id for links in consumers.values() for link in links]
            found = ctx.runs(wanted)
            for original, ids in copies.items():
                for copy in ids:
                    if copy in found:
                        out.append((LineageEdge(f"run:{original}", f"run:{copy}", "reproduced"), run_node(found[copy])))
            for digest, links in consumers.items():
                for link in links:
                    row = found.get(link.run_id)
                    if row is None or row.status == "cached":
                        continue  # a cached run read nothing new: its original is already here
                    out.append((LineageEdge(f"artifact:{digest}", f"run:{row.id}", "input", link.name),
                                run_node(row)))
        return out


def _producer(rows: Sequence[RunRow], parent: str | None = None) -> RunRow | None:
    """The run that made an artifact: the earliest that computed it (not a cached or pipeline run),
    from the same pipeline run as the step that read it when there is one."""
    computed = [r for r in rows if r.status != "cached" and r.kind != "pipeline"]
    siblings = [r for r in computed if parent and r.parent_id == parent]
    if siblings:
        computed = siblings
    pool = computed or [r for r in rows if r.status != "cached"] or list(rows)
    return min(pool, key=lambda r: r.created_at) if pool else None


BUILTIN = RunsAndArtifacts()


# -- the graph -------------------------------------------------------------------------------------------------


class LineageGraph:
    """The part of the lineage graph reachable from one target, in one direction."""

    def __init__(self, root: LineageNode, direction: str) -> None:
        self.root = root
        self.direction = direction
        self.nodes: dict[str, LineageNode] = {root.id: root}
        self.edges: list[LineageEdge] = []
        self._edge_keys: set[tuple[str, str, str, str]] = set()
        self.truncated = False
        #: Seconds the walk took.
        self.elapsed = 0.0
        self._adjacency: dict[str, list[tuple[LineageEdge, LineageNode]]] = {}
        self._adjacency_edges = -1

    def __repr__(self) -> str:
        return f"<LineageGraph {self.root.id} {self.direction}: {len(self.nodes)} nodes, {len(self.edges)} edges>"

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def add(self, edge: LineageEdge, node: LineageNode) -> bool:
        """Add an edge (and its far node); True when the node is new."""
        new = node.id not in self.nodes
        if new:
            self.nodes[node.id] = node
        key = (edge.source, edge.target, edge.relation, edge.label)
        if key not in self._edge_keys:
            self._edge_keys.add(key)
            self.edges.append(edge)
        return new

    def of_kind(self, kind: str) -> list[LineageNode]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def runs(self) -> list[LineageNode]:
        return self.of_kind("run")

    def artifacts(self) -> list[LineageNode]:
        return self.of_kind("artifact")

    def next_of(self, node_id: str) -> list[tuple[LineageEdge, LineageNode]]:
        """The neighbours one step further from the root (upstream for ancestry)."""
        if self._adjacency_edges != len(self.edges):  # rebuilt only after edges were added
            self._adjacency = {}
            for e in self.edges:
                near, far = (e.target, e.source) if self.direction == UP else (e.source, e.target)
                if far in self.nodes:
                    self._adjacency.setdefault(near, []).append((e, self.nodes[far]))
            self._adjacency_edges = len(self.edges)
        return list(self._adjacency.get(node_id, []))

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root.id,
            "direction": "up" if self.direction == UP else "down",
            "nodes": [n.to_dict() for n in self.nodes.values()],
            "edges": [e.to_dict() for e in self.edges],
            "truncated": self.truncated,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def to_dot(self) -> str:
        """Graphviz DOT: artifacts as boxes, runs as ellipses, the target outlined."""
        shapes = {"artifact": "box", "run": "ellipse"}
        lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
        for node in self.nodes.values():
            style = ', penwidth=2, color="#1f6feb"' if node.id == self.root.id else ""
            lines.append(f"  {_dot_id(node.id)} [label={_dot_str(node.label)}, shape={shapes.get(node.kind, 'hexagon')}{style}];")
        for edge in self.edges:
            label = edge.relation if not edge.label else f"{edge.relation}: {edge.label}"
            lines.append(f"  {_dot_id(edge.source)} -> {_dot_id(edge.target)} [label={_dot_str(label)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def tree(self) -> str:
        """The walk as an indented tree; a node reached twice is printed once, then referred to."""
        lines = [self.root.label]
        seen = {self.root.id}

        def children(node_id: str) -> list[tuple[LineageEdge, LineageNode]]:
            items = self.next_of(node_id)
            return sorted(items, key=lambda item: (item[1].kind != "run", item[0].label, item[1].label))

        # Depth first, without recursion (a long chain of runs must not hit the recursion limit).
        stack: list[tuple[list[tuple[LineageEdge, LineageNode]], int, str]] = [(children(self.root.id), 0, "")]
        while stack:
            items, index, prefix = stack.pop()
            if index >= len(items):
                continue
            stack.append((items, index + 1, prefix))
            edge, node = items[index]
            last = index == len(items) - 1
            again = node.id in seen
            branch = "└── " if last else "├── "
            lines.append(f"{prefix}{branch}{_via(edge, self.direction)}{node.label}{'  (see above)' if again else ''}")
            if not again:
                seen.add(node.id)
                stack.append((children(node.id), 0, prefix + ("    " if last else "│   ")))
        if self.truncated:
            lines.append(f"… truncated at {len(self.nodes)} nodes")
        return "\n".join(lines)


def _via(edge: LineageEdge, direction: str) -> str:
    if edge.relation == "input":
        return "read by " if direction == DOWN else f"[{edge.label}] " if edge.label else ""
    if edge.relation == "step" and edge.label == "cached":
        return "(cached) " if direction == UP else "in "
    if edge.relation == "output":
        return "made by " if direction == UP else f"[{edge.label}] " if edge.label else ""
    names = {
        "step": ("", "in "),
        "cached": ("reuses ", "reused by "),
        "reproduced": ("reproduces ", "reproduced by "),
    }
    up, down = names.get(edge.relation, (f"{edge.relation} ", f"{edge.relation} "))
    return up if direction == UP else down


def _dot_id(node_id: str) -> str:
    return _dot_str(node_id)


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- the entry point ---------------------------------------------------------------------------------------------


def resolve_target(target: str, ctx: LineageContext) -> LineageNode:
    """The node ``target`` names: providers first (newest first), then runs and artifacts."""
    for provider in reversed(lineage_providers()):
        if provider is BUILTIN:
            continue
        node = provider.resolve(target, ctx)
        if node is not None:
            return node
    node = BUILTIN.resolve(target, ctx)
    if node is None:
        raise TargetNotFound(
            f"no run, artifact or file matches {target!r}",
            hint="give a run id, id prefix or name, an artifact digest or prefix, or the path of a logged file",
        )
    return node


def lineage(
    target: str,
    *,
    descendants: bool = False,
    depth: int | None = None,
    config: Config | None = None,
    max_nodes: int = MAX_NODES,
) -> LineageGraph:
    """The ancestry of ``target`` (or, with ``descendants=True``, what came from it).

    >>> g = gw.lineage("out/model.pt")          # a file: digested, then looked up
    >>> print(g.tree()); g.to_dot(); g.to_dict()
    """
    from groundwork.core.writer import flush_all, pending_writes
    from groundwork.storage.stores import open_stores

    if depth is not None and depth < 0:
        raise InvalidInput(f"depth must be >= 0, not {depth}")
    config = config or Config.from_env()
    if pending_writes():  # read-your-writes: runs this process started are written first
        flush_all()
    ctx = LineageContext(config, open_stores(config))
    root = resolve_target(target, ctx)
    direction = DOWN if descendants else UP
    graph = LineageGraph(root, direction)
    frontier = [root]
    level = 0
    started = time.monotonic()
    while frontier and (depth is None or level < depth):
        found: list[LineageNode] = []
        for provider in lineage_providers():
            for edge, node in provider.expand(frontier, direction, ctx):
                if not _walkable(node, root):
                    # Cached runs are shown where reached, but not walked through.
                    graph.add(edge, node)
                    continue
                if graph.add(edge, node):
                    found.append(node)
                if len(graph.nodes) >= max_nodes:
                    graph.truncated = True
                    break
            if graph.truncated:
                break
        if graph.truncated:
            break
        frontier = found
        level += 1
    graph.elapsed = time.monotonic() - started
    return graph


def _walkable(node: LineageNode, root: LineageNode) -> bool:
    return not (node.kind == "run" and node.attrs.get("status") == "cached" and node.id != root.id)


_providers.insert(0, BUILTIN)  # first: runs and artifacts expand before models and exports

__all__ = [
    "LineageContext",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "LineageProvider",
    "TargetNotFound",
    "artifact_node",
    "lineage",
    "lineage_providers",
    "register_lineage_provider",
    "run_node",
    "unregister_lineage_provider",
]
