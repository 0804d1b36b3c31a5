"""A client that holds only the server's URL and a token runs the digits pipeline, registers, promotes and serves.

The team server is a real ``groundwork server`` process (2 workers) on PostgreSQL with its
artifacts in S3 (moto). Every client command runs in an environment holding nothing but
``GROUNDWORK_SERVER`` and ``GROUNDWORK_TOKEN`` (and an empty HOME, a PATH without the
venv), in an empty folder: no store URL, no database or S3 credential. Artifact bytes reach
the client through the server or on URLs it presigns.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from _servers import HOST, GroundworkServer, _stop, _wait_until, free_port, team_token
from groundwork.config import Config

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.s3]

PIPELINE = "groundwork.examples.digits.pipeline:digits_pipeline"

# Runs the pipeline again (every step from the server's cache) and registers its MLP as ``digits``.
REGISTER = """
import json
import groundwork as gw
from groundwork.examples.digits.pipeline import FEATURES, build_mlp, digits_pipeline

result = digits_pipeline(epochs=2)
state = result.output("train")
_train, test, _scaler = result.output("standardize")
mlp = build_mlp(int(state["0.weight"].shape[0]))
mlp.load_state_dict(state)
mlp.eval()
with gw.start_run(name="register-digits", capture_code=False) as run:
    version = run.log_model(mlp, "digits", example=test[FEATURES].to_numpy()[:5])
rows = test[FEATURES].to_numpy()[:32]
json.dump({"version": version.version, "run": run.id, "fully_cached": result.fully_cached,
           "rows": rows.tolist(), "labels": test["label"].to_numpy()[:32].tolist()}, open("registered.json", "w"))
"""

# The promoted version loaded through the server, asked about the same rows.
LOAD = """
import json
import groundwork as gw

rows = json.load(open("registered.json"))["rows"]
model = gw.load_model("digits@production")
json.dump({"outputs": model.predict(__import__("numpy").asarray(rows, dtype="float32")).tolist()},
          open("loaded.json", "w"))
"""


def _client_env(server: GroundworkServer, token: str, home: Path) -> dict[str, str]:
    return {"GROUNDWORK_SERVER": server.url, "GROUNDWORK_TOKEN": token, "HOME": str(home), "PATH": "/usr/bin:/bin"}


def _groundwork(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "groundwork", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"groundwork {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _python(script: str, name: str, env: dict[str, str], cwd: Path) -> None:
    (cwd / name).write_text(script)
    done = subprocess.run([sys.executable, name], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def test_a_client_with_only_a_url_and_a_token_runs_registers_promotes_and_serves_digits(
    postgres_url: str, s3_url: str, tmp_path: Path
) -> None:
    token = team_token(postgres_url, "vision", role="maintainer", user="ci")
    client = tmp_path / "client"
    home = tmp_path / "home"
    client.mkdir()
    home.mkdir()
    with GroundworkServer(postgres_url, s3_url, workers=2, log_dir=tmp_path) as server:
        env = _client_env(server, token, home)

        first = _groundwork(["pipeline", "run", PIPELINE, "--param", "epochs=2", "--json"], env, client)
        assert {s["name"]: s["status"] for s in json.loads(first.stdout)["steps"]} == dict.fromkeys(
            ("ingest", "split", "standardize", "train", "train_baseline", "evaluate"), "finished")

        _python(REGISTER, "register.py", env, client)
        registered = json.loads((client / "registered.json").read_text())
        assert registered["version"] == 1
        assert registered["fully_cached"]  # the first run's outputs, found and loaded through the server

        _groundwork(["models", "promote", "digits", "1", "--alias", "production", "--reason", "CI: e2e"], env, client)
        history = json.loads(_groundwork(["models", "history", "digits", "--json"], env, client).stdout)
        assert [(m["alias"], m["to_version"], m["who"]) for m in history][:1] == [("production", 1, "ci")]

        port = free_port()
        log = tmp_path / "serve.log"
        with open(log, "wb") as out:
            serve = subprocess.Popen([sys.executable, "-m", "groundwork", "serve", "digits@production", "--host", HOST,
                                      "--port", str(port)], env=env, cwd=client, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://{HOST}:{port}"

            def ready() -> bool:
                try:
                    return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            _wait_until(ready, serve, log, "groundwork serve")
            answer = httpx.post(f"{url}/v1/models/digits/predict", json={"inputs": registered["rows"]}, timeout=60)
            assert answer.status_code == 200, answer.text
            served = answer.json()
        finally:
            _stop(serve, (signal.SIGTERM,))
        assert served["model_version"] == 1

        _python(LOAD, "load.py", env, client)
        loaded = np.asarray(json.loads((client / "loaded.json").read_text())["outputs"])
        outputs = np.asarray(served["outputs"])
        np.testing.assert_allclose(outputs, loaded, rtol=1e-5, atol=1e-5)
        assert (outputs.argmax(1) == np.asarray(registered["labels"])).mean() > 0.8  # the pipeline's trained MLP

    # The server holds it all, in the token's project; the client's folder holds only what the test put there.
    from groundwork.storage.stores import open_stores, open_team_store

    stores = open_stores(Config(store_url=postgres_url, artifacts_url=s3_url, project="vision"))
    version = stores.registry.get_version("digits", 1)
    assert version is not None and version.run_id == registered["run"]
    promotions = open_team_store(postgres_url).audit_entries(project="vision", action="model.alias")
    assert [(e.actor, e.target) for e in promotions] == [("ci", "digits@production")]
    assert sorted(p.name for p in client.iterdir()) == ["load.py", "loaded.json", "register.py", "registered.json"]
    assert not any(p.name == ".groundwork" for p in home.rglob("*"))
