"""The team's operations: users, projects, members and tokens, checked and audited.

One implementation for both ways in: the HTTP routes of a team server
(:mod:`groundwork.server.accounts`) and the operator's commands on the store itself
(``groundwork server users|projects|tokens``, :mod:`groundwork.cli.server`). Each
operation validates its input (one clear error), changes the :class:`TeamStore`, and
writes one audit entry naming who did it.

:func:`install` turns an app made by :func:`groundwork.server.app.create_app` into the
team server's: the team store, the per-project contexts the UI's routers read through,
the account and audit routes, and the audit middleware.
"""

from __future__ import annotations

import getpass
import re
import socket
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI
from starlette.requests import Request

from groundwork.config import check_project
from groundwork.errors import Forbidden, InvalidInput, NotFound
from groundwork.server.audit import AuditScope, parse_duration, record
from groundwork.server.auth import NewToken, Principal, Role, hash_password, new_token, require
from groundwork.server.context import ServerContext, get_context
from groundwork.storage.records import MembershipRow, ProjectRow, TokenRow, UserRow

if TYPE_CHECKING:
    from groundwork.config import Config
    from groundwork.storage.stores import TeamStore

_USER = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
#: The longest a token may live (``--expires``); ``never`` is allowed explicitly.
MAX_TOKEN_LIFETIME_S = 5 * 365 * 86400.0


