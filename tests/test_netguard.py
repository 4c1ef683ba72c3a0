import ipaddress
import socket

import httpcore
import pytest
from _httpserver import LocalServer

from monitor.exceptions import BlockedAddressError
from monitor.netguard import GuardedBackend, check_host, forbidden_reason

FORBIDDEN = [
    "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",   # IPv4-mapped
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",                           # NAT64
    "2002:7f00:1::", "2002:c0a8:101::1",                                # 6to4
    "::7f00:1",                                                          # IPv4-compatible
]
PUBLIC = ["8.8.8.8", "93.184.216.34", "2606:4700::1", "::ffff:8.8.8.8", "64:ff9b::808:808",
          "2002:808:808::1"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden_addresses_have_a_reason(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_reason_names_the_embedded_address() -> None:
    reason = forbidden_reason(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert reason is not None and "loopback" in reason and "127.0.0.1" in reason


SPELLINGS_OF_LOOPBACK = ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1",
                         "0x7f.0.0.1", "localhost", "::1", "[::1]", "::ffff:127.0.0.1",
                         "[::ffff:127.0.0.1]", "0.0.0.0", "0"]


@pytest.mark.parametrize("host", SPELLINGS_OF_LOOPBACK)
def test_numeric_spellings_are_refused(host: str) -> None:
    with pytest.raises(BlockedAddressError) as caught:
        check_host(host, 80, allow_private=False)
    assert caught.value.url == host


def test_allow_private_returns_the_resolved_addresses() -> None:
    assert check_host("127.1", 80, allow_private=True) == [ipaddress.ip_address("127.0.0.1")]
    assert check_host("[::1]", 80, allow_private=True) == [ipaddress.ip_address("::1")]


def test_unresolvable_name_raises_oserror() -> None:
    with pytest.raises(socket.gaierror):
        check_host("no-such-host.invalid", 80, allow_private=False)


def test_backend_refuses_before_connecting() -> None:
    with LocalServer({"/": (200, {}, b"ok")}) as server:
        with pytest.raises(BlockedAddressError):
            GuardedBackend(allow_private=False).connect_tcp("127.0.0.1", server.port, timeout=1)
        # The server never saw a request, and a permitted backend does reach it.
        stream = GuardedBackend(allow_private=True).connect_tcp("127.0.0.1", server.port, timeout=1)
        stream.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=1)
        assert stream.read(1024, timeout=1).startswith(b"HTTP/1.1 200")
        stream.close()
        assert server.paths() == ["/"]


def test_backend_maps_resolution_failure_to_connect_error() -> None:
    with pytest.raises(httpcore.ConnectError, match="cannot resolve"):
        GuardedBackend(allow_private=False).connect_tcp("no-such-host.invalid", 80, timeout=1)


def test_peer_check_refuses_a_forbidden_peer() -> None:
    # The address actually reached is checked again, whatever name led to it.
    with LocalServer() as server:
        stream = httpcore.SyncBackend().connect_tcp("127.0.0.1", server.port, timeout=1)
        with pytest.raises(BlockedAddressError, match="reached 127.0.0.1"):
            GuardedBackend(allow_private=False)._check_peer(stream, "news.example")
        with pytest.raises(OSError):
            stream.get_extra_info("socket").getpeername()  # the refused connection was closed
