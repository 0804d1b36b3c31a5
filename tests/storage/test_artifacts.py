"""Content addressing above the blob store, on every backend (local folder, S3 on moto)."""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from groundwork.errors import ArtifactNotFound, CorruptArtifact, InvalidInput
from groundwork.storage.artifacts import ArtifactInfo, ArtifactStore, ManifestEntry, blob_key, manifest_key
from groundwork.storage.local import LocalBlobStore

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MiB = 1024 * 1024


@pytest.fixture
def store(blob_store_url: str) -> ArtifactStore:
    return ArtifactStore.from_url(blob_store_url)


def make_tree(root: Path, order: list[str] | None = None) -> Path:
    """A small tree: nested folders, an empty file, an executable, an empty folder."""
    files = {
        "README.md": b"# model\n",
        "weights/layer1.bin": bytes(range(256)) * 64,
        "weights/layer2.bin": b"\x00" * 1000,
        "weights/copy-of-layer1.bin": bytes(range(256)) * 64,
        "empty.txt": b"",
        "bin/run.sh": b"#!/bin/sh\necho hi\n",
        "a/b/c/deep.txt": "d\u00e9j\u00e0 vu\n".encode(),
    }
    for rel in order or list(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
    (root / "bin/run.sh").chmod(0o755)
    (root / "logs/empty").mkdir(parents=True)
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes | None, bool]]:
    """Every file (bytes, executable) and folder (None, False) under ``root``."""
    out: dict[str, tuple[bytes | None, bool]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            out[rel] = (None, False)
        else:
            out[rel] = (path.read_bytes(), bool(path.stat().st_mode & stat.S_IXUSR))
    return out


def temporaries(folder: Path) -> list[str]:
    """Temporary files or folders a write left in ``folder``."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".gw-tmp-")]


def corrupt(store: ArtifactStore, key: str, data: bytes = b"evil bytes") -> None:
    """Overwrite stored bytes directly in the backend, under the artifact layer's feet."""
    store.blobs.put_bytes(key, data)


# --- files -------------------------------------------------------------------------
def test_put_bytes_returns_the_sha256_and_round_trips(store: ArtifactStore) -> None:
    info = store.put_bytes(b"hello")
    assert info == ArtifactInfo(hashlib.sha256(b"hello").hexdigest(), 5, False, 1)
    assert store.exists(info.digest)
    assert store.get_bytes(info.digest) == b"hello"
    assert store.info(info.digest) == info
    assert store.manifest(info.digest) is None
    assert list(store.blobs.list()) == [blob_key(info.digest)]
    assert blob_key(info.digest) == f"blobs/{info.digest[:2]}/{info.digest}"


def test_same_bytes_are_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    first = store.put_bytes(b"same bytes")
    second = store.put_bytes(b"same bytes")
    (tmp_path / "a.txt").write_bytes(b"same bytes")
    (tmp_path / "b.txt").write_bytes(b"same bytes")
    third = store.put_file(tmp_path / "a.txt")
    fourth = store.put_path(tmp_path / "b.txt")
    assert first == second == third == fourth
    assert list(store.blobs.list("blobs/")) == [blob_key(first.digest)]


def test_existing_key_is_not_uploaded_again(store: ArtifactStore) -> None:
    info = store.put_bytes(b"original")
    corrupt(store, blob_key(info.digest), b"tampered")  # the next put must not touch it
    store.put_bytes(b"original")
    assert store.blobs.get_bytes(blob_key(info.digest)) == b"tampered"


def test_empty_file(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    info = store.put_path(tmp_path / "empty")
    assert info == ArtifactInfo(EMPTY_SHA256, 0, False, 1)
    assert store.get_bytes(EMPTY_SHA256) == b""
    restored = store.restore(EMPTY_SHA256, tmp_path / "out" / "empty")
    assert restored.read_bytes() == b""


def test_large_file_is_streamed_not_loaded(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "large.bin"
    sha = hashlib.sha256()
    with open(source, "wb") as out:
        for i in range(24):  # 24 MiB of varied bytes
            block = hashlib.sha256(str(i).encode()).digest() * (MiB // 32)
            sha.update(block)
            out.write(block)
    tracemalloc.start()
    try:
        info = store.put_file(source)
        dest = store.restore(info.digest, tmp_path / "restored.bin")
        with store.open_verified(info.digest) as reader:
            reader.verify()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info == ArtifactInfo(sha.hexdigest(), 24 * MiB, False, 1)
    assert peak < 20 * MiB, f"peak Python memory {peak / MiB:.1f} MiB for a 24 MiB file"
    assert ArtifactStore.digest_path(dest) == info
    assert store.info(info.digest).size == 24 * MiB


# --- directories ---------------------------------------------------------------------
def test_directory_digest_does_not_depend_on_creation_order(store: ArtifactStore, tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one")
    files = [p.relative_to(one).as_posix() for p in one.rglob("*") if p.is_file()]
    two = make_tree(tmp_path / "two", order=list(reversed(sorted(files))))
    info_one, info_two = store.put_dir(one), store.put_dir(two)
    assert info_one == info_two
    assert info_one.is_dir and info_one.file_count == 7
    assert info_one.size == sum(len(p.read_bytes()) for p in one.rglob("*") if p.is_file())


def test_directory_digest_is_the_sha256_of_its_stored_manifest(store: ArtifactStore, tmp_path: Path) -> None:
    info = store.put_dir(make_tree(tmp_path / "tree"))
    manifest_bytes = store.blobs.get_bytes(manifest_key(info.digest))
    assert hashlib.sha256(manifest_bytes).hexdigest() == info.digest
    entries = store.manifest(info.digest)
    assert entries is not None
    assert [e.path for e in entries] == sorted(e.path for e in entries)
    assert ManifestEntry("bin/run.sh", hashlib.sha256(b"#!/bin/sh\necho hi\n").hexdigest(), 18, True) in entries
    # Two identical files and one empty file: 6 distinct blobs for 7 files.
    assert len(list(store.blobs.list("blobs/"))) == 6


def test_directory_digest_changes_with_content_name_and_exec_bit(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    base = ArtifactStore.digest_path(tree).digest
    (tree / "README.md").write_bytes(b"# model!\n")
    changed_content = ArtifactStore.digest_path(tree).digest
    (tree / "README.md").rename(tree / "README.txt")
    renamed = ArtifactStore.digest_path(tree).digest
    (tree / "README.txt").chmod(0o755)
    exec_bit = ArtifactStore.digest_path(tree).digest
    assert len({base, changed_content, renamed, exec_bit}) == 4


def test_restore_directory_is_byte_equal(store: ArtifactStore, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    info = store.put_path(tree)
    dest = store.restore(info.digest, tmp_path / "restored")
    assert dest == tmp_path / "restored"
    assert snapshot(dest) == snapshot(tree)


def test_digest_path_equals_put_path_and_stores_nothing(store: ArtifactStore, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    file_info = ArtifactStore.digest_path(tree / "README.md")
    dir_info = ArtifactStore.digest_path(tree)
    assert list(store.blobs.list()) == []
    assert store.put_path(tree / "README.md") == file_info
    assert store.put_path(tree) == dir_info


def test_empty_directory(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    info = store.put_path(tmp_path / "empty")
    assert info.is_dir and info.size == 0 and info.file_count == 0
    assert store.manifest(info.digest) == []
    assert store.info(info.digest) == info
    dest = store.restore(info.digest, tmp_path / "out")
    assert dest.is_dir() and list(dest.iterdir()) == []


# --- corruption: reported, never returned ----------------------------------------------
def test_corrupted_blob_is_reported_by_every_read(store: ArtifactStore, tmp_path: Path) -> None:
    info = store.put_bytes(b"precious model weights")
    corrupt(store, blob_key(info.digest))
    bad = hashlib.sha256(b"evil bytes").hexdigest()
    with pytest.raises(CorruptArtifact) as raised:
        store.get_bytes(info.digest)
    assert str(raised.value) == f"artifact {info.digest[:12]} is corrupted: stored bytes hash to {bad[:12]}"
    assert raised.value.hint
    dest = tmp_path / "out" / "weights.bin"
    with pytest.raises(CorruptArtifact):
        store.restore(info.digest, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary file left either
    with pytest.raises(CorruptArtifact), store.open_verified(info.digest) as reader:
        reader.read()


def test_corrupted_file_inside_a_directory_is_not_restored(store: ArtifactStore, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    info = store.put_dir(tree)
    corrupt(store, blob_key(hashlib.sha256(b"\x00" * 1000).hexdigest()))
    dest = tmp_path / "restored"
    with pytest.raises(CorruptArtifact):
        store.restore(info.digest, dest)
    assert not dest.exists()  # not half a folder: nothing
    assert temporaries(tmp_path) == []


def test_a_failed_restore_leaves_an_existing_folder_as_it_was(store: ArtifactStore, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    info = store.put_dir(tree)
    corrupt(store, blob_key(hashlib.sha256(b"\x00" * 1000).hexdigest()))  # weights/layer2.bin, sorted after README.md
    dest = tmp_path / "restored"
    (dest / "weights").mkdir(parents=True)
    (dest / "README.md").write_bytes(b"the user's own readme\n")
    (dest / "notes.txt").write_bytes(b"mine\n")
    before = snapshot(dest)
    for replace in (False, True):
        with pytest.raises(CorruptArtifact):
            store.restore(info.digest, dest, replace=replace)
        assert snapshot(dest) == before
    assert temporaries(tmp_path) == []


def test_restore_merges_into_a_folder_or_replaces_it(store: ArtifactStore, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    info = store.put_dir(tree)
    dest = tmp_path / "restored"
    dest.mkdir()
    (dest / "README.md").write_bytes(b"old readme\n")
    (dest / "notes.txt").write_bytes(b"mine\n")
    store.restore(info.digest, dest)
    assert snapshot(dest) == {**snapshot(tree), "notes.txt": (b"mine\n", False)}
    store.restore(info.digest, dest, replace=True)
    assert snapshot(dest) == snapshot(tree)
    assert temporaries(tmp_path) == []


def test_open_checked_verifies_every_byte_before_returning(store: ArtifactStore) -> None:
    data = os.urandom(3 * MiB + 5)
    info = store.put_bytes(data)
    with store.open_checked(info.digest) as reader:
        assert reader.read() == data
    corrupt(store, blob_key(info.digest), data[:-1] + bytes([data[-1] ^ 1]))  # the last byte flipped
    with pytest.raises(CorruptArtifact):
        store.open_checked(info.digest)
    with pytest.raises(ArtifactNotFound):
        store.open_checked("0" * 64)


def test_corrupted_manifest_is_reported(store: ArtifactStore, tmp_path: Path) -> None:
    info = store.put_dir(make_tree(tmp_path / "tree"))
    corrupt(store, manifest_key(info.digest), b'{"format":"groundwork.manifest/1","files":[],"empty_dirs":[]}')
    with pytest.raises(CorruptArtifact):
        store.manifest(info.digest)
    with pytest.raises(CorruptArtifact):
        store.restore(info.digest, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


# --- bad input -----------------------------------------------------------------------
def test_missing_digest_is_artifact_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    absent = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(absent)
    for call in (store.get_bytes, store.info, store.manifest, store.open_verified):
        with pytest.raises(ArtifactNotFound, match=absent[:12]):
            call(absent)
    with pytest.raises(ArtifactNotFound):
        store.restore(absent, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_malformed_digest_is_invalid_input(store: ArtifactStore) -> None:
    for bad in ("abc", "A" * 64, "g" * 64, "sha256:" + "a" * 64):
        with pytest.raises(InvalidInput, match="not an artifact digest"):
            store.exists(bad)


def test_missing_path_is_invalid_input(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file or folder"):
        store.put_path(tmp_path / "nope")
    with pytest.raises(InvalidInput, match="no such file or folder"):
        ArtifactStore.digest_path(tmp_path / "nope")


def test_get_bytes_of_a_directory_says_so(store: ArtifactStore, tmp_path: Path) -> None:
    info = store.put_dir(make_tree(tmp_path / "tree"))
    with pytest.raises(InvalidInput, match="is a directory"):
        store.get_bytes(info.digest)


def test_symlinks_are_followed_and_loops_refused(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "real").mkdir(parents=True)
    (tree / "real" / "f.txt").write_bytes(b"x")
    os.symlink(tree / "real" / "f.txt", tree / "link.txt")
    info = ArtifactStore.digest_path(tree)
    assert (info.file_count, info.size) == (2, 2)
    os.symlink(tree, tree / "real" / "loop")
    with pytest.raises(InvalidInput, match="loop"):
        ArtifactStore.digest_path(tree)


def test_memory_backend_round_trip(tmp_path: Path) -> None:
    store = ArtifactStore.from_url(f"memory://gw-test-{uuid.uuid4().hex}/store")
    tree = make_tree(tmp_path / "tree")
    info = store.put_path(tree)
    assert snapshot(store.restore(info.digest, tmp_path / "restored")) == snapshot(tree)


# --- any BlobStore will do ---------------------------------------------------------------
class ProtocolOnly:
    """A blob store with only the BlobStore protocol's methods (no size/open_read/delete)."""

    def __init__(self, folder: Path) -> None:
        self._inner = LocalBlobStore(str(folder))
        self.url = str(folder)

    def exists(self, key: str) -> bool:
        return self._inner.exists(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._inner.put_bytes(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self._inner.put_file(key, path)

    def get_bytes(self, key: str) -> bytes:
        return self._inner.get_bytes(key)

    def get_file(self, key: str, dest: Path) -> None:
        self._inner.get_file(key, dest)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self._inner.list(prefix)


def test_a_protocol_only_blob_store_gets_the_same_guarantees(tmp_path: Path) -> None:
    store = ArtifactStore(ProtocolOnly(tmp_path / "store"))
    tree = make_tree(tmp_path / "tree")
    info = store.put_path(tree)
    assert snapshot(store.restore(info.digest, tmp_path / "restored")) == snapshot(tree)
    file_info = store.put_bytes(b"abc")
    assert store.info(file_info.digest) == file_info
    with store.open_verified(file_info.digest) as reader:
        assert reader.read() == b"abc"
    corrupt(store, blob_key(file_info.digest))
    with pytest.raises(CorruptArtifact):
        store.restore(file_info.digest, tmp_path / "abc.txt")
    assert not (tmp_path / "abc.txt").exists()
    with pytest.raises(CorruptArtifact), store.open_verified(file_info.digest) as reader:
        reader.verify()


class ChangesSourceDuringUpload(LocalBlobStore):
    """Rewrites the file being stored between hashing and upload: a writer racing the logger."""

    def put_file(self, key: str, path: Path) -> None:
        Path(path).write_bytes(b"rewritten while uploading, and longer")
        super().put_file(key, path)


def test_a_file_changed_while_stored_is_refused_and_not_kept(tmp_path: Path) -> None:
    store = ArtifactStore(ChangesSourceDuringUpload(str(tmp_path / "store")))
    source = tmp_path / "model.bin"
    source.write_bytes(b"original")
    with pytest.raises(InvalidInput, match="changed while it was being stored"):
        store.put_file(source)
    assert not store.exists(hashlib.sha256(b"original").hexdigest())
    assert list(store.blobs.list()) == []
