"""Memory stays flat as the volume grows: a 1024^3 float32 volume (4 GiB) in under 1 GiB.

The child process's peak resident memory (VmHWM) over a 1024^3 volume must stay under
1 GiB and within 1.1x of its peak over a 256^3 volume. Both runs get the same chunk-sum
cache (``cache_mb``): a volume with fewer chunks than the cache holds uses less, which is
not what is measured here; everything else (windows, batches, reads, writes) must not
grow with the volume. Where this machine lets the test make a memory cgroup, the 1024^3
run happens under a 2 GiB limit too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _models import model_ref

pytestmark = pytest.mark.slow

CHILD = """
import json, sys
import numpy as np
import zarr
from groundwork.engines.infer import infer_volume
model, src, out = sys.argv[1:4]
result = infer_volume(model, src, out, window=(128, 128, 128), overlap=0.125, batch=2, cache_mb=40, record=False)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
c = np.load(src, mmap_mode="r").shape[1] // 2
x = np.load(src, mmap_mode="r")[0, c:c + 10, c - 5:c + 5, c - 10:c]
y = zarr.open_array(out, mode="r")[0, c:c + 10, c - 5:c + 5, c - 10:c]
print(json.dumps({"hwm_kb": int(status["VmHWM"].split()[0]), "windows": result.windows,
                  "estimate": result.memory["total"] + result.memory["process_rss"],
                  "error": float(np.max(np.abs(y - (x * 0.5 + 0.25))))}))
"""


def make_volume(path: Path, n: int) -> None:
    """A (1, n, n, n) float32 .npy written plane by plane (never whole in this process)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (1, n, n, n)})
        plane = (np.arange(n * n, dtype=np.float32) % 251).reshape(n, n) / np.float32(251)
        for z in range(n):
            fh.write((plane + np.float32(z / n)).tobytes())


def memory_cgroup(limit: int) -> tuple[Path | None, str]:
    """A fresh memory cgroup under this process's own (v2, else v1) limited to ``limit`` bytes, or why not."""
    unified = Path("/sys/fs/cgroup")
    try:
        if "memory" in (unified / "cgroup.controllers").read_text().split():
            own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                       if line.startswith("0::"))
            parent = unified / own.strip().lstrip("/")
            group = parent / f"gw-infer-test-{os.getpid()}"
            group.mkdir()
            (group / "memory.max").write_text(str(limit))
            (group / "memory.swap.max").write_text("0")
            return group, ""
    except (OSError, StopIteration) as exc:
        reason = f"cgroup v2: {exc}"
    else:
        reason = "cgroup v2 has no memory controller here"
    v1 = unified / "memory"
    try:
        own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                   if line.split(":", 2)[1] == "memory")
        group = v1 / own.strip().lstrip("/") / f"gw-infer-test-{os.getpid()}"
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit))
        return group, ""
    except (OSError, StopIteration, IndexError) as exc:
        return None, f"{reason}; cgroup v1: {exc}"


def run_child(src: Path, out: Path, cgroup: Path | None = None) -> dict[str, float]:
    join: Callable[[], None] | None = None
    if cgroup is not None:
        procs = cgroup / "cgroup.procs"

        def join() -> None:
            procs.write_text(str(os.getpid()))

    done = subprocess.run([sys.executable, "-c", CHILD, model_ref("pointwise3d"), str(src), str(out)],
                          capture_output=True, text=True, timeout=1800, preexec_fn=join)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_peak_memory_is_flat_from_256_to_1024_cubed(tmp_path: Path) -> None:
    small, large = tmp_path / "v256.npy", tmp_path / "v1024.npy"
    make_volume(small, 256)
    at_256 = run_child(small, tmp_path / "o256.zarr")
    make_volume(large, 1024)
    cgroup, why_not = memory_cgroup(2 * 1024**3)
    if cgroup is None:
        print(f"the 1024^3 run is not under a 2 GiB memory cgroup: {why_not}")
    try:
        at_1024 = run_child(large, tmp_path / "o1024.zarr", cgroup)
    finally:
        large.unlink()
        shutil.rmtree(tmp_path / "o1024.zarr", ignore_errors=True)
        if cgroup is not None:
            cgroup.rmdir()
    print(f"peak RSS: 256^3 {at_256['hwm_kb'] / 1024:.0f} MiB, 1024^3 {at_1024['hwm_kb'] / 1024:.0f} MiB "
          f"(estimate {at_1024['estimate'] / 2**20:.0f} MiB){' under a 2 GiB cgroup' if cgroup else ''}")
    assert at_1024["windows"] == 9**3 and at_256["windows"] == 3**3
    assert at_1024["error"] < 1e-5 and at_256["error"] < 1e-5
    assert at_1024["hwm_kb"] * 1024 < 1024**3
    assert at_1024["hwm_kb"] <= 1.1 * at_256["hwm_kb"]
