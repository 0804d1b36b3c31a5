"""Fuzz a real team server from its own OpenAPI document with schemathesis: never a 5xx.

A real ``groundwork server`` process (2 workers, 127.0.0.1) on PostgreSQL (a fresh database of
the session's server: the team server's database, where text may hold no NUL and integer
columns have bounds SQLite does not check) and an artifact folder holds a
run with a metric and an artifact, the model ``digits`` at ``production``, a server admin
and a ``victim`` user. Every operation of ``/api/openapi.json`` (the UI's API, accounts,
tokens, the audit log, artifact bytes and the store API) is called over HTTP with generated
valid and invalid input and the admin's token, so cases get past authentication into the
handlers; a share of cases names things that exist (path parameters, and in store API
bodies the run and the model) to get past the 404s. Then the refusals: without a token
every operation is a JSON 401, and another project's admin gets a JSON 403 or 404 for the
things of this one, all in the ``error_body`` shape.

The suite runs a few hundred cases, derandomized; for a long run by hand (fresh cases)::

    GROUNDWORK_FUZZ_CASES=20000 .venv/bin/pytest -n 2 tests/security/test_team_api_fuzz.py
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra: pip install -e '.[dev]'")
import requests  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from test_api_fuzz import _with_extremes  # noqa: E402

from _servers import GroundworkServer  # noqa: E402
from groundwork.config import Config  # noqa: E402

pytestmark = pytest.mark.postgres

#: Cases in all, spread over the operations (a few per operation keeps this file near a minute
#: on two cores); a count set by hand draws fresh random cases on every run.
CASES = int(os.environ.get("GROUNDWORK_FUZZ_CASES", "1000"))
BY_HAND = "GROUNDWORK_FUZZ_CASES" in os.environ
STORE = "/api/v1/store/"
ERROR_KEYS = {"ok", "status", "error", "message", "hint"}
#: Operations a token may not call (tokens do not mint tokens): the fuzz calls them as the admin's UI login.
SESSION_ONLY = {("POST", "/api/v1/tokens")}
#: Bodies that get past validation, for the refusals: another project's admin must meet the 403/404.
VALID_BODIES = {("POST", "/api/v1/models/{name}/aliases/{alias}"): {"version": 1},
                ("PUT", "/api/v1/projects/{project}/members/{user}"): {"role": "viewer"}}
#: Artifact bytes are content-addressed and shared by the projects of a server: any editor may send
#: the bytes of a digest (the server checks them), so another project's PUT is not refused.
SHARED_WRITES = {("PUT", "/api/v1/blobs/{digest}"), ("PUT", "/api/v1/manifests/{digest}")}


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation the team app documents (building it opens no store)."""
    from groundwork.server.app import create_app

    config = Config(store_url="sqlite:///unused/meta.db", artifacts_url="unused")
    document = create_app(config, ui=False, team=True).openapi()
    return sorted((method.upper(), path) for path, methods in document["paths"].items() for method in methods)


OPERATIONS = _operations()


@dataclass
class Fuzzed:
    """The server, its schema, a session, and the things in it the cases may name."""

    server: GroundworkServer
    schema: Any
    session: requests.Session
    token: str  # a server admin's, admin of project "default"
    ui_login: tuple[dict[str, str], dict[str, str]]  # the same admin's web UI session: cookies, CSRF header
    foreign: str  # the admin of project "other"
    run_id: str
    digest: str
    victim_token_id: str

    def path_values(self, path: str) -> dict[str, str]:
        """Path parameters naming things that exist (in project "default")."""
        values = {"ref": self.digest if "/artifacts/" in path else self.run_id, "digest": self.digest,
                  "name": "victim" if "/users/" in path else "digits", "alias": "production", "target": "digits",
                  "project": "default", "user": "victim", "token_id": self.victim_token_id}
        return {name: value for name, value in values.items() if "{" + name + "}" in path}

    def body_values(self) -> dict[str, str]:
        """Store API body fields naming things that exist."""
        return {"run_id": self.run_id, "parent_id": self.run_id, "name": "digits", "model": "digits",
                "digest": self.digest}

    def call(self, case: Any) -> requests.Response:
        """``case`` sent as the admin: with the token, or (for :data:`SESSION_ONLY`) the UI login."""
        cookies, headers = self.ui_login if (case.method, case.path) in SESSION_ONLY else ({}, self.bearer)
        response: requests.Response = case.call(base_url=self.server.url, session=self.session, headers=headers,
                                                cookies=cookies)
        return response

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str) -> Iterator[Fuzzed]:
    import psycopg

    import groundwork as gw
    from groundwork.server import team as ops
    from groundwork.storage.records import ArtifactRow
    from groundwork.storage.stores import open_stores, open_team_store

    home = Path(tmp_path_factory.mktemp("team-fuzz"))
    admin_url = postgres_server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"gw_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    store_url = postgres_server_url.rsplit("/", 1)[0] + f"/{name}"
    config = Config(store_url=store_url, artifacts_url=str(home / "artifacts"))
    team = open_team_store(config.store_url)
    by = ops.operator()
    ops.add_user(team, by, "root", "password-of-root", server_admin=True)
    ops.add_user(team, by, "victim", "password-of-victim")
    ops.grant(team, by, "victim", "default", "viewer")
    victim, _ = ops.create_token(team, by, user="victim", project="default", role="viewer", name="victim")
    token = ops.create_token(team, by, user="root", project="default", role="admin", name="fuzz")[1].text
    ops.add_user(team, by, "stranger", None)
    ops.add_project(team, by, "other")
    ops.grant(team, by, "stranger", "other", "admin")
    foreign = ops.create_token(team, by, user="stranger", project="other", role="admin", name="other")[1].text
    (home / "data.csv").write_text("a,b\n1,2\n")
    with gw.start_run(name="fuzz", params={"lr": 0.1}, config=config, capture_code=False) as run:
        run.log({"loss": 0.5}, step=0)
        artifact = run.log_artifact(home / "data.csv", name="copy.csv")
    registry = open_stores(config).registry
    version = registry.create_version("digits", artifact=ArtifactRow(artifact.digest, artifact.size, False, 1),
                                      flavor="sklearn", run_id=run.id)
    registry.set_alias("digits", "production", version, who="root")
    with GroundworkServer(config.store_url, config.artifacts_url, workers=2, log_dir=home) as server, \
            requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
        login = requests.post(f"{server.url}/api/v1/auth/login", json={"name": "root", "password": "password-of-root"},
                              timeout=30)  # not through the session: its jar would send the cookie everywhere
        login.raise_for_status()
        ui_login = {"gw_session": login.cookies["gw_session"]}, {"X-CSRF-Token": login.json()["csrf"]}
        yield Fuzzed(server, schema, session, token, ui_login, foreign, run.id, artifact.digest, victim.id)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_known_body(known: dict[str, str]) -> Any:
    """A store API case whose body names the run and the model where it has such fields."""

    def swap(case: Any) -> Any:
        if isinstance(case.body, dict):
            for key, value in known.items():
                if key in case.body:
                    case.body[key] = value
            if isinstance(case.body.get("run_ids"), list):
                case.body["run_ids"] = [known["run_id"], *case.body["run_ids"]]
        return case

    return swap


