"""End to end in headless Chromium: runs table, run page, compare, lineage, models, pipelines, live."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from _browser import UIServer, canvas_ink
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def column_values(page: Any, header: str) -> list[str]:
    """The texts of the runs table's column whose header reads ``header`` (e.g. "metrics.loss")."""
    return page.evaluate(
        """(header) => {
            const heads = [...document.querySelectorAll('#runs-table thead th')].map((th) => th.textContent.replace(/[▲▼]/g, '').trim());
            const index = heads.indexOf(header);
            return [...document.querySelectorAll('#runs-table tbody tr')].map((tr) => tr.children[index].textContent.trim());
        }""",
        header,
    )


def test_runs_table_filter_sort_and_open(page: Any, ui_server: UIServer) -> None:
    page.goto("/runs")
    rows = page.locator("#runs-table tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 12
    expect(page.locator("#runs-count")).to_contain_text("runs")

    page.fill("#filter", "params.lr = 0.01 and metrics.acc > 0.5")
    page.press("#filter", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("train-lr0.01")
    assert "filter=params.lr" in page.url
    expect(page.locator("#runs-count")).to_have_text("1 run match")

    page.fill("#filter", "metrics.acc >> 0.9")
    page.press("#filter", "Enter")
    error = page.locator("#filter-error-box")
    expect(error).to_contain_text("column 14")
    caret = error.locator("pre").inner_text().splitlines()[1]
    assert caret == " " * 13 + "^"
    expect(page.locator("#filter")).to_have_attribute("aria-invalid", "true")

    page.fill("#filter", "tags.team = 'vision'")
    page.press("#filter", "Enter")
    expect(rows).to_have_count(3)
    expect(error).to_have_count(0)
    page.locator("#runs-table thead th", has_text="loss").locator("button").click()
    expect(page.locator("#runs-table thead th", has_text="loss")).to_have_attribute("aria-sort", "descending")
    losses = [float(v) for v in column_values(page, "metrics.loss")]
    assert losses == sorted(losses, reverse=True)
    page.locator("#runs-table thead th", has_text="loss").locator("button").click()
    expect(page.locator("#runs-table thead th", has_text="loss")).to_have_attribute("aria-sort", "ascending")
    losses = [float(v) for v in column_values(page, "metrics.loss")]
    assert losses == sorted(losses)
    assert "order=metrics.loss" in page.url

    page.get_by_role("link", name="train-lr0.1", exact=True).click()
    expect(page.locator("h1")).to_have_text("train-lr0.1")
    assert page.url.endswith(f"/runs/{ui_server.recorded.train[0]}")
    page.go_back()
    expect(rows).to_have_count(3)


def test_run_page_chart_draws_and_tabs_work(page: Any, ui_server: UIServer) -> None:
    run = ui_server.recorded.train[0]
    page.goto(f"/runs/{run}?tab=charts")
    chart = page.locator('.chart[data-key="loss"][data-drawn="true"]')
    expect(chart).to_be_visible()
    assert canvas_ink(page, '.chart[data-key="loss"]') > 500
    page.check("#log-y")
    page.locator("#x-mode").select_option("relative")
    page.wait_for_timeout(300)
    assert canvas_ink(page, '.chart[data-key="acc"]') > 500

    page.get_by_role("tab", name="Logs").click()
    expect(page.locator("#logs")).to_contain_text("epoch 29 loss")
    expect(page.locator("#logs .stderr")).to_contain_text("warning")
    search = page.get_by_label("Search the log")
    search.fill("learning rate")
    search.press("Enter")
    expect(page.locator("#logs mark")).to_have_text("learning rate")

    page.get_by_role("tab", name=re.compile("Artifacts")).click()
    page.locator("tr", has_text="plots/confusion.png").get_by_role("button", name="Preview").click()
    image = page.locator("#artifact-preview img")
    expect(image).to_be_visible()
    page.wait_for_function("() => document.querySelector('#artifact-preview img').naturalWidth > 0")
    page.locator("tr", has_text="eval/predictions.csv").get_by_role("button", name="Preview").click()
    expect(page.locator("#artifact-preview table")).to_contain_text("label")
    page.locator("tr", has_text="model_dir").get_by_role("button", name="Files").click()
    expect(page.locator("#artifact-preview")).to_contain_text("weights.txt")

    page.get_by_role("tab", name="Overview").click()
    expect(page.locator("#lineage-neighbours")).to_contain_text("prepare-data")
    page.get_by_role("tab", name="Code").click()
    expect(page.locator("#tabpanel")).to_contain_text("Code version")


def test_failed_run_shows_its_error(page: Any, ui_server: UIServer) -> None:
    page.goto(f"/runs/{ui_server.recorded.failed}")
    expect(page.locator(".page-head .badge.failed")).to_be_visible()
    expect(page.locator("#tabpanel")).to_contain_text("FloatingPointError")


def test_compare_two_selected_runs(page: Any, ui_server: UIServer) -> None:
    page.goto("/runs?filter=tags.team%20%3D%20'vision'")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(3)
    page.get_by_label("Select train-lr0.1").check()
    page.get_by_label("Select train-lr0.01").check()
    expect(page.locator("#compare-selected")).to_have_text("Compare (2)")
    page.click("#compare-selected")
    expect(page.locator("h1")).to_have_text("Compare runs")
    expect(page.locator("#compare-runs .chip")).to_have_count(2)
    expect(page.locator('#compare-charts .chart[data-key="loss"][data-drawn="true"]')).to_be_visible()
    assert canvas_ink(page, '#compare-charts .chart[data-key="loss"]') > 500
    differing = page.locator('#params-diff tr[data-differs="true"]')
    expect(differing).to_have_count(2)  # lr and optimizer; epochs is the same
    page.check("#only-diff")
    expect(page.locator("#params-diff tbody tr")).to_have_count(2)
    page.wait_for_function("() => document.querySelector('#parallel canvas')")
    page.wait_for_timeout(300)
    assert canvas_ink(page, "#parallel") > 500


def test_lineage_graph_pan_zoom_and_open(page: Any, ui_server: UIServer) -> None:
    rec = ui_server.recorded
    page.goto(f"/lineage?ref={rec.train[0]}")
    graph = page.locator('#lineage-graph[data-drawn="true"]')
    expect(graph).to_be_visible()
    assert canvas_ink(page, "#lineage-graph") > 500
    expect(page.locator("#lineage-nodes")).to_contain_text("prepare-data")
    zoom = page.evaluate("() => document.querySelector('#lineage-graph').cy.zoom()")
    page.get_by_role("button", name="Zoom in").click()
    assert page.evaluate("() => document.querySelector('#lineage-graph').cy.zoom()") > zoom
    page.get_by_role("button", name="Fit").click()
    # Click a node on the canvas: its details appear; double-click opens it.
    box = graph.bounding_box()
    position = page.evaluate(f"() => document.querySelector('#lineage-graph').cy.getElementById('run:{rec.prep}').renderedPosition()")
    page.mouse.click(box["x"] + position["x"], box["y"] + position["y"])
    expect(page.locator("#lineage-details h2")).to_have_text("prepare-data")
    page.mouse.dblclick(box["x"] + position["x"], box["y"] + position["y"])
    expect(page.locator("h1")).to_have_text("prepare-data")


def test_lineage_of_a_model_alias(page: Any, ui_server: UIServer) -> None:
    if ui_server.recorded.model is None:
        pytest.skip("scikit-learn is not installed: no model was registered")
    page.goto("/lineage?ref=digits@production")
    expect(page.locator('#lineage-graph[data-drawn="true"]')).to_be_visible()
    expect(page.locator("#lineage-nodes")).to_contain_text("train-model-C")


def test_promote_a_version_and_see_the_alias_move(page: Any, ui_server: UIServer) -> None:
    if ui_server.recorded.model is None:
        pytest.skip("scikit-learn is not installed: no model was registered")
    page.goto("/models")
    page.get_by_role("link", name="digits").click()
    chip = page.locator('#aliases [data-alias="production"]')
    expect(chip).to_be_visible()
    current = int(chip.get_attribute("data-version"))
    target = 2 if current == 1 else 1
    page.locator(f'button[data-promote="{target}"]').click()
    dialog = page.locator("#promote-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#promote-alias")).to_be_focused()
    page.fill("#promote-reason", "better held-out accuracy")
    page.click("#promote-confirm")
    expect(dialog).to_be_hidden()
    expect(chip).to_have_attribute("data-version", str(target))
    expect(page.locator(f'tr[data-version="{target}"] [data-alias="production"]')).to_be_visible()
    first = page.locator("#history tbody tr").first
    expect(first).to_contain_text("better held-out accuracy")
    expect(first).to_contain_text(f"v{current}")


def test_promote_needs_a_reason(page: Any, ui_server: UIServer) -> None:
    if ui_server.recorded.model is None:
        pytest.skip("scikit-learn is not installed: no model was registered")
    page.goto("/models/digits")
    page.locator('button[data-promote="1"]').click()
    page.click("#promote-confirm")
    expect(page.locator("#promote-dialog")).to_contain_text("Give an alias and a reason")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#promote-dialog")).to_be_hidden()


def test_pipeline_dag_shows_every_steps_state(page: Any, ui_server: UIServer) -> None:
    page.goto("/pipelines")
    page.get_by_role("link", name="digits-pipeline").click()
    expect(page.locator('#pipeline-graph[data-drawn="true"]')).to_be_visible()
    assert canvas_ink(page, "#pipeline-graph") > 500
    for step, state in (("ingest", "ran"), ("features", "ran"), ("train", "failed")):
        expect(page.locator(f'tr[data-step="{step}"]')).to_have_attribute("data-state", state)
    edges = page.evaluate("() => document.querySelector('#pipeline-graph').cy.edges().map((e) => [e.source().id(), e.target().id()])")
    assert sorted(map(tuple, edges)) == [("features", "train"), ("ingest", "features")]


def test_optimize_report(page: Any, ui_server: UIServer) -> None:
    page.goto(f"/runs/{ui_server.recorded.optimize}")
    page.get_by_role("tab", name="Optimize report").click()
    expect(page.locator("#optimize-table tbody tr")).to_have_count(3)
    expect(page.locator("#optimize-table tr.selected")).to_contain_text("ort-int8")
    expect(page.locator("#tabpanel")).to_contain_text("fastest within the quality budget")
    page.wait_for_function("() => document.querySelector('#speed-quality canvas')")
    page.wait_for_timeout(300)
    assert canvas_ink(page, "#speed-quality") > 300
    # the optimizer's own plot (speed_vs_quality.png, as engines/optimize/record.py stores it)
    page.wait_for_function("() => [...document.querySelectorAll('#tabpanel img')].some((i) => i.naturalWidth > 100)")


def test_keyboard_only(page: Any, ui_server: UIServer) -> None:
    page.goto("/runs?filter=tags.team%20%3D%20'vision'")
    expect(page.locator("#runs-table tbody tr")).to_have_count(3)
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("/")
    expect(page.locator("#filter")).to_be_focused()
    page.keyboard.press("Escape")
    first = page.locator("#runs-table tbody tr").first
    expect(first).to_be_focused()
    page.keyboard.press("ArrowDown")
    second = page.locator("#runs-table tbody tr").nth(1)
    expect(second).to_be_focused()
    page.keyboard.press("x")
    expect(page.locator("#runs-table tbody tr").nth(1)).to_have_class(re.compile("selected"))
    page.keyboard.press("ArrowUp")
    page.keyboard.press("x")
    expect(page.locator("#compare-selected")).to_have_text("Compare (2)")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).not_to_have_text("Runs")
    page.get_by_role("tab", name="Overview").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name=re.compile("Charts"))).to_have_attribute("aria-selected", "true")
    expect(page.locator('.chart[data-drawn="true"]').first).to_be_visible()
    page.go_back()
    expect(page.locator("#compare-selected")).to_have_text("Compare (2)")  # the table is back (its keys with it)
    page.keyboard.press("c")
    expect(page.locator("h1")).to_have_text("Compare runs")


