"""The team store (users, projects, memberships, tokens, audit log) on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from groundwork.errors import Conflict, InvalidInput, NotFound
from groundwork.storage.records import AuditEntry
from groundwork.storage.stores import TeamStore, open_team_store


@pytest.fixture
def team(store_url: str) -> TeamStore:
    return open_team_store(store_url)


def test_users_are_added_listed_changed_and_unique(team: TeamStore) -> None:
    assert team.count_users() == 0 and team.list_users() == []
    ann = team.add_user("ann", password_hash="scrypt$x", server_admin=True)
    team.add_user("bob", password_hash=None)
    assert ann.server_admin and not ann.disabled and "password_hash" not in ann.to_dict()
    assert [u.name for u in team.list_users()] == ["ann", "bob"] and team.count_users() == 2
    with pytest.raises(Conflict, match="'ann' exists"):
        team.add_user("ann", password_hash=None)
    bob = team.update_user("bob", disabled=True, password_hash="scrypt$y")
    assert bob.disabled and bob.password_hash == "scrypt$y" and team.count_users() == 1
    got = team.get_user("bob")
    assert got is not None and got.disabled and team.get_user("carol") is None
    with pytest.raises(NotFound):
        team.update_user("carol", disabled=True)


def test_projects_start_with_default_and_memberships_hold_one_role(team: TeamStore) -> None:
    assert [p.name for p in team.list_projects()] == ["default"]
    team.add_project("vision", description="cameras")
    with pytest.raises(Conflict):
        team.add_project("vision")
    team.add_user("bob", password_hash=None)
    team.grant("bob", "vision", "viewer")
    team.grant("bob", "vision", "maintainer")  # a second grant replaces the role
    team.grant("bob", "default", "editor")
    assert [(m.project, m.role) for m in team.memberships(user="bob")] == [("default", "editor"),
                                                                         ("vision", "maintainer")]
    assert [m.user for m in team.memberships(project="vision")] == ["bob"]
    with pytest.raises(InvalidInput, match="unknown role"):
        team.grant("bob", "vision", "owner")
    with pytest.raises(NotFound, match="no project"):
        team.grant("bob", "nope", "viewer")
    with pytest.raises(NotFound, match="no user"):
        team.grant("carol", "vision", "viewer")
    assert team.revoke("bob", "vision") is True and team.revoke("bob", "vision") is False
    assert [m.project for m in team.memberships(user="bob")] == ["default"]


def test_a_token_grant_joins_token_user_and_membership(team: TeamStore) -> None:
    team.add_user("bob", password_hash=None)
    team.add_project("vision")
    team.grant("bob", "vision", "editor")
    token = team.create_token(token_id="0123456789abcdef", secret_hash="a" * 64, user="bob", project="vision",
                              role="maintainer", name="ci", expires_at=time.time() + 60)
    assert "secret_hash" not in token.to_dict()
    grant = team.token_grant("0123456789abcdef")
    assert grant is not None
    assert (grant.token.secret_hash, grant.token.role, grant.user.name, grant.member_role) == (
        "a" * 64, "maintainer", "bob", "editor")
    team.revoke("bob", "vision")
    grant = team.token_grant("0123456789abcdef")
    assert grant is not None and grant.member_role is None
    assert team.token_grant("ffffffffffffffff") is None
    with pytest.raises(NotFound):
        team.create_token(token_id="1123456789abcdef", secret_hash="b" * 64, user="carol", project="vision",
                          role="viewer", name="x", expires_at=None)


def test_tokens_are_listed_touched_and_revoked_once(team: TeamStore) -> None:
    team.add_user("bob", password_hash=None)
    for i, kind in enumerate(("api", "api", "session")):
        team.create_token(token_id=f"{i:016x}", secret_hash="c" * 64, user="bob", project="default", role="viewer",
                          name=f"t{i}", expires_at=None, kind=kind)
    assert {t.id for t in team.list_tokens(user="bob")} == {f"{0:016x}", f"{1:016x}"}
    assert len(team.list_tokens(user="bob", kind=None)) == 3
    assert team.revoke_token(f"{0:016x}") is True and team.revoke_token(f"{0:016x}") is False
    assert [t.id for t in team.list_tokens(user="bob")] == [f"{1:016x}"]
    revoked = team.get_token(f"{0:016x}")
    assert revoked is not None and revoked.revoked_at is not None
    assert len(team.list_tokens(project="default", include_revoked=True)) == 2
    team.touch_token(f"{1:016x}", 1000.0)
    team.touch_token(f"{1:016x}", 900.0)  # never moves back
    touched = team.get_token(f"{1:016x}")
    assert touched is not None and touched.last_used_at == 1000.0


def test_the_audit_log_filters_pages_and_counts(team: TeamStore) -> None:
    base = time.time() - 100
    ids = [team.add_audit(AuditEntry(at=base + i, actor="ann" if i % 2 else "bob", action=action, project=project,
                                     target=f"t{i}", address="10.0.0.1", details={"i": i}))
           for i, (action, project) in enumerate([("auth.login_failed", None), ("model.alias", "vision"),
                                                  ("model.alias.remove", "vision"), ("run.create", "default"),
                                                  ("auth.login_failed", None)])]
    assert ids == sorted(ids)
    newest = team.audit_entries()
    assert [e.target for e in newest] == ["t4", "t3", "t2", "t1", "t0"] and newest[0].details == {"i": 4}
    assert [e.target for e in team.audit_entries(project="vision")] == ["t2", "t1"]
    assert [e.target for e in team.audit_entries(action="model")] == ["t2", "t1"]
    assert [e.target for e in team.audit_entries(action="model.alias")] == ["t2", "t1"]  # the move and the removal
    assert [e.target for e in team.audit_entries(action="model.alias.remove")] == ["t2"]
    assert [e.target for e in team.audit_entries(action="mod")] == []  # a prefix matches whole words only
    assert [e.target for e in team.audit_entries(actor="ann")] == ["t3", "t1"]
    assert [e.target for e in team.audit_entries(since=base + 2.5)] == ["t4", "t3"]
    page = team.audit_entries(limit=2)
    assert [e.target for e in team.audit_entries(before_id=page[-1].id, limit=2)] == ["t2", "t1"]
    assert team.audit_times("auth.login_failed", base - 1, actor="bob") == [base, base + 4]
    assert team.audit_times("auth.login_failed", base + 1, address="10.0.0.1") == [base + 4]


def test_a_huge_audit_entry_is_bounded(team: TeamStore) -> None:
    team.add_audit(AuditEntry(at=time.time(), actor="x" * 1000, action="run.tags", target="t" * 5000,
                              details={"blob": "d" * 100_000}))
    (entry,) = team.audit_entries()
    assert len(entry.actor) == 255 and len(entry.target or "") == 1000
    assert len(str(entry.details)) < 20_000
