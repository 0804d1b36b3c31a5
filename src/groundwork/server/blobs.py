"""Artifact bytes on a team server: verified downloads, resumable uploads, presigned S3 URLs.

Reads (``viewer``):

* ``GET /blobs/{digest}`` (and ``/manifests/{digest}``, a folder artifact's manifest): the
  bytes, every one verified against the digest before the first is sent (a corrupted
  object is a JSON 500, or, if it changes while being sent, a connection closed short of
  ``Content-Length``: never a complete answer with wrong bytes). ``Range: bytes=a-b``
  answers 206 (one range), which is how a client resumes a download.
* ``HEAD`` of the same: size (``Content-Length``) and existence.
* ``GET /blobs/{digest}/location``: a presigned URL to read the object straight from S3
  (``url`` is null where the store is not S3, or presigning is off). The client verifies
  what it reads there, as it does every read.

Writes (``editor``), each audited (``blob.upload``):

* ``PUT /blobs/{digest}`` (or ``/manifests/{digest}``) with the whole body, up to
  :data:`SINGLE_MAX` bytes: stored once its SHA-256 matches.
* ``POST /uploads`` (``{"kind": "blob"|"manifest", "size": N}``) opens a resumable session;
  ``PUT /uploads/{id}`` with ``Content-Range: bytes a-b/N`` appends a chunk through the
  server, or, for a session in ``direct`` mode (S3), ``POST /uploads/{id}/parts`` hands out
  presigned part URLs; ``GET /uploads/{id}`` says how much it holds (where to resume);
  ``POST /uploads/{id}/complete`` (``{"digest": ...}``) verifies the digest of what was
  received and only then makes the object visible; ``DELETE /uploads/{id}`` drops it.

Who reads what: a digest is readable by a project when the project's runs, model versions or
exports link it (:meth:`PipelineStore.artifact_rows` is confined to the project), when the
project uploaded those very bytes itself (a *grant*, written on every verified upload, so a
run can link what it just uploaded), or, for a file of a folder artifact, when the request
names the folder's manifest (``?via=<manifest digest>``) and that manifest is readable and
lists the file. Anything else is a 404, the same answer as an object that does not exist:
another project's digest, even guessed right, tells nothing. Since a manifest opens its
files, the server keeps only manifests whose every file the uploading project could read.
Storing bytes that are already there still needs them all (the upload proves the caller
has them), never a mere digest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Body, Depends, Header, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from groundwork.errors import (
    ArtifactNotFound,
    CorruptArtifact,
    InvalidInput,
    PayloadTooLarge,
    UnprocessableInput,
)
from groundwork.server.artifacts import verified_chunks
from groundwork.server.audit import audit
from groundwork.server.auth import Principal, Role, require, stores_for
from groundwork.server.context import TTLCache
from groundwork.server.responses import JSON, ok
from groundwork.storage.artifacts import (
    CHUNK,
    ArtifactStore,
    blob_key,
    check_digest,
    copy_stream,
    decode_manifest,
    manifest_key,
)
from groundwork.storage.local import TMP_PREFIX, LocalBlobStore
from groundwork.storage.stores import Stores
from groundwork.storage.uploads import (
    PRESIGN_EXPIRES_S,
    Uploads,
    UploadSession,
    key_for,
    open_uploads,
)

router = APIRouter(tags=["artifact bytes"])
log = logging.getLogger("groundwork.server")
Reader = Annotated[Principal, Depends(require(Role.viewer))]
Writer = Annotated[Principal, Depends(require(Role.editor))]

#: The largest object a single ``PUT /blobs/{digest}`` may carry; larger ones go through an upload session.
SINGLE_MAX = 16 * CHUNK
#: The largest manifest the server accepts (it is read whole to check its files: about 300,000 files).
MANIFEST_MAX = 64 * CHUNK
#: Objects up to this size are read into memory to be verified and sent; larger ones are streamed.
IN_MEMORY_MAX = 8 * CHUNK
#: ``GROUNDWORK_SERVER_PRESIGN=0`` keeps the bytes of an S3 store going through the server
#: (for clients that cannot reach S3 themselves).
PRESIGN_ENV = "GROUNDWORK_SERVER_PRESIGN"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_DOWNLOAD_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff",
                     "Accept-Ranges": "bytes"}

#: ``(project, digest)`` a project may read (positives only, briefly: a removed run stops granting soon).
_visible_cache: TTLCache[bool] = TTLCache(4096, ttl=10.0)
#: The file digests of a manifest (content addressed: valid forever).
_members_cache: TTLCache[frozenset[str]] = TTLCache(64, ttl=None)

Kind = Literal["blob", "manifest"]


def grant_key(project: str, digest: str) -> str:
    """The marker saying ``project`` uploaded (so holds) the bytes of ``digest``."""
    return f"grants/{project}/{digest[:2]}/{digest}"


def presign_enabled() -> bool:
    return os.environ.get(PRESIGN_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def uploads_for(stores: Stores) -> Uploads:
    """The upload area of the server's artifact store (one per process)."""
    return open_uploads(stores.artifacts, presign=presign_enabled())


