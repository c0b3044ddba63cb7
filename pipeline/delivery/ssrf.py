"""Where a webhook may go (SSRF rules): public addresses only, unless allowed by name.

A roster is written by people and, on ``rosters.v1``, by whoever may produce to the topic, so a
webhook URL must not turn the notifier into a way into the network it runs in. At send time,
after DNS resolution, every address the host resolves to must be a public one; refused are
loopback, private (RFC 1918, fc00::/7), shared (100.64.0.0/10), link-local, multicast,
reserved, unspecified and documentation ranges, IPv4-mapped forms of these, and the cloud
metadata addresses (169.254.169.254, fd00:ec2::254), which no allow-list opens.

``GRIDWATCH_WEBHOOK_ALLOW`` (comma-separated host names or CIDRs) allows an on-premise gateway:
a URL whose host is a listed name, or an address inside a listed network.

The notifier's HTTP session resolves through `GuardedResolver`, so the address it connects to
is one that was checked (a name that answers a public address to the check and a private one
to the connection, DNS rebinding, is still refused). Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver
from yarl import URL

from pipeline.delivery.channels import DeliveryError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


class Refused(OSError):
    """A webhook address the rules refuse; the message says why."""


def _kind(ip: IP) -> str | None:
    """Why this address may not be reached, or None for a public one."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip in METADATA:
        return "the cloud metadata address"
    for attr, what in (("is_loopback", "a loopback"), ("is_unspecified", "an unspecified"),
                       ("is_link_local", "a link-local"), ("is_multicast", "a multicast"),
                       ("is_private", "a private"), ("is_reserved", "a reserved")):
        if getattr(ip, attr):
            return f"{what} address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _allowed(host: str, ip: IP, allow: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for entry in allow:
        if "/" in entry:
            net = ipaddress.ip_network(entry, strict=False)
            mapped = getattr(ip, "ipv4_mapped", None)
            if ip in net or (mapped is not None and mapped in net):
                return True
        elif entry == host:
            return True
    return False


def refusal(host: str, address: str, allow: tuple[str, ...] = ()) -> str | None:
    """Why `host` (resolved to `address`) may not be reached, or None when it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is not the address
    except ValueError:
        return f"{host} resolved to {address!r}, which is not an IP address"
    kind = _kind(ip)
    if kind is None:
        return None
    if kind != "the cloud metadata address" and _allowed(host, ip, allow):
        return None
    hint = "" if kind == "the cloud metadata address" else \
        " (an on-premise gateway can be allowed with GRIDWATCH_WEBHOOK_ALLOW)"
    return f"webhook host {host} is {ip}, {kind}: refused{hint}"


async def check_url(url: str, allow: tuple[str, ...] = ()) -> list[str]:
    """The addresses `url`'s host resolves to, all allowed; else `DeliveryError` (not retriable
    for a refused address, retriable when the name does not resolve now)."""
    try:
        parsed = URL(url)
        scheme, host, port = parsed.scheme, parsed.host, parsed.port
    except (ValueError, TypeError):
        scheme, host, port = "", None, None
    if scheme not in ("http", "https") or not host:
        raise DeliveryError("webhook URL has no http(s) host", retriable=False)
    host = host.strip("[]")
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port or 443,
                                                                 type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError) as exc:
            raise DeliveryError(f"webhook host {host} does not resolve ({type(exc).__name__})")
        addresses = sorted({str(info[4][0]) for info in infos})
        if not addresses:
            raise DeliveryError(f"webhook host {host} does not resolve")
    for address in addresses:  # every answer: a name with one private address is refused
        why = refusal(host, address, allow)
        if why:
            raise DeliveryError(why, retriable=False)
    return addresses


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses (`Refused`) the addresses `refusal` refuses, so a
    connection goes only to an address that was checked."""

    def __init__(self, allow: tuple[str, ...] = (), inner: Any = None) -> None:
        from aiohttp.resolver import DefaultResolver

        self.allow = allow
        self.inner = inner if inner is not None else DefaultResolver()

    async def resolve(self, host: str, port: int = 0,  # type: ignore[override]
                      family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        infos = await self.inner.resolve(host, port, family)
        for info in infos:
            why = refusal(host, str(info["host"]), self.allow)
            if why:
                raise Refused(why)
        return infos

    async def close(self) -> None:
        await self.inner.close()


def guarded_session(allow: tuple[str, ...] = ()) -> Any:
    """The notifier's HTTP session: every name it resolves passes `GuardedResolver`."""
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=GuardedResolver(allow)))
