"""all-MiniLM-L6-v2 in the browser: FP32/FP16/INT8 embeddings agree with Python; the JS tokenizer matches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _export_helpers import Models, agreement_of, example

from groundwork.engines.export import export
from groundwork.engines.export.browser import BundleServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_minilm_embeddings_agree_in_chromium(precision: str, minilm_models: Models, export_browser: Any,
                                             tmp_path: Path) -> None:
    minilm = example("minilm")
    out = tmp_path / f"minilm-{precision}"
    result = export("minilm@production", precision=precision, out=out, data=str(minilm_models.home / "minilm-check.npz"),
                    tokenizer=minilm.tokenizer_path(), template=minilm.PAGE, browser=export_browser,
                    config=minilm_models.config, repeat=3,
                    threads=None if precision == "fp32" else 1)  # the threaded page once: a 90 MB model per load
    v = result.verification
    assert result.passed and v["agreement"]["measure"] == "cosine"
    assert agreement_of(result) >= 0.99 and v["agreement"]["non_finite_rows"] == 0
    assert v["reference"].startswith("onnx")  # the version is an ONNX file: its native form
    if precision == "fp16":
        assert v["size"]["model_bytes"] <= 0.55 * (90_000_000)
    if precision != "fp32":
        return
    # The page: text -> token ids (@huggingface/tokenizers from the bundle) -> embeddings, vs PyTorch.
    texts = ["The cat sat on the mat.", "A kitten was resting on the rug.", "Stock markets fell sharply on Monday."]
    expected = minilm.python_embeddings(texts)
    python_ids = minilm.tokenize(texts)["input_ids"]
    with BundleServer(out) as server, export_browser.page(server) as (page, blocked, errors):
        page.goto(server.url + "/")
        page.wait_for_function("window.minilmReady === true", timeout=60_000)
        ids = page.evaluate("async (t) => (await (await import('/model.js')).tokenize(t)).input_ids", texts)
        embeddings = np.asarray(page.evaluate("(t) => window.embed(t)", texts), np.float64)
        score = float(page.text_content("#score") or "nan")
    assert blocked == [] and errors == []
    for row, js in zip(python_ids, ids, strict=True):
        assert list(row[: len(js)]) == js and not row[len(js):].any()  # same tokens, Python padded further
    cosines = (embeddings * expected).sum(axis=1) / np.linalg.norm(embeddings, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= 0.99
    assert score == pytest.approx(float(expected[0] @ expected[1]), abs=0.01)
