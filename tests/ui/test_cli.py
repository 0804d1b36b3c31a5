"""``groundwork ui`` as a command: help with an example, one clear line for a taken port or a bad store.

A viewer never creates a store: a missing one is refused, and nothing is written where it was looked for.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from groundwork.cli import main
from groundwork.storage.metadata import open_metadata_store


def _store(folder: Path) -> str:
    """The URL of a store that exists (``groundwork ui`` refuses to make one)."""
    url = f"sqlite:///{folder}/meta.db"
    open_metadata_store(url)
    return url


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example:" in out and "groundwork ui --port 5000" in out
    assert "--host" in out and "--store" in out and "--artifacts" in out


def test_a_port_in_use_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["ui", "--port", str(port), "--store", _store(tmp_path), "--artifacts", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err
    assert "Traceback" not in err


def test_a_bad_store_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ui", "--port", "0", "--store", "mysql://nowhere/db"])
    err = capsys.readouterr().err
    assert code == 1 and "Error:" in err and "mysql" in err and "Traceback" not in err


def _ui_refuses(store: str, tmp_path: Path) -> str:
    """stderr of ``groundwork ui --store STORE``, which must exit 1 at once instead of serving."""
    command = [sys.executable, "-m", "groundwork", "ui", "--port", "0", "--store", store, "--artifacts", str(tmp_path / "a")]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"groundwork ui served {store}, which does not exist, instead of refusing it")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: no metadata store at") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_a_missing_store_is_refused_and_not_created(tmp_path: Path) -> None:
    _ui_refuses(f"sqlite:///{tmp_path}/nonexistent/dir/meta.db", tmp_path)
    assert not (tmp_path / "nonexistent").exists()
    _ui_refuses(f"sqlite:///{tmp_path}/meta.db", tmp_path)  # the folder exists, the store does not
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_serves_on_a_free_port_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "groundwork", "ui", "--port", "0", "--store", _store(tmp_path),
         "--artifacts", str(tmp_path / "artifacts")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert "groundwork UI at http://127.0.0.1:" in line, line
        url = line.split("at ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "/api/v1/runs", timeout=30) as response:
            assert response.status == 200
        with urllib.request.urlopen(url + "/", timeout=30) as response:
            page = response.read().decode()
        assert "/static/js/app.js" in page
    finally:
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        code = proc.wait(30)
    rest = proc.stdout.read()
    assert code == 0
    # The write token, for scripts, is the one the page carries.
    (token,) = [ln.split("X-Groundwork-Token: ", 1)[1].strip() for ln in rest.splitlines() if "X-Groundwork-Token: " in ln]
    assert len(token) >= 32 and f'<meta name="groundwork-token" content="{token}">' in page
