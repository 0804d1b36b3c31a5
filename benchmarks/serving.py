"""Serving benchmark: ``groundwork serve`` against MLflow, BentoML, Ray Serve and a bare FastAPI app.

Every system serves the same scikit-learn model trained on scikit-learn's digits (a
LogisticRegression, and a 256x256 MLPClassifier), on the same machine, in one
invocation. ``wrk`` (Debian's package) sends the same JSON body again and again over
keep-alive connections for a fixed time at each concurrency, and reports requests/s
and latency percentiles; the server's CPU time per request is read from ``/proc``
(user + system time of the server's whole process tree, before and after the run),
which is the steadier figure on a shared machine.

    .venv/bin/python benchmarks/serving.py            # the whole matrix, 20 s per cell (~40 min)
    .venv/bin/python benchmarks/serving.py --quick    # LogisticRegression, 1 row, c=1 and 64, 5 s
    .venv/bin/python benchmarks/serving.py --systems groundwork,fastapi --models lr --rows 1 --concurrency 64
    .venv/bin/python benchmarks/serving.py --models lr --rows 1 --concurrency 64 --repeat 2   # systems take turns, alternating order

Extra systems (not in the default set): ``groundwork-w2`` (``--workers 2``),
``groundwork-inline`` and ``groundwork-threaded`` (where the model runs, forced),
``groundwork-routed`` (``--route production=100``: every request drawn through a route),
``groundwork-nolog`` (``--log-sample 0``: the prediction log off; ``groundwork`` logs every
request, the default) and
``groundwork-baseline`` (this groundwork command run on the ``src/`` folder given with
``--baseline-src``, e.g. an export of the commit before a change: before and after in one run).

    git archive HEAD~3 src | tar -x -C /tmp/before      # then:
    .venv/bin/python benchmarks/serving.py --quick --concurrency 64 --repeat 3 \
        --systems groundwork,groundwork-baseline,groundwork-routed --baseline-src /tmp/before/src
    .venv/bin/python benchmarks/serving.py --quick --concurrency 64 --repeat 5 \
        --systems groundwork,groundwork-nolog      # the prediction log's cost (issue #14: at most 5%)

Peers live in their own venvs under ``.bench/`` (``benchmarks/_peers.py``); Ray binds
every interface, so the measurements run inside a loopback-only network namespace
(``unshare -n``) when the machine allows one, and Ray Serve is skipped with the reason
when it does not. Results: a table per model and row count, the targets of issue #4,
and every raw number in ``.bench/results/serving.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks" / "peers"))

from benchmarks._peers import MLFLOW_REQUIREMENTS, peer_python, peer_versions  # noqa: E402

BENTOML_REQUIREMENTS = ["bentoml==1.4.39", "scikit-learn==1.9.1"]  # 1.4.40 needs a certifi the index lacks
RAY_REQUIREMENTS = ["ray[serve]==2.60.0", "scikit-learn==1.9.1"]
WORK = REPO / ".bench" / "serving"
PEERS = REPO / "benchmarks" / "peers"
SYSTEMS = ("groundwork", "fastapi", "mlflow", "bentoml", "bentoml-batching", "rayserve")
# Not in the default set: groundwork serve --workers 2, and with --inline / --threaded forced.
EXTRA_SYSTEMS = ("groundwork-w2", "groundwork-inline", "groundwork-threaded", "groundwork-routed", "groundwork-baseline",
                 "groundwork-nolog")
BASELINE_ENV = "GW_BENCH_BASELINE_SRC"
NETNS_ENV = "GW_BENCH_IN_NETNS"
READY_TIMEOUT_S = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(f"[serving] {message}", file=sys.stderr, flush=True)


# --- measuring ---------------------------------------------------------------------------------------------
def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and every process descended from it (from /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    total = 0.0
    for pid in times:
        walk = pid
        while walk and walk != root:
            walk = parents.get(walk, 0)
        if walk == root:
            total += times[pid]
    return total


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class Cell:
    system: str
    model: str
    rows: int
    concurrency: int
    duration_s: float
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    cpu_ms_per_request: float = float("nan")
    errors: int = 0
    note: str = ""


def run_wrk(url: str, lua: Path, concurrency: int, duration: float, timeout_s: int = 10) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", f"--timeout={timeout_s}s", "--latency",
           "-s", str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    result: dict[str, Any] = {"raw": out}
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+)", out):
        result["requests"] = int(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        if m := re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M):
            result[f"p{pct}"] = _ms(m.group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    result["errors"] = errors
    return result


def write_lua(kind: str, rows: int) -> Path:
    from serving_models import inputs

    body = json.dumps({"inputs": inputs(kind, rows)})
    path = WORK / f"body-{kind}-{rows}.lua"
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [=[{body}]=]\n"
    )
    return path


# --- the systems -------------------------------------------------------------------------------------------
@dataclass
class Server:
    system: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    extract: str  # how to read predictions from the JSON answer: key name or "" for a bare list


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")}
    env.update(BENTOML_DO_NOT_TRACK="true", DO_NOT_TRACK="1", RAY_USAGE_STATS_ENABLED="0",
               MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1", **extra)
    return env


def start_system(system: str, kind: str, pythons: dict[str, Path], gw_env: dict[str, str]) -> Server:
    port = free_port()
    log = WORK / f"{system}-{kind}-{port}.log"
    cache = str(WORK / "models")
    url_base = f"http://127.0.0.1:{port}"
    if system.startswith("groundwork"):
        workers = "2" if system == "groundwork-w2" else "1"
        cmd = [str(REPO / ".venv" / "bin" / "groundwork"), "serve", f"bench-{kind}@production",
               "--port", str(port), "--workers", workers]
        if system in ("groundwork-inline", "groundwork-threaded"):
            cmd.append("--" + system.split("-")[1])
        if system == "groundwork-routed":
            cmd = [*cmd[:2], f"bench-{kind}", *cmd[3:], "--route", "production=100"]
        if system == "groundwork-nolog":
            cmd += ["--log-sample", "0"]  # the prediction log off (groundwork logs every request by default)
        extra = {"PYTHONPATH": os.environ[BASELINE_ENV]} if system == "groundwork-baseline" else {}
        env, cwd, url, extract = quiet_env(**gw_env, **extra), REPO, f"{url_base}/v1/models/bench-{kind}/predict", "outputs"
    elif system == "fastapi":
        cmd = [str(REPO / ".venv" / "bin" / "uvicorn"), "serving_fastapi:app", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--log-level", "warning"]
        env, cwd, url, extract = quiet_env(BENCH_MODEL=kind, BENCH_CACHE=cache), PEERS, f"{url_base}/predict", "outputs"
    elif system == "mlflow":
        python = pythons["mlflow"]
        model_dir = WORK / f"mlflow-model-{kind}"
        subprocess.run([str(python), "serving_mlflow.py", kind, str(model_dir), str(WORK / "models-mlflow")],
                       cwd=PEERS, check=True, env=quiet_env(), capture_output=True)
        cmd = [str(python.parent / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port)]
        env, cwd, url, extract = quiet_env(), PEERS, f"{url_base}/invocations", "predictions"
    elif system in ("bentoml", "bentoml-batching"):
        python = pythons["bentoml"]
        service = "serving_bentoml:DigitsBatched" if system == "bentoml-batching" else "serving_bentoml:Digits"
        cmd = [str(python.parent / "bentoml"), "serve", service, "--host", "127.0.0.1", "--port", str(port)]
        env = quiet_env(BENCH_MODEL=kind, BENCH_CACHE=str(WORK / "models-bentoml"))
        cwd, url, extract = PEERS, f"{url_base}/predict", ""
    elif system == "rayserve":
        python = pythons["rayserve"]
        cmd = [str(python), "serving_ray.py", kind, str(port), str(WORK / "models-ray")]
        env, cwd, url, extract = quiet_env(), PEERS, f"{url_base}/", "outputs"
    else:
        raise SystemExit(f"unknown system {system!r}; known: {', '.join(SYSTEMS + EXTRA_SYSTEMS)}")
    # As with an activated venv: a peer's own tools (mlflow runs `uvicorn`) come first on PATH.
    env["PATH"] = f"{Path(cmd[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(system, proc, url, log, extract)


def stop(server: Server) -> None:
    """Stop the server's whole process group (it was started in its own session)."""
    proc = server.proc
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers (Ray's raylet, BentoML's workers)
    proc.wait()


