"""Team server benchmark: ``groundwork server`` against ``mlflow server --app-name basic-auth``
(and FastTrackML's ``fml server``), all on one PostgreSQL, in one invocation.

    python benchmarks/server.py                       # defaults sized for a 2-core machine (~5 min)
    python benchmarks/server.py --repeat 3            # interleaved rounds: medians and spread
    python benchmarks/server.py --clients 64 --client-points 10000 --search-runs 100000 --artifact-mb 1024

Every server is a real process on 127.0.0.1 with authentication on: groundwork with an
editor's API token, MLflow with its basic-auth app (a non-admin user who created the
experiment), FastTrackML with its basic auth. The clients are the SDKs a user runs: the
groundwork SDK with ``GROUNDWORK_SERVER``, MLflow's client (its own venv) with
``MLFLOW_TRACKING_URI``. The logging workloads are ``benchmarks/tracking.py``'s (W1, W2, W4,
and W5 as "load": many client processes at once), here through HTTP; then the W3 search
on a store of ``--search-runs`` runs, and one big artifact up and down against a plain copy
on the same disk. The server processes' CPU time and peak resident memory are read from
``/proc`` around every workload, and so is PostgreSQL's. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for _path in (REPO_ROOT, REPO_ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchmarks import tracking as tr  # noqa: E402  (the workloads, shared with the tracking benchmark)
from benchmarks._peers import BENCH_DIR, MLFLOW_VERSION, peer_python, peer_versions  # noqa: E402
from benchmarks.peers.mlflow_tracking import run_metrics, run_params  # noqa: E402

from _servers import HOST, GroundworkServer, free_port, postgres_server, team_token  # noqa: E402

PEER_SCRIPT = REPO_ROOT / "benchmarks" / "peers" / "mlflow_server.py"
RESULTS = BENCH_DIR / "results" / "server.json"
# The same MLflow as the tracking peer, with its basic-auth app's extra (Flask-WTF) and a
# PostgreSQL driver (SQLAlchemy 2.1 maps postgresql:// to psycopg 3; MLflow documents psycopg2).
MLFLOW_SERVER_REQUIREMENTS = [f"mlflow[auth]=={MLFLOW_VERSION}", "psycopg2-binary==2.9.13"]
# FastTrackML's wheel pins mlflow<3, so it cannot share the MLflow 3 venv; its server is one Go
# binary inside the wheel, taken out of a `pip download`; MLflow's client talks to it.
FASTTRACKML_VERSION = "0.6.0"

ALL = ("W1", "W2", "W4", "load", "search", "artifacts")
TARGETS = {"W1": 20.0, "load": 20.0}  # groundwork / MLflow server, points per second
SEARCH_BOUND_MS = 100.0
ARTIFACT_BOUND = 1.5  # groundwork's transfer time / a plain copy's
PEERS = ("MLflow", "FastTrackML")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# =======================================================================================
# /proc: CPU time and peak resident memory of a process tree
# =======================================================================================

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from "state" on (comm may hold spaces)


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    """User + system CPU of the live tree, plus what the root's reaped children used."""
    total = 0
    for pid in process_tree(root):
        if (fields := _stat(pid)) is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if pid == root:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / _TICK


def reset_peaks(root: int) -> None:
    """Reset every process's peak RSS (``VmHWM``) to its current RSS (``clear_refs`` 5, Linux >= 4.0)."""
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mb(root: int) -> tuple[float, float]:
    """(sum of the processes' peaks, largest single peak) in MiB, from ``VmHWM``."""
    peaks = []
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return sum(peaks), max(peaks, default=0.0)


@dataclass
class Meter:
    """The server's and the database's processes, measured around one workload."""

    server_pid: int
    db_pid: int | None
    _start: tuple[float, float] = (0.0, 0.0)

    def begin(self) -> None:
        reset_peaks(self.server_pid)
        self._start = (cpu_seconds(self.server_pid), cpu_seconds(self.db_pid) if self.db_pid else 0.0)

    def end(self) -> dict[str, float]:
        total, largest = peak_rss_mb(self.server_pid)
        return {
            "server_cpu_s": cpu_seconds(self.server_pid) - self._start[0],
            "db_cpu_s": (cpu_seconds(self.db_pid) - self._start[1]) if self.db_pid else 0.0,
            "server_peak_rss_mb": total,
            "server_largest_process_rss_mb": largest,
            "server_processes": len(process_tree(self.server_pid)),
        }


