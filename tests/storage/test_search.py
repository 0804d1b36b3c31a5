"""The filter language: parse trees, precedence, errors with columns, and SQL on real databases.

Compile tests run each filter against a store built from ``schema.metadata``
and compare the matched run ids with a Python oracle over the same rows, on
SQLite and (when the ``postgres_url`` fixture exists) on PostgreSQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import Engine, create_engine, insert, select

from groundwork.errors import InvalidFilter
from groundwork.filters import (
    And,
    Comparison,
    Exists,
    Expr,
    Field,
    In,
    Not,
    Or,
    parse_filter,
)
from groundwork.storage import schema
from groundwork.storage.search import compile_filter, order_by_clause

M = lambda key: Field("metrics", key)  # noqa: E731
P = lambda key: Field("params", key)  # noqa: E731
T = lambda key: Field("tags", key)  # noqa: E731
A = lambda key: Field("attr", key)  # noqa: E731


# -- parse trees -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("metrics.acc > 0.9", Comparison(M("acc"), ">", 0.9)),
        ("params.lr = 0.01", Comparison(P("lr"), "=", 0.01)),
        ("params.lr == 0.01", Comparison(P("lr"), "=", 0.01)),
        ("params.optimizer != 'adam'", Comparison(P("optimizer"), "!=", "adam")),
        ("params.optimizer <> 'adam'", Comparison(P("optimizer"), "!=", "adam")),
        ("metrics.loss <= 1e-3", Comparison(M("loss"), "<=", 0.001)),
        ("metrics.loss >= -.5", Comparison(M("loss"), ">=", -0.5)),
        ("metrics.step < 10", Comparison(M("step"), "<", 10)),
        ('tags.team = "nlp"', Comparison(T("team"), "=", "nlp")),
        ("tags.epoch = 3", Comparison(T("epoch"), "=", "3")),  # tags are text
        ("name ~ 'base%'", Comparison(A("name"), "like", "base%")),
        ("name LIKE 'base%'", Comparison(A("name"), "like", "base%")),
        ("name not like 'base%'", Comparison(A("name"), "not like", "base%")),
        ("name !~ 'base%'", Comparison(A("name"), "not like", "base%")),
        ("status in ('failed','crashed')", In(A("status"), ("failed", "crashed"))),
        ("status IN ('failed', 'crashed',)", In(A("status"), ("failed", "crashed"))),
        ("params.lr not in (0.1, 'auto')", In(P("lr"), (0.1, "auto"), negated=True)),
        ("tags.stage exists", Exists(T("stage"))),
        ("tags.stage not exists", Not(Exists(T("stage")))),
        ("not params.x = 1", Not(Comparison(P("x"), "=", 1))),
        ("params.debug = true", Comparison(P("debug"), "=", True)),
        ("params.debug = FALSE", Comparison(P("debug"), "=", False)),
        ("metrics.`val loss` < 2", Comparison(M("val loss"), "<", 2)),
        ("metrics.`odd``key` < 2", Comparison(M("odd`key"), "<", 2)),
        ("metrics.val/loss < 2", Comparison(M("val/loss"), "<", 2)),
        ("metrics.train.loss-avg < 2", Comparison(M("train.loss-avg"), "<", 2)),
        ("metrics.5k_acc>0.5", Comparison(M("5k_acc"), ">", 0.5)),
        ("METRICS.Acc > 1", Comparison(M("Acc"), ">", 1)),  # namespaces fold case, keys do not
        ("Status = 'running'", Comparison(A("status"), "=", "running")),
        ("name = 'it''s'", Comparison(A("name"), "=", "it's")),
        (r"name = 'it\'s \\ \d'", Comparison(A("name"), "=", "it's \\ \\d")),
        ("id = 'abc'", Comparison(A("id"), "=", "abc")),
        ("parent exists", Exists(A("parent"))),
        ("duration > 60", Comparison(A("duration"), ">", 60)),
        ("created >= 1700000000", Comparison(A("created"), ">=", 1700000000)),
        (
            "created >= '2026-05-01T00:00:00+00:00'",
            Comparison(A("created"), ">=", datetime.fromisoformat("2026-05-01T00:00:00+00:00").timestamp()),
        ),
        ("created < '2026-05-01'", Comparison(A("created"), "<", datetime(2026, 5, 1).timestamp())),
    ],
)
def test_parse_trees(text: str, tree: Expr) -> None:
    assert parse_filter(text) == tree


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Comparison(M(k), ">", 1) for k in "abc")
    assert parse_filter("metrics.a > 1 or metrics.b > 1 and metrics.c > 1") == Or((a, And((b, c))))
    assert parse_filter("metrics.a > 1 and metrics.b > 1 or metrics.c > 1") == Or((And((a, b)), c))
    assert parse_filter("(metrics.a > 1 or metrics.b > 1) and metrics.c > 1") == And((Or((a, b)), c))
    assert parse_filter("metrics.a > 1 AND metrics.b > 1 And metrics.c > 1") == And((a, b, c))
    assert parse_filter("metrics.a > 1 or metrics.b > 1 OR metrics.c > 1") == Or((a, b, c))


def test_not_binds_tighter_than_and() -> None:
    a, b = (Comparison(M(k), ">", 1) for k in "ab")
    assert parse_filter("not metrics.a > 1 and metrics.b > 1") == And((Not(a), b))
    assert parse_filter("not (metrics.a > 1 and metrics.b > 1)") == Not(And((a, b)))
    assert parse_filter("not not metrics.a > 1") == Not(Not(a))
    assert parse_filter("((metrics.a > 1))") == a


def test_example_from_the_brief() -> None:
    tree = parse_filter("status = 'finished' or (tags.team = \"nlp\" and name ~ 'base%')")
    assert tree == Or(
        (
            Comparison(A("status"), "=", "finished"),
            And((Comparison(T("team"), "=", "nlp"), Comparison(A("name"), "like", "base%"))),
        )
    )
    assert str(tree) == "status = 'finished' or (tags.team = 'nlp' and name like 'base%')"


def test_columns_are_recorded() -> None:
    tree = parse_filter("metrics.acc > 0.9 and  params.lr = 0.01")
    assert isinstance(tree, And)
    first, second = tree.terms
    assert isinstance(first, Comparison) and isinstance(second, Comparison)
    assert (first.field.column, first.column) == (1, 15)
    assert (second.field.column, second.column) == (24, 36)


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("metrics.acc > and x", "unexpected 'and' at column 15: expected a value after '>'", 15),
        ("metrics.acc >", "unexpected end of filter at column 14: expected a value after '>'", 14),
        ("metric.acc > 1", "unknown field 'metric.acc' at column 1 (did you mean 'metrics.acc'?)", 1),
        (
            "params.a = 1 and param.b = 1",
            "unknown field 'param.b' at column 18 (did you mean 'params.b'?)",
            18,
        ),
        ("stat = 'x'", "unknown field 'stat' at column 1 (did you mean 'status'?)", 1),
        ("acc > 1", "did you mean 'metrics.acc', 'params.acc' or 'tags.acc'?", 1),
        ("attributes.status = 'x'", "did you mean 'status'?", 1),
        ("status = 'finished' and name = 'abc", "unterminated string at column 32", 32),
        ('name = "abc', "unterminated string at column 8", 8),
        ("metrics.`val loss < 1", "unterminated backquoted key at column 9", 9),
        ("metrics.`` < 1", "empty key at column 9", 9),
        ("`acc` > 1", "unexpected '`' at column 1", 1),
        ("metrics.acc`x` > 1", "unexpected '`' at column 12", 12),
        ("metrics. > 1", "missing key after 'metrics.' at column 1", 1),
        ("metrics > 1", "missing key after 'metrics' at column 1", 1),
        ("status = finished", "unexpected 'finished' at column 10: expected a value after '='", 10),
        ("status = 'finshed'", "unknown status 'finshed' (did you mean 'finished'?) at column 10", 10),
        (
            "status in ('failed', 'crashd')",
            "unknown status 'crashd' (did you mean 'crashed'?) at column 22",
            22,
        ),
        (
            "metrics.acc = 'high'",
            "metric 'acc' is a number: cannot compare it with the string 'high' at column 15",
            15,
        ),
        ("metrics.acc = true", "metric 'acc' is a number: cannot compare it with 'true' at column 15", 15),
        ("metrics.acc in (1, 'x')", "metric 'acc' is a number", 20),
        ("metrics.acc ~ 'a%'", "metric 'acc' is a number: 'like' only applies to text at column 15", 15),
        ("name ~ 3", "'like' needs a quoted pattern, not '3' at column 8", 8),
        ("name = true", "'name' is text: cannot compare it with 'true' at column 8", 8),
        ("tags.epoch > 3", "'tags.epoch' is text: '>' would compare it with '3' as text at column 14", 14),
        ("params.flag > true", "'>' cannot order 'true' at column 15", 15),
        (
            "duration > '1h'",
            "'duration' is a number: cannot compare it with the string '1h' at column 12",
            12,
        ),
        ("created > 'yesterday'", "invalid date 'yesterday' at column 11", 11),
        ("metrics.acc", "unexpected end of filter at column 12: expected an operator", 12),
        ("metrics.acc 0.9", "unexpected '0.9' at column 13: expected an operator", 13),
        (
            "params.x not = 1",
            "unexpected '=' at column 14: expected 'in', 'like' or 'exists' after 'not'",
            14,
        ),
        (
            "(metrics.a > 1",
            "unexpected end of filter at column 15: expected ')' to close the '(' at column 1",
            15,
        ),
        ("metrics.a > 1)", "unexpected ')' at column 14: expected 'and', 'or' or the end of the filter", 14),
        ("metrics.a > 1 metrics.b > 2", "unexpected 'metrics.b' at column 15: expected 'and', 'or'", 15),
        ("metrics.a > 1 and", "unexpected end of filter at column 18: expected a condition", 18),
        ("and metrics.a > 1", "unexpected 'and' at column 1: expected a condition", 1),
        ("0.9 < metrics.acc", "unexpected '0.9' at column 1: expected a condition", 1),
        ("()", "unexpected ')' at column 2: expected a condition", 2),
        ("status in 'failed'", "unexpected 'failed' at column 11: expected '(' after 'in'", 11),
        ("status in ()", "unexpected ')' at column 12: expected a value in the list", 12),
        ("status in ('failed' 'crashed')", "unexpected 'crashed' at column 21: expected ',' or ')'", 21),
        ("status in ('failed',", "unexpected end of filter at column 21: expected a value in the list", 21),
        ("metrics.a > 1abc", "invalid number '1abc' at column 13", 13),
        ("metrics.a > 1.2.3", "invalid number '1.2.3' at column 13", 13),
        ("metrics.a $ 1", "unexpected character '$' at column 11", 11),
        ("metrics.a = 1 & metrics.b = 2", "unexpected character '&' at column 15", 15),
        ("", "empty filter", 1),
        ("   ", "empty filter", 1),
    ],
)
def test_errors_say_what_and_where(text: str, message: str, column: int) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(text)
    error = caught.value
    assert message in error.message
    assert error.column == column
    assert error.expression == text
    assert error.http_status == 400


def test_error_pointer_and_hint() -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter("status = finished")
    assert caught.value.pointer() == "  status = finished\n           ^"
    assert caught.value.hint == "quote text values: status = 'finished'"


def test_limits() -> None:
    with pytest.raises(InvalidFilter, match="nested too deeply"):
        parse_filter("(" * 60 + "metrics.a > 1" + ")" * 60)
    with pytest.raises(InvalidFilter, match="nested too deeply"):
        parse_filter("not " * 60 + "metrics.a > 1")
    with pytest.raises(InvalidFilter, match="too many conditions"):
        parse_filter(" or ".join(f"metrics.m{i} > 1" for i in range(300)))
    assert isinstance(parse_filter("(" * 20 + "metrics.a > 1" + ")" * 20), Comparison)


# -- hypothesis: nothing but InvalidFilter, and text round-trips -------------------------------------

_FRAGMENTS = [
    "metrics.acc", "params.lr", "tags.team", "status", "name", "created", "duration", "metric.x", "`", "`k`",
    " and ", " or ", "not ", " in ", " like ", " exists", "=", "==", "!=", "<", "<=", ">", ">=", "~", "!~", "(",
    ")", ",", "'", '"', "'a'", '"b"', "0.9", "-1", "1e", "1e999", ".5", "true", "false", " ", "\\", "%", "\t",
    "é", "\x00", "metrics.", "2026-01-01",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(_FRAGMENTS), max_size=14).map("".join)))
def test_parse_raises_nothing_but_invalid_filter(text: str) -> None:
    try:
        tree = parse_filter(text)
    except InvalidFilter as error:
        assert error.expression == text
        assert error.column is None or 1 <= error.column <= len(text) + 1
        return
    compile_filter(tree)
    assert parse_filter(str(tree)) == tree


# -- a real database ---------------------------------------------------------------------------------


@dataclass
class FakeRun:
    id: str
    name: str
    status: str
    kind: str
    parent: str | None
    user: str | None
    created: float
    ended: float | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # NaN allowed
    tags: dict[str, str] = field(default_factory=dict)


def _num(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def make_runs() -> list[FakeRun]:
    statuses = ["finished", "failed", "crashed", "running", "cached"]
    runs = []
    for i in range(50):
        created = 1_700_000_000.0 + i * 100
        status = statuses[i % 5]
        run = FakeRun(
            id=f"r{i:02d}",
            name=f"base-{i}" if i % 3 == 0 else f"Large_{i}",
            status=status,
            kind="step" if i % 7 == 0 else "run",
            parent="r00" if 10 <= i < 15 else None,
            user=None if i % 8 == 0 else f"user{i % 3}",
            created=created,
            ended=None if status == "running" else created + i * 10,
        )
        run.params["lr"] = ["0.1", "0.01", "0.001"][i % 3] if i != 49 else "auto"
        if i % 10 != 9:
            run.params["optimizer"] = "adam" if i % 2 else "sgd"
        run.params["debug"] = ["true", "false", "True"][i % 3]
        run.params["layers"] = str(i % 4)
        if i % 6 != 5:
            run.metrics["acc"] = i / 50
        run.metrics["loss"] = math.nan if i == 20 else round(1 / (i + 1), 6)
        if i % 5 == 0:
            run.metrics["val/loss"] = i / 10
        if i % 4 == 0:
            run.tags["team"] = "nlp"
        elif i % 4 == 1:
            run.tags["team"] = "cv"
        if i % 9 == 0:
            run.tags["stage"] = "prod" if i % 2 else "Prod-50%"
        runs.append(run)
    return runs


RUNS = make_runs()


def fill(engine: Engine) -> None:
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        for run in RUNS:  # parents first: r00 comes first
            conn.execute(
                insert(schema.runs).values(
                    id=run.id, name=run.name, kind=run.kind, status=run.status, parent_id=run.parent,
                    user=run.user, created_at=run.created, ended_at=run.ended,
                )
            )  # fmt: skip
        conn.execute(
            insert(schema.params),
            [
                {"run_id": r.id, "key": k, "value": v, "value_num": _num(v)}
                for r in RUNS
                for k, v in r.params.items()
            ],
        )
        conn.execute(
            insert(schema.latest_metrics),
            [
                {
                    "run_id": r.id,
                    "key": k,
                    "value": None if math.isnan(v) else v,
                    "step": 1,
                    "timestamp": r.created,
                }
                for r in RUNS
                for k, v in r.metrics.items()
            ],
        )
        conn.execute(
            insert(schema.tags),
            [{"run_id": r.id, "key": k, "value": v} for r in RUNS for k, v in r.tags.items()],
        )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    else:
        try:
            url = request.getfixturevalue("postgres_url")
        except pytest.FixtureLookupError:
            pytest.skip("no postgres_url fixture in tests/conftest.py")
    made = create_engine(url)
    fill(made)
    yield made
    made.dispose()


def matching(engine: Engine, text: str) -> set[str]:
    query = select(schema.runs.c.id).where(compile_filter(parse_filter(text)))
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(query)}


def ordered(engine: Engine, spec: str) -> list[str]:
    query = select(schema.runs.c.id).order_by(*order_by_clause(spec), schema.runs.c.id)
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(query)]


def ids(predicate: Callable[[FakeRun], bool]) -> set[str]:
    return {r.id for r in RUNS if predicate(r)}


def _metric(r: FakeRun, key: str) -> float:
    return r.metrics.get(key, math.nan)


EXAMPLES: list[tuple[str, Callable[[FakeRun], bool]]] = [
    ("metrics.acc > 0.9", lambda r: _metric(r, "acc") > 0.9),
    (
        "metrics.acc > 0.5 and params.lr = 0.01",
        lambda r: _metric(r, "acc") > 0.5 and r.params["lr"] == "0.01",
    ),
    ("metrics.loss <= 5e-2", lambda r: _metric(r, "loss") <= 0.05),
    ("metrics.`val/loss` >= 2", lambda r: _metric(r, "val/loss") >= 2),
    ("metrics.val/loss >= 2", lambda r: _metric(r, "val/loss") >= 2),
    ("metrics.loss != 0.5", lambda r: "loss" in r.metrics and r.metrics["loss"] != 0.5),
    ("metrics.acc in (0, 0.5, 0.98)", lambda r: _metric(r, "acc") in (0, 0.5, 0.98)),
    ("params.optimizer != 'adam'", lambda r: r.params.get("optimizer", "adam") != "adam"),
    ("not params.optimizer = 'adam'", lambda r: r.params.get("optimizer") != "adam"),
    ("params.lr != 0.01", lambda r: r.params["lr"] != "0.01"),  # 'auto' differs from every number
    ("params.lr < 0.05", lambda r: _num(r.params["lr"]) is not None and float(r.params["lr"]) < 0.05),
    ("params.lr = 'auto'", lambda r: r.params["lr"] == "auto"),
    ("params.lr not in (0.1, 'auto')", lambda r: r.params["lr"] not in ("0.1", "auto")),
    ("params.layers = 2", lambda r: r.params["layers"] == "2"),
    ("params.layers >= 2 and params.layers < 3", lambda r: r.params["layers"] == "2"),
    ("params.debug = true", lambda r: r.params["debug"].lower() == "true"),
    ("params.debug != true", lambda r: r.params["debug"] == "false"),
    (
        "status = 'finished' or (tags.team = \"nlp\" and name ~ 'base%')",
        lambda r: r.status == "finished" or (r.tags.get("team") == "nlp" and r.name.startswith("base")),
    ),
    ("status in ('failed','crashed')", lambda r: r.status in ("failed", "crashed")),
    ("status not in ('failed','crashed')", lambda r: r.status not in ("failed", "crashed")),
    ("name like 'LARGE\\_1%'", lambda r: r.name.lower().startswith("large_1")),
    ("name ~ 'large_1_'", lambda r: re.fullmatch(r"large.1.", r.name.lower()) is not None),
    ("name not like 'base%'", lambda r: not r.name.startswith("base")),
    ("tags.stage exists", lambda r: "stage" in r.tags),
    ("not tags.stage exists and tags.team exists", lambda r: "stage" not in r.tags and "team" in r.tags),
    ("tags.stage ~ '%50\\%'", lambda r: r.tags.get("stage", "").endswith("50%")),
    ("tags.team != 'nlp'", lambda r: r.tags.get("team", "nlp") != "nlp"),
    ("parent = 'r00'", lambda r: r.parent == "r00"),
    ("not parent exists and kind = 'step'", lambda r: r.parent is None and r.kind == "step"),
    ("not parent = 'r00'", lambda r: r.parent != "r00"),
    ("user != 'user1'", lambda r: r.user is not None and r.user != "user1"),
    ("not user = 'user1'", lambda r: r.user != "user1"),
    ("id in ('r01', 'r02', 'zz')", lambda r: r.id in ("r01", "r02")),
    ("created >= 1700004000", lambda r: r.created >= 1_700_004_000),
    ("duration > 300", lambda r: r.ended is not None and r.ended - r.created > 300),
    ("not duration > 300", lambda r: not (r.ended is not None and r.ended - r.created > 300)),
    ("ended exists", lambda r: r.ended is not None),
    ("metrics.loss > 0", lambda r: _metric(r, "loss") > 0),  # NaN matches no comparison
    ("not metrics.loss > 0", lambda r: not _metric(r, "loss") > 0),
    ("metrics.missing > 0 or metrics.missing exists", lambda r: False),
    ("not metrics.missing > 0", lambda r: True),
]


def test_compiled_filters_match_exactly(engine: Engine) -> None:
    # one database per backend for every example (building it is the slow part)
    wrong = {}
    for text, expected in EXAMPLES:
        got, want = matching(engine, text), ids(expected)
        if got != want:
            wrong[text] = {"missing": sorted(want - got), "extra": sorted(got - want)}
    assert wrong == {}


def test_examples_are_not_trivial() -> None:
    for text, predicate in EXAMPLES[:-3]:
        assert 0 < len(ids(predicate)) < len(RUNS), text


def test_order_by_metric_missing_last_both_ways(engine: Engine) -> None:
    with_acc = [r for r in RUNS if "acc" in r.metrics]
    without = sorted(r.id for r in RUNS if "acc" not in r.metrics)
    assert (
        ordered(engine, "-metrics.acc")
        == [r.id for r in sorted(with_acc, key=lambda r: r.metrics["acc"], reverse=True)] + without
    )
    assert (
        ordered(engine, "metrics.acc")
        == [r.id for r in sorted(with_acc, key=lambda r: r.metrics["acc"])] + without
    )
    assert ordered(engine, "metrics.acc desc") == ordered(engine, "-metrics.acc")
    assert ordered(engine, "+metrics.acc ASC") == ordered(engine, "metrics.acc")


def test_order_by_metric_puts_nan_after_numbers_before_missing(engine: Engine) -> None:
    for spec in ("metrics.loss", "-metrics.loss"):
        assert ordered(engine, spec)[-1] == "r20"  # every run has loss; r20's is NaN
    order = ordered(engine, "-metrics.`val/loss`")
    has = [r for r in RUNS if "val/loss" in r.metrics]
    assert order[: len(has)] == [r.id for r in sorted(has, key=lambda r: -r.metrics["val/loss"])]


def test_order_by_params_numbers_then_text_then_missing(engine: Engine) -> None:
    order = ordered(engine, "params.lr")
    assert order[-1] == "r49"  # 'auto' after every number
    lrs = [float(next(r for r in RUNS if r.id == i).params["lr"]) for i in order[:-1]]
    assert lrs == sorted(lrs)
    order = ordered(engine, "-params.lr")
    lrs = [float(next(r for r in RUNS if r.id == i).params["lr"]) for i in order[:-1]]
    assert lrs == sorted(lrs, reverse=True) and order[-1] == "r49"
    missing = sorted(r.id for r in RUNS if "optimizer" not in r.params)
    for spec in ("params.optimizer", "-params.optimizer"):
        assert ordered(engine, spec)[-len(missing) :] == missing


def test_order_by_attributes_and_tags(engine: Engine) -> None:
    assert ordered(engine, "-created") == [r.id for r in reversed(RUNS)]
    assert ordered(engine, "created") == [r.id for r in RUNS]
    assert ordered(engine, "id") == sorted(r.id for r in RUNS)
    running = sorted(r.id for r in RUNS if r.ended is None)
    for spec in ("duration", "-duration", "-ended"):
        assert ordered(engine, spec)[-len(running) :] == running
    order = ordered(engine, "-tags.team, -created")
    nlp = [r.id for r in reversed(RUNS) if r.tags.get("team") == "nlp"]
    cv = [r.id for r in reversed(RUNS) if r.tags.get("team") == "cv"]
    rest = [r.id for r in reversed(RUNS) if "team" not in r.tags]
    assert order == nlp + cv + rest


@pytest.mark.parametrize(
    ("spec", "message", "column"),
    [
        ("", "empty order", 1),
        ("metric.acc", "unknown field 'metric.acc' at column 1 (did you mean 'metrics.acc'?)", 1),
        ("-stauts", "unknown field 'stauts' at column 2 (did you mean 'status'?)", 2),
        ("name name", "unexpected 'name' at column 6: expected ',' or the end of the order", 6),
        ("-", "unexpected end of filter at column 2: expected a field", 2),
        ("name,", "unexpected end of filter at column 6: expected a field", 6),
        ("--name", "unexpected '-' at column 2: expected a field", 2),
        ("metrics.`acc", "unterminated backquoted key at column 9", 9),
    ],
)
def test_order_errors(spec: str, message: str, column: int) -> None:
    with pytest.raises(InvalidFilter) as caught:
        order_by_clause(spec)
    assert message in caught.value.message
    assert caught.value.column == column
    assert caught.value.expression == spec


# -- hypothesis: random trees, SQL against a Python oracle -------------------------------------------


def _like(pattern: str, value: str) -> bool:
    regex = ""
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            regex += re.escape(next(chars, ""))
        elif ch == "%":
            regex += ".*"
        elif ch == "_":
            regex += "."
        else:
            regex += re.escape(ch)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


_ATTR_VALUES: dict[str, Callable[[FakeRun], Any]] = {
    "status": lambda r: r.status,
    "name": lambda r: r.name,
    "kind": lambda r: r.kind,
    "parent": lambda r: r.parent,
    "user": lambda r: r.user,
    "created": lambda r: r.created,
    "duration": lambda r: None if r.ended is None else r.ended - r.created,
}


def _value_matches(op: str, actual: str | float, value: Any, is_param: bool) -> bool:
    if isinstance(value, bool):
        equal = isinstance(actual, str) and actual.lower() == ("true" if value else "false")
        return equal if op == "=" else not equal
    if op in ("like", "not like"):
        found = _like(value, str(actual))
        return found if op == "like" else not found
    if isinstance(actual, str) and isinstance(value, (int, float)):  # a param: compare its number
        number = _num(actual) if is_param else None
        if number is None:
            return op == "!="
        actual = number
    if isinstance(actual, float) and math.isnan(actual):
        return op == "!="
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    }  # fmt: skip
    return compare[op](actual, value)


def oracle(expr: Expr, run: FakeRun) -> bool:
    if isinstance(expr, And):
        return all(oracle(t, run) for t in expr.terms)
    if isinstance(expr, Or):
        return any(oracle(t, run) for t in expr.terms)
    if isinstance(expr, Not):
        return not oracle(expr.term, run)
    f = expr.field
    actual: Any
    actual = _ATTR_VALUES[f.key](run) if f.namespace == "attr" else getattr(run, f.namespace).get(f.key)
    if actual is None:
        return False
    if isinstance(expr, Exists):
        return True
    is_param = f.namespace == "params"
    if isinstance(expr, In):
        found = any(_value_matches("=", actual, v, is_param) for v in expr.values)
        return not found if expr.negated else found
    return _value_matches(expr.op, actual, expr.value, is_param)


_NUMBERS = st.sampled_from([0, 1, 2, 0.5, 0.1, 0.01, 0.001, 0.02, -1, 3, 1e-3, 0.98])
_WORDS = st.sampled_from(
    ["adam", "sgd", "nlp", "cv", "prod", "Prod-50%", "auto", "true", "r00", "user1", "x"]
)
_PATTERNS = st.sampled_from(["%", "a%", "%d%", "s_d", "LARGE%", "base-1_", "%\\%", "prod", "_"])
_OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
_EQ = st.sampled_from(["=", "!="])


def _leaf() -> st.SearchStrategy[Expr]:
    metric = st.sampled_from(["acc", "loss", "val/loss", "missing"]).map(M)
    param = st.sampled_from(["lr", "optimizer", "debug", "layers", "missing"]).map(P)
    tag = st.sampled_from(["team", "stage", "missing"]).map(T)
    text_attr = st.sampled_from(["name", "kind", "parent", "user"]).map(A)
    number_attr = st.sampled_from(["created", "duration"]).map(A)
    status_values = st.sampled_from(["finished", "failed", "crashed", "running", "cached"])
    return st.one_of(
        st.builds(Comparison, metric, _OPS, _NUMBERS),
        st.builds(Comparison, param, _OPS, _NUMBERS),
        st.builds(Comparison, param, _EQ, st.one_of(_WORDS, st.booleans())),
        st.builds(
            Comparison, st.one_of(param, tag, text_attr), st.sampled_from(["like", "not like"]), _PATTERNS
        ),
        st.builds(Comparison, st.one_of(tag, text_attr), _EQ, _WORDS),
        st.builds(Comparison, number_attr, _OPS, st.sampled_from([1_700_001_000, 1_700_003_050.5, 100, 250])),
        st.builds(Comparison, st.just(A("status")), _EQ, status_values),
        st.builds(In, metric, st.lists(_NUMBERS, min_size=1, max_size=3).map(tuple), st.booleans()),
        st.builds(
            In, param, st.lists(st.one_of(_NUMBERS, _WORDS), min_size=1, max_size=3).map(tuple), st.booleans()
        ),
        st.builds(
            In,
            st.just(A("status")),
            st.lists(status_values, min_size=1, max_size=3).map(tuple),
            st.booleans(),
        ),
        st.builds(Exists, st.one_of(metric, param, tag, text_attr, number_attr)),
    )


_TREES = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda ts: And(tuple(ts))),
        st.lists(inner, min_size=2, max_size=3).map(lambda ts: Or(tuple(ts))),
        inner.map(Not),
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    made = create_engine(f"sqlite:///{tmp_path_factory.mktemp('filters') / 'meta.db'}")
    fill(made)
    yield made
    made.dispose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_TREES)
def test_random_trees_round_trip_and_match_the_oracle(sqlite_engine: Engine, tree: Expr) -> None:
    text = str(tree)
    assert parse_filter(text) == tree
    assert matching(sqlite_engine, text) == ids(lambda r: oracle(tree, r))


# -- the docs ----------------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "filters.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOCS.read_text(), re.DOTALL)


def test_documented_filters_and_orders_parse() -> None:
    filters = [line for block in _blocks("filter") for line in block.splitlines() if line.strip()]
    orders = [line for block in _blocks("order") for line in block.splitlines() if line.strip()]
    assert len(filters) >= 10 and len(orders) >= 5
    for text in filters:
        compile_filter(parse_filter(text))
    for spec in orders:
        assert order_by_clause(spec)


def test_documented_errors_are_the_real_ones() -> None:
    (block,) = _blocks("errors")
    pairs = [entry.strip().split("\n") for entry in block.strip().split("\n\n")]
    assert len(pairs) >= 8
    for text, shown in pairs:
        with pytest.raises(InvalidFilter) as caught:
            parse_filter(text)
        assert shown == f"Error: {caught.value.message}"
