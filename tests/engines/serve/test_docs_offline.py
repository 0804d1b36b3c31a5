"""``/docs`` works offline: Swagger UI is vendored, checksummed and served by the model server (issue #10 item 2)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from groundwork.engines.serve import background_server
from groundwork.engines.serve.openapi import DOCS_ASSETS

from .conftest import Registry

STATIC = Path(__file__).resolve().parents[3] / "src" / "groundwork" / "engines" / "serve" / "static"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def docs_url(registry: Registry) -> Iterator[str]:
    with background_server(["digits@production", "table"], config=registry.config) as url:
        yield url


def _listed_digests() -> dict[str, str]:
    listed = (STATIC / "VENDORED.md").read_text()
    return {name: digest for digest, name in re.findall(r"`([0-9a-f]{64})  ([^`]+)`", listed)}


def test_every_vendored_file_is_listed_with_its_digest_and_licence() -> None:
    digests = _listed_digests()
    vendored = sorted(p.name for p in STATIC.glob("swagger-ui*"))
    assert sorted(digests) == vendored and len(vendored) == 2
    for name, digest in digests.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, (
            f"{name} changed: vendored files are copied unchanged from npm")
    for licence in ("swagger-ui-LICENSE", "swagger-ui-NOTICE", "swagger-ui-bundle.js.LICENSE.txt"):
        assert (STATIC / "licenses" / licence).stat().st_size > 0


def test_docs_names_no_other_site_and_every_asset_is_served_as_vendored(docs_url: str) -> None:
    page = httpx.get(f"{docs_url}/docs")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert not [r for r in references if re.match(r"(?i)(https?:)?//", r)], references
    assets = [r for r in references if r.startswith("/docs/")]
    assert sorted(a.removeprefix("/docs/") for a in assets) == sorted(DOCS_ASSETS)
    digests = _listed_digests()
    for asset in assets:
        name = asset.removeprefix("/docs/")
        response = httpx.get(f"{docs_url}{asset}")
        assert response.status_code == 200 and "immutable" in response.headers["cache-control"]
        assert response.content == (STATIC / name).read_bytes()
        if name in digests:
            assert hashlib.sha256(response.content).hexdigest() == digests[name]
    assert httpx.get(f"{docs_url}/docs/swagger-ui-4.0.0.css").status_code == 404
    assert httpx.get(f"{docs_url}/docs/VENDORED.md").status_code == 404  # only the assets, nothing else of the folder


@pytest.mark.browser
@pytest.mark.slow
def test_docs_render_the_operations_with_every_other_site_blocked(docs_url: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium, or make system-deps)")
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    errors: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(docs_url + "/"):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.route("**/*", route)
            page.goto(f"{docs_url}/docs")
            page.wait_for_selector('.opblock-summary-path:has-text("/v1/models/digits/predict")', timeout=60_000)
            operations = page.locator(".opblock-summary-path").all_inner_texts()
            page.locator(".opblock-summary", has_text="/v1/models/digits/predict").click()
            page.locator("button:has-text('Try it out')").click()  # the example body, posted from the page itself
            page.locator("button:has-text('Execute')").click()
            answer = page.locator(".live-responses-table tr.response .response-col_status").first
            answer.wait_for(timeout=60_000)
            status = answer.inner_text().strip()
            body = page.locator(".live-responses-table tr.response .microlight").first.inner_text()
        finally:
            browser.close()
    assert "/v1/models/digits/predict" in operations and "/v1/models/table/predict" in operations
    assert status == "200" and '"model_version": 1' in body  # its Origin is its own: answered
    assert blocked == [] and errors == []