def test_dark_mode_and_theme_toggle(page: Any, ui_server: UIServer) -> None:
    page.goto(f"/runs/{ui_server.recorded.train[0]}?tab=charts")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert sum(int(c) for c in re.findall(r"\d+", background)[:3]) < 120
    expect(page.locator('.chart[data-drawn="true"]').first).to_be_visible()
    page.click("#theme-toggle")  # auto -> light
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    expect(page.locator('.chart[data-drawn="true"]').first).to_be_visible()
    page.click("#theme-toggle")  # light -> dark
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")


def test_live_run_updates_without_reload(page: Any, ui_server: UIServer) -> None:
    from groundwork.core.tracking import start_run

    run = start_run(name="live-training", config=ui_server.config, capture_code=False)
    try:
        for step in range(3):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run.log_text("starting\n")
        run.flush()
        page.goto(f"/runs/{run.id}?tab=charts")
        expect(page.locator(".page-head .badge.running")).to_be_visible()
        info = page.locator('.chart-card:has([data-key="loss"]) [data-role="info"]')
        expect(info).to_have_text("3 points")
        for step in range(3, 8):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run.log_text("epoch 7 done\n")
        run.flush()
        expect(info).to_have_text("8 points", timeout=20_000)
        page.get_by_role("tab", name="Logs").click()
        run.log_text("epoch 8 done\n")
        run.flush()
        expect(page.locator("#logs")).to_contain_text("epoch 8 done", timeout=20_000)
    finally:
        run.end()
    expect(page.locator(".page-head .badge.finished")).to_be_visible(timeout=20_000)


