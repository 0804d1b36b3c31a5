"""Resumable upload sessions on an artifact store: what the team server's ``/api/v1/uploads`` runs on.

A client that uploads a large object opens a **session** for its size, sends the bytes in
chunks (in any number of requests, resuming after a failure from what the session already
holds), then **completes** it with the digest it expects. Completion hashes what was
received and only if it matches is the object placed under its content address
(``blobs/ab/<digest>`` or ``manifests/ab/<digest>``); the session's temporary data is then
removed. A session nobody touched for :data:`UPLOAD_TTL_S` seconds expires and is cleaned.

Two kinds of area, picked by :func:`open_uploads` from the artifact store:

* :class:`FileUploads` (``mode = "server"``): the bytes go through the server into a
  temporary file. For a folder store the file lives inside the artifact folder
  (``.gw-uploads/``) and is renamed into place, so several server processes share
  sessions; for other backends in a spool folder of the server, then streamed up.
  Chunks are appended only (a resent chunk's bytes already held are skipped), so a
  digest computed while chunks arrive stays valid; a process that saw every chunk of a
  session completes it without reading the file again.
* :class:`S3Uploads` (``mode = "direct"``): the client sends parts straight to S3 on
  presigned URLs (a multipart upload to a temporary key, invisible until completed).
  S3's own checksums are no SHA-256 of the whole object (a multipart SHA-256 is a
  checksum of the parts' checksums), so completion reads the object back once, in 1 MiB
  chunks, hashes it, and only then copies it under its address (a copy inside S3).

Nothing here knows about HTTP or users: the server passes an ``owner`` string, and a
session answers only to the same owner.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from groundwork.errors import Conflict, GroundworkError, InvalidInput, NotFound, PayloadTooLarge, StoreError
from groundwork.storage.artifacts import CHUNK, ArtifactStore, blob_key, check_digest, manifest_key
from groundwork.storage.local import TMP_PREFIX, LocalBlobStore, check_key
from groundwork.storage.remote import FsspecBlobStore, storage_options

Kind = Literal["blob", "manifest"]
KINDS: tuple[Kind, ...] = ("blob", "manifest")
Vet = Callable[[bytes], None]
UPLOAD_TTL_S = 24 * 3600.0
PART_SIZE = 8 * CHUNK  # the size of a part a client sends straight to S3
#: What a client sends per request through the server. The server writes (and keeps, when the
#: connection drops) each byte as it arrives, so a larger request costs nothing on resume and
#: saves a round trip, and the pipe draining empty, per part. Under the 64 MiB body limit
#: docs/server.md gives a reverse proxy.
SERVER_PART_SIZE = 32 * CHUNK
S3_MAX_PARTS = 10_000
S3_COPY_MAX = 5 * 1024**3  # larger objects are copied part by part
S3_COPY_PART = 1024**3
PRESIGN_EXPIRES_S = 300
MAX_UPLOAD_SIZE = 5 * 1024**4  # S3's largest object
SWEEP_EVERY_S = 600.0
AREA = ".gw-uploads"
_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


class UploadNotFound(NotFound):
    headline = "Upload not found"


class DigestMismatch(GroundworkError):
    """The bytes an upload received do not hash to the digest it was completed with."""

    headline = "Digest mismatch"
    http_status = 422


def key_for(kind: str, digest: str) -> str:
    """The blob-store key of a ``blob`` or a ``manifest`` with ``digest``."""
    check_digest(digest)
    if kind == "blob":
        return blob_key(digest)
    if kind == "manifest":
        return manifest_key(digest)
    raise InvalidInput(f"unknown object kind {kind!r}", hint="use 'blob' or 'manifest'")


@dataclass(frozen=True)
class UploadSession:
    """One upload: who opened it, what it will be, and how the client sends its bytes."""

    id: str
    owner: str
    kind: Kind
    size: int
    part_size: int
    mode: Literal["server", "direct"]
    created_at: float
    s3_upload_id: str | None = None

    @property
    def parts(self) -> int:
        """How many parts (direct mode) a client sends; at least one."""
        return max(1, math.ceil(self.size / self.part_size))

    def part_range(self, number: int) -> tuple[int, int]:
        """(offset, length) of part ``number`` (1-based)."""
        start = (number - 1) * self.part_size
        return start, min(self.part_size, self.size - start)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadSession:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class UploadState:
    """What a session holds: ``received`` bytes from the start, and (direct mode) the parts done."""

    received: int
    parts_done: tuple[int, ...] = ()


def _check(session: UploadSession, actual: str, digest: str) -> None:
    if actual != digest:
        raise DigestMismatch(
            f"upload {session.id!r} received bytes that hash to {actual[:12]}, not {digest[:12]}",
            hint="the file changed while it was sent, or the transfer was damaged; upload it again",
        )


def _new_id() -> str:
    return secrets.token_urlsafe(24)


def _check_id(upload_id: str) -> str:
    if not _ID.match(upload_id):
        raise UploadNotFound(f"no upload {upload_id[:40]!r}")
    return upload_id


def _check_new(kind: str, size: int) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"unknown object kind {kind!r}", hint="use 'blob' or 'manifest'")
    if not 0 <= size <= MAX_UPLOAD_SIZE:
        raise InvalidInput(f"upload size must be between 0 and {MAX_UPLOAD_SIZE} bytes, not {size}")


class _Hashes:
    """Digests computed while chunks arrived, by session: ``{id: (bytes hashed, sha256)}``.

    A process that saw every chunk completes the session without reading its bytes
    again; one that did not (the chunks went to another worker) hashes the file.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, upload_id: str, offset: int) -> Any:
        """The running sha256 of ``upload_id`` if it covers exactly its first ``offset`` bytes, else None."""
        with self._lock:
            item = self._items.pop(upload_id, None)
        if item is not None and item[0] == offset:
            return item[1]
        return None

    def put(self, upload_id: str, offset: int, sha: Any) -> None:
        with self._lock:
            self._items[upload_id] = (offset, sha)
            self._items.move_to_end(upload_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._items.pop(upload_id, None)


class Uploads:
    """The contract of an upload area (see the module's docstring)."""

    mode: Literal["server", "direct"]

    def __init__(self, artifacts: ArtifactStore, *, ttl: float = UPLOAD_TTL_S) -> None:
        self.artifacts = artifacts
        self.ttl = ttl
        self._last_sweep = 0.0

    # Every area: create, get, state, complete, abort, expire.
    def create(self, *, owner: str, kind: str, size: int) -> UploadSession:
        raise NotImplementedError

    def get(self, upload_id: str, owner: str) -> UploadSession:
        """The session ``upload_id`` of ``owner``; :class:`UploadNotFound` for anyone else's."""
        session = self._load(_check_id(upload_id))
        if session is None or not secrets.compare_digest(session.owner, owner):
            raise UploadNotFound(f"no upload {upload_id!r}", hint="it may have expired or been completed; start again")
        return session

    def state(self, session: UploadSession) -> UploadState:
        raise NotImplementedError

    def complete(self, session: UploadSession, digest: str, vet: Vet | None = None) -> str:
        """Verify what ``session`` received against ``digest``, place it under its key, and end the
        session. Returns the key. :class:`DigestMismatch` (the session is ended too) when it differs.

        ``vet``, when given, is called with the verified bytes (read whole: for small objects such
        as manifests) before they are placed; an error it raises ends the session unplaced.
        """
        raise NotImplementedError

    def abort(self, session: UploadSession) -> None:
        raise NotImplementedError

    def expire(self, now: float | None = None) -> int:
        """Remove every session idle for longer than the TTL; how many were removed."""
        raise NotImplementedError

    def _load(self, upload_id: str) -> UploadSession | None:
        raise NotImplementedError

    def maybe_sweep(self) -> None:
        """:meth:`expire`, at most every :data:`SWEEP_EVERY_S` seconds per process."""
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_EVERY_S:
            self._last_sweep = now
            self.expire()

    # Server mode only.
    def writer(self, session: UploadSession, start: int) -> Any:
        raise Conflict(
            "this upload takes its parts at presigned URLs, not through the server",
            hint="ask POST /api/v1/uploads/{id}/parts for the URLs",
        )

    # Direct mode only.
    def part_urls(self, session: UploadSession, numbers: list[int], expires: int = PRESIGN_EXPIRES_S) -> dict[int, str]:
        raise Conflict("this upload takes its bytes through the server", hint="PUT them to /api/v1/uploads/{id}")

    def read_url(self, key: str, expires: int = PRESIGN_EXPIRES_S) -> str | None:
        """A presigned URL reading ``key`` straight from the store, or ``None`` where there is none."""
        return None


# --- bytes through the server ----------------------------------------------------------
class ChunkWriter:
    """Appends one request's bytes to a session's file (see :meth:`FileUploads.writer`)."""

    def __init__(self, area: FileUploads, session: UploadSession, start: int) -> None:
        self.area = area
        self.session = session
        self.path = area._data(session.id)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise UploadNotFound(f"no upload {session.id!r}", hint="it may have expired; start again") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise Conflict(f"another request is writing upload {session.id!r}",
                           hint="send one chunk at a time; ask GET /api/v1/uploads/{id} where to go on") from None
        self.received = os.fstat(self._fd).st_size
        if start > self.received:
            self.close()
            raise Conflict(
                f"chunk starts at byte {start} but upload {session.id!r} holds {self.received} bytes",
                hint=f"send from byte {self.received}",
            )
        self._skip = self.received - start  # bytes of this request the session already holds
        self._sha = area._hashes.take(session.id, self.received)
        if self._sha is None and self.received == 0:
            self._sha = hashlib.sha256()

    def write(self, data: bytes) -> None:
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
            if not data:
                return
        if self.received + len(data) > self.session.size:
            raise PayloadTooLarge(
                f"upload {self.session.id!r} is {self.session.size} bytes; this chunk goes past its end"
            )
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self._sha is not None:
            self._sha.update(data)
        self.received += len(data)

    def close(self) -> None:
        if self._fd < 0:
            return
        if getattr(self, "_sha", None) is not None:
            self.area._hashes.put(self.session.id, self.received, self._sha)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileUploads(Uploads):
    """Sessions as files in ``folder``: ``.gw-tmp-<id>`` (the bytes) and ``.gw-tmp-<id>.json``."""

    mode: Literal["server", "direct"] = "server"

    def __init__(self, artifacts: ArtifactStore, folder: Path, *, ttl: float = UPLOAD_TTL_S) -> None:
        super().__init__(artifacts, ttl=ttl)
        self.folder = Path(folder)
        self._hashes = _Hashes()

    def __repr__(self) -> str:
        return f"FileUploads({str(self.folder)!r})"

    def _data(self, upload_id: str) -> Path:
        return self.folder / f"{TMP_PREFIX}{upload_id}"

    def _meta(self, upload_id: str) -> Path:
        return self.folder / f"{TMP_PREFIX}{upload_id}.json"

    def _error(self, error: OSError) -> StoreError:
        return StoreError(f"cannot write uploads to {self.folder}: {error.strerror or error}",
                          hint="the server needs a writable artifact folder")

    def create(self, *, owner: str, kind: str, size: int) -> UploadSession:
        _check_new(kind, size)
        self.maybe_sweep()
        session = UploadSession(_new_id(), owner, kind, size, SERVER_PART_SIZE, "server", time.time())  # type: ignore[arg-type]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._data(session.id).touch(exist_ok=False)
            self._meta(session.id).write_text(json.dumps(session.to_dict()))
        except OSError as error:
            raise self._error(error) from None
        return session

    def _load(self, upload_id: str) -> UploadSession | None:
        try:
            return UploadSession.from_dict(json.loads(self._meta(upload_id).read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def state(self, session: UploadSession) -> UploadState:
        try:
            return UploadState(self._data(session.id).stat().st_size)
        except FileNotFoundError:
            raise UploadNotFound(f"no upload {session.id!r}", hint="it may have expired; start again") from None

    def writer(self, session: UploadSession, start: int) -> ChunkWriter:
        """A writer appending one request's bytes; ``start`` is where its first byte belongs.

        Bytes before what the session holds are skipped (a resent chunk), a start past it is a
        :class:`Conflict` naming the offset to send from, and a second writer of the same session
        at the same time (another request, another process) a :class:`Conflict` too.
        """
        return ChunkWriter(self, session, start)

    def complete(self, session: UploadSession, digest: str, vet: Vet | None = None) -> str:
        key = key_for(session.kind, digest)
        data = self._data(session.id)
        try:
            with open(data, "rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # no chunk is being written now
                size = os.fstat(handle.fileno()).st_size
                if size != session.size:
                    raise Conflict(f"upload {session.id!r} holds {size} of its {session.size} bytes",
                                   hint=f"send the rest from byte {size}, then complete it")
                sha = self._hashes.take(session.id, size)
                whole = None
                if vet is not None:
                    whole = handle.read()
                    sha = hashlib.sha256(whole)
                elif sha is None:
                    sha = hashlib.sha256()
                    while chunk := handle.read(CHUNK):
                        sha.update(chunk)
                try:
                    _check(session, sha.hexdigest(), digest)
                    if vet is not None and whole is not None:
                        vet(whole)
                except GroundworkError:
                    self._remove(session.id)
                    raise
                os.fsync(handle.fileno())
                self._place(key, data)
        except FileNotFoundError:
            raise UploadNotFound(f"no upload {session.id!r}", hint="it may have expired; start again") from None
        self._remove(session.id)
        return key

    def _place(self, key: str, data: Path) -> None:
        blobs = self.artifacts.blobs
        if isinstance(blobs, LocalBlobStore) and _same_device(self.folder, blobs.root):
            dest = blobs.root.joinpath(*check_key(key).split("/"))
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(data, dest)  # verified bytes replace whatever was there (a repair)
            except OSError as error:
                raise self._error(error) from None
            return
        blobs.put_file(key, data)

    def _remove(self, upload_id: str) -> None:
        self._hashes.drop(upload_id)
        for path in (self._meta(upload_id), self._data(upload_id)):
            path.unlink(missing_ok=True)

    def abort(self, session: UploadSession) -> None:
        self._remove(session.id)

    def expire(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        removed = 0
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return 0
        for entry in entries:
            name = entry.name
            if not name.startswith(TMP_PREFIX) or name.endswith(".json"):
                continue
            upload_id = name[len(TMP_PREFIX):]
            meta = self._meta(upload_id)
            try:
                idle_since = max(entry.stat().st_mtime, meta.stat().st_mtime if meta.exists() else 0.0)
            except FileNotFoundError:
                continue
            if now - idle_since > self.ttl:
                self._remove(upload_id)
                removed += 1
        for entry in entries:  # a description whose data is gone
            if entry.name.endswith(".json") and not self._data(entry.name[len(TMP_PREFIX):-5]).exists():
                with _suppress_missing():
                    if now - entry.stat().st_mtime > self.ttl:
                        Path(entry.path).unlink()
                        removed += 1
        return removed


@contextmanager
def _suppress_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass


def _same_device(a: Path, b: Path) -> bool:
    try:
        a.mkdir(parents=True, exist_ok=True)
        b.mkdir(parents=True, exist_ok=True)
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


# --- bytes straight to S3 ---------------------------------------------------------------
def s3_client(store: FsspecBlobStore) -> Any:
    """A botocore S3 client with the endpoint, region and credentials of ``store``'s URL."""
    import botocore.session
    from botocore.config import Config as BotoConfig

    _, _, options = storage_options(store.url)
    client_kwargs = dict(options.get("client_kwargs") or {})
    session = botocore.session.Session(profile=options.get("profile"))
    retries = (options.get("config_kwargs") or {}).get("retries") or {"max_attempts": 3}
    return session.create_client(
        "s3",
        endpoint_url=options.get("endpoint_url") or client_kwargs.get("endpoint_url"),
        region_name=client_kwargs.get("region_name"),
        aws_access_key_id=options.get("key"),
        aws_secret_access_key=options.get("secret"),
        aws_session_token=options.get("token"),
        config=BotoConfig(signature_version="s3v4", retries=retries),
    )


class S3Uploads(Uploads):
    """Sessions as S3 multipart uploads to ``<prefix>/.gw-uploads/.gw-tmp-<id>``, described by a JSON
    object beside them; the client PUTs parts on presigned URLs."""

    mode: Literal["server", "direct"] = "direct"

    def __init__(self, artifacts: ArtifactStore, *, ttl: float = UPLOAD_TTL_S) -> None:
        super().__init__(artifacts, ttl=ttl)
        store = artifacts.blobs
        assert isinstance(store, FsspecBlobStore)
        self.store = store
        root = store.root.lstrip("/")
        self.bucket, _, prefix = root.partition("/")
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = s3_client(store)
        self._errors: tuple[type[BaseException], ...] = _boto_errors()

    def __repr__(self) -> str:
        return f"S3Uploads({self.store.url.split('?', 1)[0]!r})"

    def _tmp(self, upload_id: str) -> str:
        return f"{self.prefix}{AREA}/{TMP_PREFIX}{upload_id}"

    def _meta(self, upload_id: str) -> str:
        return f"{self._tmp(upload_id)}.json"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextmanager
    def _s3(self, what: str) -> Iterator[None]:
        try:
            yield
        except GroundworkError:
            raise
        except self._errors as error:
            code = _code(error)
            if code in ("NoSuchUpload", "NoSuchKey", "404"):
                raise UploadNotFound(f"{what}: the upload is gone", hint="it may have expired; start again") from None
            raise StoreError(f"{what} on S3 failed: {_first_line(error)}",
                             hint="check the artifact store's endpoint and credentials on the server") from None

    def create(self, *, owner: str, kind: str, size: int) -> UploadSession:
        _check_new(kind, size)
        self.maybe_sweep()
        part_size = max(PART_SIZE, math.ceil(size / S3_MAX_PARTS))
        upload_id = _new_id()
        with self._s3("starting an upload"):
            started = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._tmp(upload_id),
                                                          ContentType="application/octet-stream")
            session = UploadSession(upload_id, owner, kind, size, part_size, "direct", time.time(),  # type: ignore[arg-type]
                                    started["UploadId"])
            self.client.put_object(Bucket=self.bucket, Key=self._meta(upload_id),
                                   Body=json.dumps(session.to_dict()).encode(), ContentType="application/json")
        return session

    def _load(self, upload_id: str) -> UploadSession | None:
        try:
            with self._s3("reading an upload"):
                body = self.client.get_object(Bucket=self.bucket, Key=self._meta(upload_id))["Body"].read()
        except UploadNotFound:
            return None
        try:
            return UploadSession.from_dict(json.loads(body))
        except (ValueError, TypeError):
            return None

    def _parts(self, session: UploadSession) -> dict[int, dict[str, Any]]:
        parts: dict[int, dict[str, Any]] = {}
        marker = 0
        with self._s3("listing an upload's parts"):
            while True:
                page = self.client.list_parts(Bucket=self.bucket, Key=self._tmp(session.id),
                                              UploadId=session.s3_upload_id, PartNumberMarker=marker)
                for part in page.get("Parts", []):
                    parts[int(part["PartNumber"])] = part
                if not page.get("IsTruncated"):
                    return parts
                marker = int(page["NextPartNumberMarker"])

    def _whole(self, session: UploadSession, parts: dict[int, dict[str, Any]]) -> list[int]:
        """The part numbers held with the right size."""
        return [n for n in range(1, session.parts + 1)
                if n in parts and int(parts[n]["Size"]) == session.part_range(n)[1]]

    def state(self, session: UploadSession) -> UploadState:
        done = self._whole(session, self._parts(session))
        received = 0
        for number in range(1, session.parts + 1):
            if number not in done:
                break
            received += session.part_range(number)[1]
        return UploadState(received, tuple(done))

    def part_urls(self, session: UploadSession, numbers: list[int], expires: int = PRESIGN_EXPIRES_S) -> dict[int, str]:
        bad = [n for n in numbers if not 1 <= n <= session.parts]
        if bad:
            raise InvalidInput(f"upload {session.id!r} has parts 1 to {session.parts}, not {bad[0]}")
        with self._s3("signing part URLs"):
            return {n: self.client.generate_presigned_url(
                "upload_part", ExpiresIn=expires,
                Params={"Bucket": self.bucket, "Key": self._tmp(session.id), "UploadId": session.s3_upload_id,
                        "PartNumber": n}) for n in numbers}

    def read_url(self, key: str, expires: int = PRESIGN_EXPIRES_S) -> str | None:
        with self._s3("signing a read URL"):
            url: str = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires)
            return url

    def complete(self, session: UploadSession, digest: str, vet: Vet | None = None) -> str:
        key = key_for(session.kind, digest)
        parts = self._parts(session)
        done = self._whole(session, parts)
        if len(done) != session.parts:
            missing = sorted(set(range(1, session.parts + 1)) - set(done))
            raise Conflict(f"upload {session.id!r} lacks {len(missing)} of its {session.parts} parts (first: {missing[0]})",
                           hint="send the missing parts, then complete it")
        tmp = self._tmp(session.id)
        with self._s3("completing an upload"):
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=tmp, UploadId=session.s3_upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": parts[n]["ETag"]} for n in done]})
        try:
            actual, whole = self._hash_object(tmp, keep=vet is not None)
            _check(session, actual, digest)
            if vet is not None and whole is not None:
                vet(whole)
            self._copy(tmp, self._key(key), session.size)
        finally:
            with self._s3("removing an upload"):
                self.client.delete_object(Bucket=self.bucket, Key=tmp)
                self.client.delete_object(Bucket=self.bucket, Key=self._meta(session.id))
        return key

    def _hash_object(self, key: str, keep: bool = False) -> tuple[str, bytes | None]:
        """The SHA-256 of the object ``key``, read 1 MiB at a time (and its bytes, with ``keep``)."""
        sha = hashlib.sha256()
        kept: list[bytes] | None = [] if keep else None
        with self._s3("reading an upload back"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK):
                    sha.update(chunk)
                    if kept is not None:
                        kept.append(chunk)
            finally:
                body.close()
        return sha.hexdigest(), (b"".join(kept) if kept is not None else None)

    def _copy(self, source: str, dest: str, size: int) -> None:
        """Copy inside S3: one CopyObject, or part by part above S3's 5 GiB limit for it."""
        copy_source = {"Bucket": self.bucket, "Key": source}
        with self._s3("placing an upload"):
            if size <= S3_COPY_MAX:
                self.client.copy_object(Bucket=self.bucket, Key=dest, CopySource=copy_source)
                return
            started = self.client.create_multipart_upload(Bucket=self.bucket, Key=dest)
            upload_id = started["UploadId"]
            try:
                done = []
                for number, start in enumerate(range(0, size, S3_COPY_PART), start=1):
                    end = min(start + S3_COPY_PART, size) - 1
                    answer = self.client.upload_part_copy(
                        Bucket=self.bucket, Key=dest, UploadId=upload_id, PartNumber=number,
                        CopySource=copy_source, CopySourceRange=f"bytes={start}-{end}")
                    done.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=dest, UploadId=upload_id,
                                                      MultipartUpload={"Parts": done})
            except BaseException:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=dest, UploadId=upload_id)
                raise

    def abort(self, session: UploadSession) -> None:
        with self._s3("removing an upload"):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._tmp(session.id),
                                                   UploadId=session.s3_upload_id)
            except self._errors as error:
                if _code(error) != "NoSuchUpload":
                    raise
            self.client.delete_object(Bucket=self.bucket, Key=self._meta(session.id))

    def expire(self, now: float | None = None) -> int:
        """End every session started more than the TTL ago (its multipart upload, its description),
        and remove what crashed sessions left in the area."""
        now = time.time() if now is None else now
        removed = 0
        area = f"{self.prefix}{AREA}/"
        described: set[str] = set()
        with self._s3("cleaning expired uploads"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=area):
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    if key.endswith(".json"):
                        described.add(key[: -len(".json")])
                    if now - item["LastModified"].timestamp() <= self.ttl:
                        continue
                    session = self._load(key[len(area) + len(TMP_PREFIX) : -len(".json")]) if key.endswith(".json") else None
                    if session is not None:
                        self.abort(session)
                        removed += 1
                    else:
                        self.client.delete_object(Bucket=self.bucket, Key=key)
            # A multipart upload without a description: its session crashed while it started.
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=area):
                for upload in page.get("Uploads", []):
                    if upload["Key"] not in described and now - upload["Initiated"].timestamp() > self.ttl:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                           UploadId=upload["UploadId"])
        return removed


