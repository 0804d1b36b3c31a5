"""Fixtures for the export tests: one Chromium per session, a store with the example models registered.

Chromium is Debian's (``make system-deps``) driven by Playwright; onnxruntime-web comes from
the npm cache ``make setup`` fills (``python -m groundwork.engines.export.npm``). Where either
cannot be had the browser tests skip with the reason. The models are the examples' own:
``examples/export/digits.py`` (a PyTorch MLP on scikit-learn's digits) and
``examples/export/minilm.py`` (the real all-MiniLM-L6-v2, for the slow tests).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _export_helpers import Models, example  # noqa: E402

from groundwork.config import Config  # noqa: E402


@pytest.fixture(scope="session")
def npm_runtime() -> Any:
    from groundwork.engines.export.npm import ensure_runtime
    from groundwork.errors import GroundworkError

    try:
        return ensure_runtime()
    except GroundworkError as exc:
        pytest.skip(f"onnxruntime-web could not be installed from npm: {exc.one_line()}")


@pytest.fixture(scope="module")
def export_browser(npm_runtime: Any) -> Iterator[Any]:
    """One headless Chromium (offline but for 127.0.0.1) for the export checks of a module.

    Not one per session: Playwright's sync API keeps an asyncio loop running in this thread
    while it is open, and later tests on the same worker call asyncio.run.
    """
    from groundwork.engines.export.browser import BrowserSession
    from groundwork.errors import ConfigError

    session = BrowserSession()
    try:
        session.__enter__()
    except ConfigError as exc:
        pytest.skip(f"no browser for the web export tests: {exc.one_line()}")
    try:
        yield session
    finally:
        session.__exit__(None, None, None)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """A store holding digits@production (the example's PyTorch MLP) and its held-out rows."""
    home = tmp_path_factory.mktemp("export-models")
    config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=str(home / "artifacts"))
    digits = example("digits")
    digits.register(config)
    _, _, x_test, y_test = digits.digits_data()
    return Models(config, home, digits.write_check_data(home / "digits-check.npz"), (x_test, y_test))


@pytest.fixture(scope="session")
def minilm_models(models: Models) -> Models:
    """The same store with minilm@production (the real all-MiniLM-L6-v2 as ONNX) added."""
    minilm = example("minilm")
    minilm.register(models.config)
    minilm.write_check_data(models.home / "minilm-check.npz")
    return models
