"""Content addressing, once, above any :class:`~groundwork.storage.blobs.BlobStore`.

An artifact is addressed by a SHA-256 digest (64 lowercase hex characters):

* a **file** by the digest of its bytes, stored at ``blobs/ab/<digest>``;
* a **directory** by the digest of its *manifest*, stored at ``manifests/ab/<digest>``.
  The manifest is canonical JSON listing every file (relative POSIX path, digest,
  size, executable bit) and every empty folder, sorted; each file's bytes are a
  blob of their own, so identical files are stored once across all directories.

Writes skip the upload when the key already exists, and a manifest is written
only after all of its blobs (the commit marker comes last). Reads verify every
byte against its address: corruption raises :class:`~groundwork.errors.CorruptArtifact`
and corrupted bytes are never returned nor left at a restore destination.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, runtime_checkable

from groundwork.errors import ArtifactNotFound, CorruptArtifact, InvalidInput
from groundwork.storage.blobs import BlobStore, open_blob_store
from groundwork.storage.local import TMP_PREFIX, LocalBlobStore, atomic_writer

CHUNK = 1024 * 1024
MANIFEST_FORMAT = "groundwork.manifest/1"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CORRUPT_HINT = "the stored copy was damaged after it was written; log the artifact again to repair it"


@dataclass(frozen=True)
class ArtifactInfo:
    """What a digest addresses: total ``size`` in bytes, and for a directory its file count."""

    digest: str
    size: int
    is_dir: bool
    file_count: int


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a directory artifact."""

    path: str  # relative, POSIX separators
    digest: str
    size: int
    executable: bool = False


@runtime_checkable
class _Sized(Protocol):
    def size(self, key: str) -> int: ...


@runtime_checkable
class _Streaming(Protocol):
    def open_read(self, key: str) -> BinaryIO: ...


@runtime_checkable
class _Deleting(Protocol):
    def delete(self, key: str) -> None: ...


def blob_key(digest: str) -> str:
    return f"blobs/{digest[:2]}/{digest}"


def manifest_key(digest: str) -> str:
    return f"manifests/{digest[:2]}/{digest}"


def check_digest(digest: str) -> str:
    """``digest`` if it is 64 lowercase hex characters, else :class:`InvalidInput`."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidInput(
            f"{digest!r} is not an artifact digest",
            hint="a digest is 64 lowercase hexadecimal characters (a SHA-256)",
        )
    return digest


def hash_file(path: Path) -> tuple[str, int]:
    """(sha256 hex digest, size) of the file at ``path``, read 1 MiB at a time."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _is_executable(mode: int) -> bool:
    return bool(mode & stat.S_IXUSR)


