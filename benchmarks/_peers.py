"""Separate virtual environments for the peers that groundwork is benchmarked against.

A peer (MLflow, BentoML, ...) is never installed into groundwork's own venv: its pins
would fight ours, and a benchmark must measure the peer as its users install it. Each
peer gets its own venv under ``<repo>/.bench/<name>-venv`` (``.bench/`` is git-ignored),
made once with ``python3 -m venv`` + pip and reused while its requirements are unchanged.

    from benchmarks._peers import peer_python, MLFLOW_REQUIREMENTS
    python = peer_python("mlflow", MLFLOW_REQUIREMENTS)
    subprocess.run([python, "benchmarks/peers/mlflow_tracking.py", ...])
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / ".bench"

# Exact pin. `pip index versions mlflow` lists 3.18.0 as the newest, but it cannot be
# installed: it needs mlflow-skinny==3.18.0, which the index does not have (skinny stops
# at 3.17.2). 3.17.2 is the newest 3.x that resolves; move up when 3.18's skinny lands.
# The full `mlflow` package (not mlflow-skinny): it is what a team installs to get the
# SQLAlchemy/SQLite tracking store, and it brings sqlalchemy and alembic with it.
MLFLOW_VERSION = "3.17.2"
MLFLOW_REQUIREMENTS = [f"mlflow=={MLFLOW_VERSION}"]

# Packages a peer venv must never pull in. MLflow does not need torch; if a resolver ever
# tries to bring it (hundreds of MB), the install fails instead of silently growing.
FORBIDDEN = ("torch", "torchvision", "tensorflow")

_STAMP = ".groundwork-peer.json"


def _say(msg: str) -> None:
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time per venv (two benchmark invocations may race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def venv_dir(name: str) -> Path:
    return BENCH_DIR / f"{name}-venv"


def _read_stamp(venv: Path) -> dict[str, object] | None:
    try:
        data = json.loads((venv / _STAMP).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def peer_versions(name: str) -> dict[str, str]:
    """``{package: version}`` installed in a peer venv (from its stamp), for reports."""
    stamp = _read_stamp(venv_dir(name)) or {}
    frozen = stamp.get("installed", {})
    return dict(frozen) if isinstance(frozen, dict) else {}


def _run(cmd: Sequence[str | os.PathLike[str]]) -> None:
    _say("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True)


def _base_python() -> str:
    """The interpreter that makes the venv: ``python3`` on PATH, else this one's base."""
    found = shutil.which("python3")
    if found and Path(found).resolve() != Path(sys.executable).resolve():
        return found
    # Running from inside a venv: let venv pick the base interpreter itself.
    return sys.executable


def peer_python(name: str, requirements: list[str]) -> Path:
    """The python of the peer venv ``.bench/<name>-venv`` with ``requirements`` installed.

    Made on first use (progress printed to stderr) and cached: a stamp file records the
    requirements it was built for; a venv with no stamp (a build that died) or a different
    one is removed and built again.
    """
    venv = venv_dir(name)
    python = venv / "bin" / "python"
    wanted = sorted(requirements)
    with _locked(BENCH_DIR / f".{name}-venv.lock"):
        stamp = _read_stamp(venv)
        if stamp is not None and stamp.get("requirements") == wanted and python.exists():
            return python
        if venv.exists():
            why = "incomplete" if stamp is None else "built for other requirements"
            _say(f"removing {venv} ({why})")
            shutil.rmtree(venv)
        t0 = time.perf_counter()
        _say(f"creating peer venv {venv} for {', '.join(wanted)} (once; a few minutes)")
        _run([_base_python(), "-m", "venv", venv])
        constraints = venv / "forbidden-constraints.txt"
        constraints.write_text("".join(f"{pkg}<0\n" for pkg in FORBIDDEN))
        try:
            _run([python, "-m", "pip", "install", "--progress-bar", "off", "-c", constraints, *wanted])
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"could not install {wanted} into {venv} (see pip's output above; if it "
                f"complains about {', '.join(FORBIDDEN)}, a dependency tried to pull one of "
                f"those in, which a tracking benchmark must not need)"
            ) from exc
        frozen = subprocess.run(
            [str(python), "-m", "pip", "list", "--format=json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        installed = {p["name"].lower(): p["version"] for p in json.loads(frozen)}
        (venv / _STAMP).write_text(
            json.dumps(
                {
                    "requirements": wanted,
                    "installed": installed,
                    "python": sys.version.split()[0],
                    "built_at": time.time(),
                },
                indent=1,
                sort_keys=True,
            )
        )
        _say(f"peer venv ready in {time.perf_counter() - t0:.0f}s: {python}")
        return python


if __name__ == "__main__":
    # `python benchmarks/_peers.py mlflow` builds (or reports) the MLflow peer venv.
    which = sys.argv[1] if len(sys.argv) > 1 else "mlflow"
    reqs = {"mlflow": MLFLOW_REQUIREMENTS}.get(which)
    if reqs is None:
        sys.exit(f"unknown peer {which!r}; known: mlflow")
    print(peer_python(which, reqs))
    print(json.dumps(peer_versions(which), indent=1, sort_keys=True))
