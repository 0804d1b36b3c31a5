"""Data for the optimize examples and benchmark, all generated here (nothing is downloaded).

* Sentences: ``sentences.txt`` beside this file (222 hand-written sentences). The first
  160 are for calibration and fine-tuning, the rest are held out for evaluation.
  Passages of exactly ``length`` tokens are built by concatenating shuffled sentences
  of one split, so every position holds a real token (no padding).
* Images: seeded Gaussian noise for the random-weight ResNet-18-shaped CNN, and
  scikit-learn's bundled 8x8 digits.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TRAIN_SENTENCES = 160


def sentences() -> list[str]:
    return [line.strip() for line in (HERE / "sentences.txt").read_text().splitlines() if line.strip()]


def sentence_split() -> tuple[list[str], list[str]]:
    """(calibration/fine-tune sentences, held-out sentences)."""
    all_sentences = sentences()
    return all_sentences[:TRAIN_SENTENCES], all_sentences[TRAIN_SENTENCES:]


def passages(tokenizer: Any, pool: list[str], count: int, seed: int, length: int = 128) -> dict[str, np.ndarray]:
    """``count`` token passages of exactly ``length`` tokens from shuffled sentences of ``pool``."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        order = list(pool)
        rng.shuffle(order)
        texts.append(" ".join(order[:16]))  # 16 sentences are always more than 128 tokens
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}


def minilm_data(tokenizer: Any, *, calibration: int = 64, held_out: int = 48, length: int = 128) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(calibration passages, held-out eval passages) for MiniLM."""
    train, test = sentence_split()
    return passages(tokenizer, train, calibration, seed=0, length=length), passages(tokenizer, test, held_out, seed=1, length=length)


def noise_images(count: int, seed: int, size: int = 224) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((count, 3, size, size), dtype=np.float32)}


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of scikit-learn's digits as 1x8x8 float32 images in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    return x[:1300], y[:1300], x[1300:], y[1300:]
