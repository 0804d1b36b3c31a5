"""Fuzz the JSON API from its own OpenAPI document with schemathesis: a caller's mistake is never a 5xx.

Every operation of ``/api/openapi.json`` is called in-process (ASGI) with generated
valid and invalid paths, query strings and bodies, over a small store with runs,
artifacts and a registered model; writes carry the token, so they reach the handlers.
The suite runs a few hundred cases; for a long run by hand::

    GROUNDWORK_FUZZ_CASES=10000 .venv/bin/pytest -n 2 tests/security/test_api_fuzz.py

(the number is spread over the operations). Hypothesis keeps no example database here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra: pip install -e '.[dev]'")
from hypothesis import (  # noqa: E402
    HealthCheck,
    given,
    settings,
    strategies as st,  # noqa: E402
)

from groundwork.config import Config  # noqa: E402

#: Cases in all, spread over the operations and both modes (valid and invalid input). The
#: default keeps the suite to seconds, derandomized so that CI does not flake; a count set
#: by hand draws fresh random cases on every run.
CASES = int(os.environ.get("GROUNDWORK_FUZZ_CASES", "1000"))
BY_HAND = "GROUNDWORK_FUZZ_CASES" in os.environ


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation the app documents (building the app opens no store)."""
    from groundwork.server.app import create_app

    document = create_app(Config(store_url="sqlite:///unused/meta.db", artifacts_url="unused"), ui=False).openapi()
    return sorted((method.upper(), path) for path, methods in document["paths"].items() for method in methods)


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import groundwork as gw
    from groundwork.server.app import create_app

    home = tmp_path_factory.mktemp("fuzz")
    config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=str(home / "artifacts"))
    (home / "data.csv").write_text("a,b\n1,2\n")
    with gw.start_run(name="fuzz", params={"lr": 0.1}, config=config, capture_code=False) as run:
        run.log({"loss": 0.5}, step=0)
        run.log_input(home / "data.csv")
        artifact = run.log_artifact(home / "data.csv", name="copy.csv")
    try:
        from _ui_store import _register

        _register(config, Path(home) / "model")
    except ImportError:
        pass
    # schemathesis's ASGI client addresses the app as "testserver".
    app = create_app(config, hosts=["testserver"])
    app.state.known = {"runs": run.id, "pipelines": run.id, "artifacts": artifact.digest}
    return app


#: Integers past every store's limits (int32, int64, float precision), which generated
#: JSON rarely reaches on its own: a body or query integer is swapped for one of these.
EXTREME_INTS = (10**23, 2**63, -(2**63) - 1, 2**63 - 1, 2**53 + 1, 2**31)


def _with_extremes(case: Any) -> Any:
    """``case`` with its integer body fields and query values replaced by extreme ones."""
    body = case.body if isinstance(case.body, dict) else {}
    query = case.query if isinstance(case.query, dict) else {}
    slots = [(place, key) for place in (body, query) for key, value in place.items()
             if isinstance(value, int) and not isinstance(value, bool)]

    def put(values: list[int]) -> Any:
        for (place, key), value in zip(slots, values, strict=True):
            place[key] = value
        return case

    return st.lists(st.sampled_from(EXTREME_INTS), min_size=len(slots), max_size=len(slots)).map(put)


def _known_path(fuzzed_app: Any, path: str) -> dict[str, str]:
    """Path parameters naming things that exist, so that cases get past the 404 into the handler."""
    known: dict[str, str] = {}
    if "{name}" in path:
        known["name"] = "digits"
    if "{alias}" in path:
        known["alias"] = "production"
    noun = path.split("/")[3]  # /api/v1/<noun>/{ref}...
    if "{ref}" in path and noun in fuzzed_app.state.known:
        known["ref"] = fuzzed_app.state.known[noun]
    return known


@pytest.fixture(scope="module")
def fuzz_schema(fuzzed_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/api/openapi.json", fuzzed_app)


def test_the_api_has_operations_to_fuzz() -> None:
    assert ("POST", "/api/v1/models/{name}/aliases/{alias}") in OPERATIONS and len(OPERATIONS) >= 15


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_gets_a_5xx(fuzz_schema: Any, fuzzed_app: Any, method: str, path: str) -> None:
    operation = fuzz_schema[path][method]
    token = {"X-Groundwork-Token": fuzzed_app.state.guard.token}
    # Valid and invalid input both, on free and on existing path parameters, and with
    # extreme integers; an operation whose every parameter is a free string has no invalid
    # input, and Hypothesis then draws only from the valid side.
    known = _known_path(fuzzed_app, path)
    modes = list(schemathesis.GenerationMode)
    free = [operation.as_strategy(generation_mode=mode) for mode in modes]
    existing = [operation.as_strategy(generation_mode=mode, path_parameters=known) for mode in modes] if known else []
    cases = st.one_of(*free, *existing, *(s.flatmap(_with_extremes) for s in existing or free))

    @settings(max_examples=max(1, CASES // len(OPERATIONS)), deadline=None, database=None,
              derandomize=not BY_HAND, suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def call(case: Any) -> None:
        response = case.call(headers=token)
        described = (f"{case.method} {case.formatted_path} query={case.query!r} body={getattr(case, 'body', None)!r} "
                     f"answered {response.status_code}: {response.text[:500]}")
        assert response.status_code < 500, described
        assert "requests for the host" not in response.text, described  # the fuzz reached the handlers

    call()