def postmaster_pid(port: int) -> int | None:
    """The PostgreSQL this benchmark started (found by its port on the command line), to read its CPU."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"/postgres") and b"-p" in argv and str(port).encode() in argv:
                return int(entry.name)
    return None


# =======================================================================================
# The servers
# =======================================================================================


@dataclass
class Side:
    """One server under test: where it is, its processes, and how its clients authenticate."""

    name: str
    url: str
    meter: Meter
    env: dict[str, str] = field(default_factory=dict)  # for the MLflow client's processes
    config: Any = None  # groundwork's client Config
    search_config: Any = None
    log: Path | None = None


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}; log: {log}\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers (e.g. 401 without credentials)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer within {timeout:.0f}s; log: {log}\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def _process(cmd: list[str], env: dict[str, str], log: Path, health: str, what: str) -> Iterator[int]:
    """Start a server in its own session; stop it (its process group, which we made) on leaving."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(health, proc, log, what)
        yield proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _request(method: str, url: str, auth: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
    import base64

    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer: dict[str, Any] = json.loads(resp.read() or b"{}")
        return answer


def _create_experiment(url: str, auth: tuple[str, str]) -> str:
    answer = _request("POST", f"{url}/api/2.0/mlflow/experiments/create", auth, {"name": "bench"})
    return str(answer["experiment_id"])


@contextlib.contextmanager
def groundwork_side(pg: str, db_pid: int | None, home: Path, workers: int) -> Iterator[Side]:
    from groundwork.config import Config

    store = _database(pg, "groundwork")
    artifacts = home / "groundwork-artifacts"
    # A user who is an editor of two projects: "bench" (logging) and "search" (the search store).
    token = team_token(store, "bench", role="editor", user="bench")
    search_token = team_token(store, "search", role="editor", user="bench")
    with GroundworkServer(store, str(artifacts), workers=workers, log_dir=home) as server:
        assert server.proc is not None
        yield Side(
            "groundwork",
            server.url,
            Meter(server.proc.pid, db_pid),
            config=Config(server_url=server.url, token=token, project="bench"),
            search_config=Config(server_url=server.url, token=search_token, project="search"),
            log=server.log,
        )


@contextlib.contextmanager
def mlflow_side(python: Path, pg: str, db_pid: int | None, home: Path, workers: int, auth_cache_s: int) -> Iterator[Side]:
    store = _database(pg, "mlflow", driver="postgresql+psycopg2")
    auth_db = _database(pg, "mlflow_auth", driver="postgresql+psycopg2")
    admin = ("admin", uuid.uuid4().hex)
    user = ("bench", uuid.uuid4().hex)
    ini = home / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {auth_db}\n"
        f"admin_username = {admin[0]}\n"
        f"admin_password = {admin[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # MLflow's opt-in credential cache (off by default): its fastest documented setting.
        f"auth_cache_ttl_seconds = {auth_cache_s}\n"
    )
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = _peer_env({"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex})
    cmd = [
        str(python.parent / "mlflow"), "server", "--app-name", "basic-auth",
        "--backend-store-uri", store, "--artifacts-destination", str(home / "mlflow-artifacts"),
        "--host", HOST, "--port", str(port), "--workers", str(workers),
    ]
    log = home / "mlflow-server.log"
    with _process(cmd, env, log, f"{url}/health", "mlflow server") as pid:
        _request("POST", f"{url}/api/2.0/mlflow/users/create", admin, {"username": user[0], "password": user[1]})
        experiment = _create_experiment(url, user)  # the user's own experiment (MANAGE), as a team works
        client_env = {
            "MLFLOW_TRACKING_USERNAME": user[0],
            "MLFLOW_TRACKING_PASSWORD": user[1],
            "MLFLOW_EXPERIMENT_ID": experiment,
        }
        yield Side("MLflow", url, Meter(pid, db_pid), env=client_env, log=log)


def fasttrackml_binary() -> Path:
    """FastTrackML's ``fml`` server binary, from its PyPI wheel (``pip download``, cached in .bench/)."""
    folder = BENCH_DIR / f"fasttrackml-{FASTTRACKML_VERSION}"
    binary = folder / "fml"
    if binary.exists():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder),
         f"fasttrackml=={FASTTRACKML_VERSION}"],
        check=True,
    )
    wheel = next(folder.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith("/bin/fml"))
        tmp = binary.with_suffix(".tmp")
        tmp.write_bytes(zf.read(member))
    tmp.chmod(0o755)
    os.replace(tmp, binary)
    return binary


