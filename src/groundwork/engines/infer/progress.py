"""The partial folder beside an output being written: plan, per-chunk journal, partial sums.

``mask.zarr`` is written as ``mask.zarr.partial/``::

    plan.json              what is being computed (input digest, model, window, chunks...)
    data.zarr | data.npy   the output, chunk by chunk
    journal-<part>.jsonl   one line per finished chunk (with the digest of its bytes) and per
                           saved partial sum; appended, flushed, never rewritten
    sums/c<id>.v<b>.npy    the blended sum of a chunk not finished yet, through batch <b>

A line is written only after what it records is on disk, so after ``kill -9`` the
journal says which chunks are finished (their bytes are checked against the recorded
digests before resuming) and which partial sums are complete; the last line may be
cut short and is then ignored. Several journals (one per Ray region) are read together.
When the output is finished, ``data.*`` is renamed to the output's path and the
folder removed: an output path holds either nothing or a finished output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.errors import Conflict, InvalidInput

PLAN = "plan.json"
SUMS = "sums"
SUFFIX = ".partial"
PLAN_FORMAT = 1
_SUM_FILE = re.compile(r"^c(\d+)\.v(-?\d+)\.npy$")


def partial_folder(output: Path) -> Path:
    return output.with_name(output.name + SUFFIX)


def chunk_digest(block: np.ndarray) -> str:
    """A checksum of a chunk's bytes as stored (C order): CRC-32 and length, enough to catch a
    torn or damaged chunk (not an adversary), at memory speed."""
    data = np.ascontiguousarray(block)
    return f"{zlib.crc32(data.reshape(-1).view(np.uint8).data):08x}-{data.nbytes}"


@dataclass
class State:
    """What the journals say: finished chunks (id -> digest) and saved partial sums (id -> batch)."""

    finished: dict[int, str] = field(default_factory=dict)
    sums: dict[int, int] = field(default_factory=dict)


class Progress:
    """One output's partial folder."""

    def __init__(self, folder: Path, part: str = "local") -> None:
        self.folder = folder
        self.part = part
        self._lock = threading.Lock()
        self._journal: Any = None

    # -- plan ------------------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.folder / PLAN).is_file()

    def create(self, plan: dict[str, Any]) -> None:
        """Start a fresh partial folder holding ``plan``."""
        try:
            self.folder.mkdir(parents=True, exist_ok=False)
            (self.folder / SUMS).mkdir()
            _atomic_write(self.folder / PLAN, json.dumps({"format": PLAN_FORMAT, **plan}, indent=2, sort_keys=True))
        except OSError as exc:
            raise InvalidInput(f"cannot write the output next to {self.folder.parent}: {exc.strerror or exc}",
                               hint="choose an output in a folder you can write to") from None

    def plan(self) -> dict[str, Any]:
        try:
            data = json.loads((self.folder / PLAN).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{self.folder / PLAN} cannot be read ({exc})",
                               hint="remove the folder (or pass --restart) to start over") from None
        if not isinstance(data, dict) or int(data.get("format", 0)) > PLAN_FORMAT:
            raise InvalidInput(f"{self.folder / PLAN} was written by a newer groundwork", hint="upgrade groundwork")
        return data

    def check_same(self, plan: dict[str, Any], *, accept_input_change: bool = False) -> None:
        """Refuse to resume work planned with other settings (or, unless accepted, another input)."""
        old, new = _flat(self.plan()), _flat(plan)
        diffs = [f"{key}: {_short(old.get(key))} then, {_short(new[key])} now" for key in sorted(new)
                 if old.get(key) != new[key] and not (accept_input_change and key == "input.digest")]
        if diffs:
            only_input = all(d.startswith("input.digest") for d in diffs)
            raise Conflict(
                f"{self.folder} holds an unfinished output made with other settings ({'; '.join(diffs[:3])})",
                hint="pass --resume to keep its finished chunks if you repaired the input, or --restart to start over"
                if only_input else "rerun with the same settings to resume, or pass --restart to start over",
            )

    def discard(self) -> None:
        self.close()
        if self.folder.exists():
            shutil.rmtree(self.folder)

    # -- journal ---------------------------------------------------------------------------------
    def state(self) -> State:
        """The finished chunks and saved sums every journal in the folder records."""
        state = State()
        for path in sorted(self.folder.glob("journal-*.jsonl")):
            for record in _records(path):
                if "d" in record:
                    state.finished[int(record["d"])] = str(record["h"])
                    state.sums.pop(int(record["d"]), None)
                elif "s" in record and int(record["s"]) not in state.finished:
                    cid, version = int(record["s"]), int(record["v"])
                    if version >= state.sums.get(cid, -1) and self.sum_path(cid, version).is_file():
                        state.sums[cid] = version
        return state

    def _append(self, records: Iterable[dict[str, Any]], sync: bool = False) -> None:
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        if not text:
            return
        with self._lock:
            if self._journal is None:
                self._journal = open(self.folder / f"journal-{self.part}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            self._journal.write(text)
            self._journal.flush()
            if sync:
                os.fsync(self._journal.fileno())

    def finished(self, done: Iterable[tuple[int, str]]) -> None:
        """Record chunks whose bytes are written; their partial sums are no longer needed."""
        items = list(done)
        self._append({"d": cid, "h": digest} for cid, digest in items)
        for cid, _ in items:
            for path in self.sum_files(cid):
                path.unlink(missing_ok=True)

    def sync(self) -> None:
        self._append([], sync=False)
        with self._lock:
            if self._journal is not None:
                os.fsync(self._journal.fileno())

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    # -- partial sums ----------------------------------------------------------------------------
    def sum_path(self, cid: int, version: int) -> Path:
        return self.folder / SUMS / f"c{cid}.v{version}.npy"

    def sum_files(self, cid: int) -> list[Path]:
        return list((self.folder / SUMS).glob(f"c{cid}.v*.npy"))

    def save_sum(self, cid: int, version: int, block: np.ndarray, previous: int | None) -> None:
        """Keep chunk ``cid``'s sum through batch ``version`` (written, renamed, then journaled)."""
        target = self.sum_path(cid, version)
        fd, tmp = tempfile.mkstemp(prefix=".sum-", suffix=".npy", dir=self.folder / SUMS)
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, block, allow_pickle=False)
        os.replace(tmp, target)
        self._append([{"s": cid, "v": version}])
        if previous is not None and previous != version:
            self.sum_path(cid, previous).unlink(missing_ok=True)

    def load_sum(self, cid: int, version: int) -> np.ndarray:
        path = self.sum_path(cid, version)
        try:
            block: np.ndarray = np.load(path, allow_pickle=False)
            return block
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"partial sum {path} cannot be read ({exc})",
                               hint="pass --restart to start over") from None

    def tidy(self, state: State) -> None:
        """Remove partial sums the journals do not point to (left by a run killed mid-write)."""
        for path in (self.folder / SUMS).iterdir():
            match = _SUM_FILE.match(path.name)
            if match is None or state.sums.get(int(match[1])) != int(match[2]):
                path.unlink(missing_ok=True)


def _records(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the last line of a journal killed mid-write
            if isinstance(record, dict):
                yield record


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _flat(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"grid": {"window": [96, 96, 96]}}`` as ``{"grid.window": [96, 96, 96]}`` (JSON values)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out.update(_flat(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.loads(json.dumps(item))
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."
