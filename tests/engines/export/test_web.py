"""Web exports checked in real Chromium: agreement per precision, a broken glue refused, no network, bad models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _export_helpers import Models, agreement_of, example, export_count

import groundwork as gw
from groundwork.engines.export import export
from groundwork.engines.export.browser import BundleServer
from groundwork.engines.export.web import TEMPLATES
from groundwork.errors import ExecutionError, InvalidInput
from groundwork.storage.artifacts import ArtifactStore

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_digits_web_export_agrees_in_chromium_and_is_recorded(
    precision: str, models: Models, export_browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / f"digits-{precision}"
    before = export_count(models.config, "digits")
    result = export("digits@production", target="web", precision=precision, out=out, data=str(models.digits_data),
                    browser=export_browser, config=models.config, repeat=5)
    v = result.verification
    assert result.passed and v["passed"] and not v["problems"]
    assert agreement_of(result) >= 0.99 and v["agreement"]["measure"] == "label"
    assert v["agreement"]["rows"] == 5 + len(models.digits_test[0])  # the example, then the held-out digits
    assert v["agreement_other_backends"][f"wasm_{v['threads']}_threads"]["passed"] or v["threads"] == 1
    assert v["runtime"]["name"].startswith("Chromium ") and v["runtime"]["engine"] == "onnxruntime-web 1.31.1"
    assert v["network"]["blocked_requests"] == [] and v["network"]["cross_origin_isolated"] is True
    assert v["latency_ms"]["browser_wasm_1_thread"] > 0 and v["latency_ms"]["onnxruntime_1_thread"] > 0
    assert "webgpu" in v and v["webgpu"]  # offered and measured, or why not
    for name in ("model.onnx", "model.js", "schema.json", "index.html", "example.json", "verification.json",
                 "runtime/ort.wasm.min.mjs", "runtime/ort-wasm-simd-threaded.wasm"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".gw-export")]
    schema = json.loads((out / "schema.json").read_text())
    assert schema["precision"] == precision and schema["inputs"][0]["dtype"] == "float32"
    # Recorded: the folder, byte for byte, is an artifact of the version, and lineage reaches it.
    assert export_count(models.config, "digits") == before + 1
    assert result.record is not None and result.record.artifact_digest == ArtifactStore.digest_path(out).digest
    graph = gw.lineage(str(out), config=models.config)
    assert any(n.kind == "model" and n.attrs["name"] == "digits" for n in graph.nodes.values())
    assert f"export:{result.record.id}" in graph.nodes
    down = gw.lineage(result.record.ref, descendants=True, config=models.config)
    assert f"export:{result.record.id}" in down.nodes


def test_fp16_and_int8_models_are_smaller(models: Models, export_browser: Any, tmp_path: Path) -> None:
    sizes = {}
    for precision in ("fp32", "fp16"):
        result = export("digits@production", precision=precision, out=tmp_path / precision, browser=export_browser,
                        config=models.config, record=False, repeat=3)
        sizes[precision] = result.verification["size"]["model_bytes"]
        assert result.record is None
    assert sizes["fp16"] <= 0.55 * sizes["fp32"]


def _template(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "template"
    folder.mkdir()
    glue = (TEMPLATES / "model.js").read_text()
    assert old in glue
    (folder / "model.js").write_text(glue.replace(old, new))
    return folder


def test_wrong_normalization_in_the_js_glue_is_caught_and_refused(models: Models, export_browser: Any,
                                                                  tmp_path: Path) -> None:
    # The glue divides the pixels by 16 (the model already does): every digit looks faint.
    template = _template(tmp_path, "function prepareInput(name, flat) {\n  return flat;",
                         "function prepareInput(name, flat) {\n  return flat.map((v) => v / 16);")
    before = export_count(models.config, "digits")
    out = tmp_path / "broken"
    with pytest.raises(ExecutionError, match="export refused: the browser answers differ from digits/1: label agreement"):
        export("digits@production", out=out, template=template, data=str(models.digits_data), browser=export_browser,
               config=models.config, repeat=3)
    assert not out.exists()
    assert export_count(models.config, "digits") == before
    result = export("digits@production", out=out, template=template, browser=export_browser, config=models.config,
                    strict=False, repeat=3)
    assert not result.passed and agreement_of(result) < 0.9 and not out.exists()
    assert export_count(models.config, "digits") == before


def test_bundle_loads_with_no_network_access(models: Models, export_browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "offline"
    export("digits@production", out=out, browser=export_browser, config=models.config, record=False, repeat=3)
    x_test, _ = models.digits_test
    with BundleServer(out) as server, export_browser.page(server) as (page, blocked, errors):
        page.goto(server.url + "/")  # the bundle's own demo page, every other address unreachable
        page.wait_for_function("document.getElementById('outputs').textContent.startsWith('[')", timeout=30_000)
        shown = json.loads(page.text_content("#outputs") or "null")
        page.fill("#inputs", json.dumps(x_test[:3].tolist()))
        page.click("#run")
        page.wait_for_function("JSON.parse(document.getElementById('outputs').textContent).length === 3")
        answered = json.loads(page.text_content("#outputs") or "null")
        served = server.served
    assert blocked == [] and errors == []
    assert "/runtime/ort-wasm-simd-threaded.wasm" in served and "/model.onnx" in served
    predictor = gw.load_model("digits@production", config=models.config)
    assert shown == predictor.predict(np.asarray(json.loads((out / "example.json").read_text()), np.float32)).tolist()
    assert answered == predictor.predict(x_test[:3]).tolist()


def test_a_bundle_that_needs_the_network_is_refused(models: Models, export_browser: Any, tmp_path: Path) -> None:
    template = _template(tmp_path, "ort = await import(new URL('runtime/' + runtime.module, here).href);",
                         "ort = await import('https://cdn.jsdelivr.net/npm/onnxruntime-web@1.31.1/dist/ort.wasm.min.mjs');")
    before = export_count(models.config, "digits")
    with pytest.raises(ExecutionError, match=r"tried to fetch https://cdn\.jsdelivr\.net/"):
        export("digits@production", out=tmp_path / "cdn", template=template, browser=export_browser,
               config=models.config, repeat=3)
    assert export_count(models.config, "digits") == before and not (tmp_path / "cdn").exists()


def test_an_operator_the_browser_runtime_lacks_is_named(models: Models, export_browser: Any, tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper, save

    weights = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Celu", ["h"], ["y"])], "celu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    save(model, tmp_path / "celu.onnx")
    with gw.start_run(name="celu", config=models.config, capture_code=False) as run:
        run.log_model(str(tmp_path / "celu.onnx"), "celu", example=np.ones((3, 4), np.float32))
    with pytest.raises(InvalidInput) as caught:
        export("celu", precision="fp16", out=tmp_path / "celu", browser=export_browser, config=models.config)
    line = caught.value.one_line()
    assert "onnxruntime-web 1.31.1" in line and "no kernel for the operator Celu (ai.onnx) on tensor(float16)" in line
    assert "\n" not in line and not (tmp_path / "celu").exists()
    assert export_count(models.config, "celu") == 0


def test_digits_canvas_page_predicts_what_the_python_model_says(models: Models, export_browser: Any,
                                                                tmp_path: Path) -> None:
    digits = example("digits")
    out = tmp_path / "page"
    export("digits@production", out=out, template=digits.PAGE, browser=export_browser, config=models.config,
           record=False, repeat=3)
    predictor = gw.load_model("digits@production", config=models.config)
    with BundleServer(out) as server, export_browser.page(server) as (page, blocked, errors):
        page.goto(server.url + "/")
        page.wait_for_function("window.digitsReady === true", timeout=30_000)
        box = page.locator("#pad").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + 128, box["y"] + 40)  # a "1": one stroke down the middle
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + 128, box["y"] + 40 + step * 18)
        page.mouse.up()
        page.wait_for_function("window.lastDigit !== undefined")
        pixels = page.evaluate("window.lastPixels")
        digit = page.evaluate("window.lastDigit")
        shown = page.text_content("#answer")
    assert blocked == [] and errors == []
    assert sum(pixels) > 0 and len(pixels) == 64
    expected = int(predictor.predict(np.asarray([pixels], np.float32))[0])
    assert digit == expected and shown == str(expected)
