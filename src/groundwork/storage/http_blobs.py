"""The blob store of a team-server client: artifact bytes through ``groundwork server``.

    store = ArtifactStore(HttpBlobStore("https://gw.example.com", token))
    info = store.put_path(Path("model.pt"))          # uploaded in chunks, resumable
    store.restore(info.digest, Path("copy.pt"))      # downloaded in chunks, verified

:class:`HttpBlobStore` implements :class:`~groundwork.storage.blobs.BlobStore` (and the
streaming and size extras :mod:`groundwork.storage.artifacts` uses) over the server's
``/api/v1/blobs``, ``/api/v1/manifests`` and ``/api/v1/uploads``, so content addressing and
verification stay in :class:`~groundwork.storage.artifacts.ArtifactStore`, unchanged above it.

* **Memory stays flat.** Uploads send one part (the server says how large: 32 MiB) per
  request, read from the file 1 MiB at a time as it is sent; downloads are streamed into
  the reader's buffer (1 MiB) as the connection delivers them, each byte copied once.
* **Uploads resume.** A large object goes through an upload session. After a dropped
  connection or a server restart the client asks the session how much it holds and goes
  on from there (the bytes the server acknowledged are never sent again). The server
  verifies the digest before the object becomes visible.
* **Downloads resume** with ``Range`` requests from the byte the stream had reached.
* **S3 behind the server.** Where the server's store is S3 it answers with presigned URLs:
  parts go up and bytes come down straight from S3 (several parts at a time), never
  through the server; this client sends its token to the server only, never to S3.
* **Errors**: connection failures and 502/503/504 answers are retried with exponential
  backoff; a 4xx is one line (the server's message and hint) as a
  :class:`~groundwork.errors.GroundworkError`; a missing object is ``KeyError`` as the
  contract says.

Only content-addressed keys exist on a server (``blobs/ab/<digest>``,
``manifests/ab/<digest>``); a project reads only what its runs, model versions and exports
link, what it uploaded itself, and the files of folder artifacts it can read. The files of a
folder are asked for together with the folder's manifest digest (``?via=``), which this
client remembers from the manifests it read. Listing and deleting are not offered.

The ``http``/``https`` schemes are **not** registered in the blob-store registry: a client's
artifact store is the server it talks to (``GROUNDWORK_SERVER``) and needs its token, which
a bare URL in ``GROUNDWORK_ARTIFACTS`` would not carry. :func:`groundwork.storage.stores.open_stores`
builds this store from the config's server URL and token.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import httpx

from groundwork.errors import InvalidInput, StoreError
from groundwork.storage.artifacts import copy_stream
from groundwork.storage.http import backoff, check_transport, error_from_answer
from groundwork.storage.local import atomic_writer

API = "/api/v1"
CHUNK = 1024 * 1024
SINGLE_MAX = 8 * CHUNK  # objects up to this size go up in one request
RETRY_STATUSES = frozenset({502, 503, 504})
_KEY = re.compile(r"^(blobs|manifests)/([0-9a-f]{2})/([0-9a-f]{64})$")
_MEMBERS_MAX = 200_000


class _Retry(Exception):
    """A failure worth another try (a dropped connection, a 502/503/504)."""


@dataclass
class TransferStats:
    """What this store sent and received, for tests and benchmarks."""

    bytes_sent: int = 0
    bytes_received: int = 0
    retries: int = 0
    #: Offsets an upload went on from after a failure (what the server held).
    upload_resumed_at: list[int] = field(default_factory=list)
    #: Offsets a download went on from after a failure.
    download_resumed_at: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self.bytes_sent += sent
            self.bytes_received += received


def split_key(key: str) -> tuple[str, str]:
    """``("blobs" | "manifests", digest)`` of a content-addressed key, else :class:`InvalidInput`."""
    match = _KEY.match(key)
    if match is None or match.group(2) != match.group(3)[:2]:
        raise InvalidInput(
            f"the team server keeps only content-addressed objects, not {key!r}",
            hint="keys are blobs/ab/<sha256> or manifests/ab/<sha256>",
        )
    return match.group(1), match.group(3)


class HttpBlobStore:
    """Blobs on a ``groundwork server``, reached with a token (see the module's docstring).

    ``retries`` bounds the attempts of one request after failures (the waits double from
    ``backoff`` seconds up to 10 s); ``parallel`` is how many parts go to S3 at once when the
    server hands out presigned URLs. ``transport`` is httpx's (tests pass their own).
    """

    def __init__(
        self,
        server_url: str,
        token: str | None,
        *,
        timeout: float = 60.0,
        retries: int = 8,
        backoff: float = 0.25,
        parallel: int = 4,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        from groundwork import __version__

        self.url = check_transport(server_url)
        self.retries = retries
        self.backoff = backoff
        self.parallel = max(1, parallel)
        self.stats = TransferStats()
        headers = {"User-Agent": f"groundwork/{__version__}", "Accept-Encoding": "identity"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        limits = httpx.Limits(max_connections=self.parallel + 2, max_keepalive_connections=self.parallel + 2)
        self._client = httpx.Client(base_url=self.url + API, headers=headers, timeout=timeout, verify=verify,
                                    transport=transport, limits=limits)
        # Presigned URLs carry their own signature: this client never sends the token.
        self._direct = httpx.Client(headers={"Accept-Encoding": "identity"}, timeout=timeout, verify=verify,
                                    limits=limits)
        self._members: OrderedDict[str, str] = OrderedDict()  # file digest -> a manifest digest listing it
        self._members_lock = threading.Lock()
        self._direct_reads: bool | None = None  # unknown until the server first says

    def __repr__(self) -> str:
        return f"HttpBlobStore({self.url!r})"

    def close(self) -> None:
        self._client.close()
        self._direct.close()

    # --- requests ---------------------------------------------------------------------
    def _sleep(self, attempt: int) -> None:
        self.stats.retries += 1
        time.sleep(backoff(attempt, base=self.backoff, cap=10.0))

    def _retrying(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()``, again after a dropped connection or a 502/503/504, up to ``retries`` times."""
        attempt = 0
        while True:
            try:
                return call()
            except (httpx.TransportError, _Retry) as error:
                attempt += 1
                if attempt > self.retries:
                    raise StoreError(
                        f"cannot {what} on the team server {self.url}: {_reason(error)}",
                        hint="check GROUNDWORK_SERVER and that the server is up; the transfer resumes when run again",
                    ) from None
                self._sleep(attempt)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API request; a 502/503/504 raises :class:`_Retry`, other statuses are returned."""
        response = self._client.request(method, path, **kwargs)
        if response.status_code in RETRY_STATUSES:
            raise _Retry(f"the server answered {response.status_code}")
        return response

    def _json(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        response = self._retrying(what, lambda: self._request(method, path, **kwargs))
        if response.status_code >= 400:
            _raise_for(response, what)
        body: dict[str, Any] = response.json()
        return body

    def _path(self, key: str) -> tuple[str, dict[str, str]]:
        """The API path of ``key`` and its query (``via`` for a file of a known folder)."""
        kind, digest = split_key(key)
        params = {}
        if kind == "blobs":
            with self._members_lock:
                via = self._members.get(digest)
            if via is not None:
                params["via"] = via
        return f"/{kind}/{digest}", params

    def _head(self, key: str) -> int | None:
        path, params = self._path(key)
        response = self._retrying("look up an artifact", lambda: self._request("HEAD", path, params=params))
        if response.status_code == 404:
            return None
        if response.status_code >= 400:  # a HEAD answer has no body: ask again for the message
            response = self._retrying("look up an artifact",
                                      lambda: self._request("GET", f"{path}/location", params=params))
            _raise_for(response, "look up an artifact")
        return int(response.headers.get("content-length", "0"))

    # --- the BlobStore contract -----------------------------------------------------------
    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored and this token's project may read it."""
        return self._head(key) is not None

    def size(self, key: str) -> int:
        """The size of the object under ``key``; ``KeyError`` when absent (or not this project's)."""
        size = self._head(key)
        if size is None:
            raise KeyError(key)
        return size

    def put_bytes(self, key: str, data: bytes) -> None:
        """Upload ``data`` under ``key`` (its digest); the server checks the digest before keeping it."""
        view = memoryview(data)
        self._upload(key, len(data), lambda offset, length: bytes(view[offset : offset + length]))

    def put_file(self, key: str, path: Path) -> None:
        """Upload the file at ``path`` under ``key``, one chunk at a time, resuming after failures."""
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            self._upload(key, size, lambda offset, length: os.pread(fd, length, offset))
        finally:
            os.close(fd)

    def get_bytes(self, key: str) -> bytes:
        """The bytes under ``key``; ``KeyError`` when absent. A manifest's files are remembered."""
        with self.open_read(key) as reader:
            data = reader.read()
        kind, digest = split_key(key)
        if kind == "manifests":
            self._remember(digest, data)
        return data

    def get_file(self, key: str, dest: Path) -> None:
        """Download the object under ``key`` to ``dest`` (atomically); ``KeyError`` when absent."""
        with io.BufferedReader(_Download(self, key), CHUNK) as source, atomic_writer(Path(dest)) as out:
            copy_stream(source, out)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Not offered: a project may not see what other projects stored."""
        raise InvalidInput(
            "the team server does not list its artifact store",
            hint="list artifacts through runs and models (groundwork runs show, groundwork models list)",
        )

    def probe(self) -> None:
        """Check that this token may store artifacts here (start an upload and drop it): one clear error if not."""
        upload = self._json("POST", "/uploads", "start an upload", json={"kind": "blob", "size": 0})["upload"]
        self._json("DELETE", f"/uploads/{upload['id']}", "drop an upload")

    # --- extras the artifact store uses -------------------------------------------------------
    def open_read(self, key: str) -> BinaryIO:
        """A stream of the object under ``key`` that resumes with Range requests; ``KeyError`` when absent."""
        reader = _Download(self, key)
        return io.BufferedReader(reader, CHUNK)

    def _remember(self, manifest_digest: str, data: bytes) -> None:
        try:
            files = json.loads(data).get("files", [])
            digests = [str(entry["digest"]) for entry in files]
        except (ValueError, AttributeError, KeyError, TypeError):
            return
        with self._members_lock:
            for digest in digests:
                self._members[digest] = manifest_digest
                self._members.move_to_end(digest)
            while len(self._members) > _MEMBERS_MAX:
                self._members.popitem(last=False)

    # --- uploads --------------------------------------------------------------------------------
    def _upload(self, key: str, size: int, read_at: Callable[[int, int], bytes]) -> None:
        kind, digest = split_key(key)
        if size <= SINGLE_MAX:
            data = read_at(0, size)

            def put() -> httpx.Response:
                return self._request("PUT", f"/{kind}/{digest}", content=data,
                                     headers={"Content-Type": "application/octet-stream"})

            response = self._retrying("upload an artifact", put)
            if response.status_code >= 400:
                _raise_for(response, "upload an artifact")
            self.stats.add(sent=size)
            return
        kind_name = "blob" if kind == "blobs" else "manifest"
        session = self._json("POST", "/uploads", "start an upload", json={"kind": kind_name, "size": size})["upload"]
        if session["mode"] == "direct":
            self._send_direct(session, read_at)
        else:
            self._send_through_server(session, read_at)
        self._complete(session, key, digest)

    def _received(self, upload_id: str) -> dict[str, Any]:
        upload: dict[str, Any] = self._json("GET", f"/uploads/{upload_id}", "resume an upload")["upload"]
        return upload

    def _send_through_server(self, session: dict[str, Any], read_at: Callable[[int, int], bytes]) -> None:
        upload_id, size, part = session["id"], int(session["size"]), int(session["part_size"])
        position = int(session["received"])
        attempt = 0
        while position < size:
            length = min(part, size - position)
            headers = {"Content-Range": f"bytes {position}-{position + length - 1}/{size}",
                       "Content-Type": "application/octet-stream", "Content-Length": str(length)}
            try:
                response = self._request("PUT", f"/uploads/{upload_id}", content=_pieces(read_at, position, length),
                                         headers=headers)
                if response.status_code == 409:  # another request of ours still writes, or we are out of step
                    raise _Retry(_message(response))
                if response.status_code >= 400:
                    _raise_for(response, "upload an artifact")
                received = int(response.json()["received"])
                self.stats.add(sent=max(0, received - position))
                position = received
                attempt = 0
            except (httpx.TransportError, _Retry) as error:
                attempt += 1
                if attempt > self.retries:
                    raise StoreError(f"cannot upload to the team server {self.url}: {_reason(error)}",
                                     hint="check that the server is up; run the command again to resume") from None
                self._sleep(attempt)
                position = int(self._received(upload_id)["received"])
                self.stats.upload_resumed_at.append(position)

    def _send_direct(self, session: dict[str, Any], read_at: Callable[[int, int], bytes]) -> None:
        upload_id, size, part = session["id"], int(session["size"]), int(session["part_size"])
        parts = max(1, -(-size // part))
        done = set(self._received(upload_id).get("parts", []))
        missing = [n for n in range(1, parts + 1) if n not in done]
        if done:
            self.stats.upload_resumed_at.append(sum(min(part, size - (n - 1) * part) for n in done))
        batch = 64
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="gw-upload") as pool:
            for start in range(0, len(missing), batch):
                numbers = missing[start : start + batch]
                urls = self._part_urls(upload_id, numbers)
                futures = [pool.submit(self._put_part, upload_id, n, urls[n], part, size, read_at) for n in numbers]
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for future in futures:
                    future.result()  # the first failure, after the others ended

    def _part_urls(self, upload_id: str, numbers: Sequence[int]) -> dict[int, str]:
        answer = self._json("POST", f"/uploads/{upload_id}/parts", "sign upload parts", json={"numbers": numbers})
        return {int(n): str(url) for n, url in answer["urls"].items()}

    def _put_part(self, upload_id: str, number: int, url: str, part: int, size: int,
                  read_at: Callable[[int, int], bytes]) -> None:
        offset = (number - 1) * part
        length = min(part, size - offset)
        attempt = 0
        while True:
            try:
                response = self._direct.put(url, content=_pieces(read_at, offset, length),
                                            headers={"Content-Length": str(length)})
                if response.status_code in RETRY_STATUSES or response.status_code == 500:
                    raise _Retry(f"S3 answered {response.status_code}")
                if response.status_code == 403:  # the URL expired: ask for a fresh one
                    url = self._part_urls(upload_id, [number])[number]
                    raise _Retry("the presigned URL expired")
                if response.status_code >= 400:
                    raise StoreError(f"S3 refused part {number} of an upload: {response.status_code} "
                                     f"{response.text[:200].strip()}")
                self.stats.add(sent=length)
                return
            except (httpx.TransportError, _Retry) as error:
                attempt += 1
                if attempt > self.retries:
                    raise StoreError(f"cannot upload to the artifact store behind {self.url}: {_reason(error)}",
                                     hint="the server hands out S3 URLs: check that this machine reaches S3") from None
                self._sleep(attempt)

    def _complete(self, session: dict[str, Any], key: str, digest: str) -> None:
        upload_id = session["id"]
        attempt = 0
        while True:
            try:
                response = self._request("POST", f"/uploads/{upload_id}/complete", json={"digest": digest})
            except (httpx.TransportError, _Retry) as error:
                attempt += 1
                if attempt > self.retries:
                    raise StoreError(f"cannot complete an upload on {self.url}: {_reason(error)}") from None
                self._sleep(attempt)
                continue
            if response.status_code == 404 and attempt and self.exists(key):
                return  # the answer to an earlier try was lost; that try completed it
            if response.status_code >= 400:
                _raise_for(response, "complete an upload")
            return


class _Download(io.RawIOBase):
    """The bytes of one object, from the server or a presigned S3 URL, resumed with Range on failure."""

    def __init__(self, store: HttpBlobStore, key: str) -> None:
        super().__init__()
        self.store = store
        self.key = key
        self.position = 0
        self.size: int | None = None
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._pending = memoryview(b"")
        self._direct_url: str | None = None
        self._open(first=True)

    def readable(self) -> bool:
        return True

    def _location(self) -> str | None:
        """A presigned URL of the object where the server hands them out, else None."""
        store = self.store
        if store._direct_reads is False:
            return None
        path, params = store._path(self.key)
        answer = store._retrying("look up an artifact", lambda: store._request("GET", f"{path}/location", params=params))
        if answer.status_code == 404:
            raise KeyError(self.key)
        if answer.status_code >= 400:
            _raise_for(answer, "look up an artifact")
        body = answer.json()
        url = body.get("url")
        store._direct_reads = url is not None
        return str(url) if url else None

    def _send(self) -> httpx.Response:
        headers = {"Range": f"bytes={self.position}-"} if self.position else {}
        store = self.store
        if self._direct_url is None and store._direct_reads is not False:
            self._direct_url = self._location()
        if self._direct_url is not None:
            request = store._direct.build_request("GET", self._direct_url, headers=headers)
            response = store._direct.send(request, stream=True)
            if response.status_code == 403:  # expired: sign again
                response.close()
                self._direct_url = None
                raise _Retry("the presigned URL expired")
        else:
            path, params = store._path(self.key)
            request = store._client.build_request("GET", path, params=params, headers=headers)
            response = store._client.send(request, stream=True)
        if response.status_code in RETRY_STATUSES:
            response.close()
            raise _Retry(f"the server answered {response.status_code}")
        return response

    def _open(self, first: bool = False) -> None:
        self._close_response()
        response = self.store._retrying("download an artifact", self._send)
        status = response.status_code
        if status == 404:
            response.close()
            raise KeyError(self.key)
        if status == 416 and self.size is not None and self.position >= self.size:
            response.close()
            self._chunks = iter(())
            return
        if status >= 400:
            response.read()
            response.close()
            _raise_for(response, "download an artifact")
        skip = 0
        if status == 206:
            start, total = _content_range(response.headers.get("content-range", ""))
            if start != self.position:
                response.close()
                raise StoreError(f"the server resumed a download at byte {start}, not {self.position}")
            self.size = total
        else:  # 200: the whole object, whatever we asked for
            length = response.headers.get("content-length")
            self.size = int(length) if length is not None else None
            skip = self.position
        self._response = response
        self._chunks = _skipping(response.iter_raw(), skip)  # as read: no joining into larger chunks
        if not first:
            self.store.stats.download_resumed_at.append(self.position)

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def _refill(self) -> bool:
        """The next piece of the stream into ``_pending``, reopening from ``position`` after a
        failure; False at the end of the object."""
        attempt = 0
        while True:
            assert self._chunks is not None
            try:
                self._pending = memoryview(next(self._chunks))
                return True
            except StopIteration:
                if self.size is None or self.position >= self.size:
                    return False
                error: BaseException = _Retry(f"the transfer stopped at byte {self.position} of {self.size}")
            except httpx.TransportError as transport_error:
                error = transport_error
            attempt += 1
            if attempt > self.store.retries:
                raise StoreError(f"cannot download from the team server {self.store.url}: {_reason(error)}",
                                 hint="check that the server is up; run the command again")
            self.store._sleep(attempt)
            self._open()

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the pieces the connection delivers (about 64 KiB each), one copy a byte."""
        view = memoryview(buffer).cast("B")
        count = 0
        while count < len(view):
            if not self._pending and not self._refill():
                break
            take = min(len(view) - count, len(self._pending))
            view[count : count + take] = self._pending[:take]
            self._pending = self._pending[take:]
            self.position += take
            count += take
        self.store.stats.add(received=count)
        return count

    def close(self) -> None:
        self._close_response()
        super().close()


def _pieces(read_at: Callable[[int, int], bytes], offset: int, length: int) -> Iterator[bytes]:
    """``length`` bytes from ``offset``, read 1 MiB at a time as they are sent.

    Never a whole chunk in one allocation: glibc serves a freed large block's size from the
    heap afterwards, and a heap fragmented by many 8 MiB blocks grows by hundreds of MiB.
    """
    end = offset + length
    while offset < end:
        piece = read_at(offset, min(CHUNK, end - offset))
        if not piece:
            raise StoreError("the file became shorter while it was uploaded", hint="upload it again once it is written")
        offset += len(piece)
        yield piece


def _skipping(chunks: Iterator[bytes], skip: int) -> Iterator[bytes]:
    for chunk in chunks:
        if skip:
            dropped = min(skip, len(chunk))
            skip -= dropped
            chunk = chunk[dropped:]
            if not chunk:
                continue
        yield chunk


def _content_range(value: str) -> tuple[int, int | None]:
    """(first byte, total size or None) of ``bytes a-b/total``."""
    match = re.match(r"^bytes (\d+)-\d+/(\d+|\*)$", value.strip())
    if match is None:
        raise StoreError(f"the server answered a range request with Content-Range {value!r}")
    total = match.group(2)
    return int(match.group(1)), (None if total == "*" else int(total))


def _message(response: httpx.Response) -> str:
    """The one-line message (and hint) of an error answer in the server's error shape."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        message = str(body["message"])
        return f"{message} ({body['hint']})" if body.get("hint") else message
    text = response.text.strip().splitlines()
    return f"{response.status_code} {text[0][:200] if text else response.reason_phrase}"


def _raise_for(response: httpx.Response, what: str) -> NoReturn:
    """The answer's error as the one-line GroundworkError the server raised."""
    if not response.is_stream_consumed:
        response.read()
    try:
        body = response.json()
    except ValueError:
        body = None
    if not (isinstance(body, dict) and isinstance(body.get("message"), str)):
        body = {"message": f"cannot {what}: the team server answered {_message(response)}"}
    raise error_from_answer(response.status_code, body, str(response.request.url.copy_with(path="/", query=None))
                            .rstrip("/"))


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


__all__ = ["HttpBlobStore", "TransferStats", "split_key"]
