"""Benchmark: groundwork's web exports in Chromium against ONNX Runtime (Python, CPU) and transformers.js.

For the digits classifier (``examples/export/digits.py``) and all-MiniLM-L6-v2
(``examples/export/minilm.py``), at FP32, FP16 and INT8, each exported with
``groundwork.export(target="web")`` (so each number comes from a bundle that passed its
check):

* bundle size (whole folder, and the model file alone) and agreement with the source model;
* latency of one row in headless Chromium (onnxruntime-web WASM, one thread and two),
  against the same ONNX file on ONNX Runtime in Python on the same CPU, and the ratio;
* for MiniLM, one sentence end to end (tokenize + embed) in the page, against
  transformers.js's own ``pipeline("feature-extraction")`` (``@huggingface/transformers``
  from npm, ``benchmarks/npm``) loading the same weights from a local folder (the encoder
  as ONNX beside the same tokenizer.json; mean pooling and normalization in the pipeline),
  and against Python (``tokenizers`` + ONNX Runtime) on the same sentence.

Targets (issue #15): FP16 bundle at most 55% of the FP32 bundle with agreement >= 99%;
browser latency within 3x of native ONNX Runtime.

    .venv/bin/python benchmarks/export.py                  # both models, ~5 min on 2 cores
    .venv/bin/python benchmarks/export.py --models digits --repeat 200
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NPM = Path(__file__).resolve().parent / "npm"
PRECISIONS = ("fp32", "fp16", "int8")
TJS_DTYPE = {"fp32": ("fp32", "model.onnx"), "fp16": ("fp16", "model_fp16.onnx"), "int8": ("q8", "model_quantized.onnx")}
SENTENCE = "The quick brown fox jumps over the lazy dog while the cat sleeps on the warm windowsill."


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "examples" / "export" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def transformers_js(cache: Path) -> Path:
    """``@huggingface/transformers`` installed from the lock in benchmarks/npm (npm ci verifies its integrity)."""
    folder = cache / "npm"
    marker = folder / "node_modules" / "@huggingface" / "transformers" / "dist" / "transformers.js"
    if not marker.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(NPM / name, folder / name)
        subprocess.run(["npm", "ci", "--ignore-scripts", "--omit=optional", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=folder, check=True)
    return folder / "node_modules" / "@huggingface" / "transformers"


def export_all(name: str, data: Path, config: Any, browser: Any, repeat: int, out: Path, **options: Any) -> dict[str, Any]:
    from groundwork.engines.export import export

    rows = {}
    for precision in PRECISIONS:
        started = time.monotonic()
        result = export(f"{name}@production", precision=precision, out=out / f"{name}-{precision}", data=str(data),
                        browser=browser, config=config, repeat=repeat, threads=2, force=True, **options)
        v = result.verification
        rows[precision] = {
            "passed": result.passed, "agreement": v["agreement"]["value"], "measure": v["agreement"]["measure"],
            "bundle_bytes": v["size"]["total_bytes"], "model_bytes": v["size"]["model_bytes"],
            "browser_1_ms": v["latency_ms"].get("browser_wasm_1_thread"),
            "browser_2_ms": v["latency_ms"].get("browser_wasm_2_threads"),
            "native_1_ms": v["latency_ms"].get("onnxruntime_1_thread"),
            "native_2_ms": v["latency_ms"].get("onnxruntime_2_threads"),
            "webgpu": v.get("webgpu"), "browser": v["runtime"]["name"], "export_s": time.monotonic() - started,
        }
    return rows


def _median_ms(call: Any, repeat: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return float(statistics.median(times))


BENCH_PAGE = """<!doctype html><meta charset="utf-8"><script type="module">
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
async function time(call, repeat) {
  for (let i = 0; i < 3; i++) await call();
  const times = [];
  for (let i = 0; i < repeat; i++) { const t = performance.now(); await call(); times.push(performance.now() - t); }
  return median(times);
}
window.bundle = async (precision, threads, text, repeat) => {
  const m = await import(`/bundle-${precision}/model.js`);
  await m.load({ threads, backend: 'wasm' });
  const [embedding] = await m.predict(await m.tokenize([text]));
  return { ms: await time(async () => m.predict(await m.tokenize([text])), repeat), embedding };
};
window.tjs = async (dtype, threads, text, repeat) => {
  const { pipeline, env } = await import('/tjs/transformers.js');
  env.allowRemoteModels = false; env.allowLocalModels = true; env.localModelPath = '/models/'; env.useBrowserCache = false;
  env.backends.onnx.wasm.wasmPaths = '/tjs/'; env.backends.onnx.wasm.numThreads = threads;
  const extractor = await pipeline('feature-extraction', 'minilm', { dtype, device: 'wasm' });
  const out = await extractor([text], { pooling: 'mean', normalize: true });
  return { ms: await time(() => extractor([text], { pooling: 'mean', normalize: true }), repeat), embedding: Array.from(out.data) };
};
window.ready = true;
</script>"""


def minilm_peers(minilm: ModuleType, out: Path, browser: Any, repeat: int, cache: Path) -> dict[str, Any]:
    """One sentence end to end: the bundle's tokenize+predict, transformers.js's pipeline, Python."""
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer

    from groundwork.engines.export.browser import BundleServer
    from groundwork.engines.export.precision import convert_precision

    package = transformers_js(cache)
    site = out / "site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir()
    (site / "bench.html").write_text(BENCH_PAGE)
    for precision in PRECISIONS:
        shutil.copytree(out / f"minilm-{precision}", site / f"bundle-{precision}")
    tjs = site / "tjs"
    tjs.mkdir()
    shutil.copyfile(package / "dist" / "transformers.js", tjs / "transformers.js")
    ort_dist = package / "node_modules" / "onnxruntime-web" / "dist"
    if not ort_dist.is_dir():
        ort_dist = package.parent.parent / "onnxruntime-web" / "dist"
    for wasm in ort_dist.glob("ort-wasm-simd-threaded*"):
        shutil.copyfile(wasm, tjs / wasm.name)
    # The same weights as transformers.js expects them: the encoder alone (last_hidden_state) as ONNX.
    model_dir = site / "models" / "minilm"
    (model_dir / "onnx").mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (minilm.tokenizer_path() / name).is_file():
            shutil.copyfile(minilm.tokenizer_path() / name, model_dir / name)
    class Encoder(torch.nn.Module):  # the encoder alone: what transformers.js's pipeline runs, then pools
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    encoder = Encoder(minilm.models.minilm().encoder).eval()
    sample = minilm.tokenize(["a sentence to trace with"], 16)
    with tempfile.TemporaryDirectory() as tmp:
        torch.onnx.export(encoder, (torch.from_numpy(sample["input_ids"]), torch.from_numpy(sample["attention_mask"])),
                          f"{tmp}/encoder.onnx", input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"},
                                        "last_hidden_state": {0: "b", 1: "t"}})
        fp32 = Path(f"{tmp}/encoder.onnx").read_bytes()
    for precision, (_dtype, filename) in TJS_DTYPE.items():
        (model_dir / "onnx" / filename).write_bytes(convert_precision(fp32, precision))
    tokenizer = Tokenizer.from_file(str(minilm.tokenizer_path() / "tokenizer.json"))
    rows: dict[str, Any] = {}
    with BundleServer(site) as server:
        for precision in PRECISIONS:
            row: dict[str, Any] = {}
            for threads in (1, 2):
                with browser.page(server) as (page, blocked, errors):
                    page.goto(server.url + "/bench.html")
                    page.wait_for_function("window.ready === true")
                    ours = page.evaluate("([p, t, s, r]) => window.bundle(p, t, s, r)", [precision, threads, SENTENCE, repeat])
                with browser.page(server) as (page, blocked2, errors2):
                    page.goto(server.url + "/bench.html")
                    page.wait_for_function("window.ready === true")
                    theirs = page.evaluate("([d, t, s, r]) => window.tjs(d, t, s, r)",
                                           [TJS_DTYPE[precision][0], threads, SENTENCE, repeat])
                if blocked or blocked2:
                    raise SystemExit(f"a page tried the network: {(blocked + blocked2)[:2]}")
                a, b = np.asarray(ours["embedding"]), np.asarray(theirs["embedding"])
                row[f"bundle_{threads}_ms"] = ours["ms"]
                row[f"transformers_js_{threads}_ms"] = theirs["ms"]
                row["cosine_bundle_vs_transformers_js"] = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
            session_path = out / f"minilm-{precision}" / "model.onnx"
            for threads in (1, 2):
                from groundwork.engines.flavors.onnx import session_options

                session = ort.InferenceSession(str(session_path), session_options(threads), providers=["CPUExecutionProvider"])

                def native(session: Any = session) -> Any:
                    enc = tokenizer.encode(SENTENCE)
                    feed = {"input_ids": np.asarray([enc.ids], np.int64), "attention_mask": np.asarray([enc.attention_mask], np.int64)}
                    return session.run(None, feed)

                row[f"native_{threads}_ms"] = _median_ms(native, repeat)
            rows[precision] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="digits,minilm")
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per measurement (median reported)")
    parser.add_argument("--out", default=".bench/export", help="where bundles and results go (git-ignored)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from groundwork.config import Config
    from groundwork.engines.export.browser import BrowserSession

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    wanted = args.models.split(",")
    results: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "repeat": args.repeat, "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory(prefix="gw-bench-export-") as home, BrowserSession() as browser:
        config = Config(store_url=f"sqlite:///{home}/meta.db", artifacts_url=f"{home}/artifacts")
        results["browser"] = browser.version
        if "digits" in wanted:
            digits = _example("digits")
            digits.register(config)
            data = digits.write_check_data(Path(home) / "digits.npz")
            results["digits"] = export_all("digits", data, config, browser, args.repeat, out)
        if "minilm" in wanted:
            minilm = _example("minilm")
            minilm.register(config)
            data = minilm.write_check_data(Path(home) / "minilm.npz")
            results["minilm"] = export_all("minilm", data, config, browser, max(5, args.repeat // 5), out,
                                           tokenizer=minilm.tokenizer_path())
            results["minilm_sentence"] = minilm_peers(minilm, out, browser, max(5, args.repeat // 5), out)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    report(results)


def report(results: dict[str, Any]) -> None:
    print(f"\nCPU: {results['cpu']} ({results['cores']} cores) · {results['browser']} · repeat {results['repeat']}")
    for name in ("digits", "minilm"):
        rows = results.get(name)
        if not rows:
            continue
        fp32 = rows["fp32"]
        print(f"\n{name}: one row (digits: 64 pixels; MiniLM: a 64-token row), median ms")
        print(f"{'precision':<9} {'bundle MB':>9} {'vs fp32':>7} {'model MB':>8} {'vs fp32':>7} {'agreement':>10} "
              f"{'browser 1t':>10} {'native 1t':>9} {'ratio':>6} {'browser 2t':>10} {'native 2t':>9} {'ratio':>6}")
        for precision, r in rows.items():
            print(f"{precision:<9} {r['bundle_bytes'] / 1e6:>9.2f} {r['bundle_bytes'] / fp32['bundle_bytes']:>7.0%} "
                  f"{r['model_bytes'] / 1e6:>8.2f} {r['model_bytes'] / fp32['model_bytes']:>7.0%} "
                  f"{r['agreement']:>10.4f} {r['browser_1_ms']:>10.3f} {r['native_1_ms']:>9.3f} "
                  f"{r['browser_1_ms'] / r['native_1_ms']:>5.1f}x {r['browser_2_ms']:>10.3f} {r['native_2_ms']:>9.3f} "
                  f"{r['browser_2_ms'] / r['native_2_ms']:>5.1f}x")
        fp16 = rows["fp16"]
        print(f"target: FP16 bundle <= 55% of FP32 with agreement >= 0.99: {fp16['bundle_bytes'] / fp32['bundle_bytes']:.0%}"
              f" (model file {fp16['model_bytes'] / fp32['model_bytes']:.0%}), agreement {fp16['agreement']:.4f}")
        print(f"WebGPU: {fp32['webgpu']}")
    sentence = results.get("minilm_sentence")
    if sentence:
        print("\nMiniLM, one sentence end to end (tokenize + embed), median ms")
        print(f"{'precision':<9} {'bundle 1t':>9} {'tjs 1t':>8} {'tjs/bundle':>10} {'native 1t':>9} {'bundle/native':>13} "
              f"{'bundle 2t':>9} {'tjs 2t':>8} {'tjs/bundle':>10} {'cos(bundle, tjs)':>16}")
        for precision, r in sentence.items():
            print(f"{precision:<9} {r['bundle_1_ms']:>9.2f} {r['transformers_js_1_ms']:>8.2f} "
                  f"{r['transformers_js_1_ms'] / r['bundle_1_ms']:>9.2f}x {r['native_1_ms']:>9.2f} "
                  f"{r['bundle_1_ms'] / r['native_1_ms']:>12.2f}x {r['bundle_2_ms']:>9.2f} {r['transformers_js_2_ms']:>8.2f} "
                  f"{r['transformers_js_2_ms'] / r['bundle_2_ms']:>9.2f}x {r['cosine_bundle_vs_transformers_js']:>16.4f}")


if __name__ == "__main__":
    main()