def _owner(principal: Principal) -> str:
    return f"{principal.project}\n{principal.user}"


def _not_found(kind: str, digest: str) -> ArtifactNotFound:
    return ArtifactNotFound(f"no {kind} {digest[:12]} readable in this project",
                            hint="check the digest, and that the token is of the project that logged it")


# --- who may read what ---------------------------------------------------------------------------------
def visible(stores: Stores, project: str, digest: str, via: str | None = None) -> bool:
    """Whether ``project`` may read the object ``digest`` (see the module's docstring)."""
    if _visible_cache.get((project, digest)):
        return True
    found = bool(stores.pipelines.artifact_rows([digest])) or stores.artifacts.blobs.exists(grant_key(project, digest))
    if not found and via is not None and via != digest:
        check_digest(via)
        found = visible(stores, project, via) and digest in _members(stores.artifacts, via)
    if found:
        _visible_cache.put((project, digest), True)
    return found


def visible_many(stores: Stores, project: str, digests: list[str]) -> list[str]:
    """Those of ``digests`` ``project`` may not read (one query for the linked ones, then the grants)."""
    pending = [d for d in dict.fromkeys(digests) if not _visible_cache.get((project, d))]
    linked = stores.pipelines.artifact_rows(pending) if pending else {}
    hidden = []
    for digest in pending:
        if digest in linked or stores.artifacts.blobs.exists(grant_key(project, digest)):
            _visible_cache.put((project, digest), True)
        else:
            hidden.append(digest)
    return hidden


def _members(artifacts: ArtifactStore, manifest_digest: str) -> frozenset[str]:
    def load() -> frozenset[str]:
        try:
            entries = artifacts.manifest(manifest_digest) or []
        except ArtifactNotFound:
            entries = []
        return frozenset(e.digest for e in entries)

    return _members_cache.get_or_compute(manifest_digest, load)


def _grant(stores: Stores, project: str, digest: str) -> None:
    key = grant_key(project, digest)
    if not stores.artifacts.blobs.exists(key):
        stores.artifacts.blobs.put_bytes(key, b"")
    _visible_cache.put((project, digest), True)


def _vet_manifest(stores: Stores, project: str, digest: str, data: bytes) -> None:
    """Refuse a manifest that names files the project could not read (a manifest opens its files)."""
    if len(data) > MANIFEST_MAX:
        raise PayloadTooLarge(f"a manifest may be at most {MANIFEST_MAX} bytes, not {len(data)}",
                              hint="log a folder with fewer files, or several folders")
    try:
        entries, _ = decode_manifest(data, digest)
    except CorruptArtifact as error:
        raise UnprocessableInput(error.message.replace("artifact", "upload", 1)) from None
    hidden = visible_many(stores, project, [e.digest for e in entries])
    if hidden:
        raise UnprocessableInput(
            f"the manifest names {len(hidden)} file(s) this project has not stored, such as {hidden[0][:12]}",
            hint="upload a folder's files before its manifest",
        )


# --- reading -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    stores: Stores
    kind: Kind
    digest: str

    @property
    def key(self) -> str:
        return blob_key(self.digest) if self.kind == "blob" else manifest_key(self.digest)

    @property
    def artifacts(self) -> ArtifactStore:
        return self.stores.artifacts


def _target(principal: Principal, request: Request, kind: Kind, digest: str, via: str | None) -> _Target:
    check_digest(digest)
    stores = stores_for(principal, request)
    if not visible(stores, principal.project, digest, via if kind == "blob" else None):
        raise _not_found(kind, digest)
    return _Target(stores, kind, digest)


