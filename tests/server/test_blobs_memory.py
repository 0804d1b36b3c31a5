"""Memory stays flat on both ends of an artifact transfer through a team server (slow).

The server runs in a process of its own, the client in another; each end's peak resident set
(``VmHWM`` in ``/proc/<pid>/status``) is read after an upload and a download of a sparse file,
first of 64 MiB, then of 2 GiB (the issue's bar: under 200 MB on both ends), and the peak must
not grow with the size. About 90 s and 4 GiB of temporary disk on two cores;
``GROUNDWORK_MEMORY_TEST_MIB=640`` makes the second file smaller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from _team_app import sparse_file, team_server_process  # noqa: E402
from groundwork.config import Config  # noqa: E402

MIB = 1024 * 1024
LIMIT = 200 * MIB
#: How much more the larger transfer may take at its peak than the smaller one (buffers, not bytes).
GROWTH = 24 * MIB
#: The larger size, in MiB (read at import: the suite's fixtures hide GROUNDWORK_* variables from tests).
LARGE_MIB = int(os.environ.get("GROUNDWORK_MEMORY_TEST_MIB", "2048"))

_CLIENT = """
import hashlib, json, sys, time
from pathlib import Path
from groundwork.storage.artifacts import ArtifactStore, hash_file
from groundwork.storage.http_blobs import HttpBlobStore

url, token, source, dest = sys.argv[1:5]
store = ArtifactStore(HttpBlobStore(url, token))
started = time.perf_counter()
info = store.put_file(Path(source))
uploaded = time.perf_counter()
store.restore(info.digest, Path(dest))
restored = time.perf_counter()
assert hash_file(Path(dest))[0] == info.digest
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"digest": info.digest, "peak": peak, "upload_s": uploaded - started,
                  "download_s": restored - uploaded}))
"""


def peak_rss(pid: int) -> int:
    """The peak resident set size of process ``pid`` so far, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.mark.slow
def test_a_large_file_goes_up_and_down_in_flat_memory_on_both_ends(tmp_path: Path) -> None:
    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))
    results = {}
    with team_server_process(config) as server:
        assert server.pid is not None
        token = server.token("ann", "vision", "editor")
        for mib in (64, LARGE_MIB):
            source = sparse_file(tmp_path / f"source-{mib}.bin", mib * MIB, seed=mib)
            dest = tmp_path / f"dest-{mib}.bin"
            run = subprocess.run([sys.executable, "-c", _CLIENT, server.url, token, str(source), str(dest)],
                                 capture_output=True, text=True, timeout=1800)
            assert run.returncode == 0, run.stderr[-2000:]
            client = json.loads(run.stdout)
            results[mib] = {"client": client["peak"], "server": peak_rss(server.pid)}
            assert dest.stat().st_size == mib * MIB
            for path in (source, dest, *Path(config.artifacts_url).rglob(client["digest"])):
                path.unlink()  # disk stays small
    small, large = results[64], results[LARGE_MIB]
    shown = {mib: {end: f"{rss / MIB:.0f} MiB" for end, rss in r.items()} for mib, r in results.items()}
    print(f"peak resident set by size (MiB): {shown}")
    for end in ("client", "server"):
        assert large[end] < LIMIT, shown
        assert large[end] - small[end] < GROWTH, shown
