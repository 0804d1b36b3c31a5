"""``/api/v1/models``: models, versions, aliases, history; promote through the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _api_asserts import assert_error
from _clients import LOCAL_URL, local_client
from _ui_store import _register
from starlette.testclient import TestClient

from groundwork.config import Config

pytest.importorskip("sklearn", reason="the test model is a scikit-learn model")


@pytest.fixture
def registry_client(workspace: Config, tmp_path: object) -> Iterator[TestClient]:
    from pathlib import Path

    from groundwork.server.app import create_app

    _register(workspace, Path(str(tmp_path)))
    with local_client(create_app(workspace)) as test_client:
        yield test_client


def test_list_and_show(registry_client: TestClient) -> None:
    (model,) = registry_client.get("/api/v1/models").json()["models"]
    assert model["name"] == "digits" and model["latest_version"] == 2 and model["aliases"] == {"production": 1}
    body = registry_client.get("/api/v1/models/digits").json()
    assert [v["version"] for v in body["versions"]] == [2, 1]
    assert body["versions"][1]["aliases"] == ["production"]
    assert body["versions"][0]["run"]["name"] == "train-model-C0.1"
    assert body["aliases"] == {"production": 1}
    assert body["history"][0]["reason"] == "first model"


def test_promote_moves_the_alias_and_records_why(registry_client: TestClient) -> None:
    response = registry_client.post("/api/v1/models/digits/aliases/production", json={"version": 2, "reason": "better acc"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["move"]["from_version"] == 1 and body["move"]["to_version"] == 2
    assert body["aliases"] == {"production": 2}
    history = registry_client.get("/api/v1/models/digits").json()["history"]
    assert [(h["from_version"], h["to_version"], h["reason"]) for h in history[:2]] == [(1, 2, "better acc"), (None, 1, "first model")]
    removed = registry_client.request("DELETE", "/api/v1/models/digits/aliases/production", json={"reason": "rollback"})
    assert removed.json()["was"] == 2 and removed.json()["aliases"] == {}


def test_promote_mistakes_are_4xx(registry_client: TestClient) -> None:
    assert_error(registry_client.post("/api/v1/models/digits/aliases/production", json={"version": 9}), 404, "no version 9")
    assert_error(registry_client.post("/api/v1/models/nope/aliases/production", json={"version": 1}), 404, "nope")
    assert_error(registry_client.post("/api/v1/models/digits/aliases/bad alias!", json={"version": 1}), 400, "alias")
    assert_error(registry_client.post("/api/v1/models/digits/aliases/production", json={"version": "x"}), 400, "version")
    assert_error(registry_client.post("/api/v1/models/digits/aliases/production", json={}), 400, "version", "required")
    for huge in (99999999999999999999999, 2**63, 2**31):  # beyond any store's integer: a 400, not an OverflowError 500
        assert_error(registry_client.post("/api/v1/models/digits/aliases/production", json={"version": huge}), 400, "version")
    assert_error(registry_client.post("/api/v1/models/digits/aliases/production", json={"version": 2**31 - 1}), 404, "no version")
    assert_error(registry_client.post("/api/v1/models/digits/aliases/production", content=b"{nope", headers={"content-type": "application/json"}), 400)
    assert_error(registry_client.get("/api/v1/models/nope"), 404, "nope")


def test_writes_from_other_sites_are_refused(registry_client: TestClient) -> None:
    form = registry_client.post("/api/v1/models/digits/aliases/production", content=b"version=2",
                                headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code in (400, 422) and form.json()["ok"] is False
    cross = registry_client.post("/api/v1/models/digits/aliases/production", json={"version": 2},
                                 headers={"origin": "http://evil.example"})
    assert_error(cross, 403, "cross-origin")
    same = registry_client.post("/api/v1/models/digits/aliases/production", json={"version": 2},
                                headers={"origin": LOCAL_URL})
    assert same.status_code == 200
    assert registry_client.get("/api/v1/models").json()["models"][0]["aliases"] == {"production": 2}
