"""``/api/v1/artifacts``: what a digest is, who used it, its bytes, and a preview.

Bytes are served as stored, verified against their digest before the first byte
goes out (a corrupted artifact is a JSON 500, never a 200), but never as active
content of this origin: every raw answer carries ``Content-Security-Policy: sandbox``
and ``nosniff``, and HTML is sent as text, so an artifact cannot script the UI.
"""

from __future__ import annotations

import csv
import io
import logging
import mimetypes
import re
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response, StreamingResponse

from groundwork.errors import AmbiguousReference, ArtifactNotFound, CorruptArtifact, InvalidInput
from groundwork.server.context import ServerContext, get_context
from groundwork.server.responses import JSON, ok
from groundwork.storage.artifacts import CHUNK, ManifestEntry, VerifiedReader
from groundwork.storage.records import ArtifactLink

router = APIRouter(tags=["artifacts"])
log = logging.getLogger("groundwork.server")
Context = Annotated[ServerContext, Depends(get_context)]

STREAM_ABOVE = 8 * 1024 * 1024  # larger raw answers are streamed, not read into memory
PREVIEW_TEXT_BYTES = 256 * 1024
PREVIEW_TABLE_ROWS = 200
PREVIEW_MAX_BYTES = 32 * 1024 * 1024  # larger files are not opened for a preview
MAX_MANIFEST = 5000
_HEX = re.compile(r"^[0-9a-f]{4,64}$")
_IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
           ".webp": "image/webp", ".svg": "image/svg+xml", ".bmp": "image/bmp"}
_TABLES = {".csv": ",", ".tsv": "\t"}
_SAFE_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}


def resolve_digest(ctx: ServerContext, ref: str) -> str:
    """A full digest from a digest or a unique prefix of at least 4 hex characters."""
    ref = ref.strip().lower()
    if not _HEX.match(ref):
        raise InvalidInput(
            f"{ref!r} is not an artifact digest", hint="a digest is 64 hexadecimal characters, or a unique prefix of them"
        )
    if len(ref) == 64:
        if ctx.confined and not _visible(ctx, ref):
            raise ArtifactNotFound(f"no artifact {ref[:12]} in project {ctx.config.project!r}")
        return ref
    found = ctx.store.find_artifacts(ref)
    if not found:
        raise ArtifactNotFound(f"no artifact whose digest starts with {ref!r}")
    if len(found) > 1:
        raise AmbiguousReference(f"digest prefix {ref!r} matches several artifacts", hint="type more characters")
    return found[0]


def _visible(ctx: ServerContext, digest: str) -> bool:
    """Whether a run, a model version or an export of the context's project refers to ``digest``."""
    return bool(ctx.store.artifact_users(digest) or ctx.registry.versions_for_artifact(digest)
                or ctx.registry.exports_for_artifact(digest))


@router.get("/artifacts/{ref}", summary="An artifact: size, files, and the runs that read or wrote it")
def get_artifact(ctx: Context, ref: str) -> JSON:
    digest = resolve_digest(ctx, ref)
    users = ctx.store.artifact_users(digest)
    try:
        info = ctx.artifacts.info(digest)
        size, is_dir, file_count, stored = info.size, info.is_dir, info.file_count, True
    except ArtifactNotFound:
        if not users:
            raise
        size, is_dir, file_count, stored = users[0].size, users[0].is_dir, users[0].file_count, False
    files = None
    if is_dir and stored:
        entries = ctx.artifacts.manifest(digest) or []
        files = [{"path": e.path, "digest": e.digest, "size": e.size} for e in entries[:MAX_MANIFEST]]
    return ok(
        {
            "artifact": {
                "digest": digest,
                "size": size,
                "is_dir": is_dir,
                "file_count": file_count,
                "stored": stored,
                "files": files,
                "files_truncated": bool(files is not None and file_count > MAX_MANIFEST),
                "users": [_user(u) for u in users],
                "kind": users[0].kind if users else None,
                "names": sorted({u.name for u in users}),
            }
        }
    )


def _user(link: ArtifactLink) -> dict[str, Any]:
    return {"run_id": link.run_id, "direction": link.direction, "name": link.name, "kind": link.kind,
            "created_at": link.created_at}


def _file(ctx: ServerContext, digest: str, path: str | None) -> tuple[str, str]:
    """(file digest, file name) of an artifact, or of the file ``path`` inside a directory artifact."""
    entries = ctx.artifacts.manifest(digest)
    if entries is None:
        if path:
            raise InvalidInput(f"artifact {digest[:12]} is a file, not a directory: drop ?path=")
        names = ctx.store.artifact_users(digest)
        return digest, (names[0].name.rsplit("/", 1)[-1] if names else digest[:12])
    if not path:
        raise InvalidInput(
            f"artifact {digest[:12]} is a directory of {len(entries)} files",
            hint="name one with ?path=, as listed by /api/v1/artifacts/" + digest[:12],
        )
    entry = _entry(entries, path)
    return entry.digest, entry.path.rsplit("/", 1)[-1]


