"""Traffic between versions: route specs, canary weights, shadow traffic, switches under load, the admin route.

The servers are real ``groundwork serve`` processes on 127.0.0.1 (``serve_subprocess``);
the load comes from many concurrent httpx clients.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.engines.serve.admin import ADMIN_TOKEN_ENV, admin_refusal, requested_route
from groundwork.engines.serve.routing import BadRoute, RouteSpec, RouteTable, Target

from .conftest import Load, Server, metric, serve_process

TOKEN = "route-test-token"


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, np.ndarray, Path]:
    """digits: v1 production, v2 candidate, v3 narrow (takes 10 features: every 64-wide row is 422 for it), v4 spare."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    home = tmp_path_factory.mktemp("routes")
    config = Config(store_url=f"sqlite:///{home / 'meta.db'}", artifacts_url=str(home / "artifacts"))
    x, y = load_digits(return_X_y=True)
    with gw.start_run(name="train", config=config, capture_code=False) as run:
        run.log_model(LogisticRegression(max_iter=2000).fit(x, y), "digits", example=x[:5])
        run.log_model(DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y), "digits", example=x[:5])
        run.log_model(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x[:, :10], y), "digits",
                      example=x[:5, :10])
        run.log_model(DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y), "digits", example=x[:5])
    gw.promote_model("digits", 1, alias="production", config=config)
    gw.promote_model("digits", 2, alias="candidate", config=config)
    gw.promote_model("digits", 3, alias="narrow", config=config)
    return config, x, home


@pytest.fixture
def serve_canary(canary: tuple[Config, np.ndarray, Path], tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, TOKEN)

    def start(*refs: str, flags: tuple[str, ...] = ()) -> Any:
        return serve_process(canary[0], refs, flags, tmp_path)

    return start


# -- the spec ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "weights"), [
    ("production=90,candidate=10", (("production", 90), ("candidate", 10))),
    (" production = 100 ", (("production", 100),)),
    ("3=50,latest=50", (("3", 50), ("latest", 50))),
    ("production=100,candidate=0", (("production", 100), ("candidate", 0))),
])
def test_route_specs_read(text: str, weights: Any) -> None:
    assert RouteSpec.parse(text).weights == weights
    assert RouteSpec.parse(dict(weights)).weights == weights


@pytest.mark.parametrize(("text", "message"), [
    ("production=90,candidate=20", "the weights add up to 110; they must add up to 100"),
    ("production=90", "the weights add up to 90"),
    ("production", "'production' is not TARGET=WEIGHT"),
    ("production=90,,candidate=10", "'' is not TARGET=WEIGHT"),
    ("production=ninety,candidate=10", "the weight of 'production' is 'ninety', not a whole number"),
    ("production=-10,candidate=110", "the weight of 'production' is '-10', not a whole number"),
    ("production=50.5,candidate=49.5", "not a whole number"),
    ("production=50,production=50", "names 'production' twice"),
    ("prod uction=100", "is not TARGET=WEIGHT"),
    ("0=100", "'0' is not a version number"),
    ("", "the route is empty"),
])
def test_bad_route_specs_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(BadRoute) as caught:
        RouteSpec.parse(text)
    assert message in caught.value.message
    assert "\n" not in caught.value.one_line()


def test_a_table_draws_each_target_by_its_weight() -> None:
    """Binomial tolerance: 20,000 draws at 90/10 land within 5 standard deviations of 2,000."""
    targets = {label: Target(label, None, None, None) for label in ("production", "candidate")}  # type: ignore[arg-type]
    table = RouteTable.build(RouteSpec.parse("production=90,candidate=10"), targets)
    draws = Counter(table.pick().label for _ in range(20_000))
    assert _within_binomial(draws["candidate"], 20_000, 0.10)
    zero = RouteTable.build(RouteSpec.parse("production=100,candidate=0"), targets)
    assert {zero.pick().label for _ in range(1000)} == {"production"}
    assert zero.primary() is targets["production"]


