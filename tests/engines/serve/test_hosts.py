"""The Host and Origin checks of a serving process (DNS rebinding, other sites' pages)."""

from __future__ import annotations

import pytest

from groundwork.engines.serve.hosts import HostPolicy


@pytest.mark.parametrize("host", [b"127.0.0.1:8000", b"localhost:8000", b"LOCALHOST", b"[::1]:8000", b"127.5.0.1",
                                  b"app.localhost:8000", b"localhost.:8000"])
def test_loopback_names_are_answered(host: bytes) -> None:
    assert HostPolicy(["127.0.0.1"]).check(host, None) is None


@pytest.mark.parametrize("host", [b"evil.example:8000", b"evil.example", b"localhost.evil.example", b"10.0.0.5:8000",
                                  b"127.0.0.1.evil.example", b"[::ffff:7f00:1]:1"])
def test_other_names_are_refused_with_403(host: bytes) -> None:
    refused = HostPolicy(["127.0.0.1"]).check(host, None)
    assert refused is not None and refused.http_status == 403
    assert "does not answer requests for host" in refused.message and "--allow-host" in (refused.hint or "")


def test_the_bound_address_and_allowed_names_are_answered() -> None:
    policy = HostPolicy(["10.0.0.5", "models.internal"])
    for host in (b"10.0.0.5:8000", b"models.internal", b"Models.Internal:80"):
        assert policy.check(host, None) is None
    assert policy.check(b"10.0.0.6:8000", None) is not None
    assert policy.check(b"evil.example", None) is not None


def test_bound_to_every_interface_any_address_but_no_foreign_name() -> None:
    policy = HostPolicy(["0.0.0.0"])
    assert policy.check(b"192.168.1.20:8000", None) is None
    assert policy.check(b"[2001:db8::1]:8000", None) is None
    assert policy.check(b"evil.example:8000", None) is not None  # a name can be rebound, an address cannot


def test_a_star_turns_the_host_check_off_but_not_the_origin_check() -> None:
    policy = HostPolicy(["*"])
    assert policy.check(b"anything.example", None) is None
    assert policy.check(b"anything.example", b"http://other.example") is not None


@pytest.mark.parametrize(
    ("host", "origin", "allowed"),
    [
        (b"127.0.0.1:8000", b"http://127.0.0.1:8000", True),
        (b"127.0.0.1:8000", b"HTTP://127.0.0.1:8000", True),
        (b"127.0.0.1:8000", b"http://evil.example", False),
        (b"127.0.0.1:8000", b"http://127.0.0.1:9999", False),  # another local app's page
        (b"127.0.0.1:8000", b"http://localhost:8000", False),  # another origin, though the same machine
        (b"127.0.0.1:8000", b"null", False),  # sandboxed frames and file:// pages
        (None, b"http://127.0.0.1:8000", True),
        (None, b"http://evil.example", False),
    ],
)
def test_a_page_may_call_only_its_own_server(host: bytes | None, origin: bytes, allowed: bool) -> None:
    refused = HostPolicy(["127.0.0.1"]).check(host, origin)
    assert (refused is None) is allowed
    if refused is not None:
        assert refused.http_status == 403 and "only pages of this server may call it" in refused.message


def test_invented_names_do_not_grow_the_cache() -> None:
    policy = HostPolicy(["127.0.0.1"])
    for i in range(5000):
        policy.check(f"n{i}.example".encode(), None)
    assert len(policy._hosts) <= 256
