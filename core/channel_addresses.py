"""Shared: where a notification may be sent, and what a webhook's signing secret must be. Checked
when a channel is written (the API: the pure checks) and again at every send (notify:
``target``, the pure checks, then the one DNS lookup):

    webhook    https (http only where ``allow_http`` says so: local testing), no credentials in
               the URL; every address the host name resolves to must be public, not loopback,
               private, link-local, multicast, unspecified or reserved (IPv4 and IPv6,
               IPv4-mapped IPv6 included), unless ``allowed_networks`` names it
    wecom      https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…, and the same network
    dingtalk   https://oapi.dingtalk.com/robot/send?access_token=…   rules as a webhook
    email      one plain address (``local@domain``, no display name, no CR/LF)
    mqtt       ``duty-<person id>``: issued by the platform, never typed
    sms        a mainland China mobile number, ``13800138000`` or ``+8613800138000``
    voice      (the same)

The request then goes to the address that was checked, with the name in the Host header and
the TLS SNI (``Target``): no second lookup that DNS rebinding could change. Error texts never
carry a robot's URL (its key is a credential): ``shown`` keeps the scheme and host.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address

import httpx

from core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

HTTP_KINDS = frozenset({"webhook", "wecom", "dingtalk"})
ROBOTS = {
    "wecom": ("qyapi.weixin.qq.com", "/cgi-bin/webhook/send", "key"),
    "dingtalk": ("oapi.dingtalk.com", "/robot/send", "access_token"),
}
DUTY_APP = re.compile(r"duty-[1-9][0-9]*")
PHONE_KINDS = frozenset({"sms", "voice"})
MOBILE = re.compile(r"(?:\+86)?(1[3-9][0-9]{9})")


class BadAddress(ValueError):
    """The channel's address can never work: a permanent failure, not retried."""


class Refused(BadAddress):
    """A well-formed address notify may not send to (its text is the short category)."""


