"""Fixtures for optimize tests: scikit-learn digits, a tiny CNN trained on them, a tiny BERT.

Everything is small on purpose (a few thousand parameters, a second of training).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from optimize_testlib import Digits, TinyEmbedder, load_digits_split, train_cnn  # noqa: E402


@pytest.fixture(scope="session")
def digits() -> Digits:
    return load_digits_split()


@pytest.fixture(scope="session")
def trained_cnn(digits: Digits) -> Any:
    return train_cnn(digits)


@pytest.fixture(scope="session")
def tiny_bert() -> Any:
    return TinyEmbedder().eval()
