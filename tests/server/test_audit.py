"""The audit log through a real team server: what a change records, who may read it, ``groundwork audit``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from _team_world import World

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _entries(world: World, who: str, query: str = "") -> list[dict[str, object]]:
    answer = world.request("GET", "/api/v1/audit" + query, token=world.tokens[who])
    assert answer.status == 200, answer.text
    entries: list[dict[str, object]] = answer.json()["entries"]
    return entries


def test_a_promotion_records_who_what_when_and_from_where(team_world: World) -> None:
    before = time.time()
    token = team_world.tokens["maintainer"]
    moved = team_world.request("POST", "/api/v1/models/alpha-model/aliases/audited", token=token,
                               body={"version": 1, "reason": "checks passed"}, headers={"X-Forwarded-For": "10.20.30.40"})
    assert moved.status == 200, moved.text
    (entry,) = [e for e in _entries(team_world, "admin", "?action=model.alias") if e["target"] == "alpha-model@audited"]
    assert entry["actor"] == "alpha-maintainer" and entry["project"] == "alpha"
    assert entry["token_id"] == token.split("_")[1] and entry["address"] == "10.20.30.40"
    assert entry["action"] == "model.alias"  # the name the store API gives a client's promote
    assert entry["details"] == {"version": 1, "previous": None, "reason": "checks passed"}
    assert before - 1 <= float(entry["at"]) <= time.time() + 1  # type: ignore[arg-type]
    history = team_world.request("GET", "/api/v1/models/alpha-model", token=token).json()["history"]
    assert any(m["alias"] == "audited" and m["who"] == "alpha-maintainer" for m in history)
    removed = team_world.request("DELETE", "/api/v1/models/alpha-model/aliases/audited", token=token,
                                 body={"reason": "done"})
    assert removed.status == 200, removed.text
    (gone,) = [e for e in _entries(team_world, "admin", "?action=model.alias.remove")
               if e["target"] == "alpha-model@audited"]
    assert gone["details"] == {"previous": 1, "reason": "done"}


def test_a_project_admin_reads_their_project_and_a_server_admin_every_one(team_world: World) -> None:
    team_world.request("POST", "/api/v1/models/alpha-model/aliases/scoped", token=team_world.tokens["maintainer"],
                       body={"version": 1})
    alpha = _entries(team_world, "admin")
    assert alpha and {e["project"] for e in alpha} == {"alpha"}  # no beta, no server-wide user changes
    refused = team_world.request("GET", "/api/v1/audit?project=beta", token=team_world.tokens["admin"])
    assert refused.status == 403
    beta = _entries(team_world, "server_admin", "?project=beta")
    assert beta and {e["project"] for e in beta} == {"beta"}
    everything = _entries(team_world, "server_admin", "?action=user.add&limit=1000")
    assert {"root", "alpha-viewer", "victim"} <= {e["target"] for e in everything}
    assert _entries(team_world, "server_admin", "?since=2999-01-01") == []
    page = team_world.request("GET", "/api/v1/audit?limit=2", token=team_world.tokens["server_admin"]).json()
    older = _entries(team_world, "server_admin", f"?limit=2&before={page['next']}")
    assert page["more"] and {e["id"] for e in older}.isdisjoint({e["id"] for e in page["entries"]})
    assert team_world.request("GET", "/api/v1/audit?since=soon", token=team_world.tokens["admin"]).status == 400


def test_groundwork_audit_reads_through_the_server_with_an_admin_token(team_world: World) -> None:
    team_world.request("POST", "/api/v1/models/alpha-model/aliases/from-cli", token=team_world.tokens["maintainer"],
                       body={"version": 1})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")},
           "GROUNDWORK_SERVER": team_world.url, "GROUNDWORK_WIDTH": "200"}

    def audit(token: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "groundwork", "audit", *args], capture_output=True, text=True,
                              env={**env, "GROUNDWORK_TOKEN": token}, timeout=120)

    found = audit(team_world.tokens["admin"], "--action", "model.alias", "--since", "1h", "--json")
    assert found.returncode == 0, found.stderr
    assert "alpha-model@from-cli" in {e["target"] for e in json.loads(found.stdout)}
    table = audit(team_world.tokens["admin"], "--since", "1h")
    assert table.returncode == 0 and "model.alias" in table.stdout and "alpha-maintainer" in table.stdout
    refused = audit(team_world.tokens["editor"])
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and "needs the admin role" in refused.stderr
    direct = subprocess.run([sys.executable, "-m", "groundwork", "audit", "--store", team_world.config.store_url,
                             "--action", "model.alias", "--json"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert "alpha-model@from-cli" in {e["target"] for e in json.loads(direct.stdout)}