def wait_ready(server: Server, kind: str, expected: list[int]) -> str:
    """Poll with one real prediction until it answers correctly; returns '' or a note about a mismatch."""
    import httpx
    from serving_models import inputs

    body = {"inputs": inputs(kind, 4)}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.system} exited ({server.proc.returncode}); log tail:\n{_tail(server.log)}")
        try:
            response = httpx.post(server.url, json=body, timeout=10)
            if response.status_code == 200:
                answer = response.json()
                got = answer[server.extract] if server.extract else answer
                return "" if [int(v) for v in got] == expected else f"predictions differ: {got} vs {expected}"
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.system} did not answer within {READY_TIMEOUT_S:.0f}s:\n{_tail(server.log)}")
        time.sleep(0.5)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- groundwork's side -------------------------------------------------------------------------------------
def prepare_groundwork(kinds: list[str]) -> dict[str, str]:
    """A fresh store under .bench/serving with bench-<kind> v1 promoted to production."""
    from serving_models import cached, inputs

    import groundwork as gw
    from groundwork.config import Config

    home = WORK / "gw-store"
    shutil.rmtree(home, ignore_errors=True)
    config = Config(store_url=f"sqlite:///{home / 'meta.db'}", artifacts_url=str(home / "artifacts"))
    import numpy as np

    for kind in kinds:
        model = cached(kind, WORK / "models")
        with gw.start_run(name=f"bench-{kind}", config=config, capture_code=False) as run:
            version = run.log_model(model, f"bench-{kind}", example=np.asarray(inputs(kind, 5)))
        gw.promote_model(f"bench-{kind}", version.version, alias="production", config=config)
        say(f"groundwork: bench-{kind} v{version.version} ({version.flavor}, onnx={'yes' if version.onnx_digest else 'no'})")
    return config.child_environ()


