"""Accounts on a team server: log in and out, who am I, tokens, users, projects and members.

* ``POST /auth/login`` (name, password, optional project) answers the web UI's session: a
  cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind TLS) and the page's CSRF
  token. Failed attempts are audited (``auth.login_failed``) and are what the rate limits
  count, in the store, so every worker sees them: after :data:`MAX_FAILURES_PER_USER`
  failures for one user, or :data:`MAX_FAILURES_PER_ADDRESS` from one address, within
  :data:`LOGIN_WINDOW_S`, logins are answered 429 with ``Retry-After``.
* ``GET /auth/me``: the caller (and, for a session, its CSRF token). ``groundwork login``
  checks a token with it.
* ``/tokens``: a logged-in user's own API tokens (made only from a session: a token
  cannot mint tokens). ``/users`` and ``POST /projects``: server admins.
  ``/projects/{project}/members``: the project's admins.

Every change is audited (:mod:`groundwork.server.audit`).
"""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from groundwork.errors import AuthError, Forbidden, InvalidInput, NotFound, TooManyRequests
from groundwork.server import team as ops
from groundwork.server.audit import record
from groundwork.server.auth import (
    SESSION_COOKIE,
    Principal,
    Role,
    check_origin,
    client_address,
    csrf_token,
    is_https,
    require,
    require_server_admin,
    team_store,
    verify_password,
)
from groundwork.server.responses import JSON, ok
from groundwork.storage.stores import TeamStore

router = APIRouter(tags=["accounts"])
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
ProjectAdmin = Annotated[Principal, Depends(require(Role.admin))]
ServerAdmin = Annotated[Principal, Depends(require_server_admin)]

#: Failed logins are counted over this window.
LOGIN_WINDOW_S = 15 * 60.0
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
#: A web UI session lasts this long (then: log in again).
SESSION_TTL_S = 12 * 3600.0

_Name = Annotated[str, Field(min_length=1, max_length=64)]
_Password = Annotated[str, Field(min_length=1, max_length=ops.MAX_PASSWORD)]


def _team(request: Request) -> TeamStore:
    team = team_store(request)
    if team is None:  # only the team app includes this router
        raise NotFound("this server has no accounts (it is the single-user groundwork ui)")
    return team


# -- logging in --------------------------------------------------------------------------------------------
class LoginBody(BaseModel):
    name: _Name
    password: _Password
    project: _Name | None = Field(default=None, description="The project to work in (default: your first).")


class ProjectBody(BaseModel):
    project: _Name


def _check_rate(team: TeamStore, name: str, address: str | None, now: float) -> None:
    since = now - LOGIN_WINDOW_S
    for times, limit, who in (
        (team.audit_times("auth.login_failed", since, actor=name), MAX_FAILURES_PER_USER, f"user {name!r}"),
        (team.audit_times("auth.login_failed", since, address=address) if address else [], MAX_FAILURES_PER_ADDRESS,
         "this address"),
    ):
        if len(times) >= limit:
            retry = times[len(times) - limit] + LOGIN_WINDOW_S - now
            raise TooManyRequests(f"too many failed logins for {who}; try again in {math.ceil(retry)} s",
                                  retry_after=math.ceil(retry))


def _session_project(team: TeamStore, name: str, server_admin: bool, wanted: str | None) -> str:
    projects = [m.project for m in team.memberships(user=name)]
    if wanted is not None:
        if wanted in projects or (server_admin and team.get_project(wanted) is not None):
            return wanted
        raise Forbidden(f"{name!r} is not a member of project {wanted!r}")
    if "default" in projects or (server_admin and not projects):
        return "default"
    if not projects:
        raise Forbidden(f"{name!r} is not a member of any project", hint="ask an admin to grant you a role")
    return projects[0]


def _start_session(team: TeamStore, request: Request, user: str, project: str, server_admin: bool) -> JSON:
    row, made = ops.create_token(team, ops.operator(), user=user, project=project, role="admin",
                                 name=f"web session from {client_address(request) or 'unknown'}",
                                 expires=f"{int(SESSION_TTL_S)}s", kind="session")
    answer = ok({"user": user, "project": project, "server_admin": server_admin, "csrf": csrf_token(made.text),
                 "expires_at": row.expires_at})
    answer.set_cookie(SESSION_COOKIE, made.text, max_age=int(SESSION_TTL_S), path="/", httponly=True,
                      samesite="strict", secure=is_https(request))
    return answer


