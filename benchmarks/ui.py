"""UI benchmark: groundwork's web UI against MLflow's, in headless Chromium, on equal 100,000-run stores.

    python benchmarks/ui.py                     # 100,000 runs + one 1,000,000-point series, both UIs
    python benchmarks/ui.py --quick             # 10,000 runs + 100,000 points: a smoke run
    python benchmarks/ui.py --skip-peer         # groundwork only
    python benchmarks/ui.py --runs 20000 --repeats 3

What is timed, in Chromium (Debian's, driven by Playwright), each in a fresh browser
context (empty cache) unless it says otherwise, median of ``--repeats``:

1. **table**: from navigation to the runs table showing its first page of rows;
2. **filter**: on that loaded table, from pressing Enter in the search box to the
   first run the filter must return being shown (the filter is chosen so that this
   run is not on the unfiltered first page);
3. **chart**: from navigation to the 1,000,000-point metric's chart having drawn
   (groundwork: the chart's ``finished`` event; MLflow: plotly's line path present).

Stores: groundwork's is bulk-inserted through ``MetadataStore.write()`` (runs, params,
latest metrics, one chunk per metric) and the big series through
``MetadataStore.write_batch(segments=...)`` in 10,000-point chunks, as a logging run
would; MLflow's is made by ``benchmarks/peers/mlflow_ui.py`` inside MLflow's own venv
(schema by MLflow's migrations, rows bulk-inserted in MLflow's shape). Both are cached
under ``.bench/cache/`` and copied per invocation. Results: ``.bench/results/ui.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks._peers import BENCH_DIR, MLFLOW_REQUIREMENTS, peer_python, peer_versions  # noqa: E402
from benchmarks.peers.mlflow_ui import (  # noqa: E402  (stdlib only at import time)
    BIG_KEY,
    BIG_RUN_NAME,
    DATA_VERSION,
    LR_CYCLE,
    SEED,
    big_value,
    created_at,
    run_metrics,
    run_name,
    run_params,
)

PEER_SCRIPT = REPO_ROOT / "benchmarks" / "peers" / "mlflow_ui.py"
RESULTS = BENCH_DIR / "results" / "ui.json"
CACHE = BENCH_DIR / "cache"
WORK = BENCH_DIR / "work" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]
TARGET_S = 1.0
TARGET_RATIO = 5.0
VIEWPORT = {"width": 1400, "height": 900}


# ----------------------------------------------------------------------------------------------
# The stores
# ----------------------------------------------------------------------------------------------
def _run_id(i: int) -> str:
    return f"{(1 << 126) + i:032x}"


def build_groundwork_store(path: Path, runs: int, points: int) -> dict[str, Any]:
    """A groundwork SQLite store of ``runs`` runs (10 params, 5 metrics) and one ``points``-point run.

    Rows go in through ``MetadataStore.write()`` (one transaction, the driver's
    ``executemany``) in exactly the shape the SDK writes them; the big series through
    ``write_batch(segments=...)`` in 10,000-point chunks, as a run logging it would.
    """
    import numpy as np

    from groundwork.storage.metadata import MetadataStore, MetricSegment, param_number, param_text

    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    store = MetadataStore(f"sqlite:///{path}")
    run_rows, param_rows, latest_rows, chunk_rows = [], [], [], []
    one_step = np.zeros(1, dtype="<i8").tobytes()
    for i in range(runs):
        run_id = _run_id(i)
        start = created_at(i)
        run_rows.append((run_id, run_name(i), "run", "finished", start, start + 5.0, start + 5.0, "bench", "bench-host"))
        for key, value in run_params(i, SEED).items():
            text = param_text(value)
            param_rows.append((run_id, key, text, param_number(text)))
        for key, value in run_metrics(i, SEED).items():
            latest_rows.append((run_id, key, value, 0, start + 1.0))
            chunk_rows.append((run_id, key, 1, 0, 0, one_step, np.array([value], dtype="<f8").tobytes(),
                               np.array([start + 1.0], dtype="<f8").tobytes()))
    big_id = _run_id(runs)
    big_start = created_at(runs)
    run_rows.append((big_id, BIG_RUN_NAME, "run", "finished", big_start, big_start + points / 1000.0,
                     big_start + points / 1000.0, "bench", "bench-host"))
    with store.write() as conn:
        raw = conn.connection.driver_connection
        raw.executemany(
            "INSERT INTO runs (id, name, kind, status, created_at, ended_at, heartbeat_at, user, host) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            run_rows,
        )
        raw.executemany("INSERT INTO params (run_id, key, value, value_num) VALUES (?, ?, ?, ?)", param_rows)
        raw.executemany(
            "INSERT INTO latest_metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)", latest_rows
        )
        raw.executemany(
            'INSERT INTO metric_chunks (run_id, key, count, first_step, last_step, steps, "values", timestamps) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            chunk_rows,
        )
    chunk = 10_000
    for first in range(0, points, chunk):
        steps = np.arange(first, min(points, first + chunk), dtype=np.int64)
        values = np.array([big_value(int(s)) for s in steps], dtype=np.float64)
        stamps = big_start + steps / 1000.0
        store.write_batch(segments=[MetricSegment(big_id, BIG_KEY, steps, values, stamps)])
    store.close()
    return {"runs": runs + 1, "points": points, "big_run_id": big_id, "seconds": time.perf_counter() - t0}



def _schema_key() -> str:
    """Changes whenever the store's schema does (cached stores are keyed by it)."""
    import hashlib

    from groundwork.storage import metadata, schema

    text = Path(schema.__file__).read_bytes() + metadata.HEAD_REVISION.encode()
    return hashlib.sha256(text).hexdigest()[:10]


