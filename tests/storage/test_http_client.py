"""The team server's client (groundwork.storage.http): where it may send a token, which token, what errors look like.

The contracts themselves are checked by tests/storage/test_store_contract.py; here what only
a network client has: transport and credentials, errors rebuilt from answers, a server that
is down, a token that is wrong or too weak.
"""

from __future__ import annotations

import inspect
import json
import uuid
from pathlib import Path

import pytest

from _servers import GroundworkServer, free_port, team_token
from groundwork.config import Config
from groundwork.errors import (
    AuthError,
    ConfigError,
    Forbidden,
    InvalidFilter,
    InvalidInput,
    NotFound,
    RunNotFound,
    StoreError,
)
from groundwork.storage import http
from groundwork.storage.http import (
    CONTRACTS,
    HttpClient,
    HttpMetadataStore,
    HttpMonitorStore,
    HttpPipelineStore,
    HttpRegistryStore,
    check_transport,
    contract_methods,
    error_from_answer,
    token_for,
)
from groundwork.storage.stores import open_stores

IMPLEMENTATIONS = {"metadata": HttpMetadataStore, "registry": HttpRegistryStore, "pipelines": HttpPipelineStore,
                   "monitor": HttpMonitorStore}


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_each_client_class_has_every_method_of_its_contract_with_the_same_parameters(contract: str) -> None:
    cls = IMPLEMENTATIONS[contract]
    for name, method in contract_methods(contract).items():
        mine = inspect.signature(getattr(cls, name))
        theirs = [(p.name, p.kind) for p in method.parameters]
        assert [(p.name, p.kind) for p in mine.parameters.values() if p.name not in ("self", "once")] == theirs, name


@pytest.mark.parametrize("url", ["https://gw.example.com", "https://10.0.0.5:8443/", "http://127.0.0.1:8080",
                                 "http://localhost:5000", "http://[::1]:80"])
