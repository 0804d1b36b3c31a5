"""``--target web``: a self-contained folder that runs the model in a browser, checked in Chromium.

The folder::

    model.onnx        the graph, at the chosen precision
    model.js          ES module: load(), predict(inputs) (and tokenize(texts) with --tokenizer)
    schema.json       inputs and outputs (names, dtypes, shapes) and where things are
    example.json      the version's registered example (what index.html starts with)
    index.html        a demo page: edit inputs, predict, see the answer and the time
    runtime/          onnxruntime-web (WASM; with --webgpu also its WebGPU build), from npm
    tokenizer/        with --tokenizer: @huggingface/tokenizers and the tokenizer files
    README.md         how to serve and use it
    verification.json how it answered against the source model (written when it passed)

Every JavaScript and WebAssembly file under ``runtime/`` and ``tokenizer/`` comes from the
npm packages pinned in ``npm/package-lock.json``, each checked against the lock's
integrity (:mod:`groundwork.engines.export.npm`). Nothing is fetched at run time.

:func:`check_in_browser` serves the folder on 127.0.0.1, opens it in headless Chromium
with every other address unreachable, runs the check rows through ``model.js``
(one WASM thread), times one-row predictions with one and several threads (and on
WebGPU where the browser offers an adapter), and reports what the page tried to
fetch from elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.engines.export.browser import BrowserSession, BundleServer
from groundwork.engines.export.npm import ensure_runtime
from groundwork.engines.export.verify import CheckData, InputSpec, unsupported_error
from groundwork.errors import BrowserCheckFailed, InvalidInput

TEMPLATES = Path(__file__).resolve().parent / "bundle"
WASM_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
WEBGPU_FILES = ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
TOKENIZER_MODULE = "tokenizers.min.mjs"
#: The files a --template folder may replace.
TEMPLATE_FILES = ("model.js", "index.html", "README.md")
BATCH = 32


def build_bundle(
    folder: Path,
    model: bytes,
    *,
    source: dict[str, Any],
    inputs: list[InputSpec],
    outputs: list[InputSpec],
    precision: str,
    example: dict[str, np.ndarray] | None,
    webgpu: bool = False,
    tokenizer: Path | None = None,
    template: Path | None = None,
) -> dict[str, int]:
    """Write the bundle into the empty ``folder``; returns sizes (bytes): total, model, runtime, tokenizer."""
    runtime = ensure_runtime()
    for spec in inputs:
        if spec.dtype in ("str", "float16"):
            raise InvalidInput(f"input {spec.name!r} is {spec.dtype}: a web bundle takes numeric tensors",
                               hint="export a model whose graph takes float32 or integer tensors")
    (folder / "model.onnx").write_bytes(model)
    (folder / "runtime").mkdir()
    names = WASM_FILES + (WEBGPU_FILES if webgpu else ())
    for name in names:
        shutil.copyfile(runtime.file("onnxruntime-web", f"dist/{name}"), folder / "runtime" / name)
    (folder / "runtime" / "NOTICE.txt").write_text(
        f"onnxruntime-web {runtime.version('onnxruntime-web')} (npm), MIT License, Copyright (c) Microsoft Corporation.\n"
        "Copied unchanged from the npm package, checked against groundwork's package-lock.json.\n")
    schema: dict[str, Any] = {
        "format": "groundwork.web-export/1",
        "model": "model.onnx",
        "source": source,
        "signature": source.get("signature") or _describe(inputs, outputs),
        "precision": precision,
        "inputs": [s.to_dict() for s in inputs],
        "outputs": [s.to_dict() for s in outputs],
        "runtime": {"package": "onnxruntime-web", "version": runtime.version("onnxruntime-web"),
                    "module": WEBGPU_FILES[0] if webgpu else WASM_FILES[0], "webgpu": webgpu},
        "tokenizer": None,
    }
    if tokenizer is not None:
        schema["tokenizer"] = _add_tokenizer(folder, tokenizer, runtime)
    (folder / "schema.json").write_text(json.dumps(schema, indent=1) + "\n")
    rows = {k: v.tolist() for k, v in (example or {}).items()}
    (folder / "example.json").write_text(json.dumps(next(iter(rows.values())) if len(rows) == 1 else rows) + "\n")
    for name in TEMPLATE_FILES:
        shutil.copyfile(TEMPLATES / name, folder / name)
    if template is not None:
        _apply_template(folder, template)
    return bundle_sizes(folder)


def _describe(inputs: list[InputSpec], outputs: list[InputSpec]) -> str:
    def one(s: InputSpec) -> str:
        return f"{s.name}: {s.dtype}[{', '.join('N' if i == 0 else str(d) for i, d in enumerate(s.to_dict()['shape']))}]"

    return f"({', '.join(map(one, inputs))}) -> {', '.join(map(one, outputs))}"


def _add_tokenizer(folder: Path, source: Path, runtime: Any) -> dict[str, Any]:
    source = Path(source)
    files = source if source.is_dir() else source.parent
    tokenizer_json = files / "tokenizer.json" if source.is_dir() else source
    if not tokenizer_json.is_file():
        raise InvalidInput(f"no tokenizer.json at {source}", hint="give the folder holding tokenizer.json, or the file")
    target = folder / "tokenizer"
    target.mkdir()
    shutil.copyfile(tokenizer_json, target / "tokenizer.json")
    config = files / "tokenizer_config.json"
    if config.is_file():
        shutil.copyfile(config, target / "tokenizer_config.json")
    else:
        (target / "tokenizer_config.json").write_text("{}\n")
    shutil.copyfile(runtime.file("@huggingface/tokenizers", f"dist/{TOKENIZER_MODULE}"), target / TOKENIZER_MODULE)
    shutil.copyfile(runtime.file("@huggingface/tokenizers", "LICENSE"), target / "LICENSE-tokenizers")
    return {"package": "@huggingface/tokenizers", "version": runtime.version("@huggingface/tokenizers"),
            "module": TOKENIZER_MODULE}


def _apply_template(folder: Path, template: Path) -> None:
    template = Path(template)
    if not template.is_dir():
        raise InvalidInput(f"template {template} is not a folder",
                           hint=f"a template folder holds files that replace the generated ones: {', '.join(TEMPLATE_FILES)}")
    found = [p for p in template.iterdir() if p.is_file()]
    unknown = [p.name for p in found if p.name not in TEMPLATE_FILES]
    if unknown:
        raise InvalidInput(f"template {template} has files a bundle does not take: {', '.join(sorted(unknown))}",
                           hint=f"a template may replace {', '.join(TEMPLATE_FILES)}")
    for path in found:
        shutil.copyfile(path, folder / path.name)


def bundle_sizes(folder: Path) -> dict[str, int]:
    sizes = {"total_bytes": 0, "model_bytes": 0, "runtime_bytes": 0, "tokenizer_bytes": 0}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            size = (Path(root) / name).stat().st_size
            sizes["total_bytes"] += size
            part = Path(root).relative_to(folder).parts[:1]
            if part == ("runtime",):
                sizes["runtime_bytes"] += size
            elif part == ("tokenizer",):
                sizes["tokenizer_bytes"] += size
            elif not part and name == "model.onnx":
                sizes["model_bytes"] += size
    return sizes


# =====================================================================================
# The check in a real browser
# =====================================================================================
def check_in_browser(
    folder: Path,
    data: CheckData,
    *,
    session: BrowserSession | None = None,
    threads: int = 2,
    repeat: int = 30,
    operators: set[tuple[str, str]] | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Run ``data`` through the bundle in Chromium; outputs, latency, WebGPU, and network attempts."""
    if session is None:
        with BrowserSession() as own:
            return check_in_browser(folder, data, session=own, threads=threads, repeat=repeat, operators=operators,
                                    precision=precision)
    runtime = f"onnxruntime-web {json.loads((folder / 'schema.json').read_text())['runtime']['version']} in {session.version}"
    problem = (runtime, operators, precision)
    batches = [{k: v.tolist() for k, v in data.rows(s, s + BATCH).items()} for s in range(0, len(data), BATCH)]
    one_row = {k: v.tolist() for k, v in data.rows(0, 1).items()}
    example = {k: v.tolist() for k, v in data.rows(0, max(1, data.example_rows)).items()}
    result: dict[str, Any] = {"browser": session.version, "blocked_requests": [], "page_errors": []}
    latency: dict[str, float | None] = {}
    with BundleServer(folder) as server:
        with session.page(server) as (page, blocked, errors):
            info = _open(page, server, {"threads": 1, "backend": "wasm"}, blocked, errors, problem)
            result["backend"] = info.get("backend")
            result["load_ms"] = info.get("loadMs")
            result["outputs"] = page.evaluate("(b) => window.gwCheck.predict(b)", batches)
            latency["wasm_1_thread"] = page.evaluate("([x, r]) => window.gwCheck.latency(x, r)", [one_row, repeat])["median_ms"]
            result["webgpu"] = page.evaluate("() => window.gwCheck.webgpu()")
            result["isolated"] = page.evaluate("() => window.gwCheck.isolated()")
            result["blocked_requests"] += blocked
            result["page_errors"] += errors
        if threads > 1:
            with session.page(server) as (page, blocked, errors):
                info = _open(page, server, {"threads": threads, "backend": "wasm"}, blocked, errors, problem)
                result["threads"] = info.get("threads")
                result["example_outputs_threaded"] = page.evaluate("(b) => window.gwCheck.predict(b)", [example])
                latency[f"wasm_{threads}_threads"] = page.evaluate(
                    "([x, r]) => window.gwCheck.latency(x, r)", [one_row, repeat])["median_ms"]
                result["blocked_requests"] += blocked
                result["page_errors"] += errors
        schema = json.loads((folder / "schema.json").read_text())
        if result["webgpu"] == "offered" and schema["runtime"].get("webgpu"):
            with session.page(server) as (page, blocked, errors):
                _open(page, server, {"backend": "webgpu"}, blocked, errors, problem)
                result["example_outputs_webgpu"] = page.evaluate("(b) => window.gwCheck.predict(b)", [example])
                latency["webgpu"] = page.evaluate("([x, r]) => window.gwCheck.latency(x, r)", [one_row, repeat])["median_ms"]
                result["blocked_requests"] += blocked
        elif result["webgpu"] == "offered":
            result["webgpu"] = "offered, not measured: this bundle has no WebGPU runtime (export with --webgpu)"
        result["served"] = len(server.served)
    result["latency_ms"] = latency
    return result


def _open(page: Any, server: BundleServer, options: dict[str, Any], blocked: list[str], errors: list[str],
          problem: tuple[str, set[tuple[str, str]] | None, str]) -> dict[str, Any]:
    from playwright.sync_api import Error as PlaywrightError

    try:
        page.goto(f"{server.url}/__groundwork__/verify.html")
        page.wait_for_function("window.gwReady === true", timeout=30_000)
        return dict(page.evaluate("(o) => window.gwCheck.load(o)", options))
    except PlaywrightError as exc:
        message = _page_message(str(exc))
        if blocked:
            raise BrowserCheckFailed(f"the bundle tried to fetch {blocked[0]} (a bundle must not need the network)") from None
        runtime, operators, precision = problem
        unsupported = unsupported_error(runtime, message, operators, precision)
        if unsupported is not None:
            raise unsupported from None
        detail = message or (errors[0] if errors else "no message")
        raise BrowserCheckFailed(f"the bundle did not load in the browser: {detail}") from None


def _page_message(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("at ")]
    for line in lines:
        if "Error" in line or "error" in line:
            return line[:400]
    return lines[0][:400] if lines else ""