def groundwork_store(runs: int, points: int, say: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """A working copy of the cached groundwork store (built on first use)."""
    cached = CACHE / f"ui-groundwork-r{runs}-p{points}-d{DATA_VERSION}-s{_schema_key()}.db"
    info: dict[str, Any] = {"cache": str(cached)}
    if not cached.exists():
        say(f"building the groundwork store ({runs:,} runs, {points:,}-point series; once, cached)")
        tmp = cached.with_name(cached.name + ".building")
        info["build"] = build_groundwork_store(tmp, runs, points)
        for leftover in tmp.parent.glob(tmp.name + "-*"):
            leftover.unlink()
        os.replace(tmp, cached)
    work = WORK / "groundwork" / "meta.db"
    _fresh_copy(cached, work)
    return work, info


def mlflow_store(python: Path, runs: int, points: int, say: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """A working copy of the cached MLflow store, built in MLflow's venv by peers/mlflow_ui.py."""
    version = peer_versions("mlflow").get("mlflow", "unknown")
    cached = CACHE / f"ui-mlflow-{version}-r{runs}-p{points}-d{DATA_VERSION}.db"
    meta = cached.with_suffix(".json")
    if not cached.exists() or not meta.exists():
        say(f"building the MLflow store ({runs:,} runs, {points:,}-point series; once, cached)")
        tmp = WORK / "mlflow-build" / "mlflow.db"
        out = subprocess.run(
            [str(python), str(PEER_SCRIPT), "build", "--db", str(tmp), "--runs", str(runs), "--points", str(points)],
            check=True, capture_output=True, text=True, env=_mlflow_env(),
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        cached.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(str(tmp) + "-wal")
        shutil.copyfile(tmp, cached)
        meta.write_text(json.dumps(result))
        shutil.rmtree(tmp.parent, ignore_errors=True)
    info = json.loads(meta.read_text())
    info["cache"] = str(cached)
    work = WORK / "mlflow" / "mlflow.db"
    _fresh_copy(cached, work)
    return work, info


def _fresh_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    for old in dest.parent.glob(dest.name + "*"):
        old.unlink()
    shutil.copyfile(source, dest)


def _mlflow_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GROUNDWORK_", "MLFLOW_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    return env


# ----------------------------------------------------------------------------------------------
# The servers (127.0.0.1, free ports, stopped by PID)
# ----------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(command: list[str], ready_path: str, port: int, log: Path, env: dict[str, str]) -> Iterator[str]:
    """Run a server command; yield its URL once ``ready_path`` answers 200; stop it (and its workers) after."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(url + ready_path, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start; log {log}:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        # The server's own workers share its new session; signal that group (ours alone).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# ----------------------------------------------------------------------------------------------
# What is timed
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Side:
    """How one UI is driven: URLs, and what "shown" means on it."""

    name: str
    table_url: str
    chart_url: str
    search_box: str
    chart_drawn: str  # a JS predicate (no arguments) that is true once the big chart has drawn

    def table_row(self, run_name_text: str) -> str:
        return f'text="{run_name_text}"'


def groundwork_side(url: str, big_id: str) -> Side:
    return Side(
        name="groundwork",
        table_url=f"{url}/runs",
        chart_url=f"{url}/runs/{big_id}?tab=charts",
        search_box="#filter",
        chart_drawn="() => !!document.querySelector('.chart[data-key=\"loss\"][data-drawn=\"true\"]')",
    )


def mlflow_side(url: str, experiment_id: str, big_id: str) -> Side:
    return Side(
        name="mlflow",
        table_url=f"{url}/#/experiments/{experiment_id}/runs",
        chart_url=f"{url}/#/experiments/{experiment_id}/runs/{big_id}/model-metrics",
        search_box='input[data-testid="search-box"]',
        # plotly's line path, with the points of the series in it
        chart_drawn="() => [...document.querySelectorAll('.js-plotly-plot .scatterlayer path.js-line')]"
        ".some((p) => (p.getAttribute('d') || '').split('L').length > 100)",
    )


def choose_filter(runs: int) -> tuple[str, str, str, int]:
    """A filter whose newest match is far down the unfiltered table (so seeing it proves the query ran).

    Returns (groundwork filter, MLflow filter, the expected first run's name, its unfiltered position).
    """
    for threshold in (0.99, 0.995, 0.98, 0.97, 0.95, 0.9):
        for i in range(runs - 1, -1, -1):
            if LR_CYCLE[i % 3] == 0.01 and run_metrics(i, SEED)["acc"] > threshold:
                position = runs - i  # 1-based among runs, after big-series at the top
                if position > 120 or threshold == 0.9:
                    return (f"params.lr = 0.01 and metrics.acc > {threshold}",
                            f"params.lr = '0.01' and metrics.acc > {threshold}", run_name(i), position)
                break
    raise RuntimeError("no run matches any candidate filter")


def measure(browser: Any, side: Side, newest: str, filter_text: str, expected: str, repeats: int,
            say: Callable[[str], None]) -> dict[str, Any]:
    """Cold-browser timings of the table, the filter and the chart; first (cold server) and median of repeats."""
    out: dict[str, Any] = {"table_s": [], "filter_s": [], "chart_s": []}
    for attempt in range(repeats + 1):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(120_000)
        t0 = time.perf_counter()
        page.goto(side.table_url, wait_until="commit")
        page.wait_for_selector(side.table_row(newest), state="visible")
        out["table_s"].append(time.perf_counter() - t0)
        box = page.locator(side.search_box)
        box.fill(filter_text)
        t0 = time.perf_counter()
        box.press("Enter")
        page.wait_for_selector(side.table_row(expected), state="visible")
        out["filter_s"].append(time.perf_counter() - t0)
        context.close()
        # A fresh context for the chart; the viewport grows by a pixel per attempt, so the chart asks the
        # server for a different number of points and never hits groundwork's cache of finished series.
        context = browser.new_context(viewport={"width": VIEWPORT["width"] + attempt, "height": VIEWPORT["height"]})
        page = context.new_page()
        page.set_default_timeout(180_000)
        t0 = time.perf_counter()
        page.goto(side.chart_url, wait_until="commit")
        page.wait_for_function(side.chart_drawn, polling="raf")
        out["chart_s"].append(time.perf_counter() - t0)
        if attempt == 0:
            shots = BENCH_DIR / "results" / "ui-screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / f"{side.name}-chart.png"))
        context.close()
        say(f"{side.name} #{attempt}: table {out['table_s'][-1]:.3f}s  filter {out['filter_s'][-1]:.3f}s  "
            f"chart {out['chart_s'][-1]:.3f}s")
    for key in ("table_s", "filter_s", "chart_s"):
        values = out[key]
        out[key.replace("_s", "")] = {"first": values[0], "median": statistics.median(values[1:]) if len(values) > 1 else values[0],
                                      "min": min(values), "all": values}
    return out


def launch_browser(playwright: Any) -> Any:
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium, or make system-deps)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats after the first (cold) one")
    ap.add_argument("--quick", action="store_true", help="10,000 runs, 100,000 points, 2 repeats")
    ap.add_argument("--skip-peer", action="store_true", help="groundwork only")
    ap.add_argument("--skip-ours", action="store_true", help="MLflow only")
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.points, args.repeats = 10_000, 100_000, 2

    def say(msg: str) -> None:
        print(f"[ui-bench] {msg}", file=sys.stderr, flush=True)

    from playwright.sync_api import sync_playwright

    big_id = _run_id(args.runs)
    newest = run_name(args.runs - 1)
    gw_filter, ml_filter, expected, position = choose_filter(args.runs)
    say(f"filter {gw_filter!r}: its newest match {expected} is row {position} of the unfiltered table")
    results: dict[str, Any] = {
        "runs": args.runs + 1, "points": args.points, "repeats": args.repeats,
        "filter": {"groundwork": gw_filter, "mlflow": ml_filter, "expected_first": expected, "unfiltered_position": position},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_before": os.getloadavg()},
        "chromium": CHROMIUM,
    }
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        results["chromium_version"] = browser.version
        try:
            if not args.skip_ours:
                store, info = groundwork_store(args.runs, args.points, say)
                results["groundwork_store"] = info
                port = _free_port()
                env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")}
                command = [sys.executable, "-m", "groundwork", "ui", "--port", str(port), "--store", f"sqlite:///{store}",
                           "--artifacts", str(store.parent / "artifacts")]
                with serving(command, "/api/v1", port, WORK / "groundwork.log", env) as url:
                    side = groundwork_side(url, big_id)
                    results["groundwork"] = measure(browser, side, newest, gw_filter, expected, args.repeats, say)
                    t0 = time.perf_counter()
                    with urllib.request.urlopen(f"{url}/api/v1/series?run={big_id}&key=loss&points=1501") as response:
                        response.read()
                    results["groundwork"]["series_api_s"] = time.perf_counter() - t0
            if not args.skip_peer:
                python = peer_python("mlflow", MLFLOW_REQUIREMENTS)
                store, info = mlflow_store(python, args.runs, args.points, say)
                results["mlflow_store"] = info
                results["mlflow_versions"] = {"mlflow": peer_versions("mlflow").get("mlflow")}
                port = _free_port()
                mlflow = python.parent / "mlflow"
                command = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{store}", "--default-artifact-root",
                           str(store.parent / "mlruns"), "--host", "127.0.0.1", "--port", str(port)]
                results["mlflow_command"] = " ".join(command)
                with serving(command, "/health", port, WORK / "mlflow.log", _mlflow_env()) as url:
                    side = mlflow_side(url, str(info["experiment_id"]), str(info["big_run_id"]))
                    results["mlflow"] = measure(browser, side, newest, ml_filter, expected, args.repeats, say)
        finally:
            browser.close()
    results["machine"]["load_after"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    missed = report(results)
    say(f"raw numbers: {args.output}")
    return 1 if (missed and args.fail_on_miss) else 0


def report(results: dict[str, Any]) -> bool:
    """Print the table; True when a target was missed."""
    from rich.console import Console
    from rich.table import Table

    ours, peer = results.get("groundwork"), results.get("mlflow")
    table = Table(title=f"UI: {results['runs']:,} runs, {results['points']:,}-point series (seconds; first = cold server, then median of {results['repeats']})")
    for column in ("what", "groundwork first", "groundwork median", "MLflow first", "MLflow median", "ratio (median)", "target", "met"):
        table.add_column(column, justify="right" if column != "what" else "left")
    missed = False
    chart_label = f"{results['points']:,}-point chart drawn"
    for key, label in (("table", "runs table, first page"), ("filter", "filtered query"), ("chart", chart_label)):
        o = ours[key] if ours else None
        p = peer[key] if peer else None
        ratio = p["median"] / o["median"] if o and p else None
        met = True
        if o is not None:
            met = o["median"] < TARGET_S
        if ratio is not None:
            met = met and ratio >= TARGET_RATIO
        missed = missed or not met
        table.add_row(
            label,
            f"{o['first']:.3f}" if o else "-", f"{o['median']:.3f}" if o else "-",
            f"{p['first']:.3f}" if p else "-", f"{p['median']:.3f}" if p else "-",
            f"{ratio:.1f}x" if ratio else "-", f"< {TARGET_S:.0f} s, >= {TARGET_RATIO:.0f}x",
            "[green]met[/]" if met else "[red]missed[/]",
        )
    Console(width=150).print(table)
    load = results["machine"]
    print(f"load average before {load['load_before'][0]:.2f}, after {load['load_after'][0]:.2f} on {load['cpus']} CPUs")
    return missed


if __name__ == "__main__":
    sys.exit(main())
