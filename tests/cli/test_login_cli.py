"""``groundwork login URL`` against a real ``groundwork server``: the token is checked, then kept 0600."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _servers import GroundworkServer, team_token

pytestmark = pytest.mark.slow


def login(*args: str, config_home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")},
           "XDG_CONFIG_HOME": str(config_home), "GROUNDWORK_WIDTH": "200"}
    return subprocess.run([sys.executable, "-m", "groundwork", "login", *args], capture_output=True, text=True,
                          env=env, input=stdin, timeout=120)


def saved(config_home: Path) -> Any:
    return json.loads((config_home / "groundwork" / "credentials.json").read_text())


def test_login_checks_the_token_and_saves_it_for_that_server_only(team_server: GroundworkServer, tmp_path: Path) -> None:
    token = team_token(team_server.store_url, "login-test", role="editor", user="lena")
    home = tmp_path / "config"
    done = login(team_server.url + "/", "--token", token, "--json", config_home=home)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["user"], answer["project"], answer["role"], answer["server"]) == (
        "lena", "login-test", "editor", team_server.url)
    path = home / "groundwork" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert saved(home) == {"servers": {team_server.url: {"token": token, "project": "login-test", "user": "lena"}}}
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temporary file left behind

    # Another entry in the file is kept; a token piped on stdin works too.
    data = saved(home)
    data["servers"]["https://other.example"] = {"token": "gw_x", "project": "p", "user": "u"}
    path.write_text(json.dumps(data))
    second = team_token(team_server.store_url, "login-test", role="viewer", user="lena")
    assert login(team_server.url, config_home=home, stdin=second + "\n").returncode == 0
    assert saved(home)["servers"][team_server.url]["token"] == second
    assert saved(home)["servers"]["https://other.example"]["token"] == "gw_x"


def test_a_refused_token_changes_nothing_and_is_not_repeated(team_server: GroundworkServer, tmp_path: Path) -> None:
    home = tmp_path / "config"
    wrong = "gw_0123456789abcdef_" + "B" * 43
    refused = login(team_server.url, "--token", wrong, config_home=home)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    (line,) = [line for line in refused.stderr.splitlines() if line.strip()]
    assert line.startswith("Error:") and "refused this token" in line and wrong not in refused.stderr + refused.stdout
    assert not (home / "groundwork" / "credentials.json").exists()
    unreachable = login("http://127.0.0.1:9", "--token", wrong, config_home=home)
    assert unreachable.returncode == 1 and "cannot reach the groundwork server" in unreachable.stderr
    clear_text = login("http://192.0.2.1:8080", "--token", wrong, config_home=home)
    assert clear_text.returncode == 1 and "refusing to send a token in clear text" in clear_text.stderr
