"""Web UI logins on a real team server: the session cookie's flags, CSRF, logout, rate limits, and no
token, cookie or password in the server's log or in any answer.

The server trusts ``X-Forwarded-*`` from 127.0.0.1 (uvicorn's default ``--forwarded-allow-ips``),
so these tests play the reverse proxy: ``X-Forwarded-Proto: https`` for TLS, ``X-Forwarded-For``
for the caller's address.
"""

from __future__ import annotations

import uuid

import pytest
from _team_world import World

from _servers import Answer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _address() -> str:
    """A caller address no other test uses (rate limits count per address)."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def _login(world: World, name: str, password: str | None = None, *, address: str | None = None,
           headers: dict[str, str] | None = None, project: str | None = None) -> Answer:
    body = {"name": name, "password": password or f"password-of-{name}"}
    if project:
        body["project"] = project
    sent = {"X-Forwarded-For": address or _address(), **(headers or {})}
    return world.request("POST", "/api/v1/auth/login", body=body, headers=sent)


def _cookie(answer: Answer) -> str:
    (cookie,) = [c for c in answer.cookies if c.startswith("gw_session=")]
    return cookie.split(";", 1)[0]


def _user(world: World, name: str, role: str = "maintainer", project: str = "alpha") -> str:
    from groundwork.server import team as ops
    from groundwork.storage.stores import open_team_store

    team = open_team_store(world.config.store_url)
    ops.add_user(team, ops.operator(), name, f"password-of-{name}")
    ops.grant(team, ops.operator(), name, project, role)
    return name


def test_login_answers_a_strict_http_only_cookie_and_the_page_csrf_token(team_world: World) -> None:
    answer = _login(team_world, "alpha-editor")
    assert answer.status == 200, answer.text
    body = answer.json()
    assert (body["user"], body["project"]) == ("alpha-editor", "alpha") and len(body["csrf"]) == 64
    (flags,) = answer.cookies
    lowered = [part.strip().lower() for part in flags.split(";")]
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
    assert "secure" not in lowered  # plain http to 127.0.0.1: a Secure cookie would never come back
    me = team_world.request("GET", "/api/v1/auth/me", headers={"Cookie": _cookie(answer)})
    assert me.status == 200 and me.json()["role"] == "editor" and me.json()["csrf"] == body["csrf"]
    behind_tls = _login(team_world, "alpha-editor", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in [part.strip().lower() for part in behind_tls.cookies[0].split(";")]


def test_a_cookie_write_needs_the_csrf_header_and_our_origin(team_world: World) -> None:
    answer = _login(team_world, "alpha-maintainer")
    cookie, csrf = _cookie(answer), answer.json()["csrf"]
    path = "/api/v1/models/alpha-model/aliases/csrf-test"
    own = f"http://127.0.0.1:{team_world.port}"

    def promote(headers: dict[str, str]) -> Answer:
        return team_world.request("POST", path, body={"version": 1}, headers={"Cookie": cookie, **headers})

    assert promote({}).status == 403
    assert promote({"X-CSRF-Token": "0" * 64}).status == 403
    assert promote({"X-CSRF-Token": csrf, "Origin": "https://evil.example"}).status == 403
    assert team_world.request("GET", "/api/v1/models/alpha-model", headers={"Cookie": cookie}).status == 200
    done = promote({"X-CSRF-Token": csrf, "Origin": own})
    assert done.status == 200, done.text
    removed = team_world.request("DELETE", path, headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert removed.status == 200 and removed.json()["was"] == 1
    moves = [m for m in team_world.request("GET", "/api/v1/models/alpha-model",
                                           headers={"Cookie": cookie}).json()["history"] if m["alias"] == "csrf-test"]
    assert {m["who"] for m in moves} == {"alpha-maintainer"}


def test_a_login_cannot_be_forged_from_another_site(team_world: World) -> None:
    forged = team_world.request("POST", "/api/v1/auth/login", raw=b"name=alpha-editor&password=x",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status == 400 and not forged.cookies
    other_site = _login(team_world, "alpha-editor", headers={"Origin": "https://evil.example"})
    assert other_site.status == 403 and not other_site.cookies


def test_logout_and_a_disabled_user_end_the_session(team_world: World) -> None:
    from groundwork.server import team as ops
    from groundwork.storage.stores import open_team_store

    name = _user(team_world, f"leaving-{uuid.uuid4().hex[:6]}", "viewer")
    answer = _login(team_world, name)
    cookie, csrf = _cookie(answer), answer.json()["csrf"]
    assert team_world.request("GET", "/api/v1/runs", headers={"Cookie": cookie}).status == 200
    out = team_world.request("POST", "/api/v1/auth/logout", headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert out.status == 200 and any("gw_session=" in c and "max-age=0" in c.lower() for c in out.cookies)
    assert team_world.request("GET", "/api/v1/runs", headers={"Cookie": cookie}).status == 401
    second = _cookie(_login(team_world, name))
    ops.set_disabled(open_team_store(team_world.config.store_url), ops.operator(), name, True)
    refused = team_world.request("GET", "/api/v1/runs", headers={"Cookie": second})
    assert refused.status == 401 and "disabled" in refused.json()["message"]
    assert _login(team_world, name).status == 401


def test_a_session_switches_only_to_projects_of_its_user(team_world: World) -> None:
    answer = _login(team_world, "alpha-admin")
    cookie, csrf = _cookie(answer), answer.json()["csrf"]
    refused = team_world.request("POST", "/api/v1/auth/project", body={"project": "beta"},
                                 headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert refused.status == 403
    root = _login(team_world, "root")
    switched = team_world.request("POST", "/api/v1/auth/project", body={"project": "beta"},
                                  headers={"Cookie": _cookie(root), "X-CSRF-Token": root.json()["csrf"]})
    assert switched.status == 200 and switched.json()["project"] == "beta"
    assert team_world.request("GET", "/api/v1/auth/me", headers={"Cookie": _cookie(switched)}).json()["project"] == "beta"
    assert team_world.request("GET", "/api/v1/auth/me", headers={"Cookie": _cookie(root)}).status == 401


def test_failed_logins_are_limited_per_user_across_workers(team_world: World) -> None:
    name = _user(team_world, f"target-{uuid.uuid4().hex[:6]}")
    for _ in range(5):  # from five addresses: the per-user limit, not the per-address one
        assert _login(team_world, name, "wrong password").status == 401
    limited = _login(team_world, name)  # even the right password, now
    assert limited.status == 429 and not limited.cookies
    assert 800 <= int(limited.headers["retry-after"]) <= 900
    body = limited.json()
    assert body["status"] == 429 and body["error"] == "Too many requests" and "try again in" in body["message"]
    assert _login(team_world, "alpha-viewer").status == 200  # others are not locked out


def test_failed_logins_are_limited_per_address(team_world: World) -> None:
    address = _address()
    for i in range(20):
        assert _login(team_world, f"nobody-{i}", "guess", address=address).status == 401
    assert _login(team_world, "alpha-viewer", address=address).status == 429
    assert _login(team_world, "alpha-viewer", address=_address()).status == 200


def test_no_token_cookie_or_password_reaches_the_log_or_an_answer(team_world: World) -> None:
    valid = team_world.tokens["viewer"]
    token_id = valid.split("_")[1]
    wrong_secret = f"gw_{token_id}_{'A' * 43}"
    answers = [
        team_world.request("GET", "/api/v1/runs", token=valid),
        team_world.request("GET", "/api/v1/runs/nope", token=valid),
        team_world.request("GET", "/api/v1/runs", token=wrong_secret),
        team_world.request("GET", "/api/v1/runs", token="gw_garbage_token_text"),
        team_world.request("POST", "/api/v1/store/metadata/get_run", token=valid, body={"run_id": "nope"}),
        team_world.request("GET", "/api/v1/auth/me", token=team_world.tokens["revoked"]),
    ]
    login = _login(team_world, "alpha-editor", "a wrong password 12345")
    session = _login(team_world, "alpha-editor")
    cookie = _cookie(session)
    answers.append(team_world.request("GET", "/api/v1/runs", headers={"Cookie": cookie}))
    secrets = [valid.split("_", 2)[2], "A" * 43, "gw_garbage_token_text", team_world.tokens["revoked"].split("_", 2)[2],
               cookie.split("_", 3)[-1], "a wrong password 12345", "password-of-alpha-editor"]
    log = team_world.log.read_text(errors="replace")
    assert '"GET /api/v1/runs HTTP/1.1" 200' in log  # the access log is on: the check below means something
    for secret in secrets:
        assert secret not in log
        for answer in [*answers, login]:
            assert secret not in answer.text
