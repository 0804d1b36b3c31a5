"""The vendored npm files are checked against the lock; the bundle server answers only its own host."""

from __future__ import annotations

import http.client
import shutil
from pathlib import Path
from typing import Any

import pytest

from groundwork.engines.export.browser import BundleServer
from groundwork.engines.export.npm import NpmRuntime, pinned
from groundwork.errors import CorruptArtifact


def test_runtime_files_match_the_lock(npm_runtime: Any) -> None:
    lock = pinned("onnxruntime-web")
    assert npm_runtime.version("onnxruntime-web") == lock["version"] == "1.31.1"
    assert npm_runtime.verified["onnxruntime-web"]["integrity"] == lock["integrity"].strip()
    assert npm_runtime.file("onnxruntime-web", "dist/ort-wasm-simd-threaded.wasm").stat().st_size > 1_000_000


def test_a_changed_runtime_file_is_refused(npm_runtime: Any, tmp_path: Path) -> None:
    copy = tmp_path / "cache"
    package = copy / "node_modules" / "onnxruntime-web" / "dist"
    package.mkdir(parents=True)
    source = npm_runtime.root / "node_modules" / "onnxruntime-web" / "dist" / "ort.wasm.min.mjs"
    shutil.copyfile(source, package / "ort.wasm.min.mjs")
    runtime = NpmRuntime(copy, npm_runtime.verified)
    assert runtime.file("onnxruntime-web", "dist/ort.wasm.min.mjs").is_file()
    with (package / "ort.wasm.min.mjs").open("a") as handle:
        handle.write("\nfetch('https://example.invalid/');\n")
    with pytest.raises(CorruptArtifact, match="differs from the onnxruntime-web@1.31.1 tarball"):
        runtime.file("onnxruntime-web", "dist/ort.wasm.min.mjs")
    tampered = {**npm_runtime.verified, "onnxruntime-web": {**npm_runtime.verified["onnxruntime-web"], "integrity": "sha512-x"}}
    with pytest.raises(CorruptArtifact, match="was not verified"):
        NpmRuntime(copy, tampered).file("onnxruntime-web", "dist/ort.wasm.min.mjs")


def _get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


def test_bundle_server_checks_host_and_origin_and_stays_in_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model.js").write_text("export const x = 1;\n")
    (tmp_path / "secret.txt").write_text("outside the bundle\n")
    with BundleServer(folder) as server:
        status, headers = _get(server.url, "/model.js")
        assert status == 200 and headers["content-type"] == "text/javascript"
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["cross-origin-embedder-policy"] == "require-corp"
        assert _get(server.url, "/model.js", {"Host": "evil.example:80"})[0] == 403
        assert _get(server.url, "/model.js", {"Origin": "http://evil.example"})[0] == 403
        assert _get(server.url, "/../secret.txt")[0] == 404
        assert _get(server.url, "/%2e%2e/secret.txt")[0] == 404
        assert _get(server.url, "/__groundwork__/verify.html")[0] == 200
        assert _get(server.url, "/__groundwork__/model.js")[0] == 404
    assert server.url.startswith("http://127.0.0.1:")
