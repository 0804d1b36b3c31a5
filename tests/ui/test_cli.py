"""``groundwork ui`` as a command: help with an example, one clear line for a taken port or a bad store."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from groundwork.cli import main


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
        code = main(["ui", "--port", str(port), "--store", f"sqlite:///{tmp_path}/meta.db", "--artifacts", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err
    assert "Traceback" not in err


def test_a_bad_store_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ui", "--port", "0", "--store", "mysql://nowhere/db"])
    err = capsys.readouterr().err
    assert code == 1 and "Error:" in err and "mysql" in err and "Traceback" not in err


def test_serves_on_a_free_port_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "groundwork", "ui", "--port", "0", "--store", f"sqlite:///{tmp_path}/meta.db",
         "--artifacts", str(tmp_path / "artifacts")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "groundwork UI at http://127.0.0.1:" in line, line
        url = line.split("at ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "/api/v1/runs", timeout=30) as response:
            assert response.status == 200
        with urllib.request.urlopen(url + "/", timeout=30) as response:
            assert b"/static/js/app.js" in response.read()
    finally:
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        assert proc.wait(30) == 0