def check_user_name(name: str) -> str:
    """``name`` if it is a valid user name (lower case letters, digits, ``.``, ``_``, ``-``, ``@``; 64 at most)."""
    if not isinstance(name, str) or not _USER.match(name):
        raise InvalidInput(f"invalid user name {name!r}",
                           hint="use lower case letters, digits, '.', '_', '-' and '@' (64 at most), "
                           "starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def operator() -> Principal:
    """Who runs an admin command directly on the store: the operating system user, on this host."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Principal(f"operator:{who}", "default", Role.admin, None, socket.gethostname()[:64], True)


# -- users -----------------------------------------------------------------------------------------------
def add_user(team: TeamStore, by: Principal, name: str, password: str | None, *, server_admin: bool = False) -> UserRow:
    check_user_name(name)
    user = team.add_user(name, password_hash=hash_password(check_password(password)) if password is not None else None,
                         server_admin=server_admin)
    record(team, by, "user.add", name, {"server_admin": server_admin}, project="")
    return user


def set_password(team: TeamStore, by: Principal, name: str, password: str) -> UserRow:
    user = team.update_user(name, password_hash=hash_password(check_password(password)))
    record(team, by, "user.passwd", name, project="")
    return user


def set_disabled(team: TeamStore, by: Principal, name: str, disabled: bool) -> UserRow:
    if disabled and by.user == name:
        raise InvalidInput("you cannot disable yourself", hint="ask another server admin")
    user = team.update_user(name, disabled=disabled)
    record(team, by, "user.disable" if disabled else "user.enable", name, project="")
    return user


def set_server_admin(team: TeamStore, by: Principal, name: str, server_admin: bool) -> UserRow:
    if not server_admin and by.user == name:
        raise InvalidInput("you cannot take away your own server admin role", hint="ask another server admin")
    user = team.update_user(name, server_admin=server_admin)
    record(team, by, "user.admin", name, {"server_admin": server_admin}, project="")
    return user


# -- projects and members --------------------------------------------------------------------------------
def add_project(team: TeamStore, by: Principal, name: str, description: str | None = None) -> ProjectRow:
    check_project(name)
    if description is not None and len(description) > 2000:
        raise InvalidInput("a project description has at most 2000 characters")
    project = team.add_project(name, description=description)
    record(team, by, "project.add", name, project=name)
    return project


def grant(team: TeamStore, by: Principal, user: str, project: str, role: str) -> MembershipRow:
    member = team.grant(user, project, Role.parse(role).name)
    record(team, by, "member.grant", user, {"role": member.role}, project=project)
    return member


def revoke(team: TeamStore, by: Principal, user: str, project: str) -> bool:
    done = team.revoke(user, project)
    if not done:
        raise NotFound(f"{user!r} is not a member of project {project!r}")
    record(team, by, "member.revoke", user, project=project)
    return done


# -- tokens ------------------------------------------------------------------------------------------------
def expiry(text: str | None, now: float | None = None) -> float | None:
    """When a token made now with ``--expires text`` (``90d``, ``12h``, ``never``) expires."""
    if text is None or text.strip().lower() == "never":
        return None
    seconds = parse_duration(text)
    if not 0 < seconds <= MAX_TOKEN_LIFETIME_S:
        raise InvalidInput(f"a token lives at most {MAX_TOKEN_LIFETIME_S / 86400:.0f} days (or 'never'), not {text!r}")
    return (now if now is not None else time.time()) + seconds


def create_token(
    team: TeamStore, by: Principal, *, user: str, project: str, role: str, name: str, expires: str | None = "90d",
    kind: str = "api",
) -> tuple[TokenRow, NewToken]:
    """A new token for ``user`` in ``project`` with a role no higher than theirs there (shown once: ``NewToken.text``)."""
    wanted = Role.parse(role)
    if not name or len(name) > 255:
        raise InvalidInput("a token needs a name of 1 to 255 characters", hint="say what it is for: --name ci")
    found = team.get_user(user)
    if found is None:
        raise NotFound(f"no user named {user!r}", hint="add one with: groundwork server users add NAME")
    if found.disabled:
        raise InvalidInput(f"user {user!r} is disabled")
    if team.get_project(project) is None:
        raise NotFound(f"no project named {project!r}", hint="add one with: groundwork server projects add NAME")
    if not found.server_admin:
        member = next((m for m in team.memberships(user=user, project=project)), None)
        if member is None:
            raise InvalidInput(f"{user!r} is not a member of project {project!r}",
                               hint=f"grant a role first: groundwork server projects grant {project} {user} --role ROLE")
        if kind == "api" and wanted > Role[member.role]:  # a session's cap is admin: its role is the member's
            raise InvalidInput(f"{user!r} is {member.role} in {project!r}: a token cannot carry {wanted.name}")
    made = new_token()
    row = team.create_token(token_id=made.id, secret_hash=made.secret_hash, user=user, project=project,
                            role=wanted.name, name=name, expires_at=expiry(expires), kind=kind)
    if kind == "api":
        record(team, by, "token.create", made.id, {"user": user, "role": wanted.name, "name": name,
                                                   "expires_at": row.expires_at}, project=project)
    return row, made


def revoke_token(team: TeamStore, by: Principal, token_id: str) -> TokenRow:
    token = team.get_token(token_id)
    if token is None or token.kind != "api":
        raise NotFound(f"no token {token_id!r}", hint="list tokens with: groundwork server tokens list")
    if not (by.server_admin or by.user == token.user or (by.role >= Role.admin and by.project == token.project)):
        raise Forbidden("only its user, an admin of its project or a server admin may revoke a token")
    if not team.revoke_token(token_id):
        raise InvalidInput(f"token {token_id} was revoked already")
    record(team, by, "token.revoke", token_id, {"user": token.user}, project=token.project)
    return token


# -- the app -------------------------------------------------------------------------------------------------
class _Contexts:
    """One :class:`ServerContext` per project (its stores confined to the project, its caches its own)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._by_project: dict[str, ServerContext] = {}
        self._lock = threading.Lock()

    def get(self, project: str) -> ServerContext:
        with self._lock:
            found = self._by_project.get(project)
            if found is None:
                found = ServerContext(self.config.with_(project=project), confined=True)
                self._by_project[project] = found
            return found


def team_context(request: Request, principal: Annotated[Principal, Depends(require(Role.viewer))]) -> ServerContext:
    """The team app's :func:`~groundwork.server.context.get_context`: the caller's project's context (a viewer's)."""
    contexts: _Contexts = request.app.state.team_contexts
    return contexts.get(principal.project)


def app_from_env() -> FastAPI:
    """The team server's app for the store and artifacts in the environment (uvicorn's factory, one per worker)."""
    from groundwork.config import Config
    from groundwork.server.app import create_app

    return create_app(Config.from_env(), team=True)


class LazyTeamStore:
    """A :class:`TeamStore` opened (and migrated) on first use: building the app touches no database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: TeamStore | None = None
        self._lock = threading.Lock()

    def _open(self) -> TeamStore:
        if self._store is None:
            from groundwork.storage.stores import open_team_store

            with self._lock:
                if self._store is None:
                    self._store = open_team_store(self.url)
        return self._store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)


def install(app: FastAPI, config: Config, team: TeamStore | LazyTeamStore, api_prefix: str) -> None:
    """Make ``app`` a team server's: every route behind a credential, accounts and audit routes, the audit log."""
    from groundwork.server import accounts, audit

    app.state.team = team
    app.state.team_contexts = _Contexts(config)
    app.dependency_overrides[get_context] = team_context
    app.include_router(accounts.router, prefix=api_prefix)
    app.include_router(audit.router, prefix=api_prefix)
    from groundwork.server import blobs  # artifact bytes: downloads, resumable uploads, presigned S3 URLs

    app.include_router(blobs.router, prefix=api_prefix)
    app.add_middleware(AuditScope, team=team)


__all__ = [
    "add_project",
    "app_from_env",
    "add_user",
    "create_token",
    "expiry",
    "grant",
    "install",
    "operator",
    "revoke",
    "revoke_token",
    "set_disabled",
    "set_password",
]