@contextlib.contextmanager
def fasttrackml_side(pg: str, db_pid: int | None, home: Path) -> Iterator[Side]:
    binary = fasttrackml_binary()
    store = _database(pg, "fasttrackml", driver="postgres") + "?sslmode=disable"
    user = ("bench", uuid.uuid4().hex)
    port = free_port()
    url = f"http://{HOST}:{port}"
    cmd = [
        str(binary), "server", "--listen-address", f"{HOST}:{port}", "--database-uri", store,
        "--default-artifact-root", str(home / "fasttrackml-artifacts"),
        "--auth-username", user[0], "--auth-password", user[1], "--log-level", "warning",
    ]
    log = home / "fasttrackml.log"
    with _process(cmd, _peer_env({}), log, f"{url}/health", "fml server") as pid:
        experiment = _create_experiment(url, user)
        client_env = {
            "MLFLOW_TRACKING_USERNAME": user[0],
            "MLFLOW_TRACKING_PASSWORD": user[1],
            "MLFLOW_EXPERIMENT_ID": experiment,
        }
        yield Side("FastTrackML", url, Meter(pid, db_pid), env=client_env, log=log)


def _peer_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", PYTHONUNBUFFERED="1", **extra)
    return env


def _database(pg: str, name: str, driver: str = "postgresql+psycopg") -> str:
    """A fresh database on the benchmark's PostgreSQL; its URL for ``driver``."""
    import psycopg

    admin = pg.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _database_url(pg, name, driver)


# =======================================================================================
# The workloads
# =======================================================================================


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    """``extra`` in this process's environment for a while (the peer runner copies it to its child)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def metered(side: Side, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    side.meter.begin()
    out = fn()
    out.update(side.meter.end())
    points = out.get("points")
    if out.get("ok") and points:
        out["server_cpu_us_per_point"] = out["server_cpu_s"] / points * 1e6
        out["db_cpu_us_per_point"] = out["db_cpu_s"] / points * 1e6
    return out


def run_logging(name: str, side: Side, w: tr.Workloads, scale: float, here: Path, python: Path | None) -> dict[str, Any]:
    """W1, W2, W4 or the load (tracking.py's W5) against one server."""
    workload = "W5" if name == "load" else name
    if side.name == "groundwork":
        return metered(side, lambda: tr.run_ours(workload, w, scale, here, config=side.config))
    assert python is not None
    with _environ(side.env):
        return metered(
            side,
            lambda: tr.run_peer(
                python, workload, w, scale, here, ["--tracking-uri", side.url], label=f"{name} ({side.name} server)"
            ),
        )


def _peer_json(python: Path, args: list[str], env: dict[str, str], timeout: float = 3600) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(PEER_SCRIPT), *args], env=_peer_env(env), capture_output=True, text=True, timeout=timeout
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    try:
        out: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        out = {"ok": False, "error": f"exit {done.returncode}: {done.stderr[-1500:]}"}
    return out


