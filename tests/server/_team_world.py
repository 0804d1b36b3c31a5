"""A team server with people in every role: a real ``groundwork server`` (2 workers) on PostgreSQL.

Two projects: ``alpha`` (a run, an artifact, the model ``alpha-model`` at ``production``) and
``beta``. Tokens of alpha's viewer, editor, maintainer and admin, of a server admin (``root``),
of beta's admin (another project), and an expired one, a revoked one, and one of a disabled
user. ``victim`` exists to be removed, revoked and changed by the tests that change things.
Every user has the password ``password-of-<name>``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _servers import Answer, send
from groundwork.config import Config

ROLES = ("viewer", "editor", "maintainer", "admin")
#: Words that appear only in alpha's data: no answer to a credential of beta may contain them.
ALPHA_MARKERS = ("alpha-secret-run", "alpha-model")


@dataclass
class World:
    url: str
    port: int
    log: Path
    config: Config  # alpha's
    tokens: dict[str, str]
    run_id: str
    digest: str
    victim_token_id: str

    def request(self, method: str, path: str, *, token: str | None = None, body: Any = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None) -> Answer:
        """One request over a real socket (``token``: a bearer token)."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return send(self.port, method, path, body=body, raw=raw, headers=sent)


def populate(store_url: str, home: Path) -> tuple[dict[str, str], str, str, str, Config]:
    """Users, projects, tokens and alpha's data, written through the team operations and the SDK."""
    import groundwork as gw
    from groundwork.server import team as ops
    from groundwork.server.auth import new_token
    from groundwork.storage.records import ArtifactRow
    from groundwork.storage.stores import open_stores, open_team_store

    team = open_team_store(store_url)
    by = ops.operator()
    for project in ("alpha", "beta"):
        ops.add_project(team, by, project)
    ops.add_user(team, by, "root", "password-of-root", server_admin=True)
    tokens: dict[str, str] = {}
    _, made = ops.create_token(team, by, user="root", project="alpha", role="admin", name="root")
    tokens["server_admin"] = made.text
    for role in ROLES:
        user = f"alpha-{role}"
        ops.add_user(team, by, user, f"password-of-{user}")
        ops.grant(team, by, user, "alpha", role)
        _, made = ops.create_token(team, by, user=user, project="alpha", role=role, name=role)
        tokens[role] = made.text
    ops.add_user(team, by, "beta-admin", "password-of-beta-admin")
    ops.grant(team, by, "beta-admin", "beta", "admin")
    _, made = ops.create_token(team, by, user="beta-admin", project="beta", role="admin", name="beta")
    tokens["other_project"] = made.text
    # An expired token (made in the past, as the store allows), a revoked one, one of a disabled user.
    expired = new_token()
    team.create_token(token_id=expired.id, secret_hash=expired.secret_hash, user="alpha-admin", project="alpha",
                      role="admin", name="expired", expires_at=time.time() - 60)
    tokens["expired"] = expired.text
    row, made = ops.create_token(team, by, user="alpha-admin", project="alpha", role="admin", name="revoked")
    ops.revoke_token(team, by, row.id)
    tokens["revoked"] = made.text
    ops.add_user(team, by, "gone", "password-of-gone")
    ops.grant(team, by, "gone", "alpha", "admin")
    _, made = ops.create_token(team, by, user="gone", project="alpha", role="admin", name="gone")
    ops.set_disabled(team, by, "gone", True)
    tokens["disabled_user"] = made.text
    ops.add_user(team, by, "victim", "password-of-victim")
    ops.grant(team, by, "victim", "alpha", "viewer")
    victim, _ = ops.create_token(team, by, user="victim", project="alpha", role="viewer", name="victim")

    config = Config(store_url=store_url, artifacts_url=str(home / "artifacts"), project="alpha")
    data = home / "alpha.csv"
    data.write_text("x,y\n1,2\n")
    with gw.start_run(name="alpha-secret-run", params={"lr": 0.1}, config=config, capture_code=False) as run:
        run.log({"loss": 0.5}, step=0)
        artifact = run.log_artifact(data, name="alpha.csv")
    registry = open_stores(config).registry
    registry.create_version("alpha-model", artifact=ArtifactRow(artifact.digest, artifact.size, False, 1),
                            flavor="file", run_id=run.id)
    registry.set_alias("alpha-model", "production", 1, who="root")
    return tokens, run.id, artifact.digest, victim.id, config