# --- the run -----------------------------------------------------------------------------------------------
@dataclass
class Plan:
    systems: list[str]
    models: list[str]
    rows: list[int]
    concurrency: list[int]
    duration: float
    warmup: float
    repeat: int = 1
    results: list[Cell] = field(default_factory=list)
    runs: list[Cell] = field(default_factory=list)  # every measurement, before the median of repeats
    skipped: dict[str, str] = field(default_factory=dict)


def measure(plan: Plan, pythons: dict[str, Path], gw_env: dict[str, str]) -> None:
    from serving_models import cached, inputs

    for kind in plan.models:
        reference = cached(kind, WORK / "models")
        expected = [int(v) for v in reference.predict(inputs(kind, 4))]
        luas = {rows: write_lua(kind, rows) for rows in plan.rows}
        # With --repeat, the systems take turns, every other round in reverse (a, b, c, c, b, a...),
        # so a noisy minute on a shared machine, or going first, hits every system alike; each
        # cell reports the median of its runs.
        for round_ in range(plan.repeat):
            for system in plan.systems if round_ % 2 == 0 else plan.systems[::-1]:
                if system in plan.skipped or f"{system}/{kind}" in plan.skipped:
                    continue
                if plan.repeat > 1:
                    say(f"round {round_ + 1}/{plan.repeat}")
                measure_system(plan, system, kind, luas, expected, pythons, gw_env)
        plan.results = [c for c in plan.results if c.model != kind] + median_cells(
            [c for c in plan.runs if c.model == kind])


def median_cells(runs: list[Cell]) -> list[Cell]:
    """One cell per (system, model, rows, concurrency): the median of each figure over its runs."""
    import statistics

    groups: dict[tuple[str, str, int, int], list[Cell]] = {}
    for cell in runs:
        groups.setdefault((cell.system, cell.model, cell.rows, cell.concurrency), []).append(cell)
    out = []
    for group in groups.values():
        first = group[0]
        out.append(Cell(first.system, first.model, first.rows, first.concurrency, first.duration_s,
                        int(statistics.median(c.requests for c in group)),
                        statistics.median(c.rps for c in group),
                        statistics.median(c.p50_ms for c in group),
                        statistics.median(c.p99_ms for c in group),
                        statistics.median(c.cpu_ms_per_request for c in group),
                        sum(c.errors for c in group),
                        "; ".join(sorted({c.note for c in group if c.note})) +
                        (f"median of {len(group)} runs" if len(group) > 1 else "")))
    return out


