"""The store API of the team server (groundwork.server.store_api), in-process: roles, bodies, audit, bounds.

The client side, over a real server process, is tests/storage/test_store_contract.py and
tests/storage/test_http_client.py.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from groundwork.config import Config
from groundwork.server import store_api, team as team_ops
from groundwork.server.app import create_app
from groundwork.server.auth import Role
from groundwork.storage.http import CONTRACTS, contract_methods

PREFIX = "/api/v1/store"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str], Any]]:
    home = tmp_path_factory.mktemp("store-api")
    app = create_app(Config(store_url=f"sqlite:///{home / 'meta.db'}", artifacts_url=str(home / "art")), ui=False,
                     team=True)
    team = app.state.team
    by = team_ops.operator()
    team_ops.add_project(team, by, "alpha")
    tokens = {}
    for role in ("viewer", "editor", "maintainer"):
        team_ops.add_user(team, by, role, None)
        team_ops.grant(team, by, role, "alpha", role)
        tokens[role] = team_ops.create_token(team, by, user=role, project="alpha", role=role, name="t")[1].text
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, tokens, team


def call(client: TestClient, token: str | None, contract: str, method: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(f"{PREFIX}/{contract}/{method}", json=body, headers=headers)


def new_row(**fields: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "name": "r", "status": "running", "created_at": time.time(), **fields}


def test_every_method_of_every_contract_has_a_role_and_nothing_else_does() -> None:
    assert set(store_api.ROLES) == set(CONTRACTS)
    for contract in CONTRACTS:
        assert set(store_api.ROLES[contract]) == set(contract_methods(contract)), contract
    reads = {name for roles in store_api.ROLES.values() for name, role in roles.items() if role == Role.viewer}
    assert all(not name.startswith(("create_", "set_", "add_", "write_", "log_", "insert_", "finish_", "end_"))
               for name in reads - {"log_entries"})
    assert store_api.ROLES["registry"]["set_alias"] == Role.maintainer
    assert store_api.ROLES["metadata"]["write_batch"] == Role.editor


def test_every_route_is_documented_with_a_body_schema_and_asks_the_role_of_the_table(
    world: tuple[TestClient, dict[str, str], Any],
) -> None:
    client, _, _ = world
    document = client.get("/api/openapi.json").json()
    routes = {"/api/v1" + r.path: r for r in store_api.router.routes}  # type: ignore[attr-defined]
    for contract in CONTRACTS:
        for name, method in contract_methods(contract).items():
            path = f"{PREFIX}/{contract}/{name}"
            operation = document["paths"][path]["post"]
            assert operation["tags"] == [f"store: {contract}"]
            if method.parameters:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in document["components"]["schemas"]
            assert routes[path].endpoint.required_role == store_api.ROLES[contract][name]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("contract", "method"), [(c, m) for c in CONTRACTS for m in contract_methods(c)])
def test_each_route_answers_only_the_roles_it_names(
    world: tuple[TestClient, dict[str, str], Any], contract: str, method: str
) -> None:
    client, tokens, _ = world
    needed = store_api.ROLES[contract][method]
    assert call(client, None, contract, method, {}).status_code == 401
    for role, token in tokens.items():
        status = call(client, token, contract, method, {}).status_code
        if Role[role] < needed:
            assert status == 403, (role, status)
        else:
            assert status not in (401, 403, 500), (role, status)


def test_bad_bodies_are_one_clear_400(world: tuple[TestClient, dict[str, str], Any]) -> None:
    client, tokens, _ = world
    editor = tokens["editor"]
    answers = [
        call(client, editor, "metadata", "create_run", {"row": {**new_row(), "project": "beta"}}),  # not the body's
        call(client, editor, "metadata", "create_run", {"row": new_row(id="../../x")}),
        call(client, editor, "metadata", "search_runs", {"limit": 10**6}),
        call(client, editor, "metadata", "write_batch", {"segments": [
            {"run_id": "r", "key": "x", "steps": {"__ndarray__": "AAAA", "dtype": "<i8", "shape": [1]},
             "values": {"__ndarray__": "", "dtype": "<f8", "shape": [0]},
             "timestamps": {"__ndarray__": "", "dtype": "<f8", "shape": [0]}}]}),
        call(client, editor, "metadata", "write_batch", {"segments": [
            {"run_id": "r", "key": "x", "steps": {"__ndarray__": "", "dtype": "|O", "shape": [0]},
             "values": {"__ndarray__": "", "dtype": "<f8", "shape": [0]},
             "timestamps": {"__ndarray__": "", "dtype": "<f8", "shape": [0]}}]}),
        call(client, editor, "metadata", "update_run", {"run_id": "a" * 32, "values": {"project": "beta"}}),
        call(client, editor, "metadata", "log_metrics", {"points": [["r", "x", 2**64, 1.0, 1.0]]}),
    ]
    for answer in answers:
        body = answer.json()
        assert answer.status_code == 400 and body["ok"] is False and body["message"], answer.text
        assert "Traceback" not in answer.text


def test_segments_whose_arrays_disagree_in_length_are_refused(world: tuple[TestClient, dict[str, str], Any]) -> None:
    client, tokens, _ = world
    run = new_row()
    assert call(client, tokens["editor"], "metadata", "create_run", {"row": run}).status_code == 200

    def array(values: bytes, dtype: str) -> dict[str, Any]:
        return {"__ndarray__": base64.b64encode(values).decode(), "dtype": dtype, "shape": [len(values) // 8]}

    answer = call(client, tokens["editor"], "metadata", "write_batch", {"segments": [
        {"run_id": run["id"], "key": "x", "steps": array(bytes(16), "<i8"), "values": array(bytes(8), "<f8"),
         "timestamps": array(bytes(16), "<f8")}]})
    assert answer.status_code == 400 and "2 steps, 1 values" in answer.json()["message"]


def test_an_oversized_body_is_a_413_before_it_is_read_whole(
    world: tuple[TestClient, dict[str, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, tokens, _ = world
    monkeypatch.setattr(store_api, "MAX_BODY", 1000)
    answer = call(client, tokens["editor"], "metadata", "log_params", {"run_id": "x", "params": {"a": "b" * 2000}})
    assert answer.status_code == 413 and answer.json()["error"] == "Payload too large"


def test_run_and_registry_changes_are_audited_and_metric_batches_are_not(
    world: tuple[TestClient, dict[str, str], Any],
) -> None:
    client, tokens, team = world
    run = new_row()
    before = len(team.audit_entries(project="alpha", since=None, actor=None, action=None, before_id=None, limit=1000))
    assert call(client, tokens["editor"], "metadata", "write_batch",
                {"creations": [{"row": run}], "batch_id": uuid.uuid4().hex}).status_code == 200
    for step in range(3):
        assert call(client, tokens["editor"], "metadata", "log_metrics",
                    {"points": [[run["id"], "loss", step, 0.5, time.time()]]}).status_code == 200
    assert call(client, tokens["editor"], "metadata", "log_params", {"run_id": run["id"], "params": {"lr": 1}}).json()
    name = f"m-{uuid.uuid4().hex[:6]}"
    version = call(client, tokens["maintainer"], "registry", "create_version",
                   {"name": name, "artifact": {"digest": "a" * 64, "size": 1, "is_dir": False, "file_count": 1},
                    "flavor": "sklearn", "run_id": run["id"]}).json()["result"]
    assert call(client, tokens["maintainer"], "registry", "set_alias",
                {"name": name, "alias": "production", "version": version, "who": "maintainer"}).status_code == 200
    assert call(client, tokens["maintainer"], "registry", "set_alias",
                {"name": name, "alias": "production", "version": None, "who": "maintainer"}).status_code == 200
    entries = team.audit_entries(project="alpha", since=None, actor=None, action=None, before_id=None, limit=1000)
    new = [(e.actor, e.action, e.target) for e in entries[: len(entries) - before]][::-1]
    assert new == [("editor", "run.create", run["id"]), ("editor", "run.params", run["id"]),
                   ("maintainer", "model.register", name), ("maintainer", "model.alias", f"{name}@production"),
                   ("maintainer", "model.alias.remove", f"{name}@production")]
    assert all(e.address for e in entries[: len(entries) - before])  # from which address: the test client's


def test_a_store_api_body_has_no_room_for_a_project() -> None:
    """The project is the token's: no body model of any method has a field that could name another."""
    for contract in CONTRACTS:
        for name in contract_methods(contract):
            model = store_api.body_model(contract, name)
            assert model is None or "project" not in model.model_fields, (contract, name)
    assert "project" not in store_api.RunRowIn.model_fields and "project" not in store_api.RunUpdateIn.model_fields


def test_runs_created_through_the_server_are_the_token_users_whatever_user_the_client_names(
    world: tuple[TestClient, dict[str, str], Any],
) -> None:
    client, tokens, _ = world
    made, batched, inserted = new_row(user="root"), new_row(user="root"), new_row(user="root", kind="step")
    assert call(client, tokens["editor"], "metadata", "create_run", {"row": made}).status_code == 200
    assert call(client, tokens["editor"], "metadata", "write_batch",
                {"creations": [{"row": batched}], "batch_id": uuid.uuid4().hex}).status_code == 200
    assert call(client, tokens["editor"], "pipelines", "insert_runs", {"runs": [{"row": inserted}]}).status_code == 200
    for run in (made, batched, inserted):
        answer = call(client, tokens["viewer"], "metadata", "get_run", {"run_id": run["id"]})
        assert answer.status_code == 200 and answer.json()["result"]["user"] == "editor", answer.text
