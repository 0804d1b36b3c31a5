"""Helpers for the browser tests (imported by conftest.py and the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _ui_store import Recorded

from groundwork.config import Config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]


@dataclass
class UIServer:
    url: str
    config: Config
    recorded: Recorded
    home: Path


def canvas_ink(page: Any, selector: str) -> int:
    """Pixels drawn on the canvases under ``selector``: those not of each canvas's most common colour."""
    return int(page.eval_on_selector(
        selector,
        """(root) => {
            const canvases = root.tagName === 'CANVAS' ? [root] : [...root.querySelectorAll('canvas')];
            let ink = 0;
            for (const canvas of canvases) {
                if (!canvas.width || !canvas.height) continue;
                const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
                const counts = new Map();
                for (let i = 0; i < data.length; i += 4) {
                    const key = (data[i] << 24) ^ (data[i + 1] << 16) ^ (data[i + 2] << 8) ^ data[i + 3];
                    counts.set(key, (counts.get(key) || 0) + 1);
                }
                ink += data.length / 4 - Math.max(...counts.values());
            }
            return ink;
        }""",
    ))
