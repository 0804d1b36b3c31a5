"""Pipelines benchmark: how fast a 20-step pipeline is found fully cached, against ZenML.

    .venv/bin/python benchmarks/pipelines.py              # groundwork and ZenML (peer venv made once)
    .venv/bin/python benchmarks/pipelines.py --no-peer    # groundwork only

The workload is the same for both tools: a chain of 20 trivial steps (``s0`` returns
0, each next step adds 1), defined in a generated module, run twice on a fresh store
(SQLite + a local artifact folder for groundwork; ZenML's default local SQLite store
and local artifact store, with step caching on, its default). Measured:

* the **cached run**: the whole second call (and a few more), from the call to the
  returned result: every step's cache key computed, looked up, found, and the cached
  runs recorded. The median of the repeats is reported;
* the **cold run**: the first call (nothing cached; groundwork's local executor starts
  its worker processes), and a cold run on warm workers (``cache=False``), as per-step
  overhead against calling the 20 plain functions;
* a fresh ``groundwork pipeline run`` process for the cached case (interpreter start,
  imports and all), for the record.

ZenML runs in its own venv (``.bench/zenml-venv``, see ``benchmarks/_peers.py``) and
reports the same numbers from the same kind of generated module. Results are printed
and written to ``.bench/results/pipelines.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STEPS = 20
REPEATS = 5
ZENML_VERSION = "0.98.0"
ZENML_REQUIREMENTS = [f"zenml[local]=={ZENML_VERSION}"]  # `local`: the SQLite store a laptop uses


def module_source(flavor: str, steps: int = STEPS) -> str:
    """The same chain of trivial steps, decorated for groundwork or for ZenML."""
    if flavor == "groundwork":
        head = "import groundwork as gw\n\nstep = gw.step\npipeline = gw.pipeline\n"
    else:
        head = "from zenml import pipeline, step\n"
    parts = [head, "\n@step\ndef s0() -> int:\n    return 0\n"]
    for i in range(1, steps):
        parts.append(f"\n@step\ndef s{i}(x: int) -> int:\n    return x + 1\n")
    body = "\n".join(f"    x = s{i}(x)" for i in range(1, steps))
    parts.append(f"\n@pipeline\ndef chain():\n    x = s0()\n{body}\n    return x\n" if flavor == "groundwork"
                 else f"\n@pipeline(enable_cache=True)\ndef chain():\n    x = s0()\n{body}\n")
    return "".join(parts)


def plain_calls(module: Any, steps: int = STEPS, repeats: int = 2000) -> float:
    """Seconds for calling the 20 plain functions in a chain (the floor a pipeline adds to)."""
    fns = [getattr(module, f"s{i}").fn for i in range(steps)]
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            x = fns[0]()
            for fn in fns[1:]:
                x = fn(x)
        best = min(best, (time.perf_counter() - started) / repeats)
    return best


def bench_groundwork(work: Path) -> dict[str, Any]:
    import groundwork as gw
    from groundwork.config import Config
    from groundwork.core.pipelines import load_pipeline

    source = work / "gw_chain.py"
    source.write_text(module_source("groundwork"))
    config = Config(store_url=f"sqlite:///{work / 'meta.db'}", artifacts_url=str(work / "artifacts"))
    chain = load_pipeline(f"{source}:chain")
    module = sys.modules["gw_chain"]

    started = time.perf_counter()
    first = gw.run_pipeline(chain, config=config)
    cold = time.perf_counter() - started
    assert first.value == STEPS - 1 and first.count("finished") == STEPS, first

    warm_cold = []
    for _ in range(3):
        started = time.perf_counter()
        again = gw.run_pipeline(chain, config=config, cache=False)
        warm_cold.append(time.perf_counter() - started)
        assert again.count("finished") == STEPS

    cached = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = gw.run_pipeline(chain, config=config)
        cached.append(time.perf_counter() - started)
        assert result.fully_cached and result.value == STEPS - 1, result

    env = {**os.environ, **config.child_environ()}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "groundwork", "pipeline", "run", f"{source}:chain"],
                          env=env, capture_output=True, text=True, cwd=work, check=True)
    fresh_process = time.perf_counter() - started
    assert "fully cached" in done.stderr, done.stderr

    plain = plain_calls(module)
    cold_warm = statistics.median(warm_cold)
    return {
        "cached_median_s": statistics.median(cached),
        "cached_min_s": min(cached),
        "cached_all_s": cached,
        "cold_first_s": cold,
        "cold_warm_workers_s": cold_warm,
        "plain_calls_s": plain,
        "per_step_overhead_cold_s": (cold_warm - plain) / STEPS,
        "per_step_overhead_first_s": (cold - plain) / STEPS,
        "fresh_process_cached_s": fresh_process,
    }


ZENML_DRIVER = """
import json, os, statistics, sys, time
sys.path.insert(0, os.getcwd())
import zen_chain
from zenml.client import Client

