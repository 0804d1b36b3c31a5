"""The sweep page in Chromium: trials table with states, best-so-far, parallel coordinates, importance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import canvas_ink

from _ui_process import ui_process
from groundwork.config import Config

pytestmark = pytest.mark.browser


def objective(params: dict[str, Any]) -> float:
    import groundwork as gw

    for step in range(6):
        value = (params["x"] - 1) ** 2 + params["k"] + 1 / (step + 1)
        gw.log({"loss": value}, step=step)
    return value


@pytest.fixture(scope="module")
def sweep_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A store with one sweep (some trials pruned), served by ``groundwork ui`` (stopped by PID)."""
    import groundwork as gw

    home = tmp_path_factory.mktemp("sweep-ui")
    config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=str(home / "artifacts"))
    result = gw.sweep(objective, {"x": gw.uniform(-3, 3), "k": gw.choice([0, 1])}, trials=12, pruner="median",
                      metric="loss", seed=4, name="page-sweep", config=config)
    with ui_process(config, home) as ui:
        yield ui.url, result.id


def test_the_sweep_page(browser: Any, sweep_ui: tuple[str, str]) -> None:
    from playwright.sync_api import expect

    url, sweep_id = sweep_ui
    context = browser.new_context(viewport={"width": 1400, "height": 1200}, base_url=url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        tab.goto("/sweeps")
        tab.get_by_role("link", name="page-sweep").click()
        expect(tab.locator("h1")).to_have_text("page-sweep", timeout=60_000)  # importance: sklearn loads once
        rows = tab.locator("#sweep-trials tbody tr")
        expect(rows).to_have_count(12)
        statuses = rows.evaluate_all("(rows) => rows.map((r) => r.dataset.status)")
        assert set(statuses) <= {"finished", "pruned"} and "finished" in statuses
        if "pruned" in statuses:
            expect(tab.locator('#sweep-trials tr[data-status="pruned"]').first).to_contain_text("pruned at step")
        expect(tab.locator("#sweep-best-trial")).to_contain_text("Best: trial")
        # Optuna's importance of both parameters, as a table.
        expect(tab.locator("#sweep-importance tbody tr")).to_have_count(2)
        tab.wait_for_function("() => document.querySelector('#sweep-parallel canvas') && document.querySelector('#sweep-best canvas')")
        tab.wait_for_timeout(300)
        assert canvas_ink(tab, "#sweep-best") > 300
        assert canvas_ink(tab, "#sweep-parallel") > 300
        tab.locator("#sweep-trials tbody tr a").first.click()
        expect(tab).to_have_url(__import__("re").compile(r"/runs/[0-9a-f]{32}$"))
        shots = Path(__file__).resolve().parents[2] / "test-output" / "ui"
        shots.mkdir(parents=True, exist_ok=True)
        tab.goto(f"/sweeps/{sweep_id}")
        expect(tab.locator("#sweep-trials tbody tr")).to_have_count(12)
        tab.screenshot(path=str(shots / "sweep_page.png"), full_page=True)
    finally:
        context.close()
    assert not errors, errors