def fill_groundwork(side: Side, pg_store: str, runs: int, seed: int) -> dict[str, Any]:
    """W3's runs 0..runs-1 in the "search" project, straight into PostgreSQL (the store the server
    reads), 2,000 runs a transaction: the runs and params rows as multi-row inserts (the rows the
    store's own create_run writes), the metrics through the store's batch write."""
    import socket

    from sqlalchemy import insert

    from groundwork.config import Config
    from groundwork.storage import schema
    from groundwork.storage.records import param_number, param_text, param_type
    from groundwork.storage.stores import open_stores

    t0 = time.perf_counter()
    cfg = Config(store_url=pg_store, artifacts_url=str(Path(side.log or ".").parent / "fill-artifacts"), project="search")
    meta: Any = open_stores(cfg).metadata
    now, host = time.time(), socket.gethostname()
    for first in range(0, runs, 2000):
        run_rows, param_rows, points = [], [], []
        for i in range(first, min(runs, first + 2000)):
            rid, at = uuid.uuid4().hex, now + i * 1e-3
            run_rows.append({"id": rid, "name": f"w3-{i}", "kind": "run", "status": "finished", "user": "bench",
                             "host": host, "created_at": at, "ended_at": at, "heartbeat_at": at,
                             "project": "search"})
            for key, value in run_params(i, seed).items():
                text = param_text(value)
                param_rows.append({"run_id": rid, "key": key, "value": text, "value_num": param_number(text),
                                   "value_type": param_type(value)})
            points += [(rid, k, 0, v, at) for k, v in run_metrics(i, seed).items()]
        with meta.write() as conn:
            conn.execute(insert(schema.runs), run_rows)
            conn.execute(insert(schema.params), param_rows)
        meta.write_batch(points=points)
        if (first // 2000) % 5 == 4:
            _say(f"  groundwork fill: {first + 2000:,}/{runs:,} runs")
    _analyze(pg_store)
    return {"ok": True, "runs": runs, "seconds": time.perf_counter() - t0}


def _analyze(store: str) -> None:
    """Fresh planner statistics after a bulk fill (autovacuum would get there later); MLflow's fill does the same."""
    import psycopg

    with psycopg.connect(store.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute("ANALYZE")


def search_once(side: Side, python: Path | None, w: tr.Workloads, runs: int) -> dict[str, Any]:
    if side.name == "groundwork":
        import groundwork as gw

        out = tr._ours_search(gw, side.search_config, w)
        out.update(ok=True, unit="ms", runs=runs)
        out["problems"] = tr._search_problems("groundwork", out, runs, w)
        return out
    assert python is not None
    env = {k: v for k, v in side.env.items() if k != "MLFLOW_EXPERIMENT_ID"}  # the store is experiment 0
    out = _peer_json(python, ["search", "--tracking-uri", side.url, "--runs", str(runs),
                              "--repeats", str(w.repeats), "--limit", str(w.limit)], env)
    if out.get("ok"):
        out["problems"] = tr._search_problems(side.name, out, runs, w)
    return out


def make_big_file(path: Path, mib: int) -> Path:
    """``mib`` MiB of random bytes (incompressible, no holes)."""
    if path.exists() and path.stat().st_size == mib << 20:
        return path
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for k in range(mib):
            out.write(hashlib.sha256(k.to_bytes(8, "little")).digest() + block[32:])
    return path


def _copy_durable(src: Path, dest: Path) -> None:
    shutil.copyfile(src, dest)
    with open(dest, "rb+") as fh:
        os.fsync(fh.fileno())


def plain_copy(source: Path, store: Path, here: Path) -> dict[str, Any]:
    """The floor: copy the file into the server's artifact folder (fsync'd) and back out."""
    store.mkdir(parents=True, exist_ok=True)
    here.mkdir(parents=True, exist_ok=True)
    inside, back = store / f"plain-copy-{uuid.uuid4().hex}", here / "plain-copy-back"
    t0 = time.perf_counter()
    _copy_durable(source, inside)
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    _copy_durable(inside, back)
    down = time.perf_counter() - t0
    inside.unlink()
    back.unlink()
    return {"ok": True, "upload_s": up, "download_s": down, "bytes": source.stat().st_size}


def artifacts_once(side: Side, python: Path | None, source: Path, here: Path) -> dict[str, Any]:
    here.mkdir(parents=True, exist_ok=True)
    if side.name == "groundwork":
        import groundwork as gw
        from groundwork.storage.artifacts import hash_file
        from groundwork.storage.stores import open_stores

        def ours() -> dict[str, Any]:
            with gw.start_run(name="bench-artifact", config=side.config) as run:
                t0 = time.perf_counter()
                info = run.log_artifact(source)
                up = time.perf_counter() - t0
            dest = here / "down"
            t0 = time.perf_counter()
            open_stores(side.config).artifacts.restore(info.digest, dest)
            down = time.perf_counter() - t0
            same = hash_file(dest) == hash_file(source)
            dest.unlink()
            return {"ok": True, "upload_s": up, "download_s": down, "same_bytes": same, "bytes": source.stat().st_size}

        return metered(side, ours)
    assert python is not None
    return metered(side, lambda: _peer_json(
        python, ["artifacts", "--tracking-uri", side.url, "--file", str(source), "--dest", str(here / "down")], side.env
    ))


# =======================================================================================
# Report
# =======================================================================================


def compare(
    results: dict[str, dict[str, dict[str, Any]]], w: tr.Workloads, load: tr.Workloads, copy: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """One round's rows, in tracking.py's row format (so its merge of rounds applies)."""
    rows: list[dict[str, Any]] = []
    ours = results.get("groundwork", {})

    def size(o: dict[str, Any] | None, p: dict[str, Any] | None, unit: str) -> str:
        def one(r: dict[str, Any] | None) -> str:
            return f"{r['points']:,}" if r and r.get("ok") and "points" in r else "-"

        return f"{one(o)} / {one(p)} {unit}"

    for peer in PEERS:
        theirs = results.get(peer)
        if theirs is None and (peer != "MLflow" or any(p in results for p in PEERS)):
            continue
        theirs = theirs or {}  # no peer at all: groundwork's own rows, targets judged n/a
        vs = "" if peer == "MLflow" else f" vs {peer}"
        for name in ("W1", "W2", "load"):
            o, p = ours.get(name), theirs.get(name)
            if o is None and p is None:
                continue
            unit = "pts" if name != "load" else f"pts, {load.procs} clients"
            rows.append(tr._row(
                name + vs, o, p, higher_better=True, key="rate", size=size(o, p, unit),
                target=TARGETS.get(name) if peer == "MLflow" else None,
                problems=tr._present_problems(o) if peer == "MLflow" else [],
            ))
        o, p = ours.get("W4"), theirs.get("W4")
        if o is not None or p is not None:
            rows.append(tr._row("W4" + vs, o, p, higher_better=False, key="ms", size=f"{w.history:,} pts",
                                target=None, problems=[]))
        o, p = ours.get("search"), theirs.get("search")
        if o is not None and (p is not None or peer == "MLflow"):
            runs = (o or p or {}).get("runs", 0)
            rows.append(tr._row(
                "search" + vs, o, p, higher_better=False, key="ms", size=f"{runs:,} runs", target=None,
                problems=[*(o or {}).get("problems", []), *(p or {}).get("problems", [])],
                bound=SEARCH_BOUND_MS if peer == "MLflow" else None,
            ))
    o = ours.get("artifacts")
    if o is not None and copy is not None:
        for way in ("upload", "download"):
            factor = {"x": o[f"{way}_s"] / copy[f"{way}_s"], "unit": "x"} if o.get("ok") else None
            probs = [] if not o.get("ok") or o.get("same_bytes") else ["groundwork's download differs from the file"]
            rows.append(tr._row(
                f"artifact {way} / plain copy", factor, None, higher_better=False, key="x",
                size=f"{o.get('bytes', 0) >> 20:,} MiB", target=None, problems=probs, bound=ARTIFACT_BOUND,
            ))
        for peer in PEERS:
            p = results.get(peer, {}).get("artifacts")
            if p is None:
                continue
            for way in ("upload", "download"):
                rows.append(tr._row(
                    f"artifact {way} vs {peer}", {"ms": o[f"{way}_s"] * 1e3} if o.get("ok") else None,
                    {"ms": p[f"{way}_s"] * 1e3} if p.get("ok") else None, higher_better=False, key="ms",
                    size=f"{o.get('bytes', 0) >> 20:,} MiB", target=None, problems=[],
                ))
    return rows


def resources(rounds: list[dict[str, dict[str, dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Per side and workload: median server/DB CPU per point and the highest peak RSS over the rounds."""
    import statistics

    out = []
    names = {(side, name) for r in rounds for side, by in r.items() for name in by}
    for side, name in sorted(names):
        runs = [r[side][name] for r in rounds if name in r.get(side, {}) and r[side][name].get("ok")]
        if not runs or "server_cpu_s" not in runs[0]:
            continue
        row: dict[str, Any] = {"side": side, "workload": name,
                               "server_peak_rss_mb": max(x["server_peak_rss_mb"] for x in runs),
                               "server_largest_process_rss_mb": max(x["server_largest_process_rss_mb"] for x in runs),
                               "server_processes": runs[0]["server_processes"]}
        for key in ("server_cpu_us_per_point", "db_cpu_us_per_point", "server_cpu_s", "db_cpu_s"):
            values = [x[key] for x in runs if key in x]
            row[key] = statistics.median(values) if values else None
        out.append(row)
    return out


def print_report(rows: list[dict[str, Any]], res: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    rounds = max((r.get("rounds", 1) for r in rows), default=1)
    peers = [f"MLflow server {meta['mlflow']} (basic-auth)"] if meta["mlflow"] else []
    peers += [f"FastTrackML {FASTTRACKML_VERSION}"] if meta["fasttrackml"] else []
    table = Table(title=f"Team server: groundwork {meta['groundwork']} vs {' and '.join(peers) or 'no peer'}, PostgreSQL")
    for col in ("workload", "n (ours / peer)", "groundwork", "peer", "ratio",
                f"spread ({rounds} rounds)" if rounds > 1 else "spread", "target", ""):
        table.add_column(col, justify="left" if col in ("workload", "") else "right", no_wrap=True)
    for r in rows:
        style = {"met": "green", "missed": "red", "n/a": "yellow", "info": "dim"}[r["verdict"]]
        table.add_row(r["workload"], r["size"], tr._fmt(r["groundwork"], r["unit"]), tr._fmt(r["mlflow"], r["unit"]),
                      tr._ratio(r["ratio"]), tr._spread(r), tr._target(r), f"[{style}]{r['verdict']}[/{style}]")
    console.print(table)
    cpu = Table(title="Server processes (CPU per logged point: median of rounds; peak RSS: highest, summed over processes)")
    for col in ("server", "workload", "server CPU/pt", "PostgreSQL CPU/pt", "server CPU", "peak RSS (sum)",
                "largest process", "processes"):
        cpu.add_column(col, justify="left" if col in ("server", "workload") else "right", no_wrap=True)
    for r in res:
        per = r.get("server_cpu_us_per_point")
        dbp = r.get("db_cpu_us_per_point")
        cpu.add_row(r["side"], r["workload"], "-" if per is None else f"{per:,.1f} us",
                    "-" if dbp is None else f"{dbp:,.1f} us", f"{r['server_cpu_s']:.2f} s",
                    f"{r['server_peak_rss_mb']:,.0f} MiB", f"{r['server_largest_process_rss_mb']:,.0f} MiB",
                    str(r["server_processes"]))
    console.print(cpu)
    for r in rows:
        for p in r["problems"]:
            console.print(f"[red]{r['workload']} ({r['size']}): {p}[/red]")
    for line in meta["notes"]:
        console.print(f"[yellow]{line}[/yellow]")
    console.print(f"[dim]{meta['note']}[/dim]")


# =======================================================================================
# Main
# =======================================================================================


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(ALL), help=f"comma-separated, from {', '.join(ALL)}")
    ap.add_argument("--peers", default="mlflow,fasttrackml", help="mlflow, fasttrackml (comma-separated), or none")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the sides interleave, who goes first alternates")
    ap.add_argument("--points", type=int, default=20_000, help="W1/W2 points on groundwork's side")
    ap.add_argument("--peer-scale", type=float, default=0.02,
                    help="shrinks the peers' W1 and per-client load points (rates are compared; default 0.02)")
    ap.add_argument("--clients", type=int, default=16, help="load: concurrent client processes (issue: 64)")
    ap.add_argument("--client-points", type=int, default=2_000, help="load: points each client logs (issue: 10,000)")
    ap.add_argument("--search-runs", type=int, default=20_000, help="runs in the searched store (issue: 100,000)")
    ap.add_argument("--artifact-mb", type=int, default=256, help="artifact size in MiB (issue: 1,024)")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes, for every server")
    ap.add_argument("--mlflow-auth-cache", type=int, default=60,
                    help="MLflow's auth_cache_ttl_seconds (its opt-in credential cache; 0 = its default, off)")
    ap.add_argument("--keep", action="store_true", help="keep .bench/work/server-*")
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)

    only = [x.strip() for x in args.only.split(",") if x.strip()]
    bad = [x for x in only if x not in ALL]
    if bad:
        ap.error(f"unknown workload(s) {bad}; choose from {', '.join(ALL)}")
    peers = [] if args.peers == "none" else [x.strip().lower() for x in args.peers.split(",") if x.strip()]
    if set(peers) - {"mlflow", "fasttrackml"}:
        ap.error("--peers takes mlflow, fasttrackml or none")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    w = dataclasses.replace(tr.WORKLOADS, points=args.points)
    load = dataclasses.replace(w, procs=args.clients, points_per_proc=args.client_points)
    notes: list[str] = []
    python = peer_python("mlflow-server", MLFLOW_SERVER_REQUIREMENTS) if peers else None

    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = BENCH_DIR / "work" / f"server-{stamp}-{os.getpid()}"
    work.mkdir(parents=True)
    load_before = os.getloadavg()
    t_all = time.perf_counter()
    rounds: list[dict[str, dict[str, dict[str, Any]]]] = []
    copies: list[dict[str, Any] | None] = []
    fills: dict[str, Any] = {}
    try:
        with contextlib.ExitStack() as stack:
            pg = stack.enter_context(postgres_server())
            db_pid = postmaster_pid(int(pg.rsplit(":", 1)[1].split("/")[0]))
            _say(f"PostgreSQL at {pg} (postmaster {db_pid})")
            (work / "gw").mkdir()
            sides = [stack.enter_context(groundwork_side(pg, db_pid, work / "gw", args.workers))]
            if "mlflow" in peers:
                assert python is not None
                (work / "mlflow").mkdir()
                sides.append(stack.enter_context(
                    mlflow_side(python, pg, db_pid, work / "mlflow", args.workers, args.mlflow_auth_cache)))
            if "fasttrackml" in peers:
                (work / "fml").mkdir()
                try:
                    sides.append(stack.enter_context(fasttrackml_side(pg, db_pid, work / "fml")))
                except (subprocess.CalledProcessError, RuntimeError, OSError, StopIteration) as exc:
                    notes.append(f"FastTrackML {FASTTRACKML_VERSION} did not start, not measured: {exc}")
            live = sides
            by_name = {s.name: s for s in live}

            if "search" in only:
                gw_store = _database_url(pg, "groundwork")
                _say(f"filling the search stores with {args.search_runs:,} runs (not timed) ...")
                fills["groundwork"] = fill_groundwork(by_name["groundwork"], gw_store, args.search_runs, w.seed)
                if "MLflow" in by_name:
                    assert python is not None
                    fills["MLflow"] = _peer_json(python, ["fill", "--db-uri", _database_url(pg, "mlflow", "postgresql+psycopg2"),
                                                          "--runs", str(args.search_runs), "--seed", str(w.seed)], {})
                if "FastTrackML" in by_name:
                    notes.append("FastTrackML: search not measured (its own schema; filling it through its API "
                                 "would take longer than this benchmark)")
                _say(f"  filled: {json.dumps({k: round(v.get('seconds', 0), 1) for k, v in fills.items()})}")
            source = make_big_file(BENCH_DIR / f"artifact-{args.artifact_mb}MiB.bin", args.artifact_mb) \
                if "artifacts" in only else None
            if source is not None and "FastTrackML" in by_name:
                notes.append("FastTrackML: artifacts not measured (it does not proxy artifacts: clients write "
                             "to the artifact store themselves)")

            for round_no in range(args.repeat):
                if args.repeat > 1:
                    _say(f"-- round {round_no + 1} of {args.repeat}")
                here = work / f"round-{round_no}"
                results: dict[str, dict[str, dict[str, Any]]] = {s.name: {} for s in live}
                copy = None
                for name in only:
                    order = live if round_no % 2 == 0 else list(reversed(live))
                    if name == "artifacts" and source is not None:
                        # New bytes every round: groundwork's store is content-addressed and would
                        # skip the upload of a file it already holds.
                        with open(source, "r+b") as fh:
                            fh.write(os.urandom(4096))
                        copy = plain_copy(source, work / "gw" / "groundwork-artifacts", here / "copy")
                    for side in order:
                        at = here / side.name / name
                        if name in ("W1", "W2", "W4", "load"):
                            wl = load if name == "load" else w
                            scale = 1.0 if side.name == "groundwork" else (
                                args.peer_scale if name in ("W1", "load") else 1.0)
                            results[side.name][name] = run_logging(name, side, wl, scale, at, python)
                        elif name == "search":
                            if side.name in fills:
                                results[side.name][name] = search_once(side, python, w, args.search_runs)
                                _say(f"{side.name} search: {results[side.name][name].get('ms', 'FAILED')} ms")
                        elif name == "artifacts" and source is not None and side.name != "FastTrackML":
                            results[side.name][name] = artifacts_once(side, python, source, at)
                            _say(f"{side.name} artifacts: {json.dumps({k: v for k, v in results[side.name][name].items() if k.endswith('_s')})}")
                rounds.append(results)
                copies.append(copy)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    for k, results in enumerate(rounds):  # the peers' own losses: reported, not judged
        for peer in PEERS:
            for name, r in results.get(peer, {}).items():
                if r.get("ok") and (r.get("errors") or r.get("present", r.get("points")) != r.get("points")):
                    notes.append(f"round {k + 1}: {peer} {name}: {r.get('errors')} errors, "
                                 f"{r.get('present')} of {r.get('points')} points present")
                elif not r.get("ok"):
                    notes.append(f"round {k + 1}: {peer} {name} failed: {r.get('error')}")
    rows = tr.merge_rounds([compare(r, w, load, c) for r, c in zip(rounds, copies, strict=True)])
    res = resources(rounds)
    versions = peer_versions("mlflow-server") if python is not None else {}
    gw_version = getattr(tr._gw(), "__version__", None)
    meta = {
        "groundwork": gw_version,
        "mlflow": versions.get("mlflow") if any("MLflow" in r for r in rounds) else None,
        "fasttrackml": any("FastTrackML" in r for r in rounds),
        "notes": notes,
        "note": (
            f"groundwork: W1/W2 {w.points:,} points, load {load.procs} clients x {load.points_per_proc:,} points; "
            f"peers: W1 and load points x {args.peer_scale:g} (rates compared); search on {args.search_runs:,} runs "
            f"(median of {w.repeats} after a warm-up); artifact {args.artifact_mb} MiB; {args.workers} workers per "
            f"server; MLflow auth cache {args.mlflow_auth_cache} s. Raw numbers: {args.output}"
        ),
    }
    report = {
        "benchmark": "server",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": time.perf_counter() - t_all,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "cpu_model": _cpu_model(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "argv": sys.argv[1:] if argv is None else argv,
        "versions": {"groundwork": gw_version, "mlflow": versions.get("mlflow"), "fasttrackml": FASTTRACKML_VERSION},
        "comparison": rows,
        "resources": res,
        "fills": fills,
        "plain_copies": copies,
        "rounds": rounds,
        "notes": notes,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str))
    os.replace(tmp, args.output)
    print_report(rows, res, meta)
    print(f"ran {time.perf_counter() - t_all:.0f} s; load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs ({_cpu_model()})", file=sys.stderr)
    missed = any(r["verdict"] == "missed" for r in rows)
    return 1 if (missed and args.fail_on_miss) else 0


def _database_url(pg: str, name: str, driver: str = "postgresql+psycopg") -> str:
    return f"{driver}://" + pg.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


if __name__ == "__main__":
    sys.exit(main())