def encode_manifest(entries: list[ManifestEntry], empty_dirs: list[str]) -> bytes:
    """The canonical manifest bytes: sorted keys and paths, no whitespace, UTF-8."""
    document = {
        "format": MANIFEST_FORMAT,
        "files": [
            {"path": e.path, "digest": e.digest, "size": e.size, "executable": e.executable}
            for e in sorted(entries, key=lambda e: e.path)
        ],
        "empty_dirs": sorted(empty_dirs),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _safe_relative(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path


def decode_manifest(data: bytes, digest: str) -> tuple[list[ManifestEntry], list[str]]:
    """Entries and empty folders of manifest bytes already verified against ``digest``."""
    try:
        document = json.loads(data)
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unknown manifest format {document.get('format')!r}")
        entries = [
            ManifestEntry(str(f["path"]), check_digest(str(f["digest"])), int(f["size"]), bool(f["executable"]))
            for f in document["files"]
        ]
        empty_dirs = [str(d) for d in document["empty_dirs"]]
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInput) as error:
        raise CorruptArtifact(f"manifest of artifact {digest[:12]} cannot be read: {error}") from None
    for path in [e.path for e in entries] + empty_dirs:
        if not _safe_relative(path):
            raise CorruptArtifact(f"manifest of artifact {digest[:12]} names an unsafe path {path!r}")
    return entries, empty_dirs


def _scan_dir(root: Path) -> tuple[list[tuple[str, Path, bool]], list[str]]:
    """Every file under ``root`` as (relative posix path, path, executable), and every empty folder.

    Symbolic links are followed (a link to a file stores the file's bytes); a
    link that points at one of its own parent folders is refused.
    """
    files: list[tuple[str, Path, bool]] = []
    empty_dirs: list[str] = []

    def walk(folder: Path, rel: PurePosixPath, ancestors: frozenset[tuple[int, int]]) -> None:
        st = folder.stat()
        here = (st.st_dev, st.st_ino)
        if here in ancestors:
            raise InvalidInput(f"{folder} is a symbolic link loop", hint="remove the link or log a narrower path")
        try:
            children = sorted(os.scandir(folder), key=lambda d: d.name)
        except OSError as error:
            raise InvalidInput(f"cannot read the folder {folder}: {error.strerror}") from None
        if not children and rel.parts:
            empty_dirs.append(rel.as_posix())
        for child in children:
            path = Path(child.path)
            child_rel = rel / child.name
            try:
                child_stat = path.stat()  # follows links
            except FileNotFoundError:
                raise InvalidInput(f"{path} is a broken symbolic link", hint="remove it or fix its target") from None
            if stat.S_ISDIR(child_stat.st_mode):
                walk(path, child_rel, ancestors | {here})
            elif stat.S_ISREG(child_stat.st_mode):
                files.append((child_rel.as_posix(), path, _is_executable(child_stat.st_mode)))
            else:
                raise InvalidInput(f"{path} is neither a file nor a folder (a socket, pipe or device)")

    walk(root, PurePosixPath(), frozenset())
    return files, empty_dirs


def _digest_file(path: Path) -> ArtifactInfo:
    digest, size = hash_file(path)
    return ArtifactInfo(digest, size, False, 1)


def _tree(root: Path, file_info: Callable[[Path], ArtifactInfo]) -> tuple[ArtifactInfo, bytes]:
    """The info and manifest bytes of the folder ``root``; ``file_info`` hashes (and maybe stores) each file."""
    if not root.is_dir():
        raise _missing_path(root)
    files, empty_dirs = _scan_dir(root)
    entries = []
    for rel, path, executable in files:
        info = file_info(path)
        entries.append(ManifestEntry(rel, info.digest, info.size, executable))
    try:
        manifest = encode_manifest(entries, empty_dirs)
    except UnicodeEncodeError:
        raise InvalidInput(f"{root} holds a file name that is not valid UTF-8") from None
    digest = hashlib.sha256(manifest).hexdigest()
    return ArtifactInfo(digest, sum(e.size for e in entries), True, len(entries)), manifest


def _check_hash(actual: str, digest: str) -> None:
    """CorruptArtifact unless the bytes read (hashing to ``actual``) are the artifact ``digest``."""
    if actual != digest:
        raise CorruptArtifact(
            f"artifact {digest[:12]} is corrupted: stored bytes hash to {actual[:12]}", hint=_CORRUPT_HINT
        )


def copy_stream(source: io.RawIOBase | io.BufferedIOBase, out: BinaryIO) -> None:
    """Copy ``source`` to ``out`` through one reused buffer of :data:`CHUNK` bytes."""
    buffer = memoryview(bytearray(CHUNK))
    while count := source.readinto(buffer):
        out.write(buffer[:count])


class VerifiedReader(io.RawIOBase):
    """A stream of an artifact's bytes that raises :class:`CorruptArtifact` at EOF on a mismatch.

    Bytes are handed out before the whole object has been checked, so a caller
    must treat what it read as provisional until EOF has been reached without error
    (read to the end, or call :meth:`verify`).
    """

    def __init__(self, source: BinaryIO, digest: str, on_close: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._source = source
        self._digest = digest
        self._sha = hashlib.sha256()
        self._actual: str | None = None  # the digest of what was read, once EOF is reached
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest when negative); ``b""`` at a verified EOF."""
        data = super().read(size)
        return data or b""

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        readinto = getattr(self._source, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer
            count = readinto(view) or 0
        else:
            data = self._source.read(len(view))
            count = len(data)
            view[:count] = data
        if not count:
            self._check()
            return 0
        self._sha.update(view[:count])
        return count

    def _check(self) -> None:
        if self._actual is None:
            self._actual = self._sha.hexdigest()
        _check_hash(self._actual, self._digest)  # raised at every EOF read, not only the first

    def verify(self) -> None:
        """Read (and discard) the rest of the stream, raising CorruptArtifact on a mismatch."""
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        if not self.closed:
            try:
                self._source.close()
            finally:
                if self._on_close is not None:
                    self._on_close()
        super().close()


class ArtifactStore:
    """Content-addressed artifacts (files and directories) on top of any blob store.

    >>> store = ArtifactStore.from_url("./.groundwork/artifacts")   # doctest: +SKIP
    >>> info = store.put_path(Path("model.pt"))                       # doctest: +SKIP
    >>> store.restore(info.digest, Path("copy.pt"))                   # doctest: +SKIP
    """

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    @classmethod
    def from_url(cls, url: str) -> ArtifactStore:
        """The store at ``url``: a folder, ``file://…``, ``s3://bucket/prefix?endpoint_url=…``."""
        return cls(open_blob_store(url))

    @property
    def url(self) -> str:
        return self.blobs.url

    def __repr__(self) -> str:
        return f"ArtifactStore({self.blobs!r})"

    # --- writing -------------------------------------------------------------------
    def put_bytes(self, data: bytes) -> ArtifactInfo:
        """Store ``data`` (once, however often it is put) and return its info."""
        digest = hashlib.sha256(data).hexdigest()
        key = blob_key(digest)
        if not self.blobs.exists(key):
            self.blobs.put_bytes(key, data)
        return ArtifactInfo(digest, len(data), False, 1)

    def put_file(self, path: Path) -> ArtifactInfo:
        """Store the file at ``path``: hashed in 1 MiB chunks, uploaded only if its digest is new."""
        path = Path(path)
        before = self._stat_file(path)
        digest, size = hash_file(path)
        key = blob_key(digest)
        if not self.blobs.exists(key):
            self.blobs.put_file(key, path)
            if self._stat_file(path) != before:
                # The file changed between hashing and uploading: what went up may not match
                # its address. Take it back down if it does not, and let the caller retry.
                self._drop_if_corrupt(key, digest)
                raise InvalidInput(f"{path} changed while it was being stored", hint="store it again once it is written")
        return ArtifactInfo(digest, size, False, 1)

    def put_dir(self, path: Path) -> ArtifactInfo:
        """Store every file under ``path`` as a blob, then its manifest; the digest is the manifest's."""
        info, manifest = _tree(Path(path), self.put_file)
        key = manifest_key(info.digest)
        if not self.blobs.exists(key):
            self.blobs.put_bytes(key, manifest)  # last: the manifest commits the directory
        return info

    def put_path(self, path: Path) -> ArtifactInfo:
        """Store a file or a directory, whichever ``path`` is."""
        path = Path(path)
        if path.is_dir():
            return self.put_dir(path)
        if path.is_file():
            return self.put_file(path)
        raise _missing_path(path)

    @staticmethod
    def digest_path(path: Path) -> ArtifactInfo:
        """The info :meth:`put_path` would return for ``path``, computed without storing anything."""
        path = Path(path)
        if path.is_dir():
            return _tree(path, _digest_file)[0]
        if path.is_file():
            return _digest_file(path)
        raise _missing_path(path)

    @staticmethod
    def _stat_file(path: Path) -> tuple[int, int, int]:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise _missing_path(path) from None
        return st.st_size, st.st_mtime_ns, st.st_ino

    def _drop_if_corrupt(self, key: str, digest: str) -> None:
        try:
            self._verified_file(key, digest, VerifiedReader.verify)
        except CorruptArtifact:
            if isinstance(self.blobs, _Deleting):
                self.blobs.delete(key)

    # --- reading -------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        """Whether a file or a directory with this digest is stored."""
        check_digest(digest)
        return self.blobs.exists(manifest_key(digest)) or self.blobs.exists(blob_key(digest))

    def info(self, digest: str) -> ArtifactInfo:
        """Size, kind and file count of a stored artifact; ArtifactNotFound when absent."""
        entries = self.manifest(digest)
        if entries is not None:
            return ArtifactInfo(digest, sum(e.size for e in entries), True, len(entries))
        key = blob_key(digest)
        try:
            size = self.blobs.size(key) if isinstance(self.blobs, _Sized) else len(self.blobs.get_bytes(key))
        except KeyError:
            raise self._not_found(digest) from None
        return ArtifactInfo(digest, size, False, 1)

    def manifest(self, digest: str) -> list[ManifestEntry] | None:
        """The files of a directory artifact (verified), or ``None`` for a plain file."""
        entries, _ = self._manifest(digest) or (None, None)
        return entries

    def _manifest(self, digest: str) -> tuple[list[ManifestEntry], list[str]] | None:
        check_digest(digest)
        try:
            data = self.blobs.get_bytes(manifest_key(digest))
        except KeyError:
            if self.blobs.exists(blob_key(digest)):
                return None
            raise self._not_found(digest) from None
        self._check_bytes(data, digest)
        return decode_manifest(data, digest)

    def get_bytes(self, digest: str) -> bytes:
        """The verified bytes of a file artifact (CorruptArtifact on mismatch, never the bytes)."""
        check_digest(digest)
        try:
            data = self.blobs.get_bytes(blob_key(digest))
        except KeyError:
            if self.blobs.exists(manifest_key(digest)):
                raise InvalidInput(
                    f"artifact {digest[:12]} is a directory", hint="restore it to a folder instead"
                ) from None
            raise self._not_found(digest) from None
        self._check_bytes(data, digest)
        return data

    def open_verified(self, digest: str) -> VerifiedReader:
        """A binary stream of a file artifact that raises CorruptArtifact at EOF on a mismatch."""
        check_digest(digest)
        key = blob_key(digest)
        if isinstance(self.blobs, _Streaming):
            try:
                return VerifiedReader(self.blobs.open_read(key), digest)
            except KeyError:
                raise self._not_found(digest) from None
        spool = Path(tempfile.mkstemp(prefix=TMP_PREFIX)[1])
        try:
            self.blobs.get_file(key, spool)
        except KeyError:
            spool.unlink(missing_ok=True)
            raise self._not_found(digest) from None
        return VerifiedReader(open(spool, "rb"), digest, on_close=lambda: spool.unlink(missing_ok=True))

    def open_checked(self, digest: str) -> VerifiedReader:
        """A stream of a file artifact whose bytes were all verified before this returns.

        For a server, which must not send one byte of a corrupted object: a mismatch
        raises :class:`CorruptArtifact` here, before anything was handed out. A local
        file is hashed and then read again through the same open handle; any other
        backend is copied to a private temporary file while hashing, which is then
        read (and deleted on close). The stream still checks at EOF, so bytes changed
        in place between the check and the read raise there.
        """
        check_digest(digest)
        key = blob_key(digest)
        if isinstance(self.blobs, LocalBlobStore):
            try:
                source = self.blobs.open_read(key)
            except KeyError:
                raise self._not_found(digest) from None
            try:
                sha = hashlib.sha256()
                while chunk := source.read(CHUNK):
                    sha.update(chunk)
                _check_hash(sha.hexdigest(), digest)
                source.seek(0)
            except BaseException:
                source.close()
                raise
            return VerifiedReader(source, digest)
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX)
        spool = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, self.open_verified(digest) as reader:
                copy_stream(reader, out)
            handle = open(spool, "rb")  # noqa: SIM115 - the reader closes it
        except BaseException:
            spool.unlink(missing_ok=True)
            raise
        return VerifiedReader(handle, digest, on_close=lambda: spool.unlink(missing_ok=True))

    def restore(self, digest: str, dest: Path, *, replace: bool = False) -> Path:
        """Write the artifact at ``dest`` (a file, or a folder tree), every byte verified before ``dest`` changes.

        A file goes to a temporary name beside ``dest`` and is renamed over it. A directory
        is restored whole into a temporary folder beside ``dest`` first; only once every
        file in it is verified is ``dest`` touched: the folder is renamed into place when
        ``dest`` does not exist, swapped for ``dest`` with ``replace``, and otherwise merged
        into it (files of the artifact replace files of the same name, other files stay).
        A corrupted artifact leaves ``dest`` as it was, and no temporary folder behind.
        Returns ``dest``.
        """
        dest = Path(dest)
        tree = self._manifest(digest)
        if tree is None:
            if dest.is_dir():
                raise InvalidInput(f"cannot restore file artifact {digest[:12]} over the folder {dest}")
            self._restore_file(blob_key(digest), digest, dest, executable=None)
            return dest
        entries, empty_dirs = tree
        if dest.exists() and not dest.is_dir():
            raise InvalidInput(f"cannot restore directory artifact {digest[:12]} over the file {dest}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            for entry in entries:
                self._restore_file(blob_key(entry.digest), entry.digest, staging.joinpath(*entry.path.split("/")),
                                   executable=entry.executable)
            for folder in empty_dirs:
                staging.joinpath(*folder.split("/")).mkdir(parents=True, exist_ok=True)
            if not dest.exists() and not dest.is_symlink():
                os.rename(staging, dest)
            elif replace:
                _swap_folder(staging, dest)
            else:
                _merge_folder(staging, dest)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return dest

    def _restore_file(self, key: str, digest: str, dest: Path, executable: bool | None) -> None:
        def write(source: VerifiedReader) -> None:
            with atomic_writer(dest) as out:
                copy_stream(source, out)
                if executable is not None:
                    mode = os.fstat(out.fileno()).st_mode
                    mode = mode | 0o111 if executable else mode & ~0o111
                    os.fchmod(out.fileno(), stat.S_IMODE(mode))

        try:
            self._verified_file(key, digest, write)
        except KeyError:
            raise self._not_found(digest) from None

    def _verified_file(self, key: str, digest: str, consume: Callable[[VerifiedReader], None]) -> None:
        """Feed the verified stream of ``key`` to ``consume``; a CorruptArtifact raised at EOF
        aborts ``consume`` (so an atomic writer inside it never renames into place)."""
        if isinstance(self.blobs, _Streaming):
            source = self.blobs.open_read(key)
            with VerifiedReader(source, digest) as reader:
                consume(reader)
            return
        with tempfile.TemporaryDirectory(prefix=TMP_PREFIX) as spool_dir:
            spool = Path(spool_dir) / "blob"
            self.blobs.get_file(key, spool)
            with VerifiedReader(open(spool, "rb"), digest) as reader:
                consume(reader)

    # --- helpers -------------------------------------------------------------------
    def _check_bytes(self, data: bytes, digest: str) -> None:
        _check_hash(hashlib.sha256(data).hexdigest(), digest)

    def _not_found(self, digest: str) -> ArtifactNotFound:
        return ArtifactNotFound(
            f"artifact {digest[:12]} is not in the artifact store {self.url.split('?', 1)[0]}",
            hint="check GROUNDWORK_ARTIFACTS points at the store the run logged to",
        )


def _swap_folder(new: Path, dest: Path) -> None:
    """Put the folder ``new`` at ``dest`` in place of the folder (or link to one) there."""
    old = dest.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    os.rename(dest, old)
    try:
        os.rename(new, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    if old.is_symlink():
        old.unlink()
    else:
        shutil.rmtree(old)


def _merge_folder(new: Path, dest: Path) -> None:
    """Move every file and folder of ``new`` into the existing folder ``dest``, replacing files of the same name."""
    for folder, dirnames, filenames in os.walk(new):
        target = dest / Path(folder).relative_to(new)
        target.mkdir(exist_ok=True)
        for name in dirnames:
            (target / name).mkdir(exist_ok=True)
        for name in filenames:
            os.replace(Path(folder) / name, target / name)


def _missing_path(path: Path) -> InvalidInput:
    if path.exists() or path.is_symlink():
        return InvalidInput(f"{path} is neither a file nor a folder")
    return InvalidInput(f"no such file or folder: {path}", hint="check the path (relative paths start at the current folder)")


__all__ = [
    "ArtifactInfo",
    "ArtifactStore",
    "ManifestEntry",
    "VerifiedReader",
    "blob_key",
    "copy_stream",
    "hash_file",
    "manifest_key",
]
