"""Gateway: the networks a site's devices may sit on (pure).

A network is an IP network in CIDR form (``192.168.10.0/24``) or a serial port (``/dev/ttyUSB0``).
A site config lists the networks of its devices, and the gateway's registration on the platform
declares the networks of its site: a config pushed from the platform may reach nothing outside
them (wire contract revision 5). Both the platform, before it sends a config, and the gateway,
before it applies one, check this with :func:`outside`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Tcp:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Serial:
    port: str
    baudrate: int
    parity: str
    bytesize: int
    stopbits: int


Link = Tcp | Serial


def parse_network(text: str) -> IpNetwork | str:
    """An IP network, or a serial port (a path); ValueError saying what a network looks like."""
    if text.startswith("/"):
        return text
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise ValueError(
            f"not an IP network (192.168.10.0/24) nor a serial port (/dev/ttyUSB0): {e}"
        ) from None


@dataclass(frozen=True, slots=True)
class Networks:
    ips: tuple[IpNetwork, ...]
    ports: frozenset[str]

    @classmethod
    def of(cls, texts: Iterable[str]) -> Networks:
        """From texts already known to be valid (:func:`parse_network` raises otherwise)."""
        parsed = [parse_network(t) for t in texts]
        return cls(
            tuple(n for n in parsed if not isinstance(n, str)),
            frozenset(n for n in parsed if isinstance(n, str)),
        )

    def reaches(self, link: Link) -> bool:
        """Whether a device on ``link`` sits on one of these networks. A TCP device is given by
        IP address: a host name could resolve anywhere."""
        if isinstance(link, Serial):
            return link.port in self.ports
        try:
            ip = ipaddress.ip_address(link.host)
        except ValueError:
            return False
        return any(ip in n for n in self.ips)

    def covers(self, text: str) -> bool:
        """Whether the network ``text`` lies within one of these."""
        n = parse_network(text)
        if isinstance(n, str):
            return n in self.ports
        return any(n.version == m.version and n.subnet_of(m) for m in self.ips)  # type: ignore[arg-type]


def outside(
    declared: Sequence[str], networks: Iterable[str], devices: Iterable[tuple[str, Link]]
) -> list[str]:
    """What a site config (its ``networks`` and its ``devices`` as (uid, link)) reaches outside
    the ``declared`` networks, one sentence each; empty when nothing does."""
    out: list[str] = []
    try:
        allowed = Networks.of(declared)
    except ValueError as e:
        return [f"the gateway's declared networks are not valid: {e}"]
    names = ", ".join(declared) or "none"
    for n in networks:
        try:
            if not allowed.covers(n):
                out.append(f"networks: {n} is not within the site's declared networks ({names})")
        except ValueError as e:
            out.append(f"networks: {e}")
    for uid, link in devices:
        if not allowed.reaches(link):
            where = link.port if isinstance(link, Serial) else link.host
            out.append(
                f"devices: {uid} at {where} is outside the site's declared networks ({names})"
            )
    return out
