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
  as ONNX at the same precision beside the same tokenizer.json; mean pooling and
  normalization in the pipeline), and against Python (``tokenizers`` + ONNX Runtime).

The machine is shared, so the contenders are timed in alternating rounds (``--rounds``)
and each one's best round is kept. Every page runs offline (127.0.0.1 only).

Targets (issue #15): FP16 bundle at most 55% of the FP32 bundle with agreement >= 99%;
browser latency within 3x of native ONNX Runtime.

    .venv/bin/python benchmarks/export.py                  # both models, ~20 min on 2 cores
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


def export_all(name: str, data: Path, config: Any, browser: Any, out: Path, **options: Any) -> dict[str, Any]:
    """Each precision exported with groundwork.export (checked in Chromium): sizes, agreement, where."""
    from groundwork.engines.export import export

    rows = {}
    for precision in PRECISIONS:
        result = export(f"{name}@production", precision=precision, out=out / f"{name}-{precision}", data=str(data),
                        browser=browser, config=config, repeat=3, threads=2, force=True, **options)
        v = result.verification
        rows[precision] = {
            "passed": result.passed, "agreement": v["agreement"]["value"], "measure": v["agreement"]["measure"],
            "bundle_bytes": v["size"]["total_bytes"], "model_bytes": v["size"]["model_bytes"],
            "webgpu": v.get("webgpu"), "browser": v["runtime"]["name"],
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
let run = null;
// A bundle: one row as given (rows), or a sentence through its tokenizer (text).
window.loadBundle = async (folder, threads) => {
  const m = await import(`/${folder}/model.js`);
  await m.load({ threads, backend: 'wasm' });
  run = async (input) => (typeof input === 'string' ? m.predict(await m.tokenize([input])) : m.predict(input));
};
window.loadTjs = async (dtype, threads) => {
  const { pipeline, env } = await import('/tjs/transformers.js');
  env.allowRemoteModels = false; env.allowLocalModels = true; env.localModelPath = '/models/'; env.useBrowserCache = false;
  env.backends.onnx.wasm.wasmPaths = '/tjs/'; env.backends.onnx.wasm.numThreads = threads;
  const extractor = await pipeline('feature-extraction', 'minilm', { dtype, device: 'wasm' });
  run = async (text) => Array.from((await extractor([text], { pooling: 'mean', normalize: true })).data);
};
window.answer = async (input) => run(input);
window.timeIt = async (input, repeat) => time(() => run(input), repeat);
window.ready = true;</script>"""


def build_site(out: Path, names: list[str], minilm: ModuleType | None, cache: Path) -> Path:
    """One folder served to the pages: every bundle, and (for MiniLM) transformers.js with the same weights."""
    import torch

    from groundwork.engines.export.precision import convert_precision

    site = out / "site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir()
    (site / "bench.html").write_text(BENCH_PAGE)
    for name in names:
        for precision in PRECISIONS:
            shutil.copytree(out / f"{name}-{precision}", site / f"{name}-{precision}")
    if minilm is None:
        return site
    package = transformers_js(cache)
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
    return site


def _page(browser: Any, server: Any, stack: Any, load: str, args: list[Any]) -> Any:
    page, blocked, _errors = stack.enter_context(browser.page(server))
    page.goto(server.url + "/bench.html")
    page.wait_for_function("window.ready === true")
    page.evaluate(f"(a) => window.{load}(...a)", args)
    return page, blocked


def measure(browser: Any, site: Path, bundle: str, threads: int, browser_input: Any, native: Any, repeat: int,
            rounds: int, tjs: str | None = None) -> dict[str, Any]:
    """Median ms of the bundle in Chromium, ONNX Runtime in Python (and transformers.js), in alternating rounds.

    The machine is shared, so each contender is timed once per round, in turn, and its best
    round is kept: the ratios compare like with like.
    """
    import contextlib

    from groundwork.engines.export.browser import BundleServer

    best: dict[str, float] = {}
    with BundleServer(site) as server, contextlib.ExitStack() as stack:
        ours, blocked = _page(browser, server, stack, "loadBundle", [bundle, threads])
        theirs, blocked_tjs = _page(browser, server, stack, "loadTjs", [tjs, threads]) if tjs else (None, [])
        for _ in range(rounds):
            times = {"browser": ours.evaluate("([x, r]) => window.timeIt(x, r)", [browser_input, repeat]),
                     "native": _median_ms(native, repeat)}
            if theirs is not None:
                times["transformers_js"] = theirs.evaluate("([x, r]) => window.timeIt(x, r)", [browser_input, repeat])
            for key, value in times.items():
                best[key] = min(best.get(key, float("inf")), float(value))
        out: dict[str, Any] = {f"{k}_ms": v for k, v in best.items()}
        if theirs is not None:
            a = np.asarray(ours.evaluate("(x) => window.answer(x)", browser_input)[0])
            b = np.asarray(theirs.evaluate("(x) => window.answer(x)", browser_input))
            out["cosine_bundle_vs_transformers_js"] = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        if blocked or blocked_tjs:
            raise SystemExit(f"a page tried the network: {(blocked + blocked_tjs)[:2]}")
    return out


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    from groundwork.engines.flavors.onnx import session_options

    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def latencies(browser: Any, site: Path, name: str, row: dict[str, np.ndarray], repeat: int, rounds: int,
              tokenizer: Any = None) -> dict[str, Any]:
    """Per precision and thread count: one row in the page vs ONNX Runtime on the same file; MiniLM also a sentence."""
    out: dict[str, Any] = {}
    for precision in PRECISIONS:
        model = site / f"{name}-{precision}" / "model.onnx"
        for threads in (1, 2):
            session = _session(model, threads)
            rows = {k: v.tolist() for k, v in row.items()}
            out[f"{precision}_{threads}t_row"] = measure(
                browser, site, f"{name}-{precision}", threads, rows, lambda s=session: s.run(None, row), repeat, rounds)
            if tokenizer is not None:
                def sentence(s: Any = session) -> Any:
                    enc = tokenizer.encode(SENTENCE)
                    return s.run(None, {"input_ids": np.asarray([enc.ids], np.int64),
                                        "attention_mask": np.asarray([enc.attention_mask], np.int64)})

                out[f"{precision}_{threads}t_sentence"] = measure(
                    browser, site, f"{name}-{precision}", threads, SENTENCE, sentence, repeat, rounds,
                    tjs=TJS_DTYPE[precision][0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="digits,minilm")
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per measurement (median reported)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; each contender's best is kept")
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
        rows: dict[str, dict[str, np.ndarray]] = {}
        minilm = None
        if "digits" in wanted:
            digits = _example("digits")
            digits.register(config)
            data = digits.write_check_data(Path(home) / "digits.npz")
            results["digits"] = export_all("digits", data, config, browser, out)
            rows["digits"] = {"input": digits.digits_data()[2][:1]}
        if "minilm" in wanted:
            minilm = _example("minilm")
            minilm.register(config)
            data = minilm.write_check_data(Path(home) / "minilm.npz")
            results["minilm"] = export_all("minilm", data, config, browser, out, tokenizer=minilm.tokenizer_path())
            rows["minilm"] = {k: v[:1] for k, v in minilm.tokenize([SENTENCE]).items()}
        site = build_site(out, [n for n in ("digits", "minilm") if n in wanted], minilm, out)
        for name, row in rows.items():
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(minilm.tokenizer_path() / "tokenizer.json")) if name == "minilm" and minilm else None
            repeat = args.repeat if name == "digits" else max(5, args.repeat // 5)
            results[f"{name}_latency"] = latencies(browser, site, name, row, repeat, args.rounds, tokenizer)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    report(results)


def report(results: dict[str, Any]) -> None:
    print(f"\nCPU: {results['cpu']} ({results['cores']} cores) · {results['browser']} · repeat {results['repeat']}")
    for name in ("digits", "minilm"):
        rows = results.get(name)
        if not rows:
            continue
        fp32 = rows["fp32"]
        what = "64 pixel values" if name == "digits" else "one 64-token row"
        print(f"\n{name}: sizes and agreement (checked in Chromium); latency of {what}, median ms (best of rounds)")
        print(f"{'precision':<9} {'bundle MB':>9} {'vs fp32':>7} {'model MB':>8} {'vs fp32':>7} {'agreement':>9} "
              f"{'browser 1t':>10} {'native 1t':>9} {'ratio':>6} {'browser 2t':>10} {'native 2t':>9} {'ratio':>6}")
        lat = results.get(f"{name}_latency", {})
        for precision, r in rows.items():
            one, two = lat.get(f"{precision}_1t_row", {}), lat.get(f"{precision}_2t_row", {})
            print(f"{precision:<9} {r['bundle_bytes'] / 1e6:>9.2f} {r['bundle_bytes'] / fp32['bundle_bytes']:>7.0%} "
                  f"{r['model_bytes'] / 1e6:>8.2f} {r['model_bytes'] / fp32['model_bytes']:>7.0%} {r['agreement']:>9.4f} "
                  f"{one.get('browser_ms', 0):>10.3f} {one.get('native_ms', 1):>9.3f} "
                  f"{one.get('browser_ms', 0) / one.get('native_ms', 1):>5.1f}x "
                  f"{two.get('browser_ms', 0):>10.3f} {two.get('native_ms', 1):>9.3f} "
                  f"{two.get('browser_ms', 0) / two.get('native_ms', 1):>5.1f}x")
        fp16 = rows["fp16"]
        print(f"target: FP16 bundle <= 55% of FP32 with agreement >= 0.99: {fp16['bundle_bytes'] / fp32['bundle_bytes']:.0%}"
              f" (model file {fp16['model_bytes'] / fp32['model_bytes']:.0%}), agreement {fp16['agreement']:.4f}")
        print(f"WebGPU: {fp32['webgpu']}")
    lat = results.get("minilm_latency")
    if lat:
        print("\nMiniLM, one sentence end to end (tokenize + embed), median ms (best of rounds)")
        print(f"{'precision':<9} {'threads':>7} {'bundle':>8} {'transformers.js':>15} {'tjs/bundle':>10} {'native':>8} "
              f"{'bundle/native':>13} {'cos(bundle, tjs)':>16}")
        for precision in PRECISIONS:
            for threads in (1, 2):
                r = lat[f"{precision}_{threads}t_sentence"]
                print(f"{precision:<9} {threads:>7} {r['browser_ms']:>8.2f} {r['transformers_js_ms']:>15.2f} "
                      f"{r['transformers_js_ms'] / r['browser_ms']:>9.2f}x {r['native_ms']:>8.2f} "
                      f"{r['browser_ms'] / r['native_ms']:>12.2f}x {r['cosine_bundle_vs_transformers_js']:>16.4f}")


if __name__ == "__main__":
    main()
