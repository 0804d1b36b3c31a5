"""``/api/v1/runs``: the table (filter, sort, page, columns, count), one run, its logs and diff."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from _api_asserts import assert_error
from _clients import local_client
from _ui_store import Recorded
from starlette.testclient import TestClient

from groundwork.config import Config


def test_first_page_is_newest_first_with_automatic_columns(client: TestClient, recorded: Recorded) -> None:
    body = client.get("/api/v1/runs", params={"limit": 5}).json()
    assert body["ok"] is True and len(body["runs"]) == 5 and body["more"] is True
    created = [r["created_at"] for r in body["runs"]]
    assert created == sorted(created, reverse=True)
    assert body["total"] >= 12  # the unfiltered total comes with the page
    assert all(c.split(".")[0] in ("params", "metrics") for c in body["columns"])


def test_filter_uses_the_filter_language(client: TestClient, recorded: Recorded) -> None:
    body = client.get("/api/v1/runs", params={"filter": "params.lr = 0.01 and metrics.acc > 0.5"}).json()
    assert [r["id"] for r in body["runs"]] == [recorded.train[1]]
    assert body["total"] is None  # a filtered total is its own, cached, request
    count = client.get("/api/v1/runs/count", params={"filter": "params.lr = 0.01 and metrics.acc > 0.5"}).json()
    assert count["total"] == 1
    failed = client.get("/api/v1/runs", params={"filter": "status = 'failed'", "limit": 100}).json()
    assert recorded.failed in {r["id"] for r in failed["runs"]}


def test_a_filter_syntax_error_points_at_its_column(client: TestClient) -> None:
    body = assert_error(client.get("/api/v1/runs", params={"filter": "metrics.acc >> 0.9"}), 400)
    assert body["error"] == "Invalid filter"
    assert body["column"] == 14 and body["expression"] == "metrics.acc >> 0.9"
    unknown = assert_error(client.get("/api/v1/runs", params={"filter": "metric.acc > 1"}), 400, "unknown field")
    assert unknown["column"] == 1
    assert_error(client.get("/api/v1/runs/count", params={"filter": "("}), 400)


def test_a_bad_sort_key_is_a_400(client: TestClient) -> None:
    body = assert_error(client.get("/api/v1/runs", params={"order_by": "-metricz.acc"}), 400, "unknown field")
    assert body["column"] == 2


def test_chosen_columns_only(client: TestClient, recorded: Recorded) -> None:
    body = client.get("/api/v1/runs", params={"columns": ["params.lr", "metrics.loss", "tags.team"], "filter": "tags.team = 'vision'"}).json()
    assert body["columns"] == ["params.lr", "metrics.loss", "tags.team"]
    for run in body["runs"]:
        assert set(run["params"]) <= {"lr"} and set(run["metrics"]) <= {"loss"} and run["tags"] == {"team": "vision"}
    assert_error(client.get("/api/v1/runs", params={"columns": "lr"}), 400, "unknown column")
    assert_error(client.get("/api/v1/runs", params={"columns": [f"params.k{i}" for i in range(201)]}), 400, "too many")


def test_columns_lists_every_key(client: TestClient) -> None:
    body = client.get("/api/v1/runs/columns").json()
    assert {"lr", "epochs", "optimizer"} <= set(body["params"])
    assert {"acc", "loss"} <= set(body["metrics"])
    assert "team" in body["tags"]


def test_one_run_has_everything_the_page_shows(client: TestClient, recorded: Recorded) -> None:
    run = client.get(f"/api/v1/runs/{recorded.train[0][:10]}").json()["run"]
    assert run["id"] == recorded.train[0]
    assert run["params"] == {"epochs": 30, "lr": 0.1, "optimizer": "sgd"}
    assert {m["key"] for m in run["metric_keys"]} == {"acc", "loss"}
    assert run["environment"]["python"]["version"]
    assert {a["name"] for a in run["outputs"]} >= {"plots/confusion.png", "model_dir"}
    assert run["inputs"][0]["name"] == "data/train.csv"
    assert run["has_logs"] is True
    pipeline = client.get(f"/api/v1/runs/{recorded.pipeline}").json()["run"]
    assert pipeline["children"]["count"] == 3
    step = client.get(f"/api/v1/runs/{recorded.steps['ingest']}").json()["run"]
    assert step["parent"]["id"] == recorded.pipeline and step["parent"]["kind"] == "pipeline"
    by_name = client.get("/api/v1/runs/train-diverged").json()["run"]
    assert by_name["status"] == "failed" and "FloatingPointError" in by_name["error"]


def test_unknown_and_ambiguous_runs(client: TestClient) -> None:
    assert_error(client.get("/api/v1/runs/no-such-run"), 404, "no-such-run")
    assert_error(client.get("/api/v1/runs/no-such-run/logs"), 404)
    assert_error(client.get("/api/v1/runs/no-such-run/diff"), 404)
    assert_error(client.get("/api/v1/runs/no-such-run/children"), 404)


def test_children_are_the_steps(client: TestClient, recorded: Recorded) -> None:
    body = client.get(f"/api/v1/runs/{recorded.pipeline}/children").json()
    assert [r["name"] for r in body["runs"]] == ["ingest", "features", "train"]


def test_logs_tail_after_and_search(client: TestClient, recorded: Recorded) -> None:
    run = recorded.train[0]
    body = client.get(f"/api/v1/runs/{run}/logs").json()
    texts = [line["text"] for line in body["lines"]]
    assert any("epoch 29" in t for t in texts) and any("warning" in t for t in texts)
    streams = {line["stream"] for line in body["lines"]}
    assert streams == {"stdout", "stderr"}
    only_err = client.get(f"/api/v1/runs/{run}/logs", params={"stream": "stderr"}).json()
    assert {line["stream"] for line in only_err["lines"]} == {"stderr"}
    after = client.get(f"/api/v1/runs/{run}/logs", params={"after": body["last_id"]}).json()
    assert after["lines"] == [] and after["last_id"] == body["last_id"]
    found = client.get(f"/api/v1/runs/{run}/logs", params={"q": "WARNING: learning"}).json()
    assert len(found["lines"]) == 1
    none = client.get(f"/api/v1/runs/{run}/logs", params={"q": "100%_"}).json()
    assert none["lines"] == []


def test_diff_of_a_run_without_one_is_empty(client: TestClient, recorded: Recorded) -> None:
    body = client.get(f"/api/v1/runs/{recorded.prep}/diff").json()
    assert body["diff"] == "" and body["truncated"] is False


def test_a_run_recorded_in_a_git_checkout_shows_its_diff(tmp_path: Path, workspace: Config, fresh_client: TestClient) -> None:
    import subprocess

    from groundwork.core.tracking import start_run

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "train.py").write_text("lr = 0.1\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    (repo / "train.py").write_text("lr = 0.01\n")
    import os

    cwd = os.getcwd()
    os.chdir(repo)
    try:
        with start_run(name="dirty", config=workspace) as run:
            pass
    finally:
        os.chdir(cwd)
    body = fresh_client.get(f"/api/v1/runs/{run.id}/diff").json()
    assert body["dirty"] is True
    assert "-lr = 0.1" in body["diff"] and "+lr = 0.01" in body["diff"]


# -- sorting: the indexed fast path must give exactly the generic order ------------------------------
@pytest.fixture
def sortable(store_url: str, tmp_path: Path) -> Iterator[tuple[Config, TestClient]]:
    """Runs whose metric ``score`` ties, is NaN or is missing; param ``p`` mixes numbers and text."""
    from groundwork.core.tracking import start_run
    from groundwork.server.app import create_app

    config = Config(store_url=store_url, artifacts_url=str(tmp_path / "artifacts"))
    values: list[tuple[float | None, object]] = [
        (0.5, 3), (0.9, "abc"), (None, 1), (float("nan"), 2.5), (0.5, None), (0.1, "10"), (0.9, 10),
        (None, "b"), (float("nan"), None), (0.7, 0.5), (0.5, "1e1"), (0.2, -1),
    ]
    for i, (score, p) in enumerate(values):
        params = {} if p is None else {"p": p}
        with start_run(name=f"s{i:02d}", params=params, config=config, capture_code=False) as run:
            if score is not None:
                run.log({"score": score}, step=0)
    with local_client(create_app(config, ui=False)) as test_client:
        yield config, test_client


@pytest.mark.parametrize("order", ["-metrics.score", "metrics.score", "params.p", "-params.p", "metrics.score desc", "+params.p"])
@pytest.mark.parametrize("filter", ["", "name != 's03'"])
def test_fast_sort_pages_equal_the_generic_order(sortable: tuple[Config, TestClient], order: str, filter: str) -> None:
    from groundwork.core.runs import runs

    config, client = sortable
    expected = [r.name for r in runs(filter=filter or None, order_by=order, limit=None, config=config)]
    got: list[str] = []
    for offset in range(0, 14, 3):  # pages that straddle the segments (values, NaN/text, missing)
        page = client.get("/api/v1/runs", params={"order_by": order, "limit": 3, "offset": offset, "filter": filter}).json()
        got.extend(r["name"] for r in page["runs"])
    assert got == expected
    whole = client.get("/api/v1/runs", params={"order_by": order, "limit": 100, "filter": filter}).json()
    assert [r["name"] for r in whole["runs"]] == expected


def test_nan_metrics_are_null_in_json(sortable: tuple[Config, TestClient]) -> None:
    _, client = sortable
    body = client.get("/api/v1/runs", params={"filter": "name = 's03'", "columns": "metrics.score"}).json()
    assert body["runs"][0]["metrics"] == {"score": None}
    assert not math.isnan(0.0)


# -- selective filters start from an index: the same runs, in the same order, either way -------------
DRIVEN_FILTERS = [
    "metrics.score > 0.4",
    "metrics.score = 0.5 and params.p >= 2",
    "params.p < 5 and metrics.score <= 0.9",
    "params.p = 10",
    "params.p = '10' and metrics.score < 1",
    "status = 'finished' and metrics.score >= 0.5",
    "name = 's06' and params.p > 1",
    "(metrics.score > 0.1 and params.p > 0) and not name = 's00'",
    "metrics.score > 0.1 or params.p > 0",  # an `or`: no driver, still correct
    "metrics.score > 5",  # a driver with no runs
]


@pytest.mark.parametrize("driven", [True, False])
@pytest.mark.parametrize("filter", DRIVEN_FILTERS)
def test_index_driven_filters_match_the_cli(
    sortable: tuple[Config, TestClient], monkeypatch: pytest.MonkeyPatch, filter: str, driven: bool
) -> None:
    from groundwork.core.runs import runs
    from groundwork.storage import search

    config, client = sortable
    monkeypatch.setattr(search, "worth_driving", lambda *_: driven)
    for order in ("", "-metrics.score", "name"):
        expected = [r.name for r in runs(filter=filter, order_by=order or None, limit=None, config=config)]
        got: list[str] = []
        for offset in range(0, 13, 4):
            page = client.get("/api/v1/runs", params={"filter": filter, "order_by": order, "limit": 4, "offset": offset})
            got.extend(r["name"] for r in page.json()["runs"])
        assert got == expected, (filter, order)
    count = client.get("/api/v1/runs/count", params={"filter": filter}).json()["total"]
    assert count == len(expected)


def test_which_conditions_can_drive_a_query() -> None:
    from groundwork.filters import parse_filter
    from groundwork.storage.search import drivers as _drivers

    def n(text: str) -> int:
        return len(_drivers(parse_filter(text)))

    assert n("metrics.acc > 0.9 and params.lr = 0.01") == 2
    assert n("(metrics.acc > 0.9 and status = 'failed') and name = 'x'") == 3
    assert n("metrics.acc > 0.9 or params.lr = 0.01") == 0
    assert n("not metrics.acc > 0.9") == 0
    assert n("metrics.acc != 0.9 and params.opt = 'adam' and tags.team = 'x' and params.flag = true") == 0
    assert n("params.opt like 'ad%'") == 0