def _size(target: _Target) -> int:
    blobs = target.artifacts.blobs
    try:
        size = getattr(blobs, "size", None)
        return int(size(target.key)) if size is not None else len(blobs.get_bytes(target.key))
    except KeyError:
        raise _not_found(target.kind, target.digest) from None


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte of a single ``Range: bytes=...`` within ``size``; None for the whole object."""
    if value is None:
        return None
    match = _RANGE.match(value.strip().replace(" ", ""))
    if match is None or (not match.group(1) and not match.group(2)):
        raise InvalidInput(f"cannot read the Range header {value[:80]!r}", hint="send one range: bytes=START- or bytes=START-END")
    first_text, last_text = match.groups()
    if not first_text:  # the last N bytes
        count = int(last_text)
        if count == 0:
            raise _Unsatisfiable(size)
        return max(0, size - count), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or last < first:
        raise _Unsatisfiable(size)
    return first, last


class _Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _headers(target: _Target, length: int) -> dict[str, str]:
    return {**_DOWNLOAD_HEADERS, "Content-Length": str(length), "ETag": f'"{target.digest}"',
            "Cache-Control": "private, max-age=31536000, immutable"}


def _verified_bytes(target: _Target) -> bytes:
    try:
        data = target.artifacts.blobs.get_bytes(target.key)
    except KeyError:
        raise _not_found(target.kind, target.digest) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != target.digest:
        raise CorruptArtifact(f"artifact {target.digest[:12]} is corrupted: stored bytes hash to {actual[:12]}",
                              hint="log the artifact again to repair it")
    return data


def _verified_handle(target: _Target) -> BinaryIO:
    """A seekable handle of a blob whose every byte was verified: the file itself for a folder
    store, else a private temporary copy (unlinked already: it goes when the handle closes)."""
    artifacts = target.artifacts
    blobs = artifacts.blobs
    if isinstance(blobs, LocalBlobStore):
        try:
            handle = blobs.open_read(target.key)
        except KeyError:
            raise _not_found(target.kind, target.digest) from None
        try:
            sha = hashlib.sha256()
            while chunk := handle.read(CHUNK):
                sha.update(chunk)
            if sha.hexdigest() != target.digest:
                raise CorruptArtifact(f"artifact {target.digest[:12]} is corrupted: stored bytes hash to "
                                      f"{sha.hexdigest()[:12]}", hint="log the artifact again to repair it")
        except BaseException:
            handle.close()
            raise
        return handle
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX)
    os.unlink(name)
    spool = os.fdopen(fd, "w+b")
    try:
        try:
            reader = artifacts.open_verified(target.digest)
        except ArtifactNotFound:
            raise _not_found(target.kind, target.digest) from None
        with reader:
            copy_stream(reader, spool)
    except BaseException:
        spool.close()
        raise
    return spool


def _slice(handle: BinaryIO, first: int, last: int) -> Iterator[bytes]:
    try:
        handle.seek(first)
        left = last - first + 1
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                raise CorruptArtifact("the stored object became shorter while it was sent")
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _serve(target: _Target, range_header: str | None) -> Response:
    size = _size(target)
    try:
        wanted = _parse_range(range_header, size)
    except _Unsatisfiable as error:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{error.size}", **_DOWNLOAD_HEADERS})
    first, last = wanted if wanted is not None else (0, size - 1)
    length = max(0, last - first + 1)
    headers = _headers(target, length)
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    media = "application/octet-stream"
    if target.kind == "manifest" or size <= IN_MEMORY_MAX:
        data = _verified_bytes(target)
        return Response(data[first : last + 1], status_code=status, media_type=media, headers=headers)
    if wanted is None:
        reader = target.artifacts.open_checked(target.digest)  # every byte verified before this returns
        return StreamingResponse(verified_chunks(reader), media_type=media, headers=headers)
    return StreamingResponse(_slice(_verified_handle(target), first, last), status_code=206, media_type=media,
                             headers=headers)


Via = Annotated[str | None, Query(description="The manifest digest of the folder artifact this file belongs to.",
                                  pattern="^[0-9a-f]{64}$")]
RangeHeader = Annotated[str | None, Header(alias="range", description="One byte range: bytes=START- or bytes=START-END.")]
Digest = Annotated[str, "a SHA-256, 64 lowercase hexadecimal characters"]


@router.get("/blobs/{digest}", summary="The verified bytes of a file artifact (Range requests resume a download)")
def get_blob(principal: Reader, request: Request, digest: Digest, via: Via = None, range: RangeHeader = None) -> Response:
    return _serve(_target(principal, request, "blob", digest, via), range)


@router.get("/manifests/{digest}", summary="The verified manifest of a folder artifact")
def get_manifest(principal: Reader, request: Request, digest: Digest, range: RangeHeader = None) -> Response:
    return _serve(_target(principal, request, "manifest", digest, None), range)


def _head(principal: Principal, request: Request, kind: Kind, digest: str, via: str | None) -> Response:
    target = _target(principal, request, kind, digest, via)
    return Response(status_code=200, headers=_headers(target, _size(target)), media_type="application/octet-stream")


@router.head("/blobs/{digest}", summary="Whether a file artifact is stored and readable, and its size")
def head_blob(principal: Reader, request: Request, digest: Digest, via: Via = None) -> Response:
    return _head(principal, request, "blob", digest, via)


@router.head("/manifests/{digest}", summary="Whether a folder artifact's manifest is stored and readable")
def head_manifest(principal: Reader, request: Request, digest: Digest) -> Response:
    return _head(principal, request, "manifest", digest, None)


@router.get("/blobs/{digest}/location", summary="Where to read a file artifact: a presigned S3 URL, or null")
def blob_location(principal: Reader, request: Request, digest: Digest, via: Via = None) -> JSON:
    target = _target(principal, request, "blob", digest, via)
    size = _size(target)
    url = uploads_for(target.stores).read_url(target.key, PRESIGN_EXPIRES_S)
    return ok({"digest": digest, "size": size, "url": url, "expires_in": PRESIGN_EXPIRES_S if url else None})


@router.get("/manifests/{digest}/location", summary="Where to read a manifest (always through the server: null)")
def manifest_location(principal: Reader, request: Request, digest: Digest) -> JSON:
    target = _target(principal, request, "manifest", digest, None)
    return ok({"digest": digest, "size": _size(target), "url": None, "expires_in": None})


# --- writing in one request ------------------------------------------------------------------------------
async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"a single upload carries at most {limit} bytes, not {declared}",
                              hint="use an upload session: POST /api/v1/uploads")
    parts = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"a single upload carries at most {limit} bytes",
                                  hint="use an upload session: POST /api/v1/uploads")
        parts.append(chunk)
    return b"".join(parts)


def _store_single(principal: Principal, request: Request, kind: Kind, digest: str, data: bytes) -> JSON:
    stores = stores_for(principal, request)
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise UnprocessableInput(f"the body hashes to {actual[:12]}, not {digest[:12]}",
                                 hint="send the bytes whose SHA-256 is the digest in the URL")
    if kind == "manifest":
        _vet_manifest(stores, principal.project, digest, data)
    stores.artifacts.blobs.put_bytes(key_for(kind, digest), data)
    _grant(stores, principal.project, digest)
    audit(principal, "blob.upload", f"{kind}:{digest}", {"size": len(data)})
    return ok({"digest": digest, "kind": kind, "size": len(data)}, status_code=201)


@router.put("/blobs/{digest}", status_code=201, summary=f"Store a file artifact of at most {SINGLE_MAX} bytes in one request")
async def put_blob(principal: Writer, request: Request, digest: Digest) -> JSON:
    check_digest(digest)
    data = await _body(request, SINGLE_MAX)
    return await run_in_threadpool(_store_single, principal, request, "blob", digest, data)


@router.put("/manifests/{digest}", status_code=201, summary="Store a folder artifact's manifest (after its files)")
async def put_manifest(principal: Writer, request: Request, digest: Digest) -> JSON:
    check_digest(digest)
    data = await _body(request, MANIFEST_MAX)
    return await run_in_threadpool(_store_single, principal, request, "manifest", digest, data)


# --- upload sessions --------------------------------------------------------------------------------------
def _describe(area: Uploads, session: UploadSession) -> dict[str, Any]:
    state = area.state(session)
    return {"id": session.id, "kind": session.kind, "size": session.size, "part_size": session.part_size,
            "mode": session.mode, "parts": list(state.parts_done), "part_count": session.parts,
            "received": state.received, "created_at": session.created_at,
            "expires_at": session.created_at + area.ttl if session.mode == "direct" else None}


def _session(principal: Principal, request: Request, upload_id: str) -> tuple[Stores, Uploads, UploadSession]:
    stores = stores_for(principal, request)
    area = uploads_for(stores)
    return stores, area, area.get(upload_id, _owner(principal))


@router.post("/uploads", status_code=201, summary="Start a resumable upload")
def start_upload(
    principal: Writer,
    request: Request,
    size: Annotated[int, Body(ge=0, le=2**62, description="The object's size in bytes.")],
    kind: Annotated[Kind, Body(description="'blob' (a file) or 'manifest' (a folder's).")] = "blob",
) -> JSON:
    if kind == "manifest" and size > MANIFEST_MAX:
        raise PayloadTooLarge(f"a manifest may be at most {MANIFEST_MAX} bytes, not {size}")
    area = uploads_for(stores_for(principal, request))
    session = area.create(owner=_owner(principal), kind=kind, size=size)
    return ok({"upload": _describe(area, session)}, status_code=201)


@router.get("/uploads/{upload_id}", summary="An upload: how many bytes (or which parts) it holds")
def get_upload(principal: Writer, request: Request, upload_id: str) -> JSON:
    _, area, session = _session(principal, request, upload_id)
    return ok({"upload": _describe(area, session)})


_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


@router.put("/uploads/{upload_id}", summary="Send a chunk of an upload (Content-Range: bytes a-b/size)")
async def put_chunk(
    principal: Writer,
    request: Request,
    upload_id: str,
    content_range: Annotated[str, Header(alias="content-range", description="bytes FIRST-LAST/SIZE")],
) -> JSON:
    match = _CONTENT_RANGE.match(content_range.strip())
    if match is None:
        raise InvalidInput(f"cannot read Content-Range {content_range[:80]!r}", hint="send bytes FIRST-LAST/SIZE")
    first, last, total = (int(g) for g in match.groups())
    _, area, session = await run_in_threadpool(_session, principal, request, upload_id)
    if total != session.size or last < first or last >= session.size:
        raise InvalidInput(f"Content-Range {content_range!r} does not fit upload {upload_id!r} of {session.size} bytes")
    writer = await run_in_threadpool(area.writer, session, first)
    try:
        async for chunk in request.stream():
            if chunk:
                writer.write(chunk)
    except ClientDisconnect:
        log.info("upload %s: the client went away at byte %d", upload_id, writer.received)
    finally:
        writer.close()
    return ok({"received": writer.received})


@router.post("/uploads/{upload_id}/parts", summary="Presigned URLs for parts of a direct (S3) upload")
def part_urls(
    principal: Writer,
    request: Request,
    upload_id: str,
    numbers: Annotated[list[Annotated[int, Body(ge=1, le=10_000)]], Body(embed=True, max_length=1000)],
) -> JSON:
    _, area, session = _session(principal, request, upload_id)
    urls = area.part_urls(session, numbers, PRESIGN_EXPIRES_S)
    return ok({"urls": {str(n): url for n, url in urls.items()}, "expires_in": PRESIGN_EXPIRES_S})


@router.post("/uploads/{upload_id}/complete", summary="Verify an upload's digest and store it under its address")
def complete_upload(
    principal: Writer,
    request: Request,
    upload_id: str,
    digest: Annotated[str, Body(embed=True, pattern="^[0-9a-f]{64}$", description="The SHA-256 of the whole object.")],
) -> JSON:
    stores, area, session = _session(principal, request, upload_id)
    vet = None
    if session.kind == "manifest":
        def vet(data: bytes) -> None:
            _vet_manifest(stores, principal.project, digest, data)
    area.complete(session, digest, vet=vet)
    _grant(stores, principal.project, digest)
    audit(principal, "blob.upload", f"{session.kind}:{digest}", {"size": session.size, "mode": session.mode,
                                                                  "upload": session.id})
    return ok({"digest": digest, "kind": session.kind, "size": session.size})


@router.delete("/uploads/{upload_id}", summary="Drop an upload and what it received")
def abort_upload(principal: Writer, request: Request, upload_id: str) -> JSON:
    _, area, session = _session(principal, request, upload_id)
    area.abort(session)
    return ok({"id": upload_id, "aborted": True})


__all__ = ["grant_key", "router", "visible", "visible_many"]
