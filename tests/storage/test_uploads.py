"""Resumable upload sessions (storage.uploads) on a folder store and on S3 (moto), without HTTP."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest

from groundwork.errors import Conflict, PayloadTooLarge, UnprocessableInput
from groundwork.storage import uploads as uploads_module
from groundwork.storage.artifacts import ArtifactStore, blob_key, manifest_key
from groundwork.storage.uploads import (
    PART_SIZE,
    DigestMismatch,
    FileUploads,
    S3Uploads,
    UploadNotFound,
    open_uploads,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _append(area: FileUploads, session: uploads_module.UploadSession, start: int, data: bytes,
            piece: int = 1000) -> int:
    with area.writer(session, start) as writer:
        for offset in range(0, len(data), piece):
            writer.write(data[offset : offset + piece])
        return writer.received


@pytest.fixture
def local(tmp_path: Path) -> tuple[ArtifactStore, FileUploads]:
    store = ArtifactStore.from_url(str(tmp_path / "artifacts"))
    area = open_uploads(store)
    assert isinstance(area, FileUploads) and area.folder == tmp_path / "artifacts" / ".gw-uploads"
    return store, area


def test_chunks_are_appended_resent_bytes_skipped_and_the_object_appears_only_when_verified(
    local: tuple[ArtifactStore, FileUploads],
) -> None:
    store, area = local
    data = os.urandom(300_000)
    digest = _sha(data)
    session = area.create(owner="p\nann", kind="blob", size=len(data))
    assert _append(area, session, 0, data[:100_000]) == 100_000
    # The answer to the next chunk was lost: the client sends it again, from an older offset.
    assert _append(area, session, 100_000, data[100_000:200_000]) == 200_000
    assert _append(area, session, 150_000, data[150_000:250_000]) == 250_000
    with pytest.raises(Conflict, match="holds 250000 bytes"):
        area.writer(session, 260_000)
    assert area.state(session).received == 250_000
    assert not store.exists(digest)
    with pytest.raises(Conflict, match="holds 250000 of its 300000"):
        area.complete(session, digest)
    _append(area, session, 250_000, data[250_000:])
    assert area.complete(session, digest) == blob_key(digest)
    assert store.get_bytes(digest) == data
    assert sorted(p.name for p in area.folder.iterdir()) == []  # the session's files are gone
    with pytest.raises(UploadNotFound):
        area.get(session.id, "p\nann")


def test_a_session_answers_only_its_owner_and_refuses_bytes_past_its_size(
    local: tuple[ArtifactStore, FileUploads],
) -> None:
    _, area = local
    session = area.create(owner="p\nann", kind="blob", size=10)
    assert area.get(session.id, "p\nann") == session
    for stranger in ("p\nbob", "q\nann"):
        with pytest.raises(UploadNotFound):
            area.get(session.id, stranger)
    with pytest.raises(UploadNotFound):
        area.get("../../etc/passwd", "p\nann")
    with area.writer(session, 0) as writer, pytest.raises(PayloadTooLarge):
        writer.write(b"x" * 11)
    assert area.state(session).received == 0


def test_two_writers_of_one_session_conflict(local: tuple[ArtifactStore, FileUploads]) -> None:
    _, area = local
    session = area.create(owner="o", kind="blob", size=10)
    with area.writer(session, 0), pytest.raises(Conflict, match="another request"):
        area.writer(session, 0)


@pytest.mark.parametrize("same_process", [True, False])
def test_wrong_bytes_never_become_visible(local: tuple[ArtifactStore, FileUploads], same_process: bool) -> None:
    store, area = local
    data = os.urandom(50_000)
    session = area.create(owner="o", kind="blob", size=len(data))
    _append(area, session, 0, data)
    if not same_process:  # another worker completes it: it hashes the file
        area._hashes.drop(session.id)
    # A byte flipped on disk after it arrived is caught too (the file is what gets placed).
    if not same_process:
        path = area._data(session.id)
        raw = bytearray(path.read_bytes())
        raw[123] ^= 0xFF
        path.write_bytes(bytes(raw))
        with pytest.raises(DigestMismatch, match="hash to"):
            area.complete(session, _sha(data))
    else:
        with pytest.raises(DigestMismatch):
            area.complete(session, _sha(data + b"x"))
    assert not store.exists(_sha(data)) and list(area.folder.iterdir()) == []


def test_a_manifest_is_vetted_before_it_is_placed(local: tuple[ArtifactStore, FileUploads]) -> None:
    store, area = local
    manifest = b'{"format":"groundwork.manifest/1","files":[],"empty_dirs":[]}'
    session = area.create(owner="o", kind="manifest", size=len(manifest))
    _append(area, session, 0, manifest)
    seen: list[bytes] = []

    def refuse(data: bytes) -> None:
        seen.append(data)
        raise UnprocessableInput("no")

    with pytest.raises(UnprocessableInput):
        area.complete(session, _sha(manifest), vet=refuse)
    assert seen == [manifest] and not store.blobs.exists(manifest_key(_sha(manifest)))
    session = area.create(owner="o", kind="manifest", size=len(manifest))
    _append(area, session, 0, manifest)
    assert area.complete(session, _sha(manifest), vet=seen.append) == manifest_key(_sha(manifest))
    assert store.manifest(_sha(manifest)) == []


def test_idle_sessions_expire(local: tuple[ArtifactStore, FileUploads]) -> None:
    _, area = local
    old = area.create(owner="o", kind="blob", size=10)
    fresh = area.create(owner="o", kind="blob", size=10)
    past = time.time() - area.ttl - 60
    for path in (area._data(old.id), area._meta(old.id)):
        os.utime(path, (past, past))
    assert area.expire() == 1
    with pytest.raises(UploadNotFound):
        area.state(old)
    assert area.state(fresh).received == 0


def test_other_backends_spool_on_the_server(tmp_path: Path) -> None:
    store = ArtifactStore.from_url("memory://gw-uploads-test/artifacts")
    area = open_uploads(store, spool=tmp_path / "spool")
    assert isinstance(area, FileUploads)
    data = b"spooled bytes" * 1000
    session = area.create(owner="o", kind="blob", size=len(data))
    _append(area, session, 0, data)
    area.complete(session, _sha(data))
    assert store.get_bytes(_sha(data)) == data and list((tmp_path / "spool").iterdir()) == []


# --- S3: parts go straight to the bucket -----------------------------------------------------------------
@pytest.mark.s3
def test_s3_parts_go_up_on_presigned_urls_and_are_verified_before_the_object_appears(s3_url: str) -> None:
    store = ArtifactStore.from_url(s3_url)
    area = open_uploads(store)
    assert isinstance(area, S3Uploads) and area.mode == "direct"
    assert isinstance(open_uploads(store, presign=False), FileUploads)
    data = os.urandom(PART_SIZE + 12_345)
    digest = _sha(data)
    session = area.create(owner="o", kind="blob", size=len(data))
    assert session.parts == 2
    urls = area.part_urls(session, [2])
    assert httpx.put(urls[2], content=data[PART_SIZE:]).status_code == 200
    state = area.state(session)
    assert state.parts_done == (2,) and state.received == 0  # nothing from the start yet
    with pytest.raises(Conflict, match="lacks 1 of its 2 parts"):
        area.complete(session, digest)
    url = area.part_urls(session, [1])[1]
    assert "Signature" in url or "X-Amz-Signature" in url
    assert httpx.put(url, content=data[:PART_SIZE]).status_code == 200
    assert area.state(session).received == len(data)
    assert not store.exists(digest)
    area.complete(session, digest)
    assert store.get_bytes(digest) == data
    left = area.client.list_objects_v2(Bucket=area.bucket, Prefix=f"{area.prefix}.gw-uploads/").get("KeyCount")
    assert left == 0
    read = area.read_url(blob_key(digest))
    assert read is not None and httpx.get(read, headers={"Range": "bytes=5-9"}).content == data[5:10]


@pytest.mark.s3
def test_s3_wrong_bytes_are_removed_and_never_placed(s3_url: str) -> None:
    store = ArtifactStore.from_url(s3_url)
    area = open_uploads(store)
    data = os.urandom(1000)
    session = area.create(owner="o", kind="blob", size=len(data))
    httpx.put(area.part_urls(session, [1])[1], content=data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(DigestMismatch):
        area.complete(session, _sha(data))
    assert not store.exists(_sha(data))
    with pytest.raises(UploadNotFound):
        area.get(session.id, "o")


@pytest.mark.s3
def test_s3_large_objects_are_copied_part_by_part(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads_module, "S3_COPY_MAX", 6 * 1024 * 1024)
    monkeypatch.setattr(uploads_module, "S3_COPY_PART", 5 * 1024 * 1024)
    store = ArtifactStore.from_url(s3_url)
    area = open_uploads(store)
    data = os.urandom(PART_SIZE + 3)
    session = area.create(owner="o", kind="blob", size=len(data))
    for number, url in area.part_urls(session, [1, 2]).items():
        start, length = session.part_range(number)
        httpx.put(url, content=data[start : start + length])
    area.complete(session, _sha(data))
    assert store.get_bytes(_sha(data)) == data


@pytest.mark.s3
def test_s3_sessions_expire(s3_url: str) -> None:
    store = ArtifactStore.from_url(s3_url)
    area = open_uploads(store)
    session = area.create(owner="o", kind="blob", size=10)
    assert area.expire() == 0
    assert area.expire(now=time.time() + area.ttl + 60) == 1
    with pytest.raises(UploadNotFound):
        area.get(session.id, "o")
