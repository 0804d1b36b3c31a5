"""DNS rebinding and cross-site writes against a real ``groundwork ui`` on 127.0.0.1 (issue #9, items 5 and 7).

A page on ``evil.example`` that re-resolves to 127.0.0.1 sends ``Host: evil.example:PORT``
and a matching ``Origin``: it must be refused before any handler runs, for reads as well
as writes. A write that names the right host still needs the process's token, which only
the UI's own page carries; an alias moved through the UI records "ui@<client address>".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _ui_store import _register

from _ui_process import UIProcess, request, ui_process
from groundwork.config import Config
from groundwork.core import registry

pytest.importorskip("sklearn", reason="the registered model is a scikit-learn model")

PROMOTE = "/api/v1/models/digits/aliases/staging"
TOKEN_HEADER = "X-Groundwork-Token"  # part of the API: docs/ui.md names it


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, UIProcess]]:
    home = tmp_path_factory.mktemp("rebinding")
    config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=str(home / "artifacts"))
    assert _register(config, home / "files") is not None
    with ui_process(config, home) as ui:
        yield config, ui


def _aliases(config: Config) -> dict[str, int]:
    return registry.registry_store(config).aliases("digits")


def _assert_refused(answer: object, *words: str) -> None:
    body = answer.json()  # type: ignore[attr-defined]
    assert answer.status == 403, body  # type: ignore[attr-defined]
    assert body["ok"] is False and body["status"] == 403 and body["error"] == "Forbidden"
    for word in words:
        assert word in body["message"], body["message"]


def test_the_rebinding_write_from_the_issue_is_refused(served: tuple[Config, UIProcess]) -> None:
    config, ui = served
    evil = f"evil.example:{ui.port}"
    answer = request(ui, "POST", PROMOTE, host=evil, body={"version": 1}, headers={"Origin": f"http://{evil}"})
    _assert_refused(answer, "evil.example")
    assert "staging" not in _aliases(config)
    # Even with the token (a page could never read it, but the host check stands on its own).
    answer = request(ui, "POST", PROMOTE, host=evil, body={"version": 1},
                     headers={"Origin": f"http://{evil}", TOKEN_HEADER: ui.token})
    _assert_refused(answer, "evil.example")
    assert "staging" not in _aliases(config)


@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/models/digits", "/", "/runs", "/static/js/app.js", "/api/openapi.json"])
def test_reads_under_a_foreign_host_are_refused(served: tuple[Config, UIProcess], path: str) -> None:
    _, ui = served
    answer = request(ui, "GET", path, host=f"evil.example:{ui.port}")
    _assert_refused(answer, "evil.example")
    assert b"groundwork-token" not in answer.body and ui.token.encode() not in answer.body


@pytest.mark.parametrize("host", ["127.0.0.1.evil.example:{port}", "localhost.:{port}0", "127.0.0.1:{other}", "", "[::1:{port}"])
def test_lookalike_hosts_and_other_ports_are_refused(served: tuple[Config, UIProcess], host: str) -> None:
    _, ui = served
    answer = request(ui, "GET", "/api/v1/runs", host=host.format(port=ui.port, other=ui.port + 1))
    assert answer.status == 403, answer.body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
def test_loopback_names_on_the_bound_port_are_answered(served: tuple[Config, UIProcess], host: str) -> None:
    _, ui = served
    answer = request(ui, "GET", "/api/v1/runs", host=host.format(port=ui.port))
    assert answer.status == 200 and answer.json()["ok"] is True


def test_writes_need_the_token_the_page_carries(served: tuple[Config, UIProcess]) -> None:
    config, ui = served
    for headers in ({}, {TOKEN_HEADER: "guess"}, {TOKEN_HEADER: ui.token[:-1]}):
        answer = request(ui, "POST", PROMOTE, body={"version": 1}, headers=headers)
        _assert_refused(answer, TOKEN_HEADER)
        answer = request(ui, "DELETE", "/api/v1/models/digits/aliases/production", headers=headers)
        _assert_refused(answer, TOKEN_HEADER)
    assert _aliases(config) == {"production": 1}
    page = request(ui, "GET", "/models/digits").body.decode()
    assert f'<meta name="groundwork-token" content="{ui.token}">' in page
    assert page.count(ui.token) == 1


def test_an_alias_moved_through_the_ui_records_the_ui_and_the_client(served: tuple[Config, UIProcess]) -> None:
    config, ui = served
    answer = request(ui, "POST", PROMOTE, body={"version": 2, "reason": "from the UI"},
                     headers={TOKEN_HEADER: ui.token, "Origin": ui.url})
    assert answer.status == 200, answer.body
    assert answer.json()["move"]["who"] == "ui@127.0.0.1"
    assert _aliases(config)["staging"] == 2
    (move,) = registry.alias_history("digits", "staging", config=config)
    assert move.who == "ui@127.0.0.1" and move.reason == "from the UI"
    answer = request(ui, "DELETE", "/api/v1/models/digits/aliases/staging", headers={TOKEN_HEADER: ui.token})
    assert answer.status == 200, answer.body
    latest = registry.alias_history("digits", "staging", config=config)[0]
    assert latest.to_version is None and latest.who == "ui@127.0.0.1"


def test_the_token_differs_per_process(served: tuple[Config, UIProcess], tmp_path: Path) -> None:
    config, ui = served
    with ui_process(config, tmp_path) as other:
        assert other.token != ui.token and len(other.token) >= 32
        answer = request(other, "POST", PROMOTE, body={"version": 1}, headers={TOKEN_HEADER: ui.token})
        _assert_refused(answer, TOKEN_HEADER)
