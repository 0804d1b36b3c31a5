"""``groundwork run`` end to end, as a user types it (a real subprocess each time)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import groundwork as gw
from groundwork.config import Config


def gw_cli(*args: str, config: Config, cwd: Path | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **config.child_environ()}
    return subprocess.run(
        [sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300, **kwargs
    )


def test_records_command_output_params_metrics_inputs_outputs(workspace: Config, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, sys
            print("lr is", os.environ["GROUNDWORK_PARAM_LR"])
            for step in range(5):
                print(json.dumps({"step": step, "loss": 1.0 / (step + 1)}))
            print(json.dumps({"note": "text, not a metric"}))
            print("warning!", file=sys.stderr)
            open("model.bin", "wb").write(b"weights")
            sys.exit(3)
            """
        )
    )
    result = gw_cli(
        "run", "--name", "job", "--param", "lr=0.01", "--input", str(data), "--output", "model.bin",
        "--", sys.executable, str(script), config=workspace, cwd=tmp_path,
    )
    assert result.returncode == 3, result.stderr
    assert "lr is 0.01" in result.stdout  # streamed through
    assert "warning!" in result.stderr
    r = gw.get_run("job", config=workspace)
    assert r.status == "failed" and r.exit_code == 3 and r.error == "exited with code 3"
    assert r.params == {"lr": "0.01"}
    assert [(p.step, p.value) for p in r.history("loss")] == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert "note" not in r.metrics
    assert "lr is 0.01" in r.logs("stdout") and "warning!" in r.logs("stderr")
    assert [(a.name, a.kind) for a in r.inputs] == [("data.csv", "dataset")]  # relative to the cwd
    assert [a.name for a in r.outputs] == ["model.bin"]
    assert r.command == [sys.executable, str(script)]
    assert r.duration is not None and r.duration > 0


def test_sdk_inside_the_command_logs_into_the_same_run(workspace: Config, tmp_path: Path) -> None:
    script = tmp_path / "sdk.py"
    script.write_text("import groundwork as gw\ngw.log({'acc': 0.93}, step=1)\ngw.log_params({'inner': 'yes'})\n")
    result = gw_cli("run", "--no-stdout-metrics", "--", sys.executable, str(script), config=workspace)
    assert result.returncode == 0, result.stderr
    (r,) = gw.runs(config=workspace)
    assert r.status == "finished" and r.metrics == {"acc": 0.93} and r.params == {"inner": "yes"}


def test_ctrl_c_stops_the_child_and_marks_failed(workspace: Config, tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    env = {**os.environ, **workspace.child_environ()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "groundwork", "run", "--", sys.executable, str(script)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        # A terminal gives its foreground job the default SIGINT; a shell's background job
        # (`make test &`) inherits SIGINT ignored, which would make this Ctrl-C a no-op.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C: the whole group
    assert proc.wait(timeout=60) == 130
    (r,) = gw.runs(config=workspace)
    assert r.status == "failed" and r.error == "interrupted (Ctrl-C)"


def test_exit_code_passes_through_and_missing_command_is_clear(workspace: Config) -> None:
    ok = gw_cli("run", "--", sys.executable, "-c", "pass", config=workspace)
    assert ok.returncode == 0
    missing = gw_cli("run", "--", "no-such-program-xyz", config=workspace)
    assert missing.returncode == 127
    assert "Error: cannot run 'no-such-program-xyz'" in missing.stderr
    assert "Traceback" not in missing.stderr
    statuses = sorted(r.status for r in gw.runs(config=workspace))
    assert statuses == ["failed", "finished"]


def test_started_run_is_visible_while_running(workspace: Config, tmp_path: Path) -> None:
    script = tmp_path / "wait.py"
    script.write_text("import time, json\nprint(json.dumps({'x': 1}), flush=True)\ntime.sleep(3)\n")
    env = {**os.environ, **workspace.child_environ()}
    proc = subprocess.Popen([sys.executable, "-m", "groundwork", "run", "--", sys.executable, str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    proc.stdout.readline()
    deadline = time.monotonic() + 60
    while not gw.runs(config=workspace):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert gw.runs(config=workspace)[0].status == "running"
    assert proc.wait(timeout=120) == 0


def _marking_command(marker: Path) -> list[str]:
    return [sys.executable, "-c", f"open({str(marker)!r}, 'w').close(); open('out.txt', 'w').write('x')"]


@pytest.mark.parametrize("store", ["folder under a file", "unknown URL option"])
def test_an_unusable_artifact_store_stops_the_run_before_the_command(
    workspace: Config, tmp_path: Path, store: str
) -> None:
    """Issue #16: the command ran for nothing, then the run was recorded finished with no outputs."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    url = str(blocker / "artifacts") if store == "folder under a file" else "s3://bucket/prefix?no_such_option=1"
    marker = tmp_path / "ran"
    result = gw_cli("run", "--artifacts", url, "--output", "out.txt", "--", *_marking_command(marker),
                    config=workspace, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("Error:") == 1 and "Traceback" not in result.stderr, result.stderr
    assert not marker.exists()  # checked before the command started
    assert gw.runs(config=workspace) == []  # and before anything was recorded


@pytest.mark.s3
def test_a_missing_bucket_stops_the_run_before_the_command(workspace: Config, tmp_path: Path, s3_endpoint: str) -> None:
    marker = tmp_path / "ran"
    result = gw_cli("run", "--artifacts", f"s3://no-such-bucket-gw/artifacts?endpoint_url={s3_endpoint}",
                    "--output", "out.txt", "--", *_marking_command(marker), config=workspace, cwd=tmp_path)
    assert result.returncode == 1
    assert "Error:" in result.stderr and "no-such-bucket-gw" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_a_run_whose_outputs_cannot_be_stored_ends_failed_with_the_reason(workspace: Config, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    script = tmp_path / "break_store.py"
    script.write_text(textwrap.dedent(f"""
        import shutil
        shutil.rmtree({str(artifacts)!r})
        open({str(artifacts)!r}, "w").write("the store is gone")  # a file where the folder was
        open("out.txt", "w").write("result")
    """))
    result = gw_cli("run", "--artifacts", str(artifacts), "--output", "out.txt", "--", sys.executable, str(script),
                    config=workspace, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("Error:") == 1 and "Traceback" not in result.stderr, result.stderr
    (run,) = gw.runs(config=workspace)
    assert run.status == "failed" and run.exit_code == 0
    assert run.error is not None and "outputs not stored" in run.error and str(artifacts) in run.error
    assert run.outputs == []
