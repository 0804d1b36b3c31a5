"""A team server's web UI in Chromium: the login form, the user menu, API tokens and the audit log.

A real ``groundwork server`` process on a SQLite store with two projects and users in
several roles; ``ui_server`` is overridden here, so the ``page`` fixture of conftest.py
(a fresh context per test, JavaScript errors fail the test) opens the team server.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from _browser import UIServer
from _ui_store import Recorded

from _servers import GroundworkServer
from groundwork.config import Config

pytestmark = pytest.mark.browser

_RUN = (
    "import sys, groundwork as gw\n"
    "from groundwork.config import Config\n"
    "config = Config(store_url=sys.argv[1], artifacts_url=sys.argv[2], project=sys.argv[3])\n"
    "with gw.start_run(name=sys.argv[3] + '-run', config=config, capture_code=False) as run:\n"
    "    run.log({'loss': 0.5}, step=0)\n"
)
PASSWORDS = {"ann": "ann-password-1", "vic": "vic-password-1", "locked": "locked-password-1"}


@dataclass
class TeamUI:
    url: str
    config: Config
    server: GroundworkServer


@pytest.fixture(scope="module")
def team_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamUI]:
    """``groundwork server`` (1 worker, SQLite): ann admins alpha and edits beta, vic views alpha; a run in each."""
    from groundwork.server import team as ops
    from groundwork.server.audit import record
    from groundwork.storage.stores import open_team_store

    home = tmp_path_factory.mktemp("team-ui")
    config = Config(store_url=f"sqlite:///{home / 'meta.db'}", artifacts_url=str(home / "artifacts"))
    team = open_team_store(config.store_url)
    by = ops.operator()
    for project in ("alpha", "beta"):
        ops.add_project(team, by, project)
    for name, password in PASSWORDS.items():
        ops.add_user(team, by, name, password)
    ops.grant(team, by, "ann", "alpha", "admin")
    ops.grant(team, by, "ann", "beta", "editor")
    ops.grant(team, by, "vic", "alpha", "viewer")
    ops.grant(team, by, "locked", "alpha", "viewer")
    for project in ("alpha", "beta"):  # a process each: one process's runs share one writer, whatever the project
        subprocess.run([sys.executable, "-c", _RUN, config.store_url, config.artifacts_url, project], check=True)
    for i in range(60):  # more than one page of the audit log
        record(team, None, "probe.ping", f"probe-{i}", actor="prober", address="10.1.2.3", project="alpha")
    with GroundworkServer(config.store_url, config.artifacts_url, workers=1, log_dir=home) as server:
        yield TeamUI(server.url, config, server)


@pytest.fixture(scope="module")
def ui_server(team_ui: TeamUI) -> UIServer:
    """conftest's ``page`` opens this module's team server instead of ``groundwork ui``."""
    return UIServer(team_ui.url, team_ui.config, Recorded(), Path(team_ui.server.log).parent)


def log_in(page: Any, name: str, password: str | None = None, path: str = "/runs") -> None:
    from playwright.sync_api import expect

    page.goto(path)
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#login-name", name)
    page.fill("#login-password", password or PASSWORDS[name])
    page.click("#login-submit")


def audit_rows(page: Any) -> list[dict[str, str]]:
    return list(page.eval_on_selector_all("#audit tbody tr", """(rows) => rows.map((r) => ({
        actor: r.dataset.actor, action: r.dataset.action,
        target: r.querySelector('.audit-target').textContent, address: r.querySelector('.audit-address').textContent}))"""))


def test_log_in_see_the_project_make_use_and_revoke_a_token_read_the_audit_log_and_log_out(
    page: Any, team_ui: TeamUI,
) -> None:
    from playwright.sync_api import expect

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, "ann", "not-the-password")
    expect(page.locator("#login-error")).to_have_text("Wrong name or password.")
    expect(page.locator("#main")).not_to_contain_text("alpha-run")
    page.fill("#login-password", PASSWORDS["ann"])
    page.click("#login-submit")
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    expect(page.locator("#runs-table")).to_contain_text("alpha-run")  # alpha's run, not beta's
    assert page.url.endswith("/runs")
    expect(page.locator("#team-user")).to_contain_text("ann")
    expect(page.locator("#project-switch")).to_have_value("alpha")

    page.get_by_role("link", name="Tokens").click()
    expect(page.locator("h1")).to_have_text("API tokens")
    page.fill("#token-name", "ci")
    page.select_option("#token-role", "viewer")
    page.click("#token-create")
    expect(page.locator("#new-token")).to_contain_text("shown only once")
    token = page.input_value("#new-token-value")
    assert token.startswith("gw_")
    page.click("#new-token-copy")
    assert page.evaluate("navigator.clipboard.readText()") == token
    row = page.locator("#tokens tbody tr", has_text="ci")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("viewer")
    expect(row).to_contain_text("alpha")

    bearer = {"Authorization": f"Bearer {token}"}
    runs = httpx.get(f"{team_ui.url}/api/v1/runs", headers=bearer, timeout=30)
    assert runs.status_code == 200, runs.text
    assert [r["name"] for r in runs.json()["runs"]] == ["alpha-run"]
    token_id = token.split("_")[1]
    page.reload()  # last used: now
    expect(page.locator(f'#tokens tr[data-token="{token_id}"]')).not_to_contain_text("never")

    revoke = page.locator(f'#tokens tr[data-token="{token_id}"] button')
    revoke.click()
    expect(revoke).to_have_text("Really revoke?")
    revoke.click()
    expect(page.locator(f'#tokens tr[data-token="{token_id}"]')).to_have_count(0)
    refused = httpx.get(f"{team_ui.url}/api/v1/runs", headers=bearer, timeout=30)
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]

    page.get_by_role("link", name="Audit").click()
    expect(page.locator("#audit tbody tr").first).to_be_visible()
    rows = audit_rows(page)
    mine = [(r["action"], r["target"], r["address"]) for r in rows if r["actor"] == "ann"]
    assert ("token.revoke", token_id, "127.0.0.1") in mine
    assert ("token.create", token_id, "127.0.0.1") in mine
    assert ("auth.login", "ann", "127.0.0.1") in mine
    assert rows.index(next(r for r in rows if r["action"] == "token.create")) > rows.index(
        next(r for r in rows if r["action"] == "token.revoke"))  # newest first

    page.fill("#audit-action", "token")
    page.fill("#audit-actor", "ann")
    page.click("#audit-filters button[type=submit]")
    expect(page.locator("#audit tbody tr")).to_have_count(2)
    assert {r["action"] for r in audit_rows(page)} == {"token.create", "token.revoke"}
    assert "action=token" in page.url and "actor=ann" in page.url

    page.goto("/audit?action=probe")  # 60 entries: a page of 50, then the 10 older ones
    expect(page.locator("#audit tbody tr")).to_have_count(50)
    expect(page.locator("#audit tbody tr").first).to_contain_text("probe-59")
    page.click("#audit-older")
    expect(page.locator("#audit tbody tr")).to_have_count(10)
    expect(page.locator("#audit tbody tr").last).to_contain_text("probe-0")
    expect(page.locator("#audit-older")).to_have_count(0)
    page.click("#audit-newest")
    expect(page.locator("#audit tbody tr")).to_have_count(50)

    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#team-menu")).to_be_hidden()
    assert page.evaluate("fetch('/api/v1/runs').then((r) => r.status)") == 401
    page.goto("/tokens")
    expect(page.locator("#login-form")).to_be_visible()


def test_the_project_switcher_shows_the_other_projects_runs(page: Any) -> None:
    from playwright.sync_api import expect

    log_in(page, "ann", path="/login")
    expect(page.locator("#runs-table")).to_contain_text("alpha-run")
    page.select_option("#project-switch", "beta")
    expect(page.locator("#runs-table")).to_contain_text("beta-run")
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    expect(page.locator("#team-user")).to_contain_text("editor")  # ann edits beta
    page.reload()  # the new session's cookie holds
    expect(page.locator("#project-switch")).to_have_value("beta")
    page.goto("/audit")  # an editor of beta reads no audit log
    expect(page.locator("#audit-refused")).to_contain_text("needs an admin")


def test_a_viewer_is_refused_the_audit_page_and_cannot_mint_a_stronger_token(page: Any) -> None:
    from playwright.sync_api import expect

    log_in(page, "vic", path="/audit")
    expect(page.locator("#audit-refused")).to_contain_text("The audit log needs an admin.")
    expect(page.locator("#audit-refused")).to_contain_text("vic is viewer")
    expect(page.locator("#audit")).to_have_count(0)
    page.goto("/tokens")
    expect(page.locator("#token-role option")).to_have_count(1)  # the page renders after /auth/me answers
    assert page.eval_on_selector_all("#token-role option", "(options) => options.map((o) => o.value)") == ["viewer"]
    expect(page.locator("#project-name")).to_have_text("alpha")  # one project: no switcher


def test_repeated_wrong_passwords_are_answered_with_when_to_try_again(page: Any, team_ui: TeamUI) -> None:
    from playwright.sync_api import expect

    for _ in range(5):
        wrong = httpx.post(f"{team_ui.url}/api/v1/auth/login", json={"name": "locked", "password": "wrong-password"},
                           timeout=30)
        assert wrong.status_code == 401
    log_in(page, "locked")
    error = page.locator("#login-error")
    expect(error).to_have_attribute("data-status", "429")
    expect(error).to_contain_text("Too many failed logins.")
    expect(error).to_contain_text(" min.")  # the server's Retry-After: some 15 minutes
    expect(page.locator("#login-form")).to_be_visible()


def test_the_page_says_whether_it_is_a_team_servers(tmp_path: Path) -> None:
    """``groundwork ui``'s page is marked as such (no login form); a team server's as a team server's."""
    from fastapi.testclient import TestClient

    from groundwork.server.app import create_app

    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))
    for team, mark in ((False, "ui"), (True, "team")):
        with TestClient(create_app(config, team=team), base_url="http://127.0.0.1") as client:
            html = client.get("/tokens").text
        assert f'<meta name="groundwork-server" content="{mark}">' in html