def measure_system(plan: Plan, system: str, kind: str, luas: dict[int, Path], expected: list[int],
                   pythons: dict[str, Path], gw_env: dict[str, str]) -> None:
    say(f"{system} / {kind}: starting")
    try:
        server = start_system(system, kind, pythons, gw_env)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        why = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
        say(f"{system} / {kind} could not start: {why[0]}")
        plan.skipped[f"{system}/{kind}"] = why[0][:200]
        return
    try:
        try:
            note = wait_ready(server, kind, expected)
        except RuntimeError as exc:
            say(str(exc))
            plan.skipped[f"{system}/{kind}"] = str(exc).splitlines()[0]
            return
        for rows in plan.rows:
            run_wrk(server.url, luas[rows], max(plan.concurrency), plan.warmup)  # warm-up
            for concurrency in plan.concurrency:
                before = tree_cpu_seconds(server.proc.pid)
                out = run_wrk(server.url, luas[rows], concurrency, plan.duration)
                cpu = tree_cpu_seconds(server.proc.pid) - before
                n = out.get("requests", 0)
                cell = Cell(system, kind, rows, concurrency, plan.duration, n, out.get("rps", 0.0),
                            out.get("p50", float("nan")), out.get("p99", float("nan")),
                            cpu * 1000 / n if n else float("nan"), out.get("errors", 0), note)
                plan.runs.append(cell)
                save(plan, partial=True)
                say(f"{system:17s} {kind} rows={rows:<2d} c={concurrency:<3d} {cell.rps:9.0f} req/s  "
                    f"p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  cpu {cell.cpu_ms_per_request:6.3f} ms/req"
                    f"{'  errors ' + str(cell.errors) if cell.errors else ''}")
    finally:
        stop(server)


RESULTS = REPO / ".bench" / "results" / "serving.json"
_META: dict[str, Any] = {}


