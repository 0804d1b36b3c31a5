"""The CPU a measurement was taken on: model name, core count, and the features that matter."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: cpuinfo flags that change which kernels an engine can use, in the order shown.
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@dataclass(frozen=True)
class HardwareInfo:
    cpu_model: str
    cores: int
    features: tuple[str, ...]
    machine: str

    @property
    def has_bf16(self) -> bool:
        return "avx512_bf16" in self.features or "amx_bf16" in self.features

    @property
    def has_amx(self) -> bool:
        return "amx_tile" in self.features

    @property
    def has_vnni(self) -> bool:
        return "avx512_vnni" in self.features or "avx_vnni" in self.features or "amx_int8" in self.features

    @property
    def tag(self) -> str:
        """A short name for the CPU, for tagging a model version made for it."""
        isa = "amx" if self.has_amx else "avx512" if "avx512f" in self.features else "avx2"
        return f"cpu-{isa}-{self.cores}c"

    def summary(self) -> str:
        return f"{self.cpu_model}, {self.cores} cores, {' '.join(self.features) or 'no vector extensions found'}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features)
        data["tag"] = self.tag
        return data


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def detect(cpuinfo: str | None = None) -> HardwareInfo:
    """Read /proc/cpuinfo (or the given text) for the CPU model and its flags."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return HardwareInfo(
        cpu_model=model or platform.processor() or "unknown CPU",
        cores=usable_cores(),
        features=tuple(f for f in RELEVANT_FLAGS if f in flags),
        machine=platform.machine(),
    )
