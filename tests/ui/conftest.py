"""Browser tests: a real ``groundwork ui`` process over a populated store, driven in Debian's Chromium.

Chromium comes from Debian (``apt-get install chromium``; ``make system-deps``), never
from Playwright's own download. Without it the tests skip with the reason. Every test
leaves a screenshot in ``test-output/ui/`` (git-ignored), and fails on any JavaScript
error the page throws.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "server"))
sys.path.insert(0, str(TESTS / "ui"))

from _browser import CHROMIUM, CHROMIUM_ARGS, UIServer  # noqa: E402
from _ui_store import populate  # noqa: E402

from _servers import free_port  # noqa: E402
from groundwork.config import Config  # noqa: E402

SCREENSHOTS = TESTS.parent / "test-output" / "ui"


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    """``groundwork ui`` on a free 127.0.0.1 port over a store ``_ui_store.populate`` filled; stopped by PID."""
    home = tmp_path_factory.mktemp("ui")
    config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=str(home / "artifacts"))
    recorded = populate(config, home / "files")
    port = free_port()
    log = home / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "groundwork", "ui", "--host", "127.0.0.1", "--port", str(port),
             "--store", config.store_url, "--artifacts", config.artifacts_url],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/api/v1", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"groundwork ui did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    try:
        yield UIServer(url, config, recorded, home)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module, not per session: Playwright's sync API keeps an asyncio loop running in this
    # thread while it is open, and later tests on the same worker call asyncio.run.
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium, or make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, ui_server: UIServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (empty cache and storage) per test; screenshot and JS errors checked after."""
    scheme = "dark" if "dark" in request.node.name else "light"
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=scheme, base_url=ui_server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # A 4xx answer is expected where a test provokes one (a bad filter); Chromium logs it as an error.
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "status of 4" not in msg.text else None)
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    try:
        tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
