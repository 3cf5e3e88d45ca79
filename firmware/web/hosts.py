"""The names and addresses the page answers to: the ``Host`` check against DNS rebinding, and
the addresses the start line names.

DNS rebinding: a web site the engineer visits answers its own name with 127.0.0.1 (or the
charger's LAN address) a moment later, and its script, still "same origin" for the browser,
reads the page.  Such a request carries the site's *name* in ``Host``; a request for the
charger's own address carries the address.  So ``HostCheck`` lets through an address written as
digits (IPv4, or IPv6 in brackets: nothing a DNS answer can change), this machine's names
(``localhost``, its hostname, ``<hostname>.local`` as mDNS announces it) and the names
``[web] allowed_hosts`` adds (a reverse proxy's public name; ``"*"``: any), and refuses other
names.  A request without ``Host`` (HTTP/1.0, no browser) is let through.

``machine_addresses``: this machine's non-loopback addresses (Linux: one IPv4 address per
interface through ``SIOCGIFADDR``, IPv6 ones from ``/proc/net/if_inet6``); empty where they
cannot be read.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from collections.abc import Iterable
from pathlib import Path

ANY = "*"
SIOCGIFADDR = 0x8915  # linux/sockios.h: an interface's (first) IPv4 address
IF_INET6 = Path("/proc/net/if_inet6")


def machine_names(hostname: str | None = None) -> frozenset[str]:
    """``localhost``, this machine's host name and, for a name without a dot, its mDNS form
    ``<name>.local``; case-folded."""
    name = (hostname if hostname is not None else socket.gethostname()).casefold().rstrip(".")
    names = {"localhost"}
    if name:
        names.add(name)
        if "." not in name:
            names.add(f"{name}.local")
    return frozenset(names)


def split_host(host: str) -> str:
    """The host of a ``Host`` header (``name:port``, ``[v6]:port``, ``1.2.3.4``) without the
    port and brackets, case-folded, without a trailing dot."""
    host = host.strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0].casefold()
    name, _, port = host.rpartition(":")
    if name and port.isdigit():
        host = name
    return host.casefold().rstrip(".")


def is_address(host: str) -> bool:
    """Whether ``host`` (no port, no brackets) is an IP address written as such."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostCheck:
    """Whether a request's ``Host`` header names this charger (see the module docstring).
    ``extra``: ``[web] allowed_hosts`` (names or addresses, any case; ``"*"``: every host)."""

    def __init__(self, extra: Iterable[str] = (), hostname: str | None = None) -> None:
        wanted = {split_host(h) for h in extra}
        self.any = ANY in wanted
        self.names = machine_names(hostname) | (wanted - {ANY})

    def allows(self, host: str | None) -> bool:
        if host is None or self.any:
            return True
        name = split_host(host)
        return is_address(name) or name in self.names


def machine_addresses(ipv6: bool = False) -> list[str]:
    """This machine's addresses a browser elsewhere could reach (not loopback, not
    link-local), IPv4 first, IPv6 ones too when ``ipv6``; as ``ipaddress`` writes them."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        for _, interface in socket.if_nameindex():
            ipv4 = _ipv4_of(interface)
            if ipv4 is not None:
                found.append(ipv4)
    if ipv6:
        with contextlib.suppress(OSError, ValueError):
            for line in IF_INET6.read_text().splitlines():
                found.append(str(ipaddress.IPv6Address(bytes.fromhex(line.split()[0]))))
    out: list[str] = []
    for text in found:
        address = ipaddress.ip_address(text)
        if not (address.is_loopback or address.is_link_local) and text not in out:
            out.append(text)
    return out


def _ipv4_of(interface: str) -> str | None:
    import fcntl  # Linux (a Pi): no interface addresses elsewhere, the start line says so

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            answer = fcntl.ioctl(
                probe.fileno(), SIOCGIFADDR, struct.pack("256s", interface.encode()[:15])
            )
    except OSError:  # no IPv4 address on it
        return None
    return socket.inet_ntoa(answer[20:24])


def urls(bind: str, port: int, hostname: str | None = None) -> list[str]:
    """The page's addresses as a browser takes them: for a wildcard ``bind`` (``0.0.0.0``,
    ``::``) each address of this machine, then ``http://<hostname>:port/``; else ``bind``
    itself (an IPv6 address in brackets, RFC 3986 §3.2.2)."""
    if not is_wildcard(bind):
        return [f"http://{_bracketed(bind)}:{port}/"]
    name = hostname if hostname is not None else socket.gethostname()
    found = [f"http://{_bracketed(a)}:{port}/" for a in machine_addresses(ipv6=":" in bind)]
    found += [f"http://{name}:{port}/"] if name else []
    return found or [f"http://{_bracketed(bind)}:{port}/"]


def is_wildcard(bind: str) -> bool:
    """Whether ``bind`` is every address of the machine (``0.0.0.0``, ``::``)."""
    try:
        return ipaddress.ip_address(bind).is_unspecified
    except ValueError:
        return False


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


__all__ = [
    "ANY",
    "HostCheck",
    "is_wildcard",
    "machine_addresses",
    "machine_names",
    "split_host",
    "urls",
]