def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` has (one lookup)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """What the operator allows beyond public https (``SHOUWANG_NOTIFY_ALLOW_HTTP``,
    ``SHOUWANG_NOTIFY_ALLOWED_NETWORKS``) and how names are resolved."""

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolve: Resolver = system_resolve

    @classmethod
    def from_settings(cls, s: Settings) -> AddressPolicy:
        return cls(s.notify_allow_http, tuple(s.notify_allowed_networks))

    def allows(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.allowed_networks)


STRICT = AddressPolicy()


def shown(address: str) -> str:
    """The address as errors and logs show it: scheme and host, never the path or query (a
    robot's key, a webhook's token)."""
    try:
        url = httpx.URL(address)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "(not a URL)"
    return f"{url.scheme}://{url.host}/…" if url.host else "(no host)"


def _category(ip: IPAddress) -> str | None:
    for test, name in (
        ("is_loopback", "loopback"),
        ("is_unspecified", "unspecified"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, test):
            return name
    return None if ip.is_global else "non-public"


def check_ip(address: str, policy: AddressPolicy) -> IPAddress:
    """The address, unless it is one notify may not send to (``Refused``)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # no scope id
    inner = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
    if policy.allows(ip) or policy.allows(inner):
        return ip
    category = _category(inner) or _category(ip)
    if category is not None:
        raise Refused(f"refused: {category} address")
    return ip


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_url(kind: str, address: str, policy: AddressPolicy | None) -> httpx.URL:
    try:
        url = httpx.URL(address)
    except (httpx.InvalidURL, ValueError, TypeError) as e:
        raise BadAddress(f"{kind} address is not a URL ({type(e).__name__})") from None
    if url.scheme not in ("http", "https"):
        raise BadAddress(f"{kind} address {shown(address)} is not an http(s) URL")
    if not url.host:
        raise BadAddress(f"{kind} address has no host")
    if url.userinfo:
        raise BadAddress(f"{kind} address {shown(address)} has credentials in it: leave them out")
    if url.fragment:
        raise BadAddress(f"{kind} address {shown(address)} has a #fragment: leave it out")
    if kind in ROBOTS:
        host, path, param = ROBOTS[kind]
        if url.host != host or url.path != path or not url.params.get(param):
            raise BadAddress(f"{kind} address must be https://{host}{path}?{param}=…")
    if policy is not None:
        if url.scheme == "http" and not policy.allow_http:
            raise BadAddress(
                f"{kind} address {shown(address)} is http: https only"
                " (SHOUWANG_NOTIFY_ALLOW_HTTP allows http, for local testing)"
            )
        literal = _literal_ip(url.host)
        if literal is not None:
            check_ip(str(literal), policy)
    return url


def check_email(address: str) -> None:
    """One plain ``local@domain`` address: no display name, no list, no CR/LF."""
    if not address or not all(ch.isprintable() and not ch.isspace() for ch in address):
        raise BadAddress(f"e-mail address {address!r} is empty or has spaces or control characters")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "@" in local:
        raise BadAddress(f"e-mail address {address!r} is not local@domain")
    if any(ch in address for ch in ',;:<>()[]\\"'):
        raise BadAddress(f"e-mail address {address!r} is not one plain address")
    # A non-ASCII local part is the mail server's to take or refuse (SMTPUTF8): parsed as ASCII.
    ascii_local = "".join(ch if ch.isascii() else "x" for ch in local)
    try:
        parsed = Address(addr_spec=f"{ascii_local}{at}{domain}")
    except (HeaderParseError, ValueError, IndexError, AttributeError) as e:
        raise BadAddress(f"e-mail address {address!r} is not local@domain ({e})") from None
    if not parsed.username or not parsed.domain or parsed.addr_spec != f"{ascii_local}@{domain}":
        raise BadAddress(f"e-mail address {address!r} is not one plain local@domain address")
    if "." in (parsed.domain[0], parsed.domain[-1]) or "[" in parsed.domain:
        raise BadAddress(f"e-mail address {address!r} has no usable domain")


def check_address(kind: str, address: str, policy: AddressPolicy | None = None) -> None:
    """Raise ``BadAddress`` (``Refused``) unless ``address`` is a well-formed address for the
    channel kind (pure). With a ``policy``, an HTTP address is also held to its scheme and to
    its IP when it is one; without, only its shape is checked (names are resolved by
    ``target``)."""
    if not address or not all(ch.isprintable() and not ch.isspace() for ch in address):
        raise BadAddress(f"{kind} address is empty or has spaces or control characters")
    if kind in HTTP_KINDS:
        _check_url(kind, address, policy)
    elif kind == "email":
        check_email(address)
    elif kind == "mqtt" and not DUTY_APP.fullmatch(address):
        raise BadAddress(f"duty-app account {address!r} is not duty-<person id>")
    elif kind in PHONE_KINDS:
        mobile(address)


def mobile(address: str) -> str:
    """The 11 digits of a mainland China mobile number written ``13800138000`` or
    ``+8613800138000`` (``BadAddress`` otherwise): what SMS and voice providers dial."""
    m = MOBILE.fullmatch(address)
    if m is None:
        raise BadAddress(
            f"phone number {address[:40]!r} is not a mainland China mobile number:"
            " write 13800138000 or +8613800138000"
        )
    return m.group(1)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one HTTP request goes: ``url`` with the checked IP as its host, the name for the
    Host header and, over TLS, the SNI and certificate check."""

    url: httpx.URL
    host_header: str
    sni: str | None


def target(kind: str, address: str, policy: AddressPolicy) -> Target:
    """Check ``address``, resolve its host once and check every address it has (``Refused``
    when one is not allowed; ``OSError`` when the name does not resolve: retried later)."""
    check_address(kind, address, policy)
    url = httpx.URL(address)
    literal = _literal_ip(url.host)
    if literal is not None:
        return Target(url, url.netloc.decode("ascii"), None)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        found = policy.resolve(url.raw_host.decode("ascii"), port)
    except UnicodeError:  # a label too long for DNS
        raise BadAddress(f"{kind} address {shown(address)} has a host DNS cannot look up") from None
    if not found:
        raise OSError(f"no address for {url.host}")
    ips = [check_ip(a, policy) for a in found]
    name = url.raw_host.decode("ascii")
    return Target(
        url.copy_with(host=str(ips[0])),
        url.netloc.decode("ascii"),
        name if url.scheme == "https" else None,
    )


# -- webhook signing secrets (Standard Webhooks; notify.webhook signs) ------------------------

SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's prefix, not a secret)
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


class BadSecret(ValueError):
    """A webhook that cannot be signed: a permanent failure, not retried."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a stored secret: the base64 after ``whsec_``, or the UTF-8 bytes of a
    secret stored before the Standard Webhooks scheme (``BadSecret`` when there is none)."""
    if not secret:
        raise BadSecret("no signing secret")
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    try:
        raw = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret(f"signing secret is not {SECRET_PREFIX} followed by base64") from None
    if not raw:
        raise BadSecret("no signing secret")
    return raw


def check_secret(secret: str | None) -> None:
    """What a new webhook channel's secret must be (the API): ``whsec_`` + base64 of 24 to 64
    bytes (``python -c 'import base64, os; print("whsec_" + base64.b64encode(os.urandom(32))
    .decode())'``)."""
    if not secret:
        raise BadSecret(
            f"a webhook needs a signing secret: {SECRET_PREFIX}<base64 of 24 to 64 random bytes>"
        )
    if not secret.startswith(SECRET_PREFIX):
        raise BadSecret(
            f"a webhook's signing secret is a Standard Webhooks secret: {SECRET_PREFIX}<base64 of"
            " 24 to 64 random bytes>"
        )
    n = len(secret_key(secret))
    if not MIN_KEY_BYTES <= n <= MAX_KEY_BYTES:
        raise BadSecret(
            f"signing secret has {n} bytes after {SECRET_PREFIX}: give {MIN_KEY_BYTES} to"
            f" {MAX_KEY_BYTES}"
        )
