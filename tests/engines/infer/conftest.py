"""The infer tests import their tiny models from ``_models.py`` beside them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# The suite's one local Ray (2 CPUs, loopback-only namespace or skipped with the reason).
from tests.core.pipelines.conftest import ray_session  # noqa: E402,F401
