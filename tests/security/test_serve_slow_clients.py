"""Slow and excess clients against a real ``groundwork serve`` (issue #9, item 9).

About 20,000 sockets that send nothing, or a header byte now and then, used to take
every descriptor of the process, and every real request was reset until they closed.
Now the process raises its open-file limit, holds at most ``--limit-concurrency``
connections (closing the oldest slow one for a newcomer), and closes clients too slow
with their headers, their body or reading their answer.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.engines.serve.conftest import Registry, Server, registry, serve_process  # noqa: F401 (registry: a fixture)

import groundwork as gw

ROW = [0.0] * 64
PREDICT = "/v1/models/digits/predict"
#: How long a test waits for something that takes a second or two before calling it broken.
PATIENCE_S = 60.0


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _open_files(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


def _shed(server: Server) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in server.client.get("/metrics").text.splitlines():
        if line.startswith("groundwork_connections_shed_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


@contextlib.contextmanager
def _child_open_files(soft: int) -> Iterator[None]:
    """Children started in the block begin with this soft open-file limit (Linux's usual default)."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, before[0]), before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def _slow_sockets(port: int, count: int) -> list[socket.socket]:
    """``count`` connections: a third send nothing, a third half a header, a third headers and a bit of body."""
    partial = [b"", b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
               b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100000\r\n\r\n{\"inputs\": [[0"]
    sockets = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE_S)
        if partial[i % 3]:
            sock.sendall(partial[i % 3])
        sockets.append(sock)
    return sockets


def _closed_by_server(sock: socket.socket, wait_s: float = 0.0) -> bool:
    sock.settimeout(wait_s if wait_s > 0 else 0.0001)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (TimeoutError, BlockingIOError):
        return False


@pytest.mark.slow
def test_real_requests_are_answered_while_thousands_of_slow_sockets_are_open(registry: Registry,  # noqa: F811
                                                                            tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    slow = min(3000, hard - 1024)
    if slow < 1500:
        pytest.skip(f"the hard open-file limit ({hard}) is too low for a test that opens thousands of sockets")
    if soft < slow + 512:
        resource.setrlimit(resource.RLIMIT_NOFILE, (slow + 1024, hard))  # this test's own sockets
    expected = gw.load_model("digits@production", config=registry.config).predict(registry.x[:20]).tolist()
    with contextlib.ExitStack() as stack:
        with _child_open_files(1024):  # started as from a shell with the usual `ulimit -n 1024`; default flags
            server = stack.enter_context(serve_process(registry.config, ("digits@production",), (), tmp_path))
        attackers = _slow_sockets(_port(server), slow)
        stack.callback(lambda: [s.close() for s in attackers])

        for i in range(20):  # a fresh connection each, as 20 different clients
            with httpx.Client(base_url=server.url, timeout=PATIENCE_S) as client:
                response = client.post(PREDICT, json={"inputs": registry.x[i:i + 1].tolist()})
            assert response.status_code == 200, response.text
            assert response.json()["outputs"] == expected[i:i + 1]
        with httpx.Client(base_url=server.url, timeout=PATIENCE_S) as keep_alive:
            assert all(keep_alive.post(PREDICT, json={"inputs": [ROW]}).status_code == 200 for _ in range(20))

        from groundwork.engines.serve.limits import RESERVED_FILES, overflow

        assert _open_files(server.proc.pid) == (hard, hard)  # the server raised its soft limit
        held = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
        assert held < 1024 + overflow(1024) + RESERVED_FILES  # the connection cap bounds the descriptors
        shed = _shed(server)
        assert shed.get("evicted", 0) >= slow - 1024 - overflow(1024)  # newcomers closed the oldest slow sockets
        still_open = sum(not _closed_by_server(s) for s in attackers)
        assert still_open <= 1024


@pytest.mark.slow
def test_slow_clients_are_closed_at_the_deadline_however_they_trickle(registry: Registry,  # noqa: F811
                                                                       tmp_path: Path) -> None:
    flags = ("--header-timeout", "1", "--body-timeout", "1", "--timeout-keep-alive", "1")
    with serve_process(registry.config, ("digits@production",), flags, tmp_path) as server:
        port = _port(server)
        silent = socket.create_connection(("127.0.0.1", port))
        header = b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 600
        body = (b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 600\r\n\r\n" + b" " * 600)
        sent: dict[str, int] = {}

        def trickle(name: str, data: bytes) -> None:
            """One byte every 0.1 s (a minute in all): each byte would reset an idle timer."""
            with socket.create_connection(("127.0.0.1", port)) as sock:
                start = data.index(b"\r\n\r\n") + 4 if name == "body" else 0
                sock.sendall(data[:start])
                for i in range(start, len(data)):
                    try:
                        sock.sendall(data[i:i + 1])
                    except OSError:
                        break
                    if _closed_by_server(sock, 0.1):
                        break
                sent[name] = i - start

        threads = [threading.Thread(target=trickle, args=(name, data)) for name, data in (("header", header),
                                                                                         ("body", body))]
        for thread in threads:
            thread.start()
        with httpx.Client(base_url=server.url, timeout=PATIENCE_S) as client:
            assert client.post(PREDICT, json={"inputs": [ROW]}).status_code == 200
            idle_socket = next(iter(client._transport._pool.connections))  # the keep-alive connection now idle
            assert _closed_by_server(silent, PATIENCE_S)
            for thread in threads:
                thread.join(PATIENCE_S * 2)
            assert sent["header"] < 590 and sent["body"] < 590  # closed while still trickling
            time.sleep(1.5)
            assert idle_socket.has_expired() or idle_socket.is_closed()
            assert client.post(PREDICT, json={"inputs": [ROW]}).status_code == 200  # a fresh connection
        shed = _shed(server)
        assert shed.get("header_timeout", 0) >= 2 and shed.get("body_timeout", 0) >= 1


@pytest.mark.slow
def test_when_every_connection_is_being_answered_a_new_request_gets_a_json_503(registry: Registry,  # noqa: F811
                                                                             tmp_path: Path) -> None:
    flags = ("--limit-concurrency", "2", "--body-timeout", "2")
    with serve_process(registry.config, ("digits@production",), flags, tmp_path) as server:
        port = _port(server)
        bundle = next(part for part in server.client.get("/docs").text.split('"') if "bundle" in part)
        size = len(server.client.get(bundle).content)
        kernel_buffers = sum(int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
                             for name in ("tcp_wmem", "tcp_rmem"))
        # Readers that never read, of more than the kernel's buffers hold: each answer stalls, unfinished.
        answers = kernel_buffers // size + 3
        request = f"GET {bundle} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() * answers
        stalled = []
        for _ in range(2):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(request)
            stalled.append(sock)
        try:
            deadline = time.monotonic() + PATIENCE_S
            while True:
                with httpx.Client(base_url=server.url, timeout=PATIENCE_S) as client:
                    response = client.post(PREDICT, json={"inputs": [ROW]})
                if response.status_code == 503 or time.monotonic() > deadline:
                    break
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1" and response.headers["connection"] == "close"
            assert response.json()["error"] == "Server busy" and "--limit-concurrency" in response.json()["message"]
            while _shed(server).get("send_timeout", 0) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)  # closed after 2 s without reading
            assert server.client.post(PREDICT, json={"inputs": [ROW]}).status_code == 200
            for sock in stalled:  # the answers end early: the server gave up on the reader
                assert len(_read_to_end(sock)) < answers * size
        finally:
            for sock in stalled:
                sock.close()
        shed = _shed(server)
        assert shed.get("busy", 0) >= 1 and shed.get("send_timeout", 0) == 2


def _read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(PATIENCE_S)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    return b"".join(chunks)