@router.post("/auth/login", summary="Log in to the web UI: a session cookie and the page's CSRF token")
def login(request: Request, body: LoginBody) -> JSON:
    team = _team(request)
    check_origin(request)
    address = client_address(request)
    now = time.time()
    _check_rate(team, body.name, address, now)
    user = team.get_user(body.name)
    if user is None or user.disabled or not verify_password(body.password, user.password_hash if user else None):
        record(team, None, "auth.login_failed", body.name, actor=body.name[:64], address=address, project="")
        raise AuthError("wrong user name or password")
    project = _session_project(team, user.name, user.server_admin, body.project)
    answer = _start_session(team, request, user.name, project, user.server_admin)
    record(team, Principal(user.name, project, Role.admin, None, address, user.server_admin), "auth.login", user.name)
    return answer


@router.post("/auth/logout", summary="End this web UI session")
def logout(request: Request, principal: Viewer) -> JSON:
    team = _team(request)
    if principal.token_id is not None and request.headers.get("authorization") is None:
        team.revoke_token(principal.token_id)
        record(team, principal, "auth.logout", principal.user)
    answer = ok({"logged_out": True})
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=is_https(request))
    return answer


@router.post("/auth/project", summary="Switch this web UI session to another project")
def switch_project(request: Request, principal: Viewer, body: ProjectBody) -> JSON:
    team = _team(request)
    if principal.token_id is None or request.headers.get("authorization") is not None:
        raise InvalidInput("only a web UI session switches projects", hint="a token belongs to one project")
    project = _session_project(team, principal.user, _is_server_admin(team, principal), body.project)
    answer = _start_session(team, request, principal.user, project, _is_server_admin(team, principal))
    team.revoke_token(principal.token_id)
    record(team, principal, "auth.project", principal.user, {"to": project})
    return answer


def _is_server_admin(team: TeamStore, principal: Principal) -> bool:
    user = team.get_user(principal.user)
    return bool(user and user.server_admin)


