"""The byte-level blob store contract, and the lazy registry that picks a backend by URL.

A :class:`BlobStore` knows nothing of digests or runs: it keeps bytes under
string keys (``"ab/abcdef..."``) and promises four things: ``exists``,
atomic ``put`` (a reader never sees a partial object), ``get`` and ``list``.
Content addressing lives once, above it, in :mod:`groundwork.storage.artifacts`.

Backends register by URL scheme. Built-ins use the same registry a plugin
would: ``register_blob_store("myscheme", "package.module:Class")``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from groundwork.errors import UnsupportedURL


@runtime_checkable
class BlobStore(Protocol):
    """Bytes under keys. Keys are ``/``-separated relative paths."""

    url: str

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (temporary name, then rename)."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key`` atomically, streaming it."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The bytes under ``key``; raises ``KeyError`` when absent."""
        ...

    def get_file(self, key: str, dest: Path) -> None:
        """Write the object under ``key`` to ``dest`` (atomically); ``KeyError`` when absent."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with ``prefix``."""
        ...


# scheme -> "module:Class". "" is a plain path, "file" a file:// URL.
_BACKENDS: dict[str, str] = {
    "": "groundwork.storage.local:LocalBlobStore",
    "file": "groundwork.storage.local:LocalBlobStore",
    "s3": "groundwork.storage.remote:FsspecBlobStore",
    "gs": "groundwork.storage.remote:FsspecBlobStore",
    "gcs": "groundwork.storage.remote:FsspecBlobStore",
    "az": "groundwork.storage.remote:FsspecBlobStore",
    "abfs": "groundwork.storage.remote:FsspecBlobStore",
    "memory": "groundwork.storage.remote:FsspecBlobStore",
}


def register_blob_store(scheme: str, target: str) -> None:
    """Make URLs with ``scheme`` open the class named ``"module:Class"``."""
    _BACKENDS[scheme] = target


def blob_store_schemes() -> list[str]:
    return sorted(s for s in _BACKENDS if s)


def open_blob_store(url: str) -> BlobStore:
    """The blob store for ``url``: a folder path, ``file://``, ``s3://bucket/prefix``…"""
    scheme = urlsplit(url).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    target = _BACKENDS.get(scheme)
    if target is None:
        raise UnsupportedURL(
            f"unknown artifact store scheme '{scheme}://' in {url!r}",
            hint=f"use a folder path or one of: {', '.join(s + '://' for s in blob_store_schemes())}",
        )
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    store: BlobStore = cls(url)
    return store
