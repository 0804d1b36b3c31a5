"""Resuming: after ``kill -9`` at several points, the same command finishes with byte-identical output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _models import model_ref, tiny3d

from groundwork.engines.infer import infer_volume
from groundwork.errors import Conflict, InvalidInput

WINDOW = (16, 16, 16)
SETTINGS = {"window": WINDOW, "overlap": 0.5, "batch": 2, "chunks": (8, 8, 8), "record": False}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def finished_chunks(partial: Path) -> int:
    count = 0
    for journal in partial.glob("journal-*.jsonl"):
        count += sum(1 for line in journal.read_text().splitlines() if line.startswith('{"d"'))
    return count


def command(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "groundwork", "infer", model_ref("slow3d"), "--input", str(src), "--output", str(out),
            "--window", "16,16,16", "--overlap", "0.5", "--batch", "2", "--chunks", "8,8,8", "--no-record",
            "--cache-mb", "0.05", "--checkpoint-s", "0"]


@pytest.mark.slow
def test_kill_9_at_several_points_then_resume_gives_the_same_bytes(tmp_path: Path) -> None:
    x = np.random.default_rng(7).normal(size=(1, 40, 32, 64)).astype(np.float32)
    np.save(tmp_path / "ct.npy", x)
    reference = tmp_path / "reference.zarr"
    infer_volume(tiny3d(), tmp_path / "ct.npy", reference, cache_mb=0.05, checkpoint_s=0, **SETTINGS)  # type: ignore[arg-type]
    total = 5 * 4 * 8
    out = tmp_path / "out.zarr"
    partial = tmp_path / "out.zarr.partial"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed_at = []
    for fraction in (0.1, 0.45, 0.8):
        proc = subprocess.Popen(command(tmp_path / "ct.npy", out), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env)
        try:
            while finished_chunks(partial) < fraction * total and proc.poll() is None:
                time.sleep(0.01)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        finally:
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err.decode()
        killed_at.append(finished_chunks(partial))
        assert not out.exists()  # the output path holds nothing until the output is whole
    assert killed_at == sorted(killed_at) and killed_at[0] < killed_at[-1] < total
    done = subprocess.run(command(tmp_path / "ct.npy", out), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr and "chunks already done" in done.stdout
    assert tree(out) == tree(reference)
    assert not partial.exists()


class Stop(Exception):
    pass


def stop_after(ticks: int):  # type: ignore[no-untyped-def]
    seen = []

    def on_tick(tick: object) -> None:
        seen.append(tick)
        if len(seen) >= ticks:
            raise Stop()

    return on_tick


def test_a_damaged_finished_chunk_is_redone_on_resume(tmp_path: Path) -> None:
    x = np.random.default_rng(8).normal(size=(1, 24, 24, 40)).astype(np.float32)
    np.save(tmp_path / "ct.npy", x)
    infer_volume(tiny3d(), tmp_path / "ct.npy", tmp_path / "reference.npy", **SETTINGS)  # type: ignore[arg-type]
    out = tmp_path / "out.npy"
    with pytest.raises(Stop):
        infer_volume(tiny3d(), tmp_path / "ct.npy", out, on_tick=stop_after(8), **SETTINGS)  # type: ignore[arg-type]
    partial = tmp_path / "out.npy.partial"
    journal = [json.loads(line) for line in (partial / "journal-local.jsonl").read_text().splitlines()]
    first = next(r["d"] for r in journal if "d" in r)
    data = np.load(partial / "data.npy", mmap_mode="r+")
    data[0, 0:8, 0:8, 0:8] = 123.0  # chunk 0: written and journaled, now damaged
    data.flush()
    del data
    assert first == 0
    result = infer_volume(tiny3d(), tmp_path / "ct.npy", out, **SETTINGS)  # type: ignore[arg-type]
    assert result.resumed and result.chunks_redone == 1 and result.chunks_skipped > 0
    assert out.read_bytes() == (tmp_path / "reference.npy").read_bytes()


def test_resuming_with_other_settings_or_input_is_refused(tmp_path: Path) -> None:
    x = np.random.default_rng(9).normal(size=(1, 24, 24, 40)).astype(np.float32)
    np.save(tmp_path / "ct.npy", x)
    out = tmp_path / "out.npy"
    with pytest.raises(Stop):
        infer_volume(tiny3d(), tmp_path / "ct.npy", out, on_tick=stop_after(3), **SETTINGS)  # type: ignore[arg-type]
    other = {**SETTINGS, "overlap": 0.25}
    with pytest.raises(Conflict, match=r"unfinished output made with other settings \(grid.overlap: 0.5 then, 0.25 now\)") as refused:
        infer_volume(tiny3d(), tmp_path / "ct.npy", out, **other)  # type: ignore[arg-type]
    assert refused.value.hint and "--restart" in refused.value.hint
    np.save(tmp_path / "ct.npy", x + 1)
    with pytest.raises(Conflict, match=r"\(input.digest: "):
        infer_volume(tiny3d(), tmp_path / "ct.npy", out, **SETTINGS)  # type: ignore[arg-type]
    fresh = infer_volume(tiny3d(), tmp_path / "ct.npy", out, restart=True, **other)  # type: ignore[arg-type]
    assert not fresh.resumed and out.exists()
    with pytest.raises(InvalidInput, match="no unfinished output to resume"):
        infer_volume(tiny3d(), tmp_path / "ct.npy", tmp_path / "new.npy", resume=True, **SETTINGS)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="already exists"):
        infer_volume(tiny3d(), tmp_path / "ct.npy", out, **other)  # type: ignore[arg-type]