def test_admin_requests_need_loopback_a_configured_token_and_that_token() -> None:
    def scope(client: str, authorization: bytes | None) -> dict[str, Any]:
        headers = [(b"authorization", authorization)] if authorization is not None else []
        return {"client": (client, 5000), "headers": headers}

    assert admin_refusal(scope("127.0.0.1", b"Bearer t0ken"), "t0ken") is None
    assert admin_refusal(scope("::1", b"bearer t0ken"), "t0ken") is None
    refused = admin_refusal(scope("10.1.2.3", b"Bearer t0ken"), "t0ken")
    assert refused is not None and refused.http_status == 403 and "only this machine" in refused.message
    off = admin_refusal(scope("127.0.0.1", b"Bearer t0ken"), None)
    assert off is not None and off.http_status == 403 and ADMIN_TOKEN_ENV in (off.hint or "")
    for wrong in (None, b"Bearer t0ke", b"Basic t0ken", b"t0ken"):
        error = admin_refusal(scope("127.0.0.1", wrong), "t0ken")
        assert error is not None and error.http_status == 401


def test_a_route_change_keeps_the_fields_it_does_not_name() -> None:
    current = RouteSpec.parse("production=90,candidate=10", "candidate")
    assert requested_route({"route": "production=50,candidate=50"}, current) == RouteSpec(
        (("production", 50), ("candidate", 50)), "candidate")
    assert requested_route({"shadow": None}, current) == RouteSpec(current.weights, None)
    for body, message in (([1], "must be a JSON object"), ({"weights": 1}, "unknown field 'weights'"),
                          ({}, "neither route nor shadow"), ({"route": None}, "cannot be removed"),
                          ({"shadow": 3}, "as text")):
        with pytest.raises(gw.GroundworkError, match=message):
            requested_route(body, current)