def test_a_long_series_draws_downsampled_and_zoom_fetches_detail(page: Any, ui_server: UIServer) -> None:
    from groundwork.core.tracking import start_run

    n = 300_000
    steps = np.arange(n)
    with start_run(name="long-series", config=ui_server.config, capture_code=False) as run:
        run.log_points("loss", (np.exp(-steps / 60_000) + 0.01 * np.sin(steps / 50)).tolist(), steps.tolist())
    page.goto(f"/runs/{run.id}?tab=charts")
    expect(page.locator('.chart[data-key="loss"][data-drawn="true"]')).to_be_visible()
    expect(page.locator('.chart-card:has([data-key="loss"]) [data-role="info"]')).to_contain_text("300,000 points")
    assert canvas_ink(page, '.chart[data-key="loss"]') > 500
    with page.expect_response(lambda r: "/api/v1/series" in r.url and "min_step" in r.url) as detail:
        page.get_by_role("button", name="Zoom in on loss").click()
        page.get_by_role("button", name="Zoom in on loss").click()
    assert detail.value.ok


def test_a_fully_cached_pipeline_run(page: Any, ui_server: UIServer) -> None:
    rec = ui_server.recorded
    page.goto(f"/pipelines/{rec.numbers_cached}")
    expect(page.locator('#pipeline-graph[data-drawn="true"]')).to_be_visible()
    for step in ("make", "double", "total", "total_2"):
        expect(page.locator(f'tr[data-step="{step}"]')).to_have_attribute("data-state", "cached")
    assert page.evaluate("() => document.querySelector('#pipeline-graph').cy.nodes().length") == 4
    page.locator('tr[data-step="make"] td').nth(3).get_by_role("link").click()
    expect(page.locator(".page-head .badge.cached")).to_be_visible()
    expect(page.locator(".page-head")).to_contain_text("make")


