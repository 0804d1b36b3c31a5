"""The open-file limit and connection cap of a serving process (the slow-client tests are in tests/security)."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from groundwork.engines.serve.limits import RESERVED_FILES, connection_cap, overflow
from groundwork.errors import InvalidInput


def test_the_cap_and_its_overflow_fit_well_inside_the_open_files() -> None:
    assert connection_cap(1024, 1_048_576) == 1024
    for open_files in (1024, 4096, 20_000):
        cap = connection_cap(1_000_000, open_files)
        assert cap + overflow(cap) + RESERVED_FILES <= open_files
    with pytest.raises(InvalidInput, match="may open only 200 files"):
        connection_cap(1024, 200)


def test_the_soft_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 512:
        pytest.skip(f"the hard open-file limit ({hard}) leaves nothing to raise")
    code = ("import resource; from groundwork.engines.serve.limits import raise_open_file_limit; "
            "now = raise_open_file_limit(); print(now, *resource.getrlimit(resource.RLIMIT_NOFILE))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))).stdout.split()
    now, new_soft, new_hard = (int(v) for v in out)
    assert new_hard == hard and new_soft == now and now > 512
    assert new_soft == hard or hard == resource.RLIM_INFINITY
