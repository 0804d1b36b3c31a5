"""Splitting one output into regions on Ray gives the output a single process gives.

Run with: unshare -n bash -c 'ip link set lo up && exec "$@"' _ .venv/bin/pytest -m ray tests/engines/infer
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _models import model_ref

from groundwork.config import Config
from groundwork.engines.infer import infer_volume

pytestmark = pytest.mark.ray


def test_regions_on_ray_give_the_single_process_output(ray_session: Any, tmp_path: Path) -> None:
    x = np.random.default_rng(11).normal(size=(2, 1, 40, 24, 32)).astype(np.float32)  # two volumes
    np.save(tmp_path / "ct.npy", x)
    settings: dict[str, Any] = {"window": (16, 16, 16), "overlap": 0.25, "batch": 3, "chunks": (8, 8, 8),
                                "record": False, "threads": 1}
    here = infer_volume(model_ref("tiny3d"), tmp_path / "ct.npy", tmp_path / "here.npy", **settings)
    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))
    split = infer_volume(model_ref("tiny3d"), tmp_path / "ct.npy", tmp_path / "ray.npy", parts=3, config=config,
                         **settings)
    assert split.parts == 3 and here.parts == 1
    assert split.chunks_written == here.chunks_written == 2 * 5 * 3 * 4
    assert split.windows >= here.windows  # border windows are run by both neighbours
    np.testing.assert_array_equal(np.load(tmp_path / "ray.npy"), np.load(tmp_path / "here.npy"))