def test_code_tab_highlights_the_uncommitted_diff(page: Any, ui_server: UIServer, tmp_path: Any, monkeypatch: Any) -> None:
    import subprocess

    from groundwork.core.tracking import start_run

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "train.py").write_text("lr = 0.1\nepochs = 3\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    (repo / "train.py").write_text("lr = 0.01\nepochs = 3\n")
    monkeypatch.chdir(repo)
    with start_run(name="dirty-checkout", config=ui_server.config) as run:
        pass
    page.goto(f"/runs/{run.id}?tab=code")
    expect(page.locator("#tabpanel")).to_contain_text("main")
    expect(page.locator("#diff .del")).to_have_text("-lr = 0.1")
    expect(page.locator("#diff .add")).to_have_text("+lr = 0.01")
    added, removed = (page.eval_on_selector(f"#diff .{c}", "(e) => getComputedStyle(e).backgroundColor") for c in ("add", "del"))
    assert added != removed  # highlighted, each in its own colour


def test_choose_columns_and_sort_by_an_attribute(page: Any, ui_server: UIServer) -> None:
    page.goto("/runs?filter=tags.team%20%3D%20'vision'")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(3)
    page.click("#columns-button")
    chooser = page.get_by_role("dialog", name="Choose columns")
    expect(chooser.locator('label[data-key="tags.team"]')).to_be_visible()
    checked = chooser.locator("input[type=checkbox]:checked")
    while checked.count():
        checked.first.uncheck()
    chooser.get_by_label("Search keys").fill("team")
    expect(chooser.locator('label[data-key="params.lr"]')).to_be_hidden()
    chooser.locator('label[data-key="tags.team"] input').check()
    chooser.get_by_role("button", name="Show columns").click()
    heads = page.locator("#runs-table thead th")
    expect(heads.last).to_have_text(re.compile(r"tags\.team"))
    expect(page.locator("#runs-table thead th", has_text="params.")).to_have_count(0)
    assert column_values(page, "tags.team") == ["vision"] * 3
    assert "col=tags.team" in page.url

    page.locator("#runs-table thead th", has_text="Name").locator("button").click()
    expect(page.locator("#runs-table thead th", has_text="Name")).to_have_attribute("aria-sort", "ascending")
    names = column_values(page, "Name")
    assert names == sorted(names) and len(names) == 3
    page.locator("#runs-table thead th", has_text="Name").locator("button").click()
    expect(page.locator("#runs-table thead th", has_text="Name")).to_have_attribute("aria-sort", "descending")
    assert column_values(page, "Name") == sorted(names, reverse=True)
