"""A blob store in a local folder: ``./.groundwork/artifacts``, ``/data/gw`` or ``file:///data/gw``.

Every write goes to a temporary name in the destination folder, is flushed and
fsync'd, then renamed into place with :func:`os.replace`, so a reader sees
either the whole object or none. Temporary names start with ``.gw-tmp-`` and
are never listed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from groundwork.errors import StoreError

CHUNK = 1024 * 1024
TMP_PREFIX = ".gw-tmp-"


def path_from_url(url: str) -> Path:
    """The folder a plain path or a ``file://`` URL names (``~`` expanded)."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        # file:///abs/path, file://localhost/abs/path; file://rel/path is read as a relative path.
        host = parts.netloc if parts.netloc not in ("", "localhost") else ""
        return Path(unquote(host + parts.path)).expanduser()
    return Path(url).expanduser()


def check_key(key: str) -> str:
    """``key`` if it is a safe relative ``/``-separated key, else ``ValueError``."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid blob key {key!r}: use a relative '/'-separated path without '..'")
    if parts[-1].startswith(TMP_PREFIX):
        raise ValueError(f"invalid blob key {key!r}: names starting with {TMP_PREFIX!r} are reserved")
    return key


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every OS can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(dest: Path) -> Iterator[BinaryIO]:
    """A file object whose bytes appear at ``dest`` only when the block ends without error.

    The bytes go to a temporary name beside ``dest``; on success they are flushed,
    fsync'd and renamed over ``dest``. On failure the temporary file is removed.
    ``OSError`` propagates to the caller, which knows what to call the folder.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{dest.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(dest.parent)


class LocalBlobStore:
    """Blobs as files under one folder; a key ``ab/cd`` is the file ``<folder>/ab/cd``.

    The folder is created on the first write. A folder that cannot be created or
    written raises :class:`~groundwork.errors.StoreError` naming it.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.root = path_from_url(url)

    def __repr__(self) -> str:
        return f"LocalBlobStore({self.url!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _write_error(self, error: OSError) -> StoreError:
        reason = error.strerror or str(error)
        return StoreError(
            f"cannot write to the artifact folder {self.root}: {reason}",
            hint="choose a writable folder with --artifacts or GROUNDWORK_ARTIFACTS",
        )

    # --- the BlobStore contract -------------------------------------------------
    def exists(self, key: str) -> bool:
        """Whether a file is stored under ``key``."""
        return self._path(key).is_file()

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (temporary name, fsync, rename)."""
        dest = self._path(key)
        try:
            with atomic_writer(dest) as out:
                out.write(data)
        except OSError as error:
            raise self._write_error(error) from None

    def put_file(self, key: str, path: Path) -> None:
        """Copy the file at ``path`` under ``key`` atomically, 1 MiB at a time."""
        dest = self._path(key)
        with open(path, "rb") as source:  # a missing source is the caller's OSError, not ours
            try:
                with atomic_writer(dest) as out:
                    shutil.copyfileobj(source, out, CHUNK)
            except OSError as error:
                raise self._write_error(error) from None

    def get_bytes(self, key: str) -> bytes:
        """The bytes under ``key``; ``KeyError`` when absent."""
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def get_file(self, key: str, dest: Path) -> None:
        """Copy the object under ``key`` to ``dest`` atomically; ``KeyError`` when absent."""
        with self.open_read(key) as source, atomic_writer(Path(dest)) as out:
            shutil.copyfileobj(source, out, CHUNK)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, in sorted order (temporary files excluded)."""
        # Walk only the deepest folder the prefix names completely.
        folder_part = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*folder_part.split("/")) if folder_part else self.root
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                if name.startswith(TMP_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    yield key

    # --- extras the artifact store uses when a backend offers them -----------------
    def size(self, key: str) -> int:
        """The size in bytes of the object under ``key``; ``KeyError`` when absent."""
        try:
            path = self._path(key)
            if not path.is_file():
                raise KeyError(key)
            return path.stat().st_size
        except FileNotFoundError:
            raise KeyError(key) from None

    def open_read(self, key: str) -> BinaryIO:
        """A binary file object reading the object under ``key``; ``KeyError`` when absent."""
        try:
            return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        """Remove the object under ``key`` if present."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
