"""Models and data helpers shared by the optimize and runtime tests (tiny on purpose)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class TinyCNN(nn.Module):
    """conv-bn-relu, conv-bn-relu-pool, then a two-layer classifier, for 1x8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: Any) -> Any:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def eval_data(self, n: int = 200) -> dict[str, np.ndarray]:
        return {"x": self.x_test[:n], "labels": self.y_test[:n]}

    def calibration(self, n: int = 64) -> dict[str, np.ndarray]:
        return {"x": self.x_train[:n]}


def load_digits_split() -> Digits:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    return Digits(x[:1400], y[:1400], x[1400:], y[1400:])


def train_cnn(digits: Digits) -> Any:
    torch.manual_seed(0)
    model = TinyCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    model.train()
    for _epoch in range(4):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            loss.backward()
            opt.step()
    return model.eval()


def accuracy_of(model: Any, digits: Digits) -> float:
    with torch.no_grad():
        pred = model(torch.from_numpy(digits.x_test)).argmax(1).numpy()
    return float((pred == digits.y_test).mean())


class TinyEmbedder(nn.Module):
    """A 2-layer, 4-head BERT (random weights), mean-pooled: the shape of all-MiniLM-L6-v2, tiny."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
            attn_implementation="eager",
        )
        torch.manual_seed(0)
        self.encoder = BertModel(config, add_pooling_layer=False)

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1)


def token_data(rows: int, seed: int, length: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(1, 100, size=(rows, length)).astype(np.int64),
        "attention_mask": np.ones((rows, length), dtype=np.int64),
    }
