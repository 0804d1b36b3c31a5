"""Who is asking, and may they: API tokens, web UI sessions and roles per project.

Every route of the team server (``create_app(config, team=True)``) declares the role it
needs with :func:`require`, a FastAPI dependency that returns the caller's
:class:`Principal`::

    @router.post("/things")
    def make(principal: Annotated[Principal, Depends(require(Role.editor))], request: Request) -> JSON:
        stores = stores_for(principal, request)      # confined to principal.project
        ...
        audit(principal, "thing.create", target=name)  # groundwork.server.audit

Credentials, in this order:

* ``Authorization: Bearer gw_<id>_<secret>``: an API token (``groundwork server tokens
  create``). Only the SHA-256 of the secret is stored; it is compared in constant time.
* the ``gw_session`` cookie of a web UI login (``POST /api/v1/auth/login``): ``HttpOnly``,
  ``SameSite=Strict``, ``Secure`` behind TLS. A state change (any method but GET, HEAD,
  OPTIONS) made with the cookie must also send the page's CSRF token in ``X-CSRF-Token``
  (from the login answer or ``GET /api/v1/auth/me``), and an ``Origin``, when the browser
  sends one, naming this server.

No credential, or a wrong, expired or revoked one, or one of a disabled user, is a 401;
a valid one whose role in its project is too low a 403 (both JSON in the
:func:`groundwork.errors.error_body` shape). Neither answer, nor any log line, repeats
the token.

Effective role: a token carries a role cap (chosen at creation; a session's is ``admin``),
and the user's role in the token's project is looked up on every request, so removing a
member takes effect at once: the role is the lower of the two. A server admin holds every
role in every project; ``Principal.server_admin`` is true only for a server admin's
credential capped at ``admin`` (a CI token of an admin cannot manage users).

The single-user viewer (``groundwork ui``, ``create_app(config)``) has no users: there
:func:`require` answers a local principal with every role, since its
:class:`~groundwork.server.security.LocalGuard` already admits only loopback callers and
writes carrying its process token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from groundwork.errors import AuthError, Forbidden, InvalidInput
from groundwork.storage.records import ROLES, TokenGrant

if TYPE_CHECKING:
    from groundwork.config import Config
    from groundwork.storage.stores import Stores, TeamStore

TOKEN_PREFIX = "gw_"
SESSION_COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
#: A token's id: 16 hex digits (listed, never secret); its secret: 32 random bytes, base64url.
_TOKEN = re.compile(r"^gw_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: ``last_used_at`` is written at most this often per token (a write per request would cost more than the request).
TOUCH_EVERY_S = 60.0


class Role(IntEnum):
    """A member's role in a project; each includes the ones below it."""

    viewer = 1  # read runs, models, pipelines, artifacts
    editor = 2  # write runs and artifacts
    maintainer = 3  # register, promote and delete
    admin = 4  # the project's members and tokens

    @classmethod
    def parse(cls, name: str) -> Role:
        """The role called ``name`` (one clear error otherwise)."""
        try:
            return cls[name.strip().lower()]
        except (KeyError, AttributeError):
            raise InvalidInput(f"unknown role {name!r}", hint=f"use one of: {', '.join(ROLES)}") from None


assert tuple(r.name for r in Role) == ROLES  # storage and the server agree on the names


@dataclass(frozen=True)
class Principal:
    """Who made a request: a user acting in one project with one role, by a token (or session) from an address."""

    user: str
    project: str
    role: Role
    token_id: str | None
    address: str | None
    server_admin: bool

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "project": self.project, "role": self.role.name, "token_id": self.token_id,
                "address": self.address, "server_admin": self.server_admin}


# -- tokens and passwords -------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewToken:
    """A freshly made token: ``text`` is shown once; the store keeps ``id`` and ``secret_hash``."""

    id: str
    text: str
    secret_hash: str


def new_token() -> NewToken:
    """A random ``gw_<id>_<secret>`` token."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewToken(token_id, f"{TOKEN_PREFIX}{token_id}_{secret}", secret_hash(secret))


def parse_token(text: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else None."""
    match = _TOKEN.match(text.strip())
    return (match.group(1), match.group(2)) if match else None


