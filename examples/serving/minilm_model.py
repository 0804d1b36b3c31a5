"""The Python model behind ``minilm-text``: texts in, all-MiniLM-L6-v2 sentence embeddings out.

Stored with the model version (``code=[this file]``) and imported from that copy where the
model loads, so it imports only what serving needs: NumPy, the ``tokenizers`` library
(Rust; no transformers) and groundwork's runtime sessions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Tokens per text: the optimized variant takes exactly this many (every sentence of the examples fits).
LENGTH = 64


class MiniLMText:
    """``predict(["a sentence", ...])`` -> one L2-normalized 384-dim embedding per text.

    The artifacts are ``tokenizer`` (all-MiniLM-L6-v2's ``tokenizer.json``) and ``encoder``
    (a ``groundwork optimize`` variant folder: encoder, mean pooling, normalization).
    """

    def load_context(self, context: Any) -> None:
        from tokenizers import Tokenizer

        from groundwork.engines.runtime import load_session

        tokenizer = Tokenizer.from_file(str(context.artifacts["tokenizer"]))
        tokenizer.enable_truncation(max_length=LENGTH)
        tokenizer.enable_padding(length=LENGTH, pad_id=0, pad_token="[PAD]")
        self.tokenizer = tokenizer
        self.session = load_session(context.artifacts["encoder"], threads=context.threads)

    def preprocess(self, texts: list[str]) -> dict[str, np.ndarray]:
        """One batch of texts (every request the server batched together) as token ids and masks."""
        encoded = self.tokenizer.encode_batch(texts)
        return {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}

    def predict(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.session.run(batch)[0], dtype=np.float32)

    def close(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.close()

    def __getstate__(self) -> dict[str, Any]:
        # What is pickled is the recipe, never a loaded tokenizer or runtime session.
        return {}
