"""Fixtures for tests/core: the session's one local Ray, as tests/core/pipelines defines it (reused, not copied)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_core_pipelines_conftest", Path(__file__).parent / "pipelines" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_pipelines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pipelines)

ray_session = _pipelines.ray_session
