"""``groundwork server`` (its refusals) and the operator's ``groundwork server users|projects|tokens`` and
``groundwork audit --store``, run as a user runs them (subprocesses on a real SQLite store)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HEAVY = ("torch", "ray", "onnxruntime", "sklearn")
pytestmark = pytest.mark.slow  # a process per command, as a user runs them


def gw(*args: str, store: str, stdin: str | None = None, env: dict[str, str] | None = None,
       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")},
               "GROUNDWORK_STORE": store, "GROUNDWORK_WIDTH": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=environ,
                          input=stdin, timeout=timeout)


def one_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and expected in lines[0], result.stderr


def data(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


def test_every_server_command_has_help_with_an_example_and_stays_light() -> None:
    commands = [["server"], ["server", "users"], ["server", "projects"], ["server", "tokens"], ["login"], ["audit"]]
    commands += [["server", "users", c] for c in ("add", "list", "disable", "enable", "passwd")]
    commands += [["server", "projects", c] for c in ("add", "list", "grant", "revoke")]
    commands += [["server", "tokens", c] for c in ("create", "list", "revoke")]
    code = ("import sys, io, contextlib\nfrom groundwork.cli import main\nout = {}\n"
            f"for args in {commands!r}:\n"
            "    buf = io.StringIO()\n"
            "    with contextlib.redirect_stdout(buf):\n"
            "        main([*args, '--help'])\n"
            "    out[' '.join(args)] = buf.getvalue()\n"
            f"print(__import__('json').dumps({{'help': out, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "GROUNDWORK_WIDTH": "200"})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["heavy"] == []
    for name, text in found["help"].items():
        assert "Example" in text, f"groundwork {name} --help has no example"


def test_users_are_added_listed_disabled_and_given_a_new_password(store: str) -> None:
    from groundwork.server.auth import verify_password
    from groundwork.storage.stores import open_team_store

    added = data(gw("server", "users", "add", "ann", "--admin", "--password-stdin", "--json", store=store,
                    stdin="a long passphrase\n"))
    assert added == {**added, "name": "ann", "server_admin": True, "disabled": False, "has_password": True}
    assert "password" not in json.dumps(added).replace("has_password", "")
    assert gw("server", "users", "add", "ci", "--no-password", store=store).returncode == 0
    one_error(gw("server", "users", "add", "bob", store=store, stdin=""), "no password for bob")
    one_error(gw("server", "users", "add", "Bad Name", "--no-password", store=store), "invalid user name")
    one_error(gw("server", "users", "add", "ann", "--no-password", store=store), "a user named 'ann' exists")
    one_error(gw("server", "users", "add", "bob", "--password-stdin", store=store, stdin="short\n"), "8 to 1024")
    assert gw("server", "users", "disable", "ci", store=store).returncode == 0
    listed = {u["name"]: u for u in data(gw("server", "users", "list", "--json", store=store))}
    assert listed["ci"]["disabled"] and not listed["ann"]["disabled"] and listed["ci"]["has_password"] is False
    assert gw("server", "users", "enable", "ci", store=store).returncode == 0
    assert gw("server", "users", "passwd", "ann", "--password-stdin", store=store, stdin="another passphrase\n").returncode == 0
    user = open_team_store(store).get_user("ann")
    assert user is not None and verify_password("another passphrase", user.password_hash)
    assert not verify_password("a long passphrase", user.password_hash)
    one_error(gw("server", "users", "passwd", "nobody", "--password-stdin", store=store, stdin="x" * 10 + "\n"),
              "no user named 'nobody'")
    table = gw("server", "users", "list", store=store)
    assert table.returncode == 0 and "ann" in table.stdout and "ci" in table.stdout


def test_projects_grant_roles_and_tokens_are_scoped_to_them(store: str) -> None:
    gw("server", "users", "add", "bob", "--no-password", store=store)
    assert data(gw("server", "projects", "add", "vision", "--description", "cameras", "--json", store=store))["name"] == "vision"
    one_error(gw("server", "projects", "add", "Vision!", store=store), "invalid project name")
    one_error(gw("server", "projects", "grant", "vision", "bob", "--role", "owner", store=store), "unknown role 'owner'")
    one_error(gw("server", "projects", "grant", "nope", "bob", store=store), "no project named 'nope'")
    assert data(gw("server", "projects", "grant", "vision", "bob", "--role", "editor", "--json", store=store))["role"] == "editor"
    projects = {p["name"]: p for p in data(gw("server", "projects", "list", "--json", store=store))}
    assert set(projects) == {"default", "vision"}
    assert [(m["user"], m["role"]) for m in projects["vision"]["members"]] == [("bob", "editor")]

    one_error(gw("server", "tokens", "create", "--user", "bob", "--project", "vision", "--role", "maintainer",
                 "--name", "ci", store=store), "a token cannot carry maintainer")
    one_error(gw("server", "tokens", "create", "--user", "bob", "--project", "default", "--name", "ci", store=store),
              "not a member of project 'default'")
    one_error(gw("server", "tokens", "create", "--user", "bob", "--project", "vision", "--name", "ci", "--expires",
                 "soon", store=store), "cannot read the duration 'soon'")
    plain = gw("server", "tokens", "create", "--user", "bob", "--project", "vision", "--name", "ci", "--expires", "30d",
               store=store)
    assert plain.returncode == 0 and re.fullmatch(r"gw_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n", plain.stdout)
    assert "shown only now" in plain.stderr  # the token alone on stdout: TOKEN=$(groundwork server tokens create ...)
    made = data(gw("server", "tokens", "create", "--user", "bob", "--project", "vision", "--name", "nightly",
                   "--role", "viewer", "--expires", "never", "--json", store=store))
    assert made["role"] == "viewer" and made["expires_at"] is None and made["token"].startswith(f"gw_{made['id']}_")
    listed = gw("server", "tokens", "list", "--project", "vision", "--json", store=store)
    assert made["token"] not in listed.stdout and plain.stdout.strip().split("_", 2)[2] not in listed.stdout
    assert {t["name"] for t in json.loads(listed.stdout)} == {"ci", "nightly"}
    assert gw("server", "tokens", "revoke", made["id"], store=store).returncode == 0
    one_error(gw("server", "tokens", "revoke", made["id"], store=store), "was revoked already")
    assert {t["name"] for t in data(gw("server", "tokens", "list", "--json", store=store))} == {"ci"}
    assert len(data(gw("server", "tokens", "list", "--revoked", "--json", store=store))) == 2
    assert gw("server", "projects", "revoke", "vision", "bob", store=store).returncode == 0
    one_error(gw("server", "projects", "revoke", "vision", "bob", store=store), "not a member of project 'vision'")


def test_every_operator_change_is_in_the_audit_log(store: str) -> None:
    gw("server", "users", "add", "bob", "--no-password", store=store)
    gw("server", "projects", "add", "vision", store=store)
    gw("server", "projects", "grant", "vision", "bob", "--role", "viewer", store=store)
    made = data(gw("server", "tokens", "create", "--user", "bob", "--project", "vision", "--name", "x", "--role",
                   "viewer", "--json", store=store))
    gw("server", "tokens", "revoke", made["id"], store=store)
    entries = data(gw("audit", "--json", store=store))
    assert [e["action"] for e in entries] == ["token.revoke", "token.create", "member.grant", "project.add", "user.add"]
    assert all(e["actor"].startswith("operator:") for e in entries)
    assert entries[1]["target"] == made["id"] and entries[1]["details"]["user"] == "bob"
    assert made["token"] not in json.dumps(entries)
    assert [e["action"] for e in data(gw("audit", "--project", "vision", "--action", "token", "--json", store=store))] == [
        "token.revoke", "token.create"]
    assert data(gw("audit", "--since", "2999-01-01", "--json", store=store)) == []
    one_error(gw("audit", "--since", "yesterday", store=store), "cannot read the time 'yesterday'")
    table = gw("audit", "--since", "1h", store=store)
    assert table.returncode == 0 and "member.grant" in table.stdout


def test_the_server_will_not_listen_beyond_loopback_without_a_user(store: str, tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: were the check missing, binding would fail, never listen.
    one_error(gw("server", "--host", "192.0.2.1", "--port", "8091", store=store, timeout=60),
              "refusing to listen on 192.0.2.1: the store has no user yet")
    gw("server", "users", "add", "ann", "--admin", "--no-password", store=store)
    past_the_check = gw("server", "--host", "192.0.2.1", "--port", "8091", store=store, timeout=60)
    one_error(past_the_check, "cannot listen on 192.0.2.1:8091")
    one_error(gw("server", "--store", "mysql://nowhere/x", store=store), "unknown metadata store scheme")
