"""The Monitor pages in Chromium: monitored models, one alias's drift over time, latency, errors, crossings, lineage."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import canvas_ink

from _monitor_data import log_two_routes
from _ui_process import ui_process

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def monitor_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``groundwork ui`` over a store with a prediction log of digits@production and @candidate (stopped by PID)."""
    home = tmp_path_factory.mktemp("monitor-ui")
    config = log_two_routes(home)
    with ui_process(config, home) as ui:
        yield ui.url


def test_the_monitor_page_of_a_drifted_alias(browser: Any, monitor_ui: str) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1200}, base_url=monitor_ui)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        tab.goto("/monitor")
        expect(tab.locator("#monitored tbody tr")).to_have_count(1)
        tab.get_by_role("link", name="@candidate").click()
        expect(tab.locator("h1")).to_have_text("digits@candidate")
        expect(tab.locator("#monitor-crossings li")).to_have_count(1)
        expect(tab.locator("#monitor-crossings li").first).to_contain_text("drift: pixel_10: PSI")
        drifted = tab.locator('#monitor-features tr[data-drifted="true"]')
        expect(drifted).to_have_count(1)
        expect(drifted.first).to_have_attribute("data-feature", "pixel_10")
        expect(tab.locator("#monitor-traffic")).to_contain_text("1,790")
        expect(tab.locator("#monitor-reference")).to_contain_text("found through lineage")
        expect(tab.locator("#monitor-reference")).to_contain_text("target column label")
        expect(tab.locator("#monitor-path")).to_contain_text("made from: model digits/2")
        # drift per feature over time, latency over time, requests and errors over time: all drawn
        tab.wait_for_function("() => ['#monitor-drift', '#monitor-latency', '#monitor-errors']"
                              ".every((s) => document.querySelector(s + ' canvas'))")
        tab.wait_for_timeout(300)
        for chart in ("#monitor-drift", "#monitor-latency", "#monitor-errors"):
            assert canvas_ink(tab, chart) > 300, chart
        shots = Path(__file__).resolve().parents[2] / "test-output" / "ui"
        shots.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(shots / "monitor_page.png"), full_page=True)
        # the served version's lineage, one click away
        lineage = tab.locator("#monitor-lineage")
        expect(lineage).to_have_attribute("href", "/lineage?ref=digits%40candidate")
        lineage.click()
        expect(tab).to_have_url(re.compile(r"/lineage\?ref=digits%40candidate$"))
        # the calm alias: nothing crossed; the model page links here
        tab.goto("/models/digits")
        tab.locator('.chip[data-alias="production"] a', has_text="monitor").click()
        expect(tab.locator("h1")).to_have_text("digits@production")
        expect(tab.locator("#monitor-crossings")).to_contain_text("None: no feature drifted")
        expect(tab.locator('#monitor-features tr[data-drifted="true"]')).to_have_count(0)
        # a window with nothing in it
        tab.get_by_role("link", name="1 hour").click()
        expect(tab).to_have_url(re.compile(r"since=1h$"))
        expect(tab.locator("h1")).to_have_text("digits@production")
    finally:
        context.close()
    assert not errors, errors


def test_an_unknown_alias_shows_the_error(browser: Any, monitor_ui: str) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=monitor_ui)
    tab = context.new_page()
    try:
        tab.goto("/monitor/digits@nowhere")
        expect(tab.locator("#main")).to_contain_text("has no alias 'nowhere'", timeout=30_000)
    finally:
        context.close()
