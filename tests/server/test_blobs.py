"""Artifact bytes through a real team server (uvicorn on 127.0.0.1): scoping, verification, resuming.

The client is :class:`HttpBlobStore` under an unchanged :class:`ArtifactStore`, and raw httpx
where the answer itself is the point.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from _team_app import CuttingProxy, TeamServer, team_server_thread  # noqa: E402
from groundwork.config import Config  # noqa: E402
from groundwork.errors import (  # noqa: E402
    ArtifactNotFound,
    AuthError,
    CorruptArtifact,
    Forbidden,
    UnprocessableInput,
)
from groundwork.storage.artifacts import ArtifactStore, blob_key, encode_manifest, manifest_key  # noqa: E402
from groundwork.storage.http_blobs import SINGLE_MAX, HttpBlobStore  # noqa: E402
from groundwork.storage.stores import open_stores, open_team_store  # noqa: E402
from groundwork.storage.uploads import PART_SIZE  # noqa: E402

API = "/api/v1"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TeamServer]:
    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))
    with team_server_thread(config) as running:
        yield running


def _store(server: TeamServer, project: str = "vision", role: str = "editor", url: str | None = None,
           **kwargs: object) -> ArtifactStore:
    token = server.token(f"{role}-{project}", project, role)
    return ArtifactStore(HttpBlobStore(url or server.url, token, backoff=0.01, **kwargs))  # type: ignore[arg-type]


def _get(server: TeamServer, path: str, token: str, **kwargs: object) -> httpx.Response:
    return httpx.get(server.url + API + path, headers={"Authorization": f"Bearer {token}",
                                                       **kwargs.pop("headers", {})}, **kwargs)  # type: ignore[arg-type]


def test_files_and_folders_go_up_and_come_back_verified(server: TeamServer, tmp_path: Path) -> None:
    store = _store(server)
    small = tmp_path / "small.bin"
    small.write_bytes(b"a few bytes")
    large = tmp_path / "large.bin"
    large.write_bytes(os.urandom(2 * PART_SIZE + 1234))  # past SINGLE_MAX: an upload session
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.txt").write_text("x")
    (folder / "y.bin").write_bytes(os.urandom(1000))
    infos = [store.put_path(p) for p in (small, large, folder)]
    assert large.stat().st_size > SINGLE_MAX
    for info, source in zip(infos, (small, large, folder), strict=True):
        dest = store.restore(info.digest, tmp_path / "back" / source.name)
        if source.is_dir():
            assert (dest / "sub" / "x.txt").read_text() == "x"
            assert (dest / "y.bin").read_bytes() == (folder / "y.bin").read_bytes()
        else:
            assert dest.read_bytes() == source.read_bytes()
    assert store.info(infos[1].digest).size == large.stat().st_size
    assert store.exists(infos[2].digest) and store.info(infos[2].digest).file_count == 2
    # The bytes are where the server's artifact store keeps them.
    local = ArtifactStore.from_url(server.config.artifacts_url)
    assert local.get_bytes(infos[0].digest) == b"a few bytes"


def test_another_projects_digest_is_not_found_even_when_guessed(server: TeamServer, tmp_path: Path) -> None:
    mine = _store(server, "vision")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "secret.txt").write_text("vision only")
    file_digest = _sha(b"vision only")
    folder_digest = mine.put_path(folder).digest
    theirs = _store(server, "audio", role="maintainer")
    missing = "0" * 64
    for digest in (file_digest, folder_digest):
        assert not theirs.exists(digest)
        with pytest.raises(ArtifactNotFound):
            theirs.restore(digest, tmp_path / "stolen")
    assert not (tmp_path / "stolen").exists()
    token = server.token("maintainer-audio", "audio", "maintainer")
    answers = {}
    for name, path in {"guessed": f"/blobs/{file_digest}", "absent": f"/blobs/{missing}",
                       "via": f"/blobs/{file_digest}?via={folder_digest}", "manifest": f"/manifests/{folder_digest}",
                       "location": f"/blobs/{file_digest}/location"}.items():
        response = _get(server, path, token)
        assert response.status_code == 404, name
        answers[name] = response.json()
        assert "vision only" not in response.text
    assert answers["guessed"]["message"].replace(file_digest[:12], "X") == \
        answers["absent"]["message"].replace(missing[:12], "X")  # the same answer as for nothing at all
    head = httpx.head(f"{server.url}{API}/blobs/{file_digest}", headers={"Authorization": f"Bearer {token}"})
    assert head.status_code == 404
    # Holding the bytes is what opens them: the other project uploads them itself.
    (tmp_path / "own.txt").write_text("vision only")
    assert theirs.put_path(tmp_path / "own.txt").digest == file_digest
    assert theirs.get_bytes(file_digest) == b"vision only"


def test_files_of_a_readable_folder_are_read_through_its_manifest(server: TeamServer, tmp_path: Path) -> None:
    writer = _store(server, "vision")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha")
    digest = writer.put_path(folder).digest
    token = server.token("viewer-vision", "vision", "viewer")
    # The viewer's project sees the folder (it was uploaded in the project), and so its files via it.
    assert _get(server, f"/blobs/{_sha(b'alpha')}?via={digest}", token).content == b"alpha"
    # A manifest that is not a folder of that file opens nothing.
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.txt").write_text("beta")
    other_digest = _store(server, "audio").put_path(other).digest
    audio = server.token("editor-audio", "audio", "editor")
    assert _get(server, f"/blobs/{_sha(b'alpha')}?via={other_digest}", audio).status_code == 404


def test_a_manifest_naming_files_the_project_never_stored_is_refused(server: TeamServer, tmp_path: Path) -> None:
    victim = _store(server, "vision")
    (tmp_path / "secret.bin").write_bytes(b"top secret")
    secret = victim.put_path(tmp_path / "secret.bin")
    from groundwork.storage.artifacts import ManifestEntry

    forged = encode_manifest([ManifestEntry("loot.bin", secret.digest, secret.size)], [])
    attacker = _store(server, "audio")
    with pytest.raises(UnprocessableInput, match="names 1 file"):
        attacker.blobs.put_bytes(manifest_key(_sha(forged)), forged)
    assert not ArtifactStore.from_url(server.config.artifacts_url).blobs.exists(manifest_key(_sha(forged)))


def test_roles_and_tokens(server: TeamServer, tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"payload")
    with pytest.raises(Forbidden, match="editor role"):
        _store(server, "vision", role="viewer").put_path(tmp_path / "f.bin")
    with pytest.raises(AuthError):
        ArtifactStore(HttpBlobStore(server.url, None)).put_path(tmp_path / "f.bin")
    with pytest.raises(AuthError, match="invalid token"):
        ArtifactStore(HttpBlobStore(server.url, "gw_0123456789abcdef_" + "x" * 43)).exists(_sha(b"payload"))
    response = httpx.post(f"{server.url}{API}/uploads", json={"size": 10})
    assert response.status_code == 401 and response.json()["ok"] is False


def test_writes_are_audited(server: TeamServer, tmp_path: Path) -> None:
    store = _store(server, "vision")
    (tmp_path / "f.bin").write_bytes(b"audited")
    (tmp_path / "big.bin").write_bytes(os.urandom(SINGLE_MAX + 10))
    small, big = store.put_path(tmp_path / "f.bin"), store.put_path(tmp_path / "big.bin")
    entries = open_team_store(server.config.store_url).audit_entries(action="blob", limit=10)
    targets = {(e.actor, e.project, e.target) for e in entries}
    assert ("editor-vision", "vision", f"blob:{small.digest}") in targets
    assert ("editor-vision", "vision", f"blob:{big.digest}") in targets


def test_range_requests(server: TeamServer, tmp_path: Path) -> None:
    data = os.urandom(3 * PART_SIZE)
    (tmp_path / "f.bin").write_bytes(data)
    digest = _store(server).put_path(tmp_path / "f.bin").digest
    token = server.token("viewer-vision", "vision", "viewer")
    for header, first, last in (("bytes=10-19", 10, 19), ("bytes=-5", len(data) - 5, len(data) - 1),
                                (f"bytes={PART_SIZE}-", PART_SIZE, len(data) - 1)):
        response = _get(server, f"/blobs/{digest}", token, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == data[first : last + 1]
        assert response.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    response = _get(server, f"/blobs/{digest}", token, headers={"Range": f"bytes={len(data)}-"})
    assert response.status_code == 416 and response.headers["content-range"] == f"bytes */{len(data)}"
    assert _get(server, f"/blobs/{digest}", token, headers={"Range": "lines=1-2"}).status_code == 400
    # Sent as stored, never compressed (a range counts stored bytes).
    whole = _get(server, f"/blobs/{digest}", token, headers={"Accept-Encoding": "gzip", "Range": "bytes=0-2047"})
    assert "content-encoding" not in whole.headers and whole.content == data[:2048]


@pytest.mark.parametrize("size", [1000, 3 * PART_SIZE], ids=["in-memory", "streamed"])
def test_corrupted_bytes_are_never_handed_out(server: TeamServer, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f.bin").write_bytes(data)
    store = _store(server)
    digest = store.put_path(tmp_path / "f.bin").digest
    stored = Path(server.config.artifacts_url).joinpath(*blob_key(digest).split("/"))
    raw = bytearray(stored.read_bytes())
    raw[size // 2] ^= 0x01
    stored.write_bytes(bytes(raw))
    token = server.token("viewer-vision", "vision", "viewer")
    for headers in ({}, {"Range": "bytes=0-99"}):
        response = _get(server, f"/blobs/{digest}", token, headers=headers)
        assert response.status_code == 500 and response.json()["error"] == "Corrupted artifact"
        assert bytes(data[:100]) not in response.content
    with pytest.raises(CorruptArtifact):
        store.restore(digest, tmp_path / "restored.bin")
    assert not (tmp_path / "restored.bin").exists()


def test_an_upload_whose_bytes_do_not_match_is_refused(server: TeamServer) -> None:
    token = server.token("editor-vision", "vision", "editor")
    auth = {"Authorization": f"Bearer {token}"}
    data = os.urandom(1000)
    wrong = _sha(data + b"!")
    response = httpx.put(f"{server.url}{API}/blobs/{wrong}", content=data, headers=auth)
    assert response.status_code == 422 and "hashes to" in response.json()["message"]
    started = httpx.post(f"{server.url}{API}/uploads", json={"size": len(data)}, headers=auth).json()["upload"]
    assert started["mode"] == "server" and started["received"] == 0
    upload = f"{server.url}{API}/uploads/{started['id']}"
    sent = httpx.put(upload, content=data, headers={**auth, "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})
    assert sent.json()["received"] == len(data)
    done = httpx.post(upload + "/complete", json={"digest": wrong}, headers=auth)
    assert done.status_code == 422 and done.json()["error"] == "Digest mismatch"
    assert not ArtifactStore.from_url(str(Path(str(server.config.artifacts_url)))).exists(wrong)
    assert httpx.get(upload, headers=auth).status_code == 404  # the session ended with it
    # A session is its owner's only.
    other = server.token("editor-audio", "audio", "editor")
    started = httpx.post(f"{server.url}{API}/uploads", json={"size": 10}, headers=auth).json()["upload"]
    assert httpx.get(f"{server.url}{API}/uploads/{started['id']}",
                     headers={"Authorization": f"Bearer {other}"}).status_code == 404


def test_an_upload_cut_off_midway_resumes_from_what_the_server_holds(server: TeamServer, tmp_path: Path) -> None:
    size = 6 * PART_SIZE + 777
    data = os.urandom(size)
    (tmp_path / "f.bin").write_bytes(data)
    proxy = CuttingProxy(server.url)
    try:
        store = _store(server, url=proxy.url)
        proxy.cut_after(up=3 * PART_SIZE + PART_SIZE // 2)  # in the middle of the fourth chunk
        info = store.put_path(tmp_path / "f.bin")
    finally:
        proxy.close()
    stats = store.blobs.stats  # type: ignore[attr-defined]
    assert proxy.cuts == 1 and info.digest == _sha(data)
    assert len(stats.upload_resumed_at) == 1
    resumed = stats.upload_resumed_at[0]
    # It went on from at least the three acknowledged chunks (more if the server kept part of the fourth) ...
    assert 3 * PART_SIZE <= resumed < 4 * PART_SIZE
    # ... so what crossed the wire is the file once, plus less than a chunk again.
    assert size <= proxy.up < size + PART_SIZE + 64 * 1024
    assert ArtifactStore.from_url(server.config.artifacts_url).get_bytes(info.digest) == data


def test_a_download_cut_off_midway_resumes_with_a_range_request(server: TeamServer, tmp_path: Path) -> None:
    size = 5 * PART_SIZE
    data = os.urandom(size)
    (tmp_path / "f.bin").write_bytes(data)
    digest = _store(server).put_path(tmp_path / "f.bin").digest
    proxy = CuttingProxy(server.url)
    try:
        reader_store = _store(server, role="viewer", url=proxy.url)
        proxy.cut_after(down=2 * PART_SIZE)
        dest = reader_store.restore(digest, tmp_path / "back.bin")
    finally:
        proxy.close()
    stats = reader_store.blobs.stats  # type: ignore[attr-defined]
    assert proxy.cuts == 1 and dest.read_bytes() == data
    assert len(stats.download_resumed_at) == 1 and stats.download_resumed_at[0] >= PART_SIZE
    assert proxy.down < size + PART_SIZE  # not from zero


def test_bad_requests_are_one_line_errors(server: TeamServer) -> None:
    token = server.token("editor-vision", "vision", "editor")
    auth = {"Authorization": f"Bearer {token}"}
    for method, path, kwargs in (
        ("GET", "/blobs/nothex", {}),
        ("POST", "/uploads", {"json": {"size": -1}}),
        ("POST", "/uploads", {"json": {"size": 10, "kind": "tree"}}),
        ("PUT", "/uploads/" + "a" * 32, {"content": b"x", "headers": {"Content-Range": "bytes 0-0/1"}}),
        ("POST", "/uploads/" + "a" * 32 + "/complete", {"json": {"digest": "0" * 64}}),
    ):
        headers = {**auth, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        response = httpx.request(method, f"{server.url}{API}{path}", headers=headers, **kwargs)  # type: ignore[arg-type]
        assert 400 <= response.status_code < 500, (method, path)
        body = response.json()
        assert body["ok"] is False and "\n" not in body["message"] and "Traceback" not in json.dumps(body)
    started = httpx.post(f"{server.url}{API}/uploads", json={"size": 10}, headers=auth).json()["upload"]
    upload = f"{server.url}{API}/uploads/{started['id']}"
    for content_range in ("bytes 0-9/11", "bytes 5-20/10", "0-9/10"):
        response = httpx.put(upload, content=b"x" * 10, headers={**auth, "Content-Range": content_range})
        assert response.status_code == 400, content_range
    gap = httpx.put(upload, content=b"x" * 5, headers={**auth, "Content-Range": "bytes 5-9/10"})
    assert gap.status_code == 409 and "send from byte 0" in gap.json()["hint"]
    assert httpx.delete(upload, headers=auth).json()["aborted"] is True
    assert httpx.get(upload, headers=auth).status_code == 404


# --- S3 behind the server -----------------------------------------------------------------------------------
@pytest.fixture
def s3_server(tmp_path: Path, s3_url: str) -> Iterator[TeamServer]:
    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=s3_url)
    with team_server_thread(config) as running:
        yield running


@pytest.mark.s3
def test_with_s3_the_bytes_bypass_the_server_and_are_still_verified(s3_server: TeamServer, tmp_path: Path) -> None:
    size = 3 * PART_SIZE + 99
    data = os.urandom(size)
    (tmp_path / "f.bin").write_bytes(data)
    proxy = CuttingProxy(s3_server.url)  # counts what goes through the server
    try:
        store = _store(s3_server, url=proxy.url)
        info = store.put_path(tmp_path / "f.bin")
        assert store.restore(info.digest, tmp_path / "back.bin").read_bytes() == data
    finally:
        proxy.close()
    assert info.digest == _sha(data)
    assert proxy.up < 64 * 1024 and proxy.down < 64 * 1024  # requests and answers only, not the bytes
    assert ArtifactStore.from_url(s3_server.config.artifacts_url).get_bytes(info.digest) == data
    # The server's own GET still streams verified bytes (for clients without S3 access).
    token = s3_server.token("viewer-vision", "vision", "viewer")
    assert _get(s3_server, f"/blobs/{info.digest}", token, headers={"Range": "bytes=0-9"}).content == data[:10]
    assert _get(s3_server, f"/blobs/{info.digest}", token).content == data


@pytest.mark.s3
def test_with_s3_a_part_with_wrong_bytes_is_caught_at_completion(s3_server: TeamServer) -> None:
    token = s3_server.token("editor-vision", "vision", "editor")
    auth = {"Authorization": f"Bearer {token}"}
    data = os.urandom(SINGLE_MAX + 1)
    started = httpx.post(f"{s3_server.url}{API}/uploads", json={"size": len(data)}, headers=auth).json()["upload"]
    assert started["mode"] == "direct"
    upload = f"{s3_server.url}{API}/uploads/{started['id']}"
    numbers = list(range(1, started["part_count"] + 1))
    assert numbers == [1, 2]
    urls = httpx.post(upload + "/parts", json={"numbers": numbers}, headers=auth).json()["urls"]
    assert "Authorization" not in urls["1"] and token not in json.dumps(urls)
    part = started["part_size"]
    for number, url in urls.items():
        chunk = bytearray(data[(int(number) - 1) * part : int(number) * part])
        if number == "2":
            chunk[0] ^= 0xFF
        assert httpx.put(url, content=bytes(chunk)).status_code == 200
    assert httpx.get(upload, headers=auth).json()["upload"]["received"] == len(data)
    done = httpx.post(upload + "/complete", json={"digest": _sha(data)}, headers=auth)
    assert done.status_code == 422 and done.json()["error"] == "Digest mismatch"
    assert not ArtifactStore.from_url(s3_server.config.artifacts_url).exists(_sha(data))


@pytest.mark.s3
def test_with_presigning_off_s3_bytes_go_through_the_server(tmp_path: Path, s3_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDWORK_SERVER_PRESIGN", "0")
    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=s3_url)
    data = os.urandom(SINGLE_MAX + 5)
    (tmp_path / "f.bin").write_bytes(data)
    with team_server_thread(config) as running:
        store = _store(running)
        digest = store.put_path(tmp_path / "f.bin").digest
        assert store.get_bytes(digest) == data
        assert store.blobs._direct_reads is False  # type: ignore[attr-defined]


def test_a_client_with_only_a_url_and_a_token_logs_and_restores_artifacts(server: TeamServer, tmp_path: Path) -> None:
    """The SDK and `groundwork run` through the server: outputs go up, another member restores them."""
    from groundwork.core.execution import execute_command
    from groundwork.core.tracking import start_run

    token = server.token("editor-vision", "vision", "editor")
    client = Config(server_url=server.url, token=token)
    (tmp_path / "model.bin").write_bytes(os.urandom(SINGLE_MAX + 3))
    (tmp_path / "out").mkdir()
    with start_run(name="train", config=client, capture_code=False) as run:
        logged = run.log_artifact(tmp_path / "model.bin")
    script = "import pathlib; pathlib.Path('out/result.txt').write_text('done')"
    result = execute_command([sys.executable, "-c", script], config=client, outputs=[str(tmp_path / "out")], cwd=tmp_path,
                             echo=False)
    assert result.exit_code == 0
    viewer = Config(server_url=server.url, token=server.token("viewer-vision", "vision", "viewer"))
    store = open_stores(viewer).artifacts
    assert store.restore(logged.digest, tmp_path / "copy.bin").read_bytes() == (tmp_path / "model.bin").read_bytes()
    assert result.status == "finished"
    [folder] = open_stores(viewer).metadata.run_artifacts(result.run_id, "output")
    assert (store.restore(folder.digest, tmp_path / "restored") / "result.txt").read_text() == "done"
    with pytest.raises(Forbidden, match="editor role"):
        store.blobs.probe()  # type: ignore[attr-defined]
    other = open_stores(Config(server_url=server.url, token=server.token("editor-audio", "audio", "editor"))).artifacts
    assert not other.exists(logged.digest)