def _entry(entries: list[ManifestEntry], path: str) -> ManifestEntry:
    wanted = path.strip("/")
    for entry in entries:
        if entry.path == wanted:
            return entry
    raise ArtifactNotFound(f"no file {path!r} in this directory artifact")


@router.get("/artifacts/{ref}/raw", summary="The bytes of an artifact (or of one file in a directory)")
def get_raw(
    ctx: Context,
    ref: str,
    path: Annotated[str | None, Query(description="A file inside a directory artifact.")] = None,
    download: Annotated[bool, Query(description="Send as an attachment.")] = False,
) -> Response:
    digest = resolve_digest(ctx, ref)
    file_digest, name = _file(ctx, digest, path)
    media = _media_type(name)
    headers = dict(_SAFE_HEADERS)
    disposition = "attachment" if download else "inline"
    headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(name)}"
    # Content-addressed, and every byte is verified before the first is sent (below).
    headers["Cache-Control"] = "private, max-age=31536000, immutable"
    size = ctx.artifacts.info(file_digest).size
    if size <= STREAM_ABOVE:
        return Response(ctx.artifacts.get_bytes(file_digest), media_type=media, headers=headers)
    reader = ctx.artifacts.open_checked(file_digest)  # CorruptArtifact (a JSON 500) here, before any byte
    headers["Content-Length"] = str(size)
    return StreamingResponse(verified_chunks(reader), media_type=media, headers=headers)


def verified_chunks(reader: VerifiedReader, size: int = CHUNK) -> Iterator[bytes]:
    """The reader's bytes, one chunk held back until EOF verified them all.

    Should the stored bytes change after :meth:`ArtifactStore.open_checked` verified them,
    the check at EOF raises before the last chunk goes out: the server drops the
    connection short of ``Content-Length``, and the client sees a truncated transfer,
    never a complete corrupted one.
    """
    with reader:
        held = reader.read(size)
        while held:
            try:
                following = reader.read(size)
            except CorruptArtifact as error:
                log.error("stopped sending a corrupted artifact: %s", error)
                raise
            yield held
            held = following


def _media_type(name: str) -> str:
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in _IMAGES:
        return _IMAGES[suffix]
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if guessed in ("text/html", "application/xhtml+xml", "application/javascript", "text/javascript"):
        return "text/plain; charset=utf-8"
    if guessed.startswith("text/") or guessed == "application/json":
        return f"{guessed}; charset=utf-8"
    return guessed


@router.get("/artifacts/{ref}/preview", summary="A preview: text, an image, or the first rows of a table")
def get_preview(
    ctx: Context,
    ref: str,
    path: Annotated[str | None, Query(description="A file inside a directory artifact.")] = None,
) -> JSON:
    digest = resolve_digest(ctx, ref)
    file_digest, name = _file(ctx, digest, path)
    size = ctx.artifacts.info(file_digest).size
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    base: dict[str, Any] = {"name": name, "size": size, "digest": file_digest}
    if suffix in _IMAGES:
        return ok({"preview": {**base, "type": "image", "media_type": _IMAGES[suffix]}})
    if size > PREVIEW_MAX_BYTES:
        return ok({"preview": {**base, "type": "binary", "reason": "too large to preview"}})
    data = ctx.artifacts.get_bytes(file_digest)
    head = data[:PREVIEW_TEXT_BYTES]
    if b"\x00" in head[:8192]:
        return ok({"preview": {**base, "type": "binary"}})
    text = head.decode("utf-8", "replace")
    truncated = len(data) > len(head)
    if suffix in _TABLES:
        reader = csv.reader(io.StringIO(text), delimiter=_TABLES[suffix])
        rows: list[list[str]] = []
        for row in reader:
            rows.append(row)
            if len(rows) > PREVIEW_TABLE_ROWS:
                break
        if rows:
            more = len(rows) > PREVIEW_TABLE_ROWS or truncated
            return ok({"preview": {**base, "type": "table", "columns": rows[0], "rows": rows[1 : PREVIEW_TABLE_ROWS + 1],
                                   "truncated": more}})
    language = {".json": "json", ".py": "python", ".diff": "diff", ".patch": "diff", ".md": "markdown",
                ".yaml": "yaml", ".yml": "yaml"}.get(suffix, "text")
    return ok({"preview": {**base, "type": "text", "language": language, "text": text, "truncated": truncated}})