def _cases(fuzzed: Fuzzed, method: str, path: str) -> Any:
    """Valid and invalid input, on free and on existing path parameters, with extreme integers, and
    (store API) with bodies naming what exists. An operation whose every parameter is a free string
    has no invalid input: Hypothesis then draws only from the valid side."""
    operation = fuzzed.schema[path][method]
    known = fuzzed.path_values(path)
    modes = list(schemathesis.GenerationMode)
    free = [operation.as_strategy(generation_mode=mode) for mode in modes]
    existing = [operation.as_strategy(generation_mode=mode, path_parameters=known) for mode in modes] if known else []
    named = [s.map(_with_known_body(fuzzed.body_values())) for s in free] if path.startswith(STORE) else []
    return st.one_of(*free, *existing, *named, *(s.flatmap(_with_extremes) for s in existing or free))


def _check_error_body(response: requests.Response, described: str) -> None:
    body = response.json()
    assert set(body) >= ERROR_KEYS and body["ok"] is False and body["status"] == response.status_code, described
    assert isinstance(body["message"], str) and body["message"] and "gw_" not in response.text, described


def _described(case: Any, response: requests.Response) -> str:
    return (f"{case.method} {case.formatted_path} query={case.query!r} body={getattr(case, 'body', None)!r} "
            f"answered {response.status_code}: {response.text[:500]}")


def test_the_team_api_has_operations_to_fuzz() -> None:
    assert {("POST", "/api/v1/auth/login"), ("GET", "/api/v1/audit"), ("POST", "/api/v1/users"),
            ("POST", f"{STORE}metadata/write_batch")} <= set(OPERATIONS)
    assert len(OPERATIONS) >= 100


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_gets_a_5xx(fuzzed: Fuzzed, method: str, path: str) -> None:
    @settings(max_examples=max(2, CASES // len(OPERATIONS)), deadline=None, database=None,
              derandomize=not BY_HAND, suppress_health_check=list(HealthCheck))
    @given(case=_cases(fuzzed, method, path))
    def call(case: Any) -> None:
        response = fuzzed.call(case)
        described = _described(case, response)
        assert response.status_code < 500, described
        if response.status_code >= 400 and method != "HEAD":
            _check_error_body(response, described)
        if path != "/api/v1/auth/login":
            assert response.status_code not in (401, 403), described  # the fuzz got past authentication

    call()


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


def test_refusals_are_json_401_and_403_in_the_error_body_shape(fuzzed: Fuzzed) -> None:
    """Without a token, every operation is a 401; another project's admin gets a 403 or a 404 for this
    project's things (its own project's store API answers it, about its own project)."""
    wrong: list[str] = []
    for method, path in OPERATIONS:
        if path == "/api/v1/auth/login":
            continue
        values = fuzzed.path_values(path)
        url = fuzzed.server.url + _fill(path, values)
        body = VALID_BODIES.get((method, path), {}) if method in ("POST", "PUT", "PATCH") else None
        for token, expected in ((None, {401}), (fuzzed.foreign, {403, 404})):
            if token is not None and (not values or (method, path) in SHARED_WRITES):
                continue
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = fuzzed.session.request(method, url, json=body, headers=headers)
            described = f"{method} {path} {'as another project' if token else 'without a token'}: " \
                        f"{response.status_code} {response.text[:200]}"
            if response.status_code not in expected:
                wrong.append(described)
            elif method != "HEAD":
                try:
                    _check_error_body(response, described)
                except (AssertionError, ValueError):
                    wrong.append("not the error_body shape: " + described)
    assert wrong == [], "\n".join(wrong)
