"""The team contract on SQL: users, projects, memberships, tokens and the audit log (migration 0007).

Row-level, like the other SQL stores: it stores what the server gives it (names are
checked, passwords hashed and tokens made by :mod:`groundwork.server.auth`) and reads it
back as :mod:`groundwork.storage.records`. It shares the connections of a
:class:`~groundwork.storage.metadata.SqlMetadataStore` on the same database, but is not
confined to a project: it is the server's own view of who may do what.

Authenticating a request costs one indexed read (:meth:`SqlTeamStore.token_grant`: the
token, its user and the user's membership of the token's project, joined).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from groundwork.errors import Conflict, InvalidInput, NotFound
from groundwork.storage import schema
from groundwork.storage.metadata import SqlMetadataStore
from groundwork.storage.records import (
    ROLES,
    TOKEN_KINDS,
    AuditEntry,
    MembershipRow,
    ProjectRow,
    TokenGrant,
    TokenRow,
    UserRow,
)

#: The longest audit ``target`` and ``details`` kept (a caller's input must not grow the log without bound).
MAX_TARGET = 1000
MAX_DETAILS = 16_000


def _user(row: Any) -> UserRow:
    return UserRow(name=row.name, server_admin=bool(row.server_admin), disabled=bool(row.disabled),
                   created_at=float(row.created_at), password_hash=row.password_hash)


def _token(row: Any) -> TokenRow:
    return TokenRow(id=row.id, user=row.user, project=row.project, role=row.role, name=row.name, kind=row.kind,
                    created_at=float(row.created_at), expires_at=row.expires_at, revoked_at=row.revoked_at,
                    last_used_at=row.last_used_at, secret_hash=row.secret_hash)


def _entry(row: Any) -> AuditEntry:
    details = json.loads(row.details) if row.details else {}
    return AuditEntry(at=float(row.at), actor=row.actor, action=row.action, project=row.project, target=row.target,
                      token_id=row.token_id, address=row.address, details=details, id=int(row.id))


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", hint=f"use one of: {', '.join(ROLES)}")


class SqlTeamStore:
    """The team contract (:class:`groundwork.storage.stores.TeamStore`) on a SQL metadata store's database."""

    def __init__(self, db: SqlMetadataStore) -> None:
        self.db = db

    @property
    def display_url(self) -> str:
        return self.db.display_url

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _write(self, conflict: str) -> Iterator[Connection]:
        """A write transaction whose unique-key violation is the :class:`Conflict` ``conflict``."""
        try:
            with self.db.write() as conn:
                yield conn
        except IntegrityError:
            raise Conflict(conflict) from None

    # -- users ---------------------------------------------------------------------------
    def add_user(self, name: str, *, password_hash: str | None, server_admin: bool = False) -> UserRow:
        row = {"name": name, "password_hash": password_hash, "server_admin": server_admin, "disabled": False,
               "created_at": time.time()}
        self._insert_absent(schema.users, row, "name", f"a user named {name!r} exists")
        return _user(_Row(row))

    def _insert_absent(self, table: Any, row: dict[str, Any], key: str, conflict: str) -> None:
        """Insert ``row`` unless a row with its ``key`` exists (:class:`Conflict` then), in one transaction."""
        stmt = self.db.dialect_insert(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
        with self.db.write() as conn:
            if conn.execute(stmt, row).first() is None:  # (rowcount is -1 on psycopg for this)
                raise Conflict(conflict)

    def get_user(self, name: str) -> UserRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(schema.users).where(schema.users.c.name == name)).first()
        return _user(row) if row else None

    def list_users(self) -> list[UserRow]:
        with self.db.read() as conn:
            return [_user(r) for r in conn.execute(select(schema.users).order_by(schema.users.c.name))]

    def count_users(self) -> int:
        users = schema.users
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(users).where(users.c.disabled.is_(False)))
                       .scalar() or 0)

    def update_user(
        self, name: str, *, password_hash: str | None = None, disabled: bool | None = None,
        server_admin: bool | None = None,
    ) -> UserRow:
        values: dict[str, Any] = {}
        if password_hash is not None:
            values["password_hash"] = password_hash
        if disabled is not None:
            values["disabled"] = disabled
        if server_admin is not None:
            values["server_admin"] = server_admin
        users = schema.users
        with self.db.write() as conn:
            if values:
                conn.execute(update(users).where(users.c.name == name).values(**values))
            row = conn.execute(select(users).where(users.c.name == name)).first()
            if row is None:
                raise NotFound(f"no user named {name!r}", hint="list users with: groundwork server users list")
        return _user(row)

    # -- projects and memberships ---------------------------------------------------------
    def add_project(self, name: str, *, description: str | None = None) -> ProjectRow:
        project = ProjectRow(name, description, time.time())
        self._insert_absent(schema.projects, project.to_dict(), "name", f"a project named {name!r} exists")
        return project

    def get_project(self, name: str) -> ProjectRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(schema.projects).where(schema.projects.c.name == name)).first()
        return ProjectRow(row.name, row.description, float(row.created_at)) if row else None

    def list_projects(self) -> list[ProjectRow]:
        with self.db.read() as conn:
            rows = conn.execute(select(schema.projects).order_by(schema.projects.c.name))
            return [ProjectRow(r.name, r.description, float(r.created_at)) for r in rows]

    def grant(self, user: str, project: str, role: str) -> MembershipRow:
        _check_role(role)
        m = schema.memberships
        membership = MembershipRow(user, project, role, time.time())
        stmt = self.db.dialect_insert(m)
        stmt = stmt.on_conflict_do_update(index_elements=["user", "project"],
                                          set_={"role": stmt.excluded.role, "granted_at": stmt.excluded.granted_at})
        with self.db.write() as conn:
            self._check_exists(conn, user=user, project=project)
            conn.execute(stmt, membership.to_dict())
        return membership

    def _check_exists(self, conn: Connection, *, user: str | None = None, project: str | None = None) -> None:
        if user is not None and conn.execute(select(schema.users.c.name).where(schema.users.c.name == user)).first() is None:
            raise NotFound(f"no user named {user!r}", hint="add one with: groundwork server users add NAME")
        if project is not None and conn.execute(
            select(schema.projects.c.name).where(schema.projects.c.name == project)
        ).first() is None:
            raise NotFound(f"no project named {project!r}", hint="add one with: groundwork server projects add NAME")

    def revoke(self, user: str, project: str) -> bool:
        m = schema.memberships
        with self.db.write() as conn:
            return bool(conn.execute(delete(m).where(m.c.user == user, m.c.project == project)).rowcount)

    def memberships(self, *, user: str | None = None, project: str | None = None) -> list[MembershipRow]:
        m = schema.memberships
        query = select(m).order_by(m.c.project, m.c.user)
        if user is not None:
            query = query.where(m.c.user == user)
        if project is not None:
            query = query.where(m.c.project == project)
        with self.db.read() as conn:
            return [MembershipRow(r.user, r.project, r.role, float(r.granted_at)) for r in conn.execute(query)]

    # -- tokens ---------------------------------------------------------------------------
    def create_token(
        self, *, token_id: str, secret_hash: str, user: str, project: str, role: str, name: str,
        expires_at: float | None, kind: str = "api",
    ) -> TokenRow:
        _check_role(role)
        if kind not in TOKEN_KINDS:
            raise InvalidInput(f"unknown token kind {kind!r}")
        row = {"id": token_id, "secret_hash": secret_hash, "kind": kind, "user": user, "project": project,
               "role": role, "name": name, "created_at": time.time(), "expires_at": expires_at,
               "revoked_at": None, "last_used_at": None}
        with self._write("a token with this id exists") as conn:
            self._check_exists(conn, user=user, project=project)
            conn.execute(insert(schema.tokens), row)
        return _token(_Row(row))

    def get_token(self, token_id: str) -> TokenRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(schema.tokens).where(schema.tokens.c.id == token_id)).first()
        return _token(row) if row else None

    def token_grant(self, token_id: str) -> TokenGrant | None:
        t, u, m = schema.tokens, schema.users, schema.memberships
        query = (
            select(t, u.c.password_hash, u.c.server_admin, u.c.disabled, u.c.created_at.label("user_created_at"),
                   m.c.role.label("member_role"))
            .join(u, u.c.name == t.c.user)
            .outerjoin(m, and_(m.c.user == t.c.user, m.c.project == t.c.project))
            .where(t.c.id == token_id)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        user = UserRow(name=row.user, server_admin=bool(row.server_admin), disabled=bool(row.disabled),
                       created_at=float(row.user_created_at), password_hash=row.password_hash)
        return TokenGrant(_token(row), user, row.member_role)

    def list_tokens(
        self, *, user: str | None = None, project: str | None = None, kind: str | None = "api",
        include_revoked: bool = False,
    ) -> list[TokenRow]:
        t = schema.tokens
        query = select(t).order_by(t.c.created_at.desc(), t.c.id)
        if user is not None:
            query = query.where(t.c.user == user)
        if project is not None:
            query = query.where(t.c.project == project)
        if kind is not None:
            query = query.where(t.c.kind == kind)
        if not include_revoked:
            query = query.where(t.c.revoked_at.is_(None))
        with self.db.read() as conn:
            return [_token(r) for r in conn.execute(query)]

    def revoke_token(self, token_id: str) -> bool:
        t = schema.tokens
        with self.db.write() as conn:
            done = conn.execute(update(t).where(t.c.id == token_id, t.c.revoked_at.is_(None))
                                .values(revoked_at=time.time()))
            return bool(done.rowcount)

    def touch_token(self, token_id: str, at: float) -> None:
        t = schema.tokens
        with self.db.write() as conn:
            conn.execute(update(t).where(t.c.id == token_id, or_(t.c.last_used_at.is_(None), t.c.last_used_at < at))
                         .values(last_used_at=at))

    # -- the audit log --------------------------------------------------------------------
    def add_audit(self, entry: AuditEntry) -> int:
        details = json.dumps(entry.details, sort_keys=True, default=str) if entry.details else None
        if details is not None and len(details) > MAX_DETAILS:
            details = json.dumps({"truncated": details[:MAX_DETAILS]})
        row = {"at": entry.at, "actor": entry.actor[:255], "token_id": entry.token_id,
               "address": (entry.address or "")[:64] or None, "project": entry.project, "action": entry.action[:64],
               "target": None if entry.target is None else entry.target[:MAX_TARGET], "details": details}
        with self.db.write() as conn:
            result = conn.execute(insert(schema.audit_log).returning(schema.audit_log.c.id), row)
            return int(result.scalar_one())

    def audit_entries(
        self, *, project: str | None = None, since: float | None = None, until: float | None = None,
        actor: str | None = None, action: str | None = None, before_id: int | None = None, limit: int = 100,
    ) -> list[AuditEntry]:
        a = schema.audit_log
        query = select(a).order_by(a.c.at.desc(), a.c.id.desc()).limit(limit)
        if project is not None:
            query = query.where(a.c.project == project)
        if since is not None:
            query = query.where(a.c.at >= since)
        if until is not None:
            query = query.where(a.c.at <= until)
        if actor is not None:
            query = query.where(a.c.actor == actor)
        if before_id is not None:
            query = query.where(a.c.id < before_id)
        if action is not None:
            # "auth" matches auth.login, auth.logout, ...; "auth.login" only itself.
            query = query.where(or_(a.c.action == action, a.c.action.startswith(action + ".", autoescape=True)))
        with self.db.read() as conn:
            return [_entry(r) for r in conn.execute(query)]

    def audit_times(
        self, action: str, since: float, *, actor: str | None = None, address: str | None = None
    ) -> list[float]:
        a = schema.audit_log
        query = select(a.c.at).where(a.c.action == action, a.c.at >= since).order_by(a.c.at)
        if actor is not None:
            query = query.where(a.c.actor == actor)
        if address is not None:
            query = query.where(a.c.address == address)
        with self.db.read() as conn:
            return [float(r[0]) for r in conn.execute(query)]


class _Row:
    """Attribute access to a dict (a row just written, read back as a record)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
