"""Corrupted artifacts are never handed out as good ones (issue #9, item 6).

* ``/api/v1/artifacts/<digest>/raw`` of a blob over 8 MiB (streamed) whose stored bytes
  were damaged answers a JSON 500 before any byte, from a real ``groundwork ui``;
  should the bytes change after that check, the transfer stops short of its
  ``Content-Length`` instead of completing.
* ``groundwork artifacts get`` of a folder artifact with one damaged file leaves no
  half-restored folder behind.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _ui_process import request, ui_process
from groundwork.config import Config
from groundwork.errors import CorruptArtifact
from groundwork.storage.artifacts import ArtifactStore, blob_key
from groundwork.storage.metadata import open_metadata_store

MiB = 1024 * 1024


def _blob_path(config: Config, digest: str) -> Path:
    return Path(config.artifacts_url).joinpath(*blob_key(digest).split("/"))


def _flip_byte(path: Path, offset: int) -> None:
    """Damage one byte in place (same file, same size): bit rot under the store's feet."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = Config(store_url=f"sqlite:///{tmp_path}/gw/meta.db", artifacts_url=str(tmp_path / "gw" / "artifacts"))
    open_metadata_store(config.store_url)
    return config


def test_a_corrupted_large_blob_is_a_500_before_any_byte(config: Config, tmp_path: Path) -> None:
    store = ArtifactStore.from_url(config.artifacts_url)
    good = store.put_bytes(os.urandom(9 * MiB))  # above the 8 MiB streaming threshold
    data = os.urandom(12 * MiB + 3)
    bad = store.put_bytes(data)
    _flip_byte(_blob_path(config, bad.digest), 10 * MiB)
    with ui_process(config, tmp_path) as ui:
        answer = request(ui, "GET", f"/api/v1/artifacts/{bad.digest}/raw")
        assert answer.status == 500, (answer.status, answer.headers, len(answer.body))
        body = answer.json()
        assert body["ok"] is False and body["error"] == "Corrupted artifact" and "corrupted" in body["message"]
        assert "immutable" not in answer.headers.get("cache-control", "")
        assert len(answer.body) < 10_000  # an error, not the bytes
        # A healthy blob of the same size class streams whole, and may be cached for good.
        answer = request(ui, "GET", f"/api/v1/artifacts/{good.digest}/raw")
        assert answer.status == 200
        assert int(answer.headers["content-length"]) == 9 * MiB
        assert hashlib.sha256(answer.body).hexdigest() == good.digest
        assert "immutable" in answer.headers["cache-control"]
        assert "Traceback" not in ui.log.read_text(errors="replace")


def test_bytes_changed_after_the_check_stop_the_transfer_short(config: Config) -> None:
    from groundwork.server.artifacts import verified_chunks

    store = ArtifactStore.from_url(config.artifacts_url)
    data = os.urandom(5 * MiB)
    info = store.put_bytes(data)
    reader = store.open_checked(info.digest)  # verified: nothing is wrong yet
    _flip_byte(_blob_path(config, info.digest), 4 * MiB + 7)  # then the disk changes under the open file
    sent: list[bytes] = []
    with pytest.raises(CorruptArtifact):
        for chunk in verified_chunks(reader, size=MiB):
            sent.append(chunk)
    assert sum(map(len, sent)) < len(data)  # the damaged last chunk never went out
    assert b"".join(sent) == data[: sum(map(len, sent))]


def _gw(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **config.child_environ()}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=env, timeout=300)


def test_a_corrupted_folder_artifact_leaves_no_half_restored_folder(config: Config, tmp_path: Path) -> None:
    tree = tmp_path / "model"
    for name in ("a.txt", "b.txt", "c.txt", "z.txt"):
        (tree / "sub").mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(f"contents of {name}\n")
        (tree / "sub" / name).write_text(f"nested {name}\n")
    store = ArtifactStore.from_url(config.artifacts_url)
    info = store.put_dir(tree)
    damaged = hashlib.sha256(b"contents of z.txt\n").hexdigest()  # restored last: everything else would be there
    _flip_byte(_blob_path(config, damaged), 3)
    dest = tmp_path / "out" / "model"
    result = _gw(config, "artifacts", "get", info.digest, str(dest))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"artifact {damaged[:12]} is corrupted" in errors[0], result.stderr
    assert not dest.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temporary folder either
