"""Which network addresses the monitor may connect to.

Feeds and pages are hostile input: a feed entry or a redirect may point at the loopback
interface, the local network or a cloud metadata service. Every connection therefore goes
through `GuardedBackend`, which resolves the host once, refuses forbidden addresses,
connects to an address it has just checked (so DNS cannot change the answer between the
check and the connect) and verifies the peer the socket actually reached.

Unusual numeric spellings of an address (`127.1`, `2130706433`, `0x7f000001`) need no
parser of our own: getaddrinfo turns them into the address the socket would reach, and it
is that address which is checked.

Name resolution cannot be interrupted, so a name that needs the resolver is looked up in a
worker thread that the caller waits for no longer than its connect timeout: a resolver that
never answers cannot hold a fetch past its deadline.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore

from monitor.exceptions import BlockedAddressError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Lookups waiting on the resolver at once; beyond this a lookup waits for a free one, within its timeout.
_MAX_LOOKUPS = 32
_lookups = threading.BoundedSemaphore(_MAX_LOOKUPS)
# The resolver itself, a module attribute so that a test can stand in a resolver that never answers.
_getaddrinfo = socket.getaddrinfo
# One answer of getaddrinfo: family, type, protocol, canonical name, socket address (its shape depends on the family).
_AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` must not be connected to ("loopback", "private", ...), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        # These forms reach an IPv4 host; judge the host they reach, not the IPv6 wrapper.
        if ip.ipv4_mapped is not None:
            return _embedded_reason(ip.ipv4_mapped)
        if ip in _NAT64:
            return _embedded_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        for embedded in _tunnel_endpoints(ip):
            reason = forbidden_reason(embedded)
            if reason is not None:
                return f"{reason} (embedded in {ip})"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared address space (CGNAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def _embedded_reason(ip: ipaddress.IPv4Address) -> str | None:
    reason = forbidden_reason(ip)
    return None if reason is None else f"{reason} ({ip} embedded in IPv6)"


def _tunnel_endpoints(ip: ipaddress.IPv6Address) -> Iterable[ipaddress.IPv4Address]:
    if ip.sixtofour is not None:
        yield ip.sixtofour
    if ip.teredo is not None:
        yield from ip.teredo


def check_host(host: str, port: int, allow_private: bool, timeout: float | None = None) -> list[IPAddress]:
    """Resolve `host` and return its addresses, in resolver order, without duplicates.

    Raises BlockedAddressError if any address is forbidden (unless `allow_private`): a name
    with one public and one private address is refused, since either might be used.
    Raises OSError (socket.gaierror) when the name does not resolve, TimeoutError when the
    resolver has not answered within `timeout` seconds (None: wait as long as it takes).
    """
    infos = _resolve(host.strip("[]"), port, timeout)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        # IPv6 sockaddrs may carry a zone ("fe80::1%eth0"); the zone does not change the class.
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not allow_private:
        for ip in addresses:
            reason = forbidden_reason(ip)
            if reason is not None:
                raise BlockedAddressError(host, f"resolves to {ip}, which is {reason}")
    return addresses


def _resolve(host: str, port: int, timeout: float | None) -> Sequence[_AddressInfo]:
    """getaddrinfo for `host`, bounded by `timeout`: numeric spellings at once, names in a worker."""
    try:
        host.encode("idna")
    except UnicodeError as e:   # getaddrinfo would raise it: an empty or overlong label ("a..b")
        raise socket.gaierror(f"invalid host name {host!r}: {e}") from e
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass   # a name: it needs the resolver
    if timeout is None:
        return _getaddrinfo(host, port, type=socket.SOCK_STREAM)
    give_up = time.monotonic() + timeout
    if not _lookups.acquire(timeout=max(0.0, timeout)):
        raise TimeoutError(f"no resolver free to look up {host!r} within {timeout:g} s")
    answers: list[Sequence[_AddressInfo]] = []
    failures: list[BaseException] = []
    answered = threading.Event()

    def lookup() -> None:
        try:
            answers.append(_getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as e:   # handed to the waiting caller
            failures.append(e)
        finally:
            _lookups.release()
            answered.set()

    # A daemon thread: a lookup that never returns must not keep the process from exiting.
    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    if not answered.wait(max(0.0, give_up - time.monotonic())):
        raise TimeoutError(f"looking up {host!r} took longer than {timeout:g} s")
    if failures:
        raise failures[0]
    return answers[0]


class GuardedBackend(httpcore.SyncBackend):
    """An httpcore network backend that only connects to addresses `check_host` allowed."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = check_host(host, port, self._allow_private, timeout)
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(f"cannot resolve host {host!r}: {e}") from e
        except OSError as e:
            raise httpcore.ConnectError(f"cannot resolve host {host!r}: {e}") from e
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for ip in addresses:
            try:
                # A numeric host: the parent connects to exactly this address, no new lookup.
                stream = super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                failure = e
                continue
            self._check_peer(stream, host)
            return stream
        assert failure is not None, "getaddrinfo returns at least one address or raises"
        raise failure

    def _check_peer(self, stream: httpcore.NetworkStream, host: str) -> None:
        if self._allow_private:
            return
        sock: socket.socket = stream.get_extra_info("socket")
        peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%", 1)[0])
        reason = forbidden_reason(peer)
        if reason is not None:
            stream.close()
            raise BlockedAddressError(host, f"connection reached {peer}, which is {reason}")
