"""The pipeline graph: building by calling steps, names, order, cycles, the stored JSON form."""

from __future__ import annotations

import pytest

import groundwork as gw
from groundwork.core.pipelines.dag import PipelineCycle, find_cycle, topological_order
from groundwork.errors import InvalidInput


@gw.step
def source(n: int = 3) -> list:
    return list(range(n))


@gw.step(outputs=("head", "tail"))
def cut(values: list):  # type: ignore[no-untyped-def]
    return values[:1], values[1:]


@gw.step
def pair(values: list) -> tuple[int, int]:
    return values[0], values[-1]


@gw.step
def merge(parts: list, label: str = "x") -> dict:
    return {"label": label, "parts": parts}


def test_calling_steps_builds_nodes_edges_and_params() -> None:
    @gw.pipeline
    def flow(n: int = 4):  # type: ignore[no-untyped-def]
        values = source(n=n)
        head, tail = cut(values)
        first, last = pair(tail)
        return merge([head, first, last], label="done")

    graph = flow.build(n=5)
    assert list(graph.nodes) == ["source", "cut", "pair", "merge"]
    assert graph.edges() == [("source", "cut"), ("cut", "pair"), ("cut", "merge"), ("pair", "merge")]
    assert graph["source"].params == {"n": 5}
    assert graph["merge"].params == {"label": "done"}
    assert graph["cut"].outputs == ("head", "tail")
    assert graph["pair"].outputs == ("output_0", "output_1")
    assert graph.params == {"n": 5}
    data = graph.to_dict(ref="mod:flow")
    assert data["format"] == "groundwork.pipeline/1"
    assert data["nodes"][3]["inputs"] == {"parts": ["cut.head", "pair.output_0", "pair.output_1"]}
    assert data["returns"] == "merge.output"


def test_a_step_called_twice_gets_numbered_names() -> None:
    @gw.pipeline
    def twice():  # type: ignore[no-untyped-def]
        return merge([source(n=1), source(n=2)])

    graph = twice.build()
    assert list(graph.nodes) == ["source", "source_2", "merge"]
    assert graph.topological_order() == ["source", "source_2", "merge"]


def test_after_orders_steps_without_data() -> None:
    @gw.pipeline
    def ordered():  # type: ignore[no-untyped-def]
        a = source(n=1)
        b = source(n=2)
        b.after(a)
        return b

    graph = ordered.build()
    assert graph.edges() == [("source", "source_2")]
    assert graph.downstream("source") == {"source_2"}


def test_find_cycle_and_topological_order_on_plain_mappings() -> None:
    assert find_cycle({"a": set(), "b": {"a"}, "c": {"b"}}) is None
    assert topological_order({"c": {"b"}, "b": {"a"}, "a": set()}) == ["a", "b", "c"]
    cycle = find_cycle({"a": {"c"}, "b": {"a"}, "c": {"b"}})
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    with pytest.raises(PipelineCycle):
        topological_order({"a": {"b"}, "b": {"a"}})


def test_building_mistakes_are_clear() -> None:
    @gw.pipeline
    def branchy():  # type: ignore[no-untyped-def]
        values = source()
        if values:  # a handle has no value while building
            return values
        return None

    with pytest.raises(InvalidInput, match="has no value while the pipeline is being built"):
        branchy.build()

    @gw.pipeline
    def unpack():  # type: ignore[no-untyped-def]
        a, b = source()
        return a

    with pytest.raises(InvalidInput, match="single output and cannot be unpacked"):
        unpack.build()

    @gw.pipeline
    def empty():  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(InvalidInput, match="calls no steps"):
        empty.build()

    @gw.pipeline
    def mixed():  # type: ignore[no-untyped-def]
        return merge([source(), 3])

    with pytest.raises(InvalidInput, match="mixes step outputs with other values"):
        mixed.build()

    with pytest.raises(InvalidInput, match="bad call of step 'source'"):
        @gw.pipeline
        def wrong():  # type: ignore[no-untyped-def]
            return source(1, 2, 3)

        wrong.build()
