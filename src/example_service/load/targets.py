"""Which URLs a run may send to: loopback only, unless the user says otherwise.

The rule guards against mistakes (a typo, a copied URL, a stale environment), not against a
hostile resolver: a hostname is resolved once, here, and must resolve to loopback addresses
only; the client resolves it again when it connects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_TARGETS = ("http://127.0.0.1:5565/abc", "http://127.0.0.1:5566/abc")

# socket.getaddrinfo's shape, narrowed to what is used, so tests can pass a fake resolver.
Resolver = Callable[[str, int], Sequence[str]]


class TargetError(ValueError):
    """A URL the run refuses to send to."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address a host name resolves to for TCP, sorted; TargetError if none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise TargetError(f"cannot resolve {host!r}: {error.strerror}") from error
    return sorted({str(info[4][0]) for info in infos})


def is_loopback(address: str) -> bool:
    # Strip an IPv6 zone ("fe80::1%eth0"): ipaddress rejects it in older Pythons.
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1, yet is_loopback says no before Python 3.13.
        ip = ip.ipv4_mapped
    return ip.is_loopback


def parse(url: str) -> tuple[str, int]:
    """The host and port a URL connects to; only absolute http(s) URLs are accepted."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"invalid target {url!r}: expected an http:// or https:// URL")
    try:
        port = parts.port
    except ValueError as error:
        raise TargetError(f"invalid target {url!r}: {error}") from error
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_targets(
    urls: Sequence[str], allow_remote: bool = False, resolver: Resolver = resolve_addresses
) -> list[Target]:
    """Every URL, checked; raises TargetError before any request could be sent."""
    if not urls:
        raise TargetError("no target URL")
    targets = []
    for url in urls:
        host, port = parse(url)
        if allow_remote:
            targets.append(Target(url, host, port, ()))
            continue
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            addresses = list(resolver(host, port))
        outside = [address for address in addresses if not is_loopback(address)]
        if outside or not addresses:
            raise TargetError(
                f"refusing {url}: {host} is not loopback"
                + (f" (resolves to {', '.join(outside)})" if outside and outside != [host] else "")
                + "; only 127.0.0.0/8, ::1 and names resolving to them are allowed without"
                " --allow-remote"
            )
        targets.append(Target(url, host, port, tuple(addresses)))
    return targets