@router.get("/auth/me", summary="Who is asking: user, project, role (and a session's CSRF token)")
def me(request: Request, principal: Viewer) -> JSON:
    team = _team(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = cookie is not None and request.headers.get("authorization") is None
    projects = sorted({m.project for m in team.memberships(user=principal.user)} | {principal.project})
    return ok({**principal.to_dict(), "session": session, "csrf": csrf_token(cookie) if session and cookie else None,
               "projects": projects})


# -- tokens ------------------------------------------------------------------------------------------------
class TokenBody(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    role: Annotated[str, Field(description="viewer, editor, maintainer or admin (at most your own)")] = "editor"
    expires: Annotated[str, Field(max_length=32, description="30d, 12h, ... or never")] = "90d"


@router.get("/tokens", summary="API tokens: your own (a project admin: ?all=true lists the project's)")
def list_tokens(request: Request, principal: Viewer, all: bool = False) -> JSON:
    team = _team(request)
    if all:
        if principal.role < Role.admin:
            raise Forbidden("listing every token of a project needs its admin role")
        rows = team.list_tokens(project=principal.project)
    else:
        rows = team.list_tokens(user=principal.user)
    return ok({"tokens": [t.to_dict() for t in rows]})


def session_principal(request: Request, principal: Viewer) -> Principal:
    """A FastAPI dependency: the caller, if logged in to the web UI (a token may not, e.g., mint tokens)."""
    if request.headers.get("authorization") is not None or principal.token_id is None:
        raise Forbidden("this needs a web UI login, not a token",
                        hint="log in to the web UI, or ask the operator: groundwork server tokens create")
    return principal


@router.post("/tokens", summary="Create an API token for yourself in this project (from a web UI session; shown once)")
def create_token(request: Request, principal: Annotated[Principal, Depends(session_principal)],
                 body: TokenBody) -> JSON:
    team = _team(request)
    if Role.parse(body.role) > principal.role:
        raise Forbidden(f"you are {principal.role.name} in {principal.project!r}: a token cannot carry {body.role}")
    row, made = ops.create_token(team, principal, user=principal.user, project=principal.project, role=body.role,
                                 name=body.name, expires=body.expires)
    return ok({"token": made.text, **row.to_dict()}, status_code=201)


@router.delete("/tokens/{token_id}", summary="Revoke an API token (yours; a project admin: any of the project)")
def revoke_token(request: Request, principal: Viewer, token_id: str) -> JSON:
    token = ops.revoke_token(_team(request), principal, token_id)
    return ok({"revoked": token.id})


# -- users (server admins) ---------------------------------------------------------------------------------
class UserBody(BaseModel):
    name: _Name
    password: _Password | None = None
    server_admin: bool = False


class UserChange(BaseModel):
    password: _Password | None = None
    disabled: bool | None = None
    server_admin: bool | None = None


@router.get("/users", summary="Every user (server admins)")
def list_users(request: Request, principal: ServerAdmin) -> JSON:
    return ok({"users": [u.to_dict() for u in _team(request).list_users()]})


@router.post("/users", summary="Add a user (server admins)")
def add_user(request: Request, principal: ServerAdmin, body: UserBody) -> JSON:
    user = ops.add_user(_team(request), principal, body.name, body.password, server_admin=body.server_admin)
    return ok({"user": user.to_dict()}, status_code=201)


@router.patch("/users/{name}", summary="Change a user: password, disabled, server admin (server admins)")
def change_user(request: Request, principal: ServerAdmin, name: str, body: UserChange) -> JSON:
    team = _team(request)
    if team.get_user(name) is None:
        raise NotFound(f"no user named {name!r}")
    user = None
    if body.password is not None:
        user = ops.set_password(team, principal, name, body.password)
    if body.disabled is not None:
        user = ops.set_disabled(team, principal, name, body.disabled)
    if body.server_admin is not None:
        user = ops.set_server_admin(team, principal, name, body.server_admin)
    return ok({"user": (user or team.get_user(name)).to_dict()})  # type: ignore[union-attr]


# -- projects and members ----------------------------------------------------------------------------------
class NewProject(BaseModel):
    name: _Name
    description: Annotated[str | None, Field(max_length=2000)] = None


class RoleBody(BaseModel):
    role: Annotated[str, Field(description="viewer, editor, maintainer or admin")]


@router.get("/projects", summary="Projects: a server admin's every one, anyone else's own")
def list_projects(request: Request, principal: Viewer) -> JSON:
    team = _team(request)
    projects = team.list_projects()
    if not principal.server_admin:
        mine = {m.project for m in team.memberships(user=principal.user)} | {principal.project}
        projects = [p for p in projects if p.name in mine]
    return ok({"projects": [p.to_dict() for p in projects]})


@router.post("/projects", summary="Add a project (server admins)")
def add_project(request: Request, principal: ServerAdmin, body: NewProject) -> JSON:
    project = ops.add_project(_team(request), principal, body.name, body.description)
    return ok({"project": project.to_dict()}, status_code=201)


def _check_admin_of(principal: Principal, project: str) -> None:
    if not principal.server_admin and project != principal.project:
        raise Forbidden(f"this credential is for project {principal.project!r}, not {project!r}")


@router.get("/projects/{project}/members", summary="A project's members and roles (its admins)")
def list_members(request: Request, principal: ProjectAdmin, project: str) -> JSON:
    _check_admin_of(principal, project)
    team = _team(request)
    if team.get_project(project) is None:
        raise NotFound(f"no project named {project!r}")
    return ok({"members": [m.to_dict() for m in team.memberships(project=project)]})


@router.put("/projects/{project}/members/{user}", summary="Give a user a role in a project (its admins)")
def grant(request: Request, principal: ProjectAdmin, project: str, user: str, body: RoleBody) -> JSON:
    _check_admin_of(principal, project)
    return ok({"member": ops.grant(_team(request), principal, user, project, body.role).to_dict()})


@router.delete("/projects/{project}/members/{user}", summary="Remove a user from a project (its admins)")
def revoke(request: Request, principal: ProjectAdmin, project: str, user: str) -> JSON:
    _check_admin_of(principal, project)
    ops.revoke(_team(request), principal, user, project)
    return ok({"removed": user, "project": project})
