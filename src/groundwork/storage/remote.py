"""A blob store on any fsspec filesystem: ``s3://bucket/prefix``, ``memory://name``, ``gs://…``.

Query parameters of the URL become fsspec storage options, so one string carries
the whole configuration::

    s3://bucket/artifacts?endpoint_url=http://127.0.0.1:9000
    s3://bucket/artifacts?region_name=eu-west-1&max_attempts=2

For S3, ``region_name`` goes to the boto client and ``max_attempts`` to botocore's
retry configuration; every other option is passed to :class:`s3fs.S3FileSystem`
as is (``true``/``false`` become booleans, integers become ints). Without an
``endpoint_url`` option, botocore itself honours ``AWS_ENDPOINT_URL_S3`` and
``AWS_ENDPOINT_URL``; credentials come from the usual AWS chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, instance roles).

Atomicity: an S3 PUT (and a multipart upload) makes an object visible only once
it is complete, so S3 keys are written directly. On other filesystems a write
goes to a ``.gw-tmp-`` key beside the destination and is then moved into place.

fsspec and s3fs are imported when a store is opened, never at import time.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import parse_qsl, urlsplit

from groundwork.errors import ConfigError, StoreError
from groundwork.storage.local import TMP_PREFIX, atomic_writer, check_key

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

CHUNK = 1024 * 1024
S3_PART_SIZE = 8 * CHUNK
# Options that stay strings even when they look like numbers.
_STRING_OPTIONS = frozenset({"key", "secret", "token", "profile", "endpoint_url", "region_name", "username", "password"})
# Protocols whose writes are atomic by themselves (an object appears only when complete).
_ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs"})


def _coerce(name: str, value: str) -> Any:
    if name in _STRING_OPTIONS:
        return value
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered.lstrip("-").isdigit():
        return int(lowered)
    return value


def storage_options(url: str) -> tuple[str, str, dict[str, Any]]:
    """Split ``url`` into (protocol, URL without query, fsspec storage options)."""
    parts = urlsplit(url)
    protocol = parts.scheme.lower()
    options: dict[str, Any] = {name: _coerce(name, value) for name, value in parse_qsl(parts.query)}
    if protocol in ("s3", "s3a"):
        client_kwargs = dict(options.pop("client_kwargs", None) or {})
        if "region_name" in options:
            client_kwargs["region_name"] = options.pop("region_name")
        if client_kwargs:
            options["client_kwargs"] = client_kwargs
        if "max_attempts" in options:
            options["config_kwargs"] = {"retries": {"max_attempts": options.pop("max_attempts")}}
        # Another process may write the same bucket: never answer `exists` from a stale listing.
        options.setdefault("use_listings_cache", False)
    bare = url.split("?", 1)[0].split("#", 1)[0]
    return protocol, bare, options


def _unknown_s3_options(options: dict[str, Any]) -> list[str]:
    """Option names that s3fs would reject only at the first request (with a TypeError)."""
    import inspect

    import aiobotocore.session
    import s3fs
    from fsspec.dircache import DirCache

    known = {"skip_instance_cache"}
    for function in (s3fs.S3FileSystem.__init__, aiobotocore.session.AioSession.__init__, DirCache.__init__):
        known.update(
            name for name, p in inspect.signature(function).parameters.items()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
    return sorted(set(options) - known)


class FsspecBlobStore:
    """Blobs as objects under ``<url>/<key>`` on an fsspec filesystem (S3 first of all).

    A missing bucket, an unreachable endpoint or refused credentials raise
    :class:`~groundwork.errors.StoreError` with one line saying which; a missing
    key raises ``KeyError`` as the :class:`~groundwork.storage.blobs.BlobStore`
    contract says.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.protocol, bare, options = storage_options(url)
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec is a core dependency
            raise ConfigError("fsspec is not installed", hint="pip install fsspec") from None
        try:
            if self.protocol in ("s3", "s3a") and (unknown := _unknown_s3_options(options)):
                raise ConfigError(
                    f"unknown option {', '.join(map(repr, unknown))} in the artifact store URL {self._display()}",
                    hint="s3 URLs take s3fs options such as endpoint_url=, region_name=, anon=true, max_attempts=",
                )
            self.fs: AbstractFileSystem = fsspec.filesystem(self.protocol, **options)
        except ImportError as error:
            extra = "groundwork[s3]" if self.protocol in ("s3", "s3a") else f"the fsspec driver for {self.protocol}://"
            raise ConfigError(
                f"cannot open {self._display()}: {error}", hint=f"pip install {extra}"
            ) from None
        except (TypeError, ValueError) as error:
            raise ConfigError(f"invalid options in the artifact store URL {self._display()}: {error}") from None
        self.root = cast(str, self.fs._strip_protocol(bare)).rstrip("/")
        if not self.root.strip("/"):
            raise ConfigError(
                f"the artifact store URL {self._display()} names no bucket or folder",
                hint=f"use {self.protocol}://bucket/prefix",
            )
        self.atomic_put = self.protocol in _ATOMIC_PUT
        self._boto_errors = _boto_errors() if self.protocol in ("s3", "s3a") else ()

    def __repr__(self) -> str:
        return f"FsspecBlobStore({self._display()!r})"

    def _display(self) -> str:
        """The URL without its query (which may carry secrets)."""
        return self.url.split("?", 1)[0]

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    @property
    def _bucket(self) -> str:
        return self.root.lstrip("/").split("/", 1)[0]

    @contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Turn backend failures into one-line StoreErrors; a missing ``key`` into KeyError."""
        unavailable: tuple[type[BaseException], ...] = (OSError, *self._boto_errors)
        try:
            yield
        except FileNotFoundError as error:
            code = _error_code(error)
            if code == "NoSuchBucket":
                raise StoreError(
                    f"bucket '{self._bucket}' of the artifact store {self._display()} does not exist",
                    hint="create it first, or fix the bucket name in GROUNDWORK_ARTIFACTS",
                ) from None
            if key is None:
                raise StoreError(f"artifact store {self._display()}: not found ({error})") from None
            raise KeyError(key) from None
        except PermissionError as error:
            raise StoreError(
                f"access to the artifact store {self._display()} was refused: {_reason(error)}",
                hint="check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
            ) from None
        except KeyError:
            raise
        except unavailable as error:
            raise StoreError(
                f"cannot use the artifact store {self._display()}: {_reason(error)}",
                hint="check the endpoint (endpoint_url= or AWS_ENDPOINT_URL) and that the server is up",
            ) from None

    def _tmp_path(self, path: str) -> str:
        folder, _, name = path.rpartition("/")
        return f"{folder}/{TMP_PREFIX}{uuid.uuid4().hex}-{name}"

    # --- the BlobStore contract -------------------------------------------------
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        path = self._path(key)
        with self._errors():
            try:
                info = self.fs.info(path)
            except FileNotFoundError as error:
                if _error_code(error) == "NoSuchBucket":
                    raise
                return False
            return bool(info.get("type") == "file")

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``: one PUT on S3, else a temporary key then a move."""
        path = self._path(key)
        with self._errors():
            if self.atomic_put:
                self.fs.pipe_file(path, data)
            else:
                tmp = self._tmp_path(path)
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, path)

    def put_file(self, key: str, path: Path) -> None:
        """Upload the file at ``path`` under ``key``, streaming it (multipart when large)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
        target = self._path(key)
        with self._errors():
            if self.protocol in ("s3", "s3a"):
                # Multipart above 2 parts' worth, one part at a time: memory stays flat (about 2 parts) whatever the size.
                self.fs.put_file(os.fspath(path), target, chunksize=S3_PART_SIZE, max_concurrency=1,
                                 ContentType="application/octet-stream")
            elif self.atomic_put:
                self.fs.put_file(os.fspath(path), target)
            else:
                tmp = self._tmp_path(target)
                self.fs.put_file(os.fspath(path), tmp)
                self.fs.mv(tmp, target)

    def get_bytes(self, key: str) -> bytes:
        """The bytes under ``key``; ``KeyError`` when absent."""
        path = self._path(key)
        with self._errors(key):
            return bytes(self.fs.cat_file(path))

    def get_file(self, key: str, dest: Path) -> None:
        """Download the object under ``key`` to ``dest`` atomically; ``KeyError`` when absent."""
        with self.open_read(key) as source, atomic_writer(Path(dest)) as out, self._errors(key):
            while chunk := source.read(CHUNK):
                out.write(chunk)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix`` (temporary keys excluded), sorted."""
        folder_part = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = f"{self.root}/{folder_part}" if folder_part else self.root
        with self._errors():
            found = cast("list[str]", self.fs.find(start))
        root = self.root.lstrip("/") + "/"
        keys = []
        for path in found:
            key = path.lstrip("/")
            if not key.startswith(root):
                continue
            key = key[len(root):]
            if key.startswith(prefix) and not key.rpartition("/")[2].startswith(TMP_PREFIX):
                keys.append(key)
        yield from sorted(keys)

    # --- extras the artifact store uses when a backend offers them -----------------
    def size(self, key: str) -> int:
        """The size in bytes of the object under ``key``; ``KeyError`` when absent."""
        path = self._path(key)
        with self._errors(key):
            return int(self.fs.size(path))

    def open_read(self, key: str) -> BinaryIO:
        """A binary file object streaming the object under ``key``; ``KeyError`` when absent."""
        path = self._path(key)
        with self._errors(key):
            return cast(BinaryIO, self.fs.open(path, "rb", block_size=CHUNK))

    def delete(self, key: str) -> None:
        """Remove the object under ``key`` if present."""
        path = self._path(key)
        with self._errors(key):
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                pass


def _boto_errors() -> tuple[type[BaseException], ...]:
    """botocore's and aiohttp's base exceptions, when they are installed."""
    errors: list[type[BaseException]] = []
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover - s3fs depends on botocore
        pass
    try:
        from aiohttp import ClientError as AiohttpClientError

        errors.append(AiohttpClientError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _error_code(error: BaseException) -> str | None:
    """The S3 error code (``NoSuchBucket``…) behind an exception s3fs translated."""
    for candidate in (error, error.__cause__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if isinstance(code, str):
                return code
    return None


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