def test_tls_or_this_machine_may_carry_a_token(url: str) -> None:
    assert check_transport(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://gw.example.com", "http://10.0.0.5:8080"])
def test_plain_http_to_another_machine_is_refused_unless_allowed(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="clear text") as refused:
        check_transport(url)
    assert "GROUNDWORK_ALLOW_HTTP=1" in (refused.value.hint or "")
    monkeypatch.setenv("GROUNDWORK_ALLOW_HTTP", "1")
    assert check_transport(url) == url


@pytest.mark.parametrize("url", ["ftp://host", "gw.example.com", "https://"])
def test_a_server_url_that_is_not_http_is_one_clear_error(url: str) -> None:
    with pytest.raises(ConfigError, match="GROUNDWORK_SERVER must be an http"):
        check_transport(url)


def test_the_token_comes_from_the_environment_else_from_what_login_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config = Config(server_url="https://gw.example.com/")
    with pytest.raises(ConfigError, match="no token for the groundwork server https://gw.example.com") as none:
        token_for(config)
    assert "groundwork login https://gw.example.com" in (none.value.hint or "")
    saved = tmp_path / "groundwork" / "credentials.json"
    saved.parent.mkdir()
    saved.write_text(json.dumps({"servers": {"https://gw.example.com": {"token": "gw_saved", "project": "vision",
                                                                      "user": "ann"}}}))
    assert token_for(config) == "gw_saved"
    assert token_for(config.with_(token="gw_env")) == "gw_env"


def test_error_answers_become_the_servers_own_error_class() -> None:
    import groundwork.engines.serve.hosts  # noqa: F401  # its ForeignRequest is also a 403 "Forbidden": not chosen

    body = {"ok": False, "status": 404, "error": "Run not found", "message": "no run 'x'", "hint": "list runs"}
    error = error_from_answer(404, body, "https://gw")
    assert type(error) is RunNotFound and (error.message, error.hint) == ("no run 'x'", "list runs")
    bad = error_from_answer(400, {"error": "Invalid filter", "message": "unexpected '>'", "hint": None,
                                  "column": 7, "expression": "a >> b"}, "https://gw")
    assert isinstance(bad, InvalidFilter) and bad.column == 7 and bad.pointer().endswith("^")
    odd = error_from_answer(404, {"error": "Something new", "message": "gone"}, "https://gw")
    assert type(odd) is NotFound and odd.headline == "Something new"
    expired = error_from_answer(401, {"error": "Not authorized", "message": "this token has expired"}, "https://gw")
    assert isinstance(expired, AuthError) and "groundwork login https://gw" in (expired.hint or "")
    assert isinstance(error_from_answer(403, {"error": "Forbidden", "message": "no"}, "https://gw"), Forbidden)
    assert isinstance(error_from_answer(502, None, "https://gw"), StoreError)
    assert isinstance(error_from_answer(418, "teapot", "https://gw"), InvalidInput)


def test_a_server_that_is_not_there_is_one_clear_error_after_the_retries() -> None:
    client = HttpClient(f"http://127.0.0.1:{free_port()}", "gw_token", retry_s=0.3)
    store = HttpMetadataStore(client)
    with pytest.raises(StoreError, match="cannot reach the groundwork server http://127.0.0.1") as down:
        store.get_run("a" * 32)
    assert "gw_token" not in down.value.one_line()


def test_a_wrong_token_and_a_too_weak_one_are_one_line_each(team_server: GroundworkServer) -> None:
    project = f"p-{uuid.uuid4().hex[:10]}"
    wrong = open_stores(Config(server_url=team_server.url, token="gw_0123456789abcdef_" + "x" * 43))
    with pytest.raises(AuthError) as refused:
        wrong.metadata.search_runs()
    assert "x" * 43 not in refused.value.one_line()
    viewer = open_stores(Config(server_url=team_server.url, token=team_token(team_server.store_url, project, "viewer")))
    assert viewer.metadata.search_runs() == []
    with pytest.raises(Forbidden, match="editor"):
        viewer.metadata.create_run({"id": uuid.uuid4().hex, "name": "x", "status": "running", "created_at": 1.0})
    editor = open_stores(Config(server_url=team_server.url, token=team_token(team_server.store_url, project, "editor")))
    with pytest.raises(Forbidden, match="maintainer"):
        editor.registry.set_alias("digits", "production", 1, who="me")


def test_projects_do_not_see_each_others_runs(team_server: GroundworkServer) -> None:
    ours, theirs = (open_stores(Config(server_url=team_server.url,
                                       token=team_token(team_server.store_url, f"p-{uuid.uuid4().hex[:10]}", "editor")))
                    for _ in range(2))
    run_id = uuid.uuid4().hex
    ours.metadata.create_run({"id": run_id, "name": "mine", "status": "running", "created_at": 1.0})
    assert [r.id for r in ours.metadata.search_runs()] == [run_id]
    assert theirs.metadata.search_runs() == []
    with pytest.raises(RunNotFound):
        theirs.metadata.get_run(run_id)
    with pytest.raises(RunNotFound):
        theirs.metadata.log_params(run_id, {"stolen": True})


def test_large_searches_are_paged_by_the_client(team_server: GroundworkServer, monkeypatch: pytest.MonkeyPatch) -> None:
    stores = open_stores(Config(server_url=team_server.url,
                                token=team_token(team_server.store_url, f"p-{uuid.uuid4().hex[:10]}", "editor")))
    ids = [uuid.uuid4().hex for _ in range(7)]
    for i, run_id in enumerate(ids):
        stores.metadata.create_run({"id": run_id, "name": f"r{i}", "status": "running", "created_at": 100.0 + i})
    monkeypatch.setattr(http, "PAGE_MAX", 3)
    assert [r.id for r in stores.metadata.search_runs(limit=None)] == ids[::-1]
    assert [r.id for r in stores.metadata.search_runs(limit=5, offset=1)] == ids[::-1][1:6]