repeats = int(sys.argv[1])
steps = int(sys.argv[2])

def last_value(run):
    return run.steps[f"s{steps - 1}"].output.load()

started = time.perf_counter()
first = zen_chain.chain()
cold = time.perf_counter() - started
cached = []
for _ in range(repeats):
    started = time.perf_counter()
    run = zen_chain.chain()
    cached.append(time.perf_counter() - started)
statuses = {str(s.status) for s in run.steps.values()}
print("GW-RESULT " + json.dumps({
    "cold_first_s": cold,
    "cached_median_s": statistics.median(cached),
    "cached_min_s": min(cached),
    "cached_all_s": cached,
    "cached_statuses": sorted(statuses),
    "last_value": last_value(run),
}))
"""


def bench_zenml(work: Path) -> dict[str, Any]:
    from benchmarks._peers import peer_python, peer_versions

    python = peer_python("zenml", ZENML_REQUIREMENTS)
    folder = work / "zenml"
    folder.mkdir()
    (folder / "zen_chain.py").write_text(module_source("zenml"))
    (folder / "driver.py").write_text(textwrap.dedent(ZENML_DRIVER))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GROUNDWORK_", "ZENML_"))},
        "ZENML_CONFIG_PATH": str(folder / "config"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_LOGGING_VERBOSITY": "ERROR",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "AUTO_OPEN_DASHBOARD": "false",
    }
    zenml_cli = Path(python).parent / "zenml"
    subprocess.run([str(zenml_cli), "init"], cwd=folder, env=env, check=True, capture_output=True, text=True)
    done = subprocess.run([str(python), "driver.py", str(REPEATS), str(STEPS)], cwd=folder, env=env,
                          capture_output=True, text=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("GW-RESULT ")), None)
    if done.returncode != 0 or line is None:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"the ZenML run failed (exit {done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(line[len("GW-RESULT "):])
    result["version"] = peer_versions("zenml").get("zenml", ZENML_VERSION)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-peer", action="store_true", help="skip ZenML")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gw-bench-pipelines-") as tmp:
        work = Path(tmp)
        os.chdir(work)
        gw = bench_groundwork(work)
        peer: dict[str, Any] | None = None
        peer_error = None
        if not args.no_peer:
            try:
                peer = bench_zenml(work)
            except Exception as exc:  # report it, keep groundwork's numbers
                peer_error = str(exc)

    ms = 1000.0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nPipelines: a chain of {STEPS} trivial steps ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {load})\n")
    print(f"{'':36}{'groundwork':>14}{'ZenML ' + (peer or {}).get('version', ''):>18}")
    rows = [
        ("fully cached run (median)", gw["cached_median_s"], peer and peer["cached_median_s"]),
        ("fully cached run (best)", gw["cached_min_s"], peer and peer["cached_min_s"]),
        ("cold run (first, starts workers)", gw["cold_first_s"], peer and peer["cold_first_s"]),
        ("cold run (warm workers, no cache)", gw["cold_warm_workers_s"], None),
        ("plain function calls (20)", gw["plain_calls_s"], None),
    ]
    for label, ours, theirs in rows:
        their_text = f"{theirs * ms:>15.1f} ms" if theirs is not None else f"{'-':>18}"
        ours_text = f"{ours * ms:>11.1f} ms" if ours >= 0.001 else f"{ours * 1e6:>11.1f} µs"
        print(f"{label:36}{ours_text}{their_text}")
    print(f"\nper-step overhead of a cold run vs plain calls: {gw['per_step_overhead_cold_s'] * ms:.2f} ms/step "
          f"(warm workers), {gw['per_step_overhead_first_s'] * ms:.2f} ms/step (first run, worker start included)")
    print(f"fresh `groundwork pipeline run` process, fully cached: {gw['fresh_process_cached_s']:.2f} s "
          "(interpreter start and imports included)")
    target_ok = gw["cached_median_s"] < 0.5
    print(f"\ntarget: cached run < 0.5 s .......... {gw['cached_median_s'] * ms:.0f} ms  {'MET' if target_ok else 'MISSED'}")
    ratio = None
    if peer is not None:
        ratio = peer["cached_median_s"] / gw["cached_median_s"]
        print(f"target: >= 10x faster than ZenML .... {ratio:.1f}x  {'MET' if ratio >= 10 else 'MISSED'}")
        print(f"(ZenML cached-run step statuses: {', '.join(peer['cached_statuses'])})")
    elif peer_error:
        print(f"ZenML could not be measured: {peer_error}")

    results = REPO / ".bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "pipelines.json").write_text(json.dumps(
        {"steps": STEPS, "groundwork": gw, "zenml": peer, "zenml_error": peer_error, "ratio_cached": ratio,
         "python": platform.python_version(), "load_average": os.getloadavg(), "time": time.time()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