def _boto_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _code(error: BaseException) -> str | None:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# --- picking an area -----------------------------------------------------------------------
_areas: dict[tuple[int, str, bool, str], Uploads] = {}
_areas_lock = threading.Lock()


def open_uploads(artifacts: ArtifactStore, *, presign: bool = True, spool: Path | None = None) -> Uploads:
    """The upload area of ``artifacts``: S3 with presigned parts (``presign``), else through the server.

    For a folder store the area is ``<folder>/.gw-uploads``; for other backends ``spool``
    (default: ``<tmp>/groundwork-uploads-<hash of the store URL>``). One area per process and store.
    """
    blobs = artifacts.blobs
    direct = presign and isinstance(blobs, FsspecBlobStore) and blobs.protocol in ("s3", "s3a")
    spool_text = str(spool or "")
    cache_key = (os.getpid(), artifacts.url, direct, spool_text)
    with _areas_lock:
        found = _areas.get(cache_key)
        if found is not None:
            return found
    area: Uploads
    if direct:
        area = S3Uploads(artifacts)
    elif isinstance(blobs, LocalBlobStore):
        area = FileUploads(artifacts, blobs.root / AREA)
    else:
        name = hashlib.sha256(artifacts.url.encode()).hexdigest()[:16]
        area = FileUploads(artifacts, spool or Path(tempfile.gettempdir()) / f"groundwork-uploads-{name}")
    with _areas_lock:
        return _areas.setdefault(cache_key, area)


__all__ = [
    "KINDS",
    "PART_SIZE",
    "SERVER_PART_SIZE",
    "DigestMismatch",
    "FileUploads",
    "S3Uploads",
    "UploadNotFound",
    "UploadSession",
    "UploadState",
    "Uploads",
    "key_for",
    "open_uploads",
]
