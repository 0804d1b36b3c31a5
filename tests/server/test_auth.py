"""Who may call what on a real team server (2 workers, PostgreSQL): every route times every role.

The routes are read from the team app itself (``app.routes``), so a route added later is
covered without touching this file; the role each needs is what it declares through
``require(role)`` (or ``require_server_admin``), and a route under ``/api`` that declares
none fails here unless it is one of the few public ones. The declared roles of the routes
that matter most are also pinned by hand (:data:`PINNED`), so a weakened declaration fails.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from _team_world import ALPHA_MARKERS, World

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: Routes anyone may call: logging in, the OpenAPI document and its page, the API's name.
PUBLIC = {("POST", "/api/v1/auth/login"), ("GET", "/api/openapi.json"), ("GET", "/api/docs"),
          ("GET", "/api/docs/oauth2-redirect"), ("GET", "/api/v1")}
#: Routes a token may never call, whatever its role (only a web UI session: tokens do not mint tokens).
SESSION_ONLY = {("POST", "/api/v1/tokens")}
#: Routes whose handler asks more than their declared role of the matrix's targets (victim's token: its
#: user, an admin of its project or a server admin may revoke it).
TARGET_ROLE = {("DELETE", "/api/v1/tokens/{token_id}"): "admin"}
#: The roles of the routes that matter most, by hand (the declarations must not drift below these).
PINNED = {
    ("GET", "/api/v1/runs"): "viewer",
    ("POST", "/api/v1/models/{name}/aliases/{alias}"): "maintainer",
    ("DELETE", "/api/v1/models/{name}/aliases/{alias}"): "maintainer",
    ("GET", "/api/v1/audit"): "admin",
    ("GET", "/api/v1/projects/{project}/members"): "admin",
    ("PUT", "/api/v1/projects/{project}/members/{user}"): "admin",
    ("DELETE", "/api/v1/projects/{project}/members/{user}"): "admin",
    ("GET", "/api/v1/users"): "server_admin",
    ("POST", "/api/v1/users"): "server_admin",
    ("PATCH", "/api/v1/users/{name}"): "server_admin",
    ("POST", "/api/v1/projects"): "server_admin",
    ("POST", "/api/v1/store/metadata/write_batch"): "editor",
    ("POST", "/api/v1/store/metadata/get_run"): "viewer",
    ("POST", "/api/v1/store/registry/set_alias"): "maintainer",
}
LEVELS = {"viewer": 1, "editor": 2, "maintainer": 3, "admin": 4, "server_admin": 5}
#: The credentials that must be refused with a 401 everywhere.
REFUSED = ("none", "expired", "revoked", "disabled_user")


def _declared(app: Any) -> dict[tuple[str, str], str | None]:
    """(method, path) -> the role each route of ``app`` declares (None: none)."""
    from fastapi.dependencies.utils import get_dependant
    from fastapi.routing import APIRoute, iter_route_contexts
    from starlette.routing import Route

    def roles(dependant: Any) -> set[str]:
        found: set[str] = set()
        for sub in dependant.dependencies:
            call = app.dependency_overrides.get(sub.call, sub.call)
            role = getattr(call, "required_role", None)
            if role is not None:
                found.add(role if isinstance(role, str) else role.name)
            if call is not sub.call:
                found |= roles(get_dependant(path="", call=call))
            found |= roles(sub)
        return found

    out: dict[tuple[str, str], str | None] = {}
    for context in iter_route_contexts(app.routes):  # included routers' routes, with their prefixes
        if isinstance(context.original_route, APIRoute):
            found = roles(context.dependant)
            role = max(found, key=LEVELS.__getitem__) if found else None
            for method in context.methods or ():
                out[(method, context.path)] = role
        elif isinstance(context.original_route, Route) and (context.path or "").startswith("/api"):
            for method in context.methods or ():
                if method != "HEAD":
                    out[(method, context.path)] = None
    return out


@pytest.fixture(scope="module")
def declared(team_world: World) -> dict[tuple[str, str], str | None]:
    from groundwork.server.app import create_app

    return _declared(create_app(team_world.config, team=True))


def _fill(world: World, path: str) -> str:
    """``path`` with its parameters naming things of project alpha (or harmless ones)."""
    noun = path.split("/")[3] if path.count("/") >= 3 else ""
    values = {
        "ref": world.digest if noun == "artifacts" else world.run_id,
        "name": "victim" if noun == "users" else "alpha-model",
        "alias": "matrix-alias", "target": "alpha-model", "project": "alpha", "user": "victim",
        "token_id": world.victim_token_id, "digest": world.digest, "run_id": world.run_id,
    }
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x"), path)


def _call(world: World, method: str, path: str, who: str) -> Any:
    token = None if who == "none" else world.tokens[who]
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return world.request(method, _fill(world, path), token=token, body=body)


def test_every_api_route_declares_the_role_it_needs(declared: dict[tuple[str, str], str | None]) -> None:
    undeclared = sorted(f"{m} {p}" for (m, p), role in declared.items()
                        if role is None and (m, p) not in PUBLIC and p.startswith("/api"))
    assert undeclared == [], "these routes take no require(role): " + ", ".join(undeclared)
    for key, role in PINNED.items():
        if key in declared or not key[1].startswith("/api/v1/store/"):
            assert declared.get(key) == role, f"{key} declares {declared.get(key)}, not {role}"
    assert len(declared) >= 40  # the UI's routes, the accounts, the audit log, the store API...


def test_permission_matrix(team_world: World, declared: dict[tuple[str, str], str | None]) -> None:
    """Every route x (every role, a server admin, no token, expired, revoked, a disabled user's, another project's)."""
    failures: list[str] = []
    checked = 0
    for (method, path), role in sorted(declared.items()):
        if (method, path) in PUBLIC or role is None:
            continue
        need = LEVELS[role]
        for who in (*REFUSED, "viewer", "editor", "maintainer", "admin", "server_admin", "other_project"):
            filled = _fill(team_world, path)
            answer = _call(team_world, method, path, who)
            checked += 1
            status = answer.status
            where = f"{method} {path} as {who} (needs {role}): {status} {answer.text[:160]}"
            if status >= 500:
                failures.append("5xx: " + where)
            elif who in REFUSED:
                if status != 401:
                    failures.append("not 401: " + where)
                elif "gw_" in answer.text:
                    failures.append("token echoed: " + where)
            elif who == "other_project":
                if any(marker in answer.text for marker in ALPHA_MARKERS if marker not in filled):
                    failures.append("alpha's data leaked: " + where)
                if status == 401:
                    failures.append("401 for a valid token: " + where)
                if "{" in path and status < 400 and need <= LEVELS["admin"]:
                    failures.append("another project's path answered: " + where)
            else:
                target = LEVELS[TARGET_ROLE.get((method, path), role)]
                allowed = LEVELS[who] >= target and (method, path) not in SESSION_ONLY
                if allowed and status in (401, 403):
                    failures.append("refused: " + where)
                if not allowed and status != 403:
                    failures.append("not 403: " + where)
    assert failures == [], f"{len(failures)} of {checked} calls went wrong:\n" + "\n".join(failures)


def test_a_removed_member_loses_access_at_once(team_world: World) -> None:
    from groundwork.server import team as ops
    from groundwork.storage.stores import open_team_store

    team = open_team_store(team_world.config.store_url)
    ops.add_user(team, ops.operator(), "leaver", None)
    ops.grant(team, ops.operator(), "leaver", "alpha", "editor")
    _, made = ops.create_token(team, ops.operator(), user="leaver", project="alpha", role="editor", name="x")
    assert team_world.request("GET", "/api/v1/runs", token=made.text).status == 200
    ops.revoke(team, ops.operator(), "leaver", "alpha")
    answer = team_world.request("GET", "/api/v1/runs", token=made.text)
    assert answer.status == 403 and "not a member of project 'alpha'" in answer.json()["message"]
    ops.grant(team, ops.operator(), "leaver", "alpha", "viewer")  # back, lower: the token's role is capped by it
    assert team_world.request("GET", "/api/v1/runs", token=made.text).status == 200
    assert team_world.request("GET", "/api/v1/auth/me", token=made.text).json()["role"] == "viewer"


def test_a_malformed_authorization_header_is_a_401_that_repeats_nothing(team_world: World) -> None:
    for header in ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Bearer gw_not-a-token", "gw_abc"):
        answer = team_world.request("GET", "/api/v1/runs", headers={"Authorization": header})
        assert answer.status == 401, header
        body = answer.json()
        assert set(body) == {"ok", "status", "error", "message", "hint"} and body["status"] == 401
        assert header.split()[-1] not in answer.text or header.split()[-1] == "Bearer"
        assert answer.headers["www-authenticate"].startswith("Bearer")