# -- bad input on the command line ----------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["digits", "--route", "production=90,candidat=10"], "route 'production=90,candidat=10': model 'digits' has no alias 'candidat'"),
    (["digits", "--route", "production=90,candidate=20"], "the weights add up to 110"),
    (["digits", "--route", "production:90"], "'production:90' is not TARGET=WEIGHT"),
    (["digits@production", "--shadow", "nope"], "shadow 'nope': model 'digits' has no alias 'nope'"),
    (["digits@production", "--route", "production=100"], "with --route, name the model alone (digits)"),
    (["digits", "other", "--route", "production=100"], "--route applies to one model"),
    (["digits", "--route", "production=90,candidat=10", "--workers", "2"], "has no alias 'candidat'"),
])
def test_bad_routes_on_the_command_line_are_one_line(canary: tuple[Config, np.ndarray, Path], args: list[str],
                                                     message: str) -> None:
    config = canary[0]
    env = {**os.environ, **config.child_environ()}
    done = subprocess.run([sys.executable, "-m", "groundwork", "serve", *args, "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("Error: ") and message in " ".join(lines), done.stderr
    assert "Traceback" not in done.stderr


# -- real servers ----------------------------------------------------------------------------------------
def test_canary_weights_hold_over_many_requests(canary: tuple[Config, np.ndarray, Path], serve_canary: Any) -> None:
    """2,000 requests routed production=80,candidate=20: the candidate's share within 5 binomial SDs of 20%."""
    config, x, _ = canary
    expected = {v: gw.load_model(f"digits/{v}", config=config).predict(x[:50]).tolist() for v in (1, 2)}
    versions = _fire(serve_canary, ("digits",), ("--route", "production=80,candidate=20"), x, 2000, expected)
    assert set(versions) == {1, 2}
    assert _within_binomial(versions[2], 2000, 0.20), versions


def test_shadow_answers_are_never_returned_and_its_failures_fail_nothing(
        canary: tuple[Config, np.ndarray, Path], serve_canary: Any) -> None:
    config, x, _ = canary
    primary = gw.load_model("digits/1", config=config).predict(x[:50]).tolist()
    shadow = gw.load_model("digits/2", config=config).predict(x[:50]).tolist()
    assert primary != shadow  # a leaked shadow answer would show
    with serve_canary("digits@production", flags=("--shadow", "candidate")) as server:
        versions = _fire_at(server, x, 400, {1: primary})
        assert versions == Counter({1: 400})
        assert _wait_metric(server, 'groundwork_shadow_requests_total{model="digits",outcome="ok",target="candidate"}', 400)
        described = server.client.get("/v1/models/digits").json()
        assert described["shadow"]["target"] == "candidate" and described["shadow"]["version"] == 2
        assert described["route"] == [{"target": "production", "ref": "digits@production", "version": 1, "weight": 100}]
    # A shadow that rejects every request (it takes 10 features): the callers never notice.
    with serve_canary("digits", flags=("--route", "production=100", "--shadow", "narrow")) as server:
        assert _fire_at(server, x, 200, {1: primary}) == Counter({1: 200})
        assert _wait_metric(server, 'groundwork_shadow_requests_total{model="digits",outcome="error",target="narrow"}', 200)
        metrics = server.client.get("/metrics").text
    assert 'status="422"' not in metrics and 'status="500"' not in metrics


def test_weight_and_alias_switches_under_load_fail_no_request(
        canary: tuple[Config, np.ndarray, Path], serve_canary: Any) -> None:
    """16 clients post without pause while the weights change twice and an alias inside the route moves."""
    config, x, _ = canary

    def wait_for(load: Load, more: int) -> list[int]:
        """The versions of the next ``more`` answers to requests sent from now on.

        Each client may have one request in flight, drawn before now: its answer is left out.
        """
        before = [len(s) + 1 for s in load.seen]
        deadline = time.monotonic() + 120
        while load.count() < sum(before) + more and time.monotonic() < deadline:
            time.sleep(0.02)
        return [v for s, n in zip(load.seen, before, strict=True) for v in s[n:]]

    admin = {"authorization": f"Bearer {TOKEN}"}
    try:
        with serve_canary("digits", flags=("--route", "production=50,candidate=50", "--poll-interval", "0.2")) as server, \
                Load(server.url, "digits", x, clients=16) as load:
            assert set(wait_for(load, 300)) == {1, 2}
            changed = server.client.put("/admin/models/digits/route", json={"route": "candidate=100,production=0"},
                                        headers=admin)
            assert changed.status_code == 200, changed.text
            assert [t["target"] for t in changed.json()["route"]] == ["candidate"]
            assert set(wait_for(load, 300)) == {2}
            gw.promote_model("digits", 4, alias="candidate", reason="retrained", config=config)
            deadline = time.monotonic() + 60
            while 4 not in wait_for(load, 50) and time.monotonic() < deadline:
                pass
            assert set(wait_for(load, 300)) == {4}
            # A target the route did not have is loaded before it takes a request.
            changed = server.client.put("/admin/models/digits/route", json={"route": "3=0,production=100"},
                                        headers=admin)
            assert changed.status_code == 200, changed.text
            assert set(wait_for(load, 300)) == {1}
            log = server.log_text()
    finally:
        gw.promote_model("digits", 2, alias="candidate", config=config)
    assert load.failures == []
    assert "now routed candidate=100,production=0" in log
    assert "(route target candidate) now answers with version 4 (was 2)" in log


def test_the_admin_route_refuses_without_the_token_and_bad_routes_change_nothing(
        canary: tuple[Config, np.ndarray, Path], serve_canary: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_canary("digits", flags=("--route", "production=90,candidate=10")) as server:
        url = "/admin/models/digits/route"
        good = {"authorization": f"Bearer {TOKEN}"}
        assert server.client.put(url, json={"route": "production=100"}).status_code == 401
        assert server.client.put(url, json={"route": "production=100"},
                                 headers={"authorization": "Bearer nope"}).status_code == 401
        foreign = server.client.put(url, json={"route": "production=100"},
                                    headers={**good, "origin": "http://evil.example"})
        assert foreign.status_code == 403
        for body, status, message in (
            ({"route": "production=60,candidate=60"}, 400, "add up to 120"),
            ({"route": "production=50,nope=50"}, 404, "has no alias 'nope'"),
            ({"route": {"production": "lots"}}, 400, "not a whole number"),
        ):
            answer = server.client.put(url, json=body, headers=good)
            assert answer.status_code == status and message in answer.json()["message"], answer.text
        assert server.client.put("/admin/models/nope/route", json={"route": "a=100"}, headers=good).status_code == 404
        assert server.client.post(url, json={}, headers=good).status_code == 405
        assert server.client.put(url, content=b"route=x", headers={**good, "content-type": "text/plain"}).status_code == 415
        now = server.client.get(url, headers=good).json()
        assert [(t["target"], t["weight"]) for t in now["route"]] == [("production", 90), ("candidate", 10)]
    monkeypatch.delenv(ADMIN_TOKEN_ENV)
    with serve_canary("digits@production") as server:
        off = server.client.put("/admin/models/digits/route", json={"route": "production=100"},
                                headers={"authorization": f"Bearer {TOKEN}"})
        assert off.status_code == 403 and ADMIN_TOKEN_ENV in off.json()["hint"]


def test_a_model_served_without_a_route_can_get_one(canary: tuple[Config, np.ndarray, Path], serve_canary: Any) -> None:
    config, x, _ = canary
    expected = {v: gw.load_model(f"digits/{v}", config=config).predict(x[:50]).tolist() for v in (1, 2)}
    with serve_canary("digits@production") as server:
        changed = server.client.put("/admin/models/digits/route", json={"shadow": "candidate"},
                                    headers={"authorization": f"Bearer {TOKEN}"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["route"][0]["target"] == "production"
        changed = server.client.put("/admin/models/digits/route", json={"route": "production=50,candidate=50"},
                                    headers={"authorization": f"Bearer {TOKEN}"})
        assert changed.json()["shadow"]["target"] == "candidate"
        assert set(_fire_at(server, x, 300, expected)) == {1, 2}


@pytest.mark.slow
def test_with_two_workers_a_route_changed_in_one_reaches_the_other(
        canary: tuple[Config, np.ndarray, Path], serve_canary: Any) -> None:
    config, x, _ = canary
    expected = {v: gw.load_model(f"digits/{v}", config=config).predict(x[:50]).tolist() for v in (1, 2)}
    with serve_canary("digits", flags=("--route", "production=100", "--workers", "2", "--poll-interval", "0.2")) as server:
        assert set(_fire_at(server, x, 200, expected, fresh=True)) == {1}
        changed = server.client.put("/admin/models/digits/route", json={"route": "candidate=100"},
                                    headers={"authorization": f"Bearer {TOKEN}"})
        assert changed.status_code == 200, changed.text
        deadline = time.monotonic() + 60
        while set(_fire_at(server, x, 40, expected, fresh=True)) != {2} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert set(_fire_at(server, x, 200, expected, fresh=True)) == {2}


# -- helpers -----------------------------------------------------------------------------------------------
def _within_binomial(hits: int, n: int, p: float, sds: float = 5.0) -> bool:
    return abs(hits - n * p) <= sds * math.sqrt(n * p * (1 - p))


def _fire(start: Callable[..., Any], refs: tuple[str, ...], flags: tuple[str, ...], x: np.ndarray, n: int,
          expected: dict[int, list[int]]) -> Counter[int]:
    with start(*refs, flags=flags) as server:
        return _fire_at(server, x, n, expected)


def _fire_at(server: Server, x: np.ndarray, n: int, expected: dict[int, list[int]], fresh: bool = False) -> Counter[int]:
    """``n`` one-row requests from 16 threads; each answer must be its version's own prediction. Versions counted."""
    versions: Counter[int] = Counter()
    problems: list[str] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(offset, n, 16):
                row = i % 50
                client = httpx.Client(base_url=server.url, timeout=60) if fresh else http
                try:
                    answer = client.post("/v1/models/digits/predict", json={"inputs": x[row:row + 1].tolist()})
                finally:
                    if fresh:
                        client.close()
                if answer.status_code != 200:
                    problems.append(f"{answer.status_code} {answer.text}")
                    continue
                body = answer.json()
                version = body["model_version"]
                if body["outputs"] != expected.get(version, [None] * 50)[row:row + 1]:
                    problems.append(f"version {version} answered {body['outputs']} for row {row}")
                with lock:
                    versions[version] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == [], problems[:5]
    return versions


def _wait_metric(server: Server, name: str, at_least: float) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError):
            if metric(server.client.get("/metrics").text, name) >= at_least:
                return True
        time.sleep(0.1)
    return False
