"""Python models behind a real ``groundwork serve``: texts in, each request its own answer, requests batched.

The fast test serves a toy text model; the slow one the example ``examples/serving/minilm_text.py``:
the real all-MiniLM-L6-v2, optimized, tokenizer inside, compared with PyTorch's embeddings.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import groundwork as gw
from groundwork.config import Config

from .conftest import metric, serve_process

ROOT = Path(__file__).resolve().parents[3]

TOY = '''
class WordCounter:
    """Counts words and characters; the batch sizes it saw go to a file, so the test can see batching."""

    def load_context(self, context):
        self.log = context.artifacts["log"]

    def predict(self, texts):
        with open(self.log, "a") as fh:
            fh.write(f"{len(texts)}\\n")
        return [[len(t.split()), len(t)] for t in texts]
'''


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("GROUNDWORK_MODEL_CACHE", str(tmp_path / "cache"))
    return Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))


def test_a_toy_text_model_answers_each_request_with_its_own_rows(store: Config, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "wordcounter.py").write_text(TOY)
    (source / "batches.log").write_text("")
    sys.path.insert(0, str(source))
    try:
        import wordcounter

        with gw.start_run(name="toy", config=store, capture_code=False) as run:
            run.log_model(wordcounter.WordCounter(), "words", code=[source / "wordcounter.py"],
                          artifacts={"log": source / "batches.log"}, example=["one two", "three"])
    finally:
        sys.path.remove(str(source))
        sys.modules.pop("wordcounter", None)
    texts = [" ".join(["w"] * (i % 7 + 1)) for i in range(96)]
    with serve_process(store, ("words",), ("--max-wait-ms", "20"), tmp_path) as server:
        answers = asyncio.run(_post_all(server.url, "words", [[t, t + " x"] for t in texts]))
        bad = server.client.post("/v1/models/words/predict", json={"inputs": [["nested"]]})
    for text, answer in zip(texts, answers, strict=True):
        assert answer["outputs"] == [[len(text.split()), len(text)], [len(text.split()) + 1, len(text) + 2]]
    assert bad.status_code == 422 and "item 0 is an array" in bad.json()["message"]
    log = next((tmp_path / "cache").rglob("artifacts/log")).read_text().split()
    sizes = [int(n) for n in log]
    assert sum(sizes) >= 192 and max(sizes) > 2  # several requests' texts in one call


@pytest.mark.slow
def test_minilm_from_text_through_groundwork_serve(store: Config, tmp_path: Path) -> None:
    """The example end to end: optimize (ONNX Runtime FP32 against PyTorch), register, serve, embed; batched."""
    sys.path.insert(0, str(ROOT / "examples" / "serving"))
    try:
        import minilm_text

        version = minilm_text.register(store, out=tmp_path / "optimized", candidates=["ort-fp32"], quick=True)
        sentences = minilm_text.sentence_data.sentences()[:48]
        reference = _pytorch_embeddings(minilm_text.models, sentences)
    finally:
        sys.path.remove(str(ROOT / "examples" / "serving"))
    assert version.flavor == "python" and version.signature.describe() == "str[N] -> float32[N, 384]"
    with serve_process(store, ("minilm-text@production",), ("--max-wait-ms", "10"), tmp_path) as server:
        answers = asyncio.run(_post_all(server.url, "minilm-text", [[s] for s in sentences]))
        metrics = server.client.get("/metrics").text
    got = np.array([a["outputs"][0] for a in answers], dtype=np.float32)
    cosine = np.sum(got * reference, axis=1)
    assert cosine.min() > 0.99, cosine.min()
    calls = metric(metrics, 'groundwork_batch_size_rows_count{model="minilm-text"}')
    assert calls < len(sentences) - 1  # the warm-up aside, requests shared runtime calls


async def _post_all(url: str, model: str, bodies: list[list[str]]) -> list[Any]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def one(texts: list[str]) -> Any:
            response = await client.post(f"/v1/models/{model}/predict", json={"inputs": texts})
            assert response.status_code == 200, response.text
            return response.json()

        return await asyncio.gather(*(one(b) for b in bodies))


def _pytorch_embeddings(models: Any, sentences: list[str]) -> np.ndarray:
    import torch

    tokenizer = models.minilm_tokenizer()
    batch = tokenizer(sentences, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        return np.asarray(models.minilm()(batch["input_ids"], batch["attention_mask"]).numpy())

