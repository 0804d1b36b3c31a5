"""Fixtures for the infer tests: tiny models (``_models.py``) and small generated volumes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

#: ``path:factory`` references a child process can import.
MODELS = Path(__file__).parent / "_models.py"


def model_ref(factory: str) -> str:
    return f"{MODELS}:{factory}"