def secret_hash(secret: str) -> str:
    """What the store keeps of a token's secret (SHA-256: the secret is 256 random bits, no slow hash needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(session_text: str) -> str:
    """The CSRF token of a UI session: derived from its secret, so no worker needs to remember it."""
    return hmac.new(session_text.encode(), b"groundwork-csrf", hashlib.sha256).hexdigest()


#: scrypt parameters (RFC 7914): 2**15 x 8 x 1 costs 32 MiB and some 60 ms per hash.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1


def hash_password(password: str) -> str:
    """``scrypt$<log2 n>$<r>$<p>$<salt>$<hash>`` of ``password`` (random salt)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(["scrypt", str(_SCRYPT_N.bit_length() - 1), str(_SCRYPT_R), str(_SCRYPT_P),
                     _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (constant time; a user without a password never matches)."""
    if not stored:
        _scrypt(password, b"0" * 16, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)  # the same work as a real check
        return False
    try:
        scheme, log_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        got = _scrypt(password, base64.urlsafe_b64decode(salt + "=="), 2 ** int(log_n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r, dklen=32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# -- who is asking --------------------------------------------------------------------------------------
def team_store(request: Request) -> TeamStore | None:
    """The team store of the app that got ``request`` (None: the single-user viewer)."""
    return getattr(request.app.state, "team", None)


def app_config(request: Request) -> Config:
    config: Config = request.app.state.groundwork.config
    return config


def client_address(request: Request) -> str | None:
    """The caller's address (uvicorn rewrites it from ``X-Forwarded-For`` for a trusted proxy only)."""
    return request.client.host if request.client else None


def is_https(request: Request) -> bool:
    """Whether the caller reached us over TLS (``X-Forwarded-Proto`` counts only from a trusted proxy)."""
    return request.url.scheme in ("https", "wss")


def authenticate(request: Request) -> Principal:
    """The :class:`Principal` of ``request`` (401 without valid credentials); worked out once per request."""
    found: Principal | None = getattr(request.state, "groundwork_principal", None)
    if found is not None:
        return found
    team = team_store(request)
    if team is None:
        principal = Principal("local", app_config(request).project, Role.admin, None, client_address(request), True)
    else:
        principal = _authenticate(team, request)
    request.state.groundwork_principal = principal
    return principal


def _authenticate(team: TeamStore, request: Request) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, text = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not text.strip():
            raise AuthError("the Authorization header must be 'Bearer <token>'",
                            hint="create a token with: groundwork server tokens create")
        return _principal(team, request, text.strip(), kind="api")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal = _principal(team, request, cookie, kind="session")
        if request.method not in _SAFE_METHODS:
            _check_csrf(request, cookie)
        return principal
    raise AuthError("this server needs a token or a login",
                    hint="send 'Authorization: Bearer <token>' (groundwork login URL stores one), or log in to the web UI")


def _principal(team: TeamStore, request: Request, text: str, *, kind: str) -> Principal:
    what = "token" if kind == "api" else "session"
    parsed = parse_token(text)
    grant = team.token_grant(parsed[0]) if parsed else None
    # The same comparison whether or not the id exists, so timing tells nothing about ids.
    expected = grant.token.secret_hash if grant else "0" * 64
    matches = hmac.compare_digest(secret_hash(parsed[1] if parsed else text).encode(), expected.encode())
    if grant is None or not matches or grant.token.kind != kind:
        raise AuthError(f"invalid {what}", hint=_RENEW[kind])
    token, user = grant.token, grant.user
    now = time.time()
    if token.revoked_at is not None:
        raise AuthError(f"this {what} was revoked", hint=_RENEW[kind])
    if token.expires_at is not None and token.expires_at <= now:
        raise AuthError(f"this {what} has expired", hint=_RENEW[kind])
    if user.disabled:
        raise AuthError(f"the user of this {what} is disabled", hint="ask a server admin")
    role = _effective_role(grant)
    if role is None:
        raise Forbidden(f"user {user.name!r} is not a member of project {token.project!r}",
                        hint="ask an admin of the project: groundwork server projects grant")
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY_S:
        team.touch_token(token.id, now)
    return Principal(user.name, token.project, role, token.id, client_address(request),
                     user.server_admin and Role[token.role] == Role.admin)


_RENEW = {"api": "create a new one with: groundwork server tokens create (then groundwork login)",
          "session": "log in again"}


def _effective_role(grant: TokenGrant) -> Role | None:
    cap = Role[grant.token.role]
    if grant.user.server_admin:
        return cap
    if grant.member_role is None:
        return None
    return min(cap, Role[grant.member_role])


def _check_csrf(request: Request, session_text: str) -> None:
    given = request.headers.get(CSRF_HEADER.lower(), "")
    if not hmac.compare_digest(given.encode(), csrf_token(session_text).encode()):
        raise Forbidden(f"a {request.method} from the web UI needs its {CSRF_HEADER} header",
                        hint="reload the page; scripts should use a token (Authorization: Bearer)")
    check_origin(request)


def check_origin(request: Request) -> None:
    """Refuse a request whose ``Origin`` (when the browser sends one) is not this server."""
    origin = request.headers.get("origin")
    if not origin:
        return
    host = request.headers.get("host", "")
    if origin.split("://", 1)[-1].rstrip("/").lower() != host.lower():
        raise Forbidden(f"a request from the web page at {origin} is refused", hint="use this server's own web UI")


# -- the dependencies -----------------------------------------------------------------------------------
@functools.cache
def require(role: Role) -> Callable[..., Principal]:
    """A FastAPI dependency: the caller's :class:`Principal` if it holds ``role`` in its project.

    401 (JSON) without valid credentials, 403 (JSON) when the role is too low. The
    returned callable is the same object for the same role (FastAPI then authenticates
    once per request), and carries ``required_role`` for the permission tests.
    """

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if principal.role < role:
            raise Forbidden(
                f"this needs the {role.name} role in project {principal.project!r} "
                f"({principal.user} has {principal.role.name})",
                hint="ask an admin of the project to grant it: groundwork server projects grant",
            )
        return principal

    dependency.__name__ = dependency.__qualname__ = f"require_{role.name}"
    dependency.required_role = role  # type: ignore[attr-defined]
    return dependency


def require_server_admin(request: Request) -> Principal:
    """A FastAPI dependency: the caller, if a server admin (users and projects)."""
    principal = authenticate(request)
    if not principal.server_admin:
        raise Forbidden("this needs a server admin", hint="a server admin's login, or a token of theirs with --role admin")
    return principal


require_server_admin.required_role = "server_admin"  # type: ignore[attr-defined]


def stores_for(principal: Principal, request: Request) -> Stores:
    """The stores of the principal's project (``open_stores``, opened once per process and project)."""
    from groundwork.storage.stores import open_stores

    return open_stores(app_config(request).with_(project=principal.project))


__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Principal",
    "Role",
    "authenticate",
    "require",
    "require_server_admin",
    "stores_for",
]