def save(plan: Plan, partial: bool = False) -> None:
    """Every cell so far, with the run's metadata (written after each cell, so a crash keeps them)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": _META, "partial": partial, "skipped": plan.skipped,
                                   "cells": [asdict(c) for c in plan.results],
                                   "runs": [asdict(c) for c in plan.runs]}, indent=1, default=str))


def report(plan: Plan, meta: dict[str, Any]) -> bool:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    cells = {(c.system, c.model, c.rows, c.concurrency): c for c in plan.results}
    for kind in plan.models:
        for rows in plan.rows:
            table = Table(title=f"{kind}, {rows} row{'s' if rows > 1 else ''} per request "
                                f"({plan.duration:.0f} s per cell)", title_justify="left")
            for col in ("system", "c", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "errors", "x MLflow req/s",
                        "x FastAPI req/s"):
                table.add_column(col, justify="left" if col == "system" else "right")
            for concurrency in plan.concurrency:
                mlflow = cells.get(("mlflow", kind, rows, concurrency))
                fastapi = cells.get(("fastapi", kind, rows, concurrency))
                for system in plan.systems:
                    c = cells.get((system, kind, rows, concurrency))
                    if c is None:
                        continue
                    table.add_row(
                        system, str(concurrency), f"{c.rps:,.0f}", f"{c.p50_ms:.2f}", f"{c.p99_ms:.2f}",
                        f"{c.cpu_ms_per_request:.3f}", str(c.errors) if c.errors else "",
                        f"{c.rps / mlflow.rps:.1f}" if mlflow and mlflow.rps else "-",
                        f"{c.rps / fastapi.rps:.1f}" if fastapi and fastapi.rps else "-",
                    )
                table.add_section()
            console.print(table)
    for key, why in plan.skipped.items():
        console.print(f"[yellow]skipped {key}: {why}[/]")
    ok = True
    ours = cells.get(("groundwork", "lr", 1, 64))
    mlflow = cells.get(("mlflow", "lr", 1, 64))
    fastapi = cells.get(("fastapi", "lr", 1, 64))
    if ours and (mlflow or fastapi):
        targets = Table(title="Targets (issue #4): LogisticRegression, 1 row per request, concurrency 64",
                        title_justify="left")
        for col in ("target", "groundwork", "peer", "ratio", "met"):
            targets.add_column(col)
        rows_out: list[tuple[str, str, str, str, bool]] = []
        if mlflow and mlflow.rps:
            rows_out.append(("throughput >= 5x MLflow", f"{ours.rps:,.0f} req/s", f"{mlflow.rps:,.0f} req/s",
                             f"{ours.rps / mlflow.rps:.1f}x", ours.rps >= 5 * mlflow.rps))
            rows_out.append(("CPU/request <= 1/5 of MLflow", f"{ours.cpu_ms_per_request:.3f} ms",
                             f"{mlflow.cpu_ms_per_request:.3f} ms",
                             f"1/{mlflow.cpu_ms_per_request / ours.cpu_ms_per_request:.1f}",
                             ours.cpu_ms_per_request * 5 <= mlflow.cpu_ms_per_request))
            rows_out.append(("p99 lower than MLflow", f"{ours.p99_ms:.2f} ms", f"{mlflow.p99_ms:.2f} ms",
                             f"{ours.p99_ms / mlflow.p99_ms:.2f}", ours.p99_ms < mlflow.p99_ms))
        if fastapi and fastapi.rps:
            rows_out.append(("throughput >= 1.5x bare FastAPI", f"{ours.rps:,.0f} req/s", f"{fastapi.rps:,.0f} req/s",
                             f"{ours.rps / fastapi.rps:.1f}x", ours.rps >= 1.5 * fastapi.rps))
            rows_out.append(("p99 lower than bare FastAPI", f"{ours.p99_ms:.2f} ms", f"{fastapi.p99_ms:.2f} ms",
                             f"{ours.p99_ms / fastapi.p99_ms:.2f}", ours.p99_ms < fastapi.p99_ms))
        for name, a, b, ratio, met in rows_out:
            targets.add_row(name, a, b, ratio, "[green]met[/]" if met else "[red]missed[/]")
            ok = ok and met
        console.print(targets)
    nolog = cells.get(("groundwork-nolog", "lr", 1, 64))
    if ours and nolog and nolog.rps:
        # Issue #14: logging every request (the default) costs at most 5% of the throughput.
        logged = Table(title="Target (issue #14): the prediction log on (groundwork) vs off (groundwork-nolog), "
                             "LogisticRegression, 1 row, c=64", title_justify="left")
        for col in ("target", "log on", "log off", "on / off", "met"):
            logged.add_column(col)
        met = ours.rps >= 0.95 * nolog.rps
        logged.add_row("throughput at most 5% lower", f"{ours.rps:,.0f} req/s", f"{nolog.rps:,.0f} req/s",
                       f"{ours.rps / nolog.rps:.3f}", "[green]met[/]" if met else "[red]missed[/]")
        logged.add_row("CPU/request (info)", f"{ours.cpu_ms_per_request:.3f} ms", f"{nolog.cpu_ms_per_request:.3f} ms",
                       f"{ours.cpu_ms_per_request / nolog.cpu_ms_per_request:.3f}", "")
        console.print(logged)
        ok = ok and met
    if ours and ours.errors:
        ok = False
        console.print(f"[red]groundwork answered {ours.errors} errors[/]")
    _META.update(meta)
    save(plan)
    console.print(f"raw numbers: {RESULTS.relative_to(REPO)}")
    return ok


def netns_available() -> str:
    """'' when a loopback-only network namespace can be made here, else why not."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"unshare -n failed: {probe.stderr.strip()[:120]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="LogisticRegression, 1 row, c=1 and 64, 5 s cells")
    parser.add_argument("--systems", default=None, help=f"comma list of {', '.join(SYSTEMS + EXTRA_SYSTEMS)}")
    parser.add_argument("--models", default=None, help="lr,mlp")
    parser.add_argument("--rows", default=None, help="rows per request, e.g. 1,32")
    parser.add_argument("--concurrency", default=None, help="e.g. 1,16,64")
    parser.add_argument("--duration", type=float, default=None, help="seconds per cell (default 20, --quick 5)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per server and row count")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure every cell N times, the systems taking turns; report the medians")
    parser.add_argument("--baseline-src", default=None,
                        help="the src/ folder groundwork-baseline runs (another commit's code, for before/after)")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    quick = args.quick
    if args.baseline_src:
        os.environ[BASELINE_ENV] = str(Path(args.baseline_src).resolve())
    plan = Plan(
        systems=(args.systems or ",".join(SYSTEMS)).split(","),
        models=(args.models or ("lr" if quick else "lr,mlp")).split(","),
        rows=[int(r) for r in (args.rows or ("1" if quick else "1,32")).split(",")],
        concurrency=[int(c) for c in (args.concurrency or ("1,64" if quick else "1,16,64")).split(",")],
        duration=args.duration or (5.0 if quick else 20.0),
        warmup=args.warmup or (2.0 if quick else 5.0),
        repeat=max(1, args.repeat),
    )
    if "groundwork-baseline" in plan.systems and not os.environ.get(BASELINE_ENV):
        plan.skipped["groundwork-baseline"] = "no --baseline-src given (the src/ folder of the code to compare with)"
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (the load generator of this benchmark)")
    WORK.mkdir(parents=True, exist_ok=True)
    inside = os.environ.get(NETNS_ENV) == "1"
    pythons: dict[str, Path] = {}
    if not inside:
        # Peer venvs need the network (PyPI): build them before entering the namespace.
        wanted = {"mlflow": MLFLOW_REQUIREMENTS, "bentoml": BENTOML_REQUIREMENTS, "rayserve": RAY_REQUIREMENTS}
        needs = {"mlflow": "mlflow", "bentoml": "bentoml", "bentoml-batching": "bentoml", "rayserve": "rayserve"}
        for system in plan.systems:
            peer = needs.get(system)
            if peer and peer not in pythons:
                try:
                    pythons[peer] = peer_python(peer, wanted[peer])
                except RuntimeError as exc:
                    plan.skipped[system] = f"its venv could not be built: {exc}"
        why_not = netns_available()
        if not why_not:
            say("re-running the measurements inside a loopback-only network namespace (Ray binds every interface)")
            cmd = ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "_", sys.executable,
                   str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:])]
            return subprocess.run(cmd, env={**os.environ, NETNS_ENV: "1"}).returncode
        if "rayserve" in plan.systems:
            plan.skipped["rayserve"] = f"Ray Serve needs a loopback-only network namespace: {why_not}"
    else:
        for peer in ("mlflow", "bentoml", "rayserve"):
            python = REPO / ".bench" / f"{peer}-venv" / "bin" / "python"
            if python.exists():
                pythons[peer] = python
        for system, peer in (("mlflow", "mlflow"), ("bentoml", "bentoml"), ("bentoml-batching", "bentoml"),
                             ("rayserve", "rayserve")):
            if system in plan.systems and peer not in pythons:
                plan.skipped[system] = f"no venv at .bench/{peer}-venv"
    gw_env = prepare_groundwork(plan.models) if any(s.startswith("groundwork") for s in plan.systems) else {}
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_before": os.getloadavg()},
        "plan": {k: v for k, v in asdict(plan).items() if k not in ("results", "runs", "skipped")},
        "peers": {peer: {k: v for k, v in peer_versions(peer).items()
                         if k in ("mlflow", "bentoml", "ray", "scikit-learn", "uvicorn", "fastapi")}
                  for peer in ("mlflow", "bentoml", "rayserve")},
        "in_netns": inside,
        "started_at": time.time(),
    }
    _META.update(meta)
    measure(plan, pythons, gw_env)
    meta["load_after"] = os.getloadavg()
    ok = report(plan, meta)
    return 0 if ok or not args.fail_on_miss else 1


if __name__ == "__main__":
    sys.exit(main())
