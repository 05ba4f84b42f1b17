"""A pushed site config judged on the gateway (pure): applied only when newer, valid as
``shouwang gateway check`` finds it, for this gateway, with the same broker and buffer, and
within the networks the gateway's registration declares; refused otherwise with every problem."""

from __future__ import annotations

from pathlib import Path

import orjson

from core.wire import encode_config_push
from gateway.remote import Accepted, Refused, judge_push
from sites.config import SiteConfig, parse_site_config
from sites.networks import Networks, Serial, Tcp, outside

SITE = """\
gateway: C01-GW
broker: {host: 127.0.0.1, port: 1883, password_file: gw.secret}
buffer: {path: buffer.db, max_bytes: 65536}
networks: [10.1.0.0/16, /dev/ttyUSB0]
devices:
"""
DEVICE = "  - {uid: %s, profile: residual-current-monitor, tcp: {host: %s}, unit: 1}\n"


def site(*devices: tuple[str, str], head: str = SITE) -> str:
    return head + "".join(DEVICE % d for d in devices)


def running() -> SiteConfig:
    return parse_site_config(site(("C01-B01-EF1", "10.1.0.5")).encode(), "site.yaml", Path("/box"))


def push(text: str, version: int = 2, networks: list[str] | None = None) -> bytes:
    return encode_config_push(version, text, networks or ["10.1.0.0/16", "/dev/ttyUSB0"], 1)


def test_a_newer_valid_config_within_the_declared_networks_is_accepted() -> None:
    text = site(("C01-B01-EF1", "10.1.0.5"), ("C01-B01-EF2", "10.1.2.6"))
    out = judge_push(push(text), running(), 1, Path("/box"))
    assert isinstance(out, Accepted)
    assert out.version == 2 and out.text == text
    assert [d.uid for d in out.config.devices] == ["C01-B01-EF1", "C01-B01-EF2"]
    assert out.config.buffer_path == Path("/box/buffer.db")


def test_an_invalid_config_is_refused_with_its_lines() -> None:
    text = (
        site(("C01-B01-EF1", "10.1.0.5"))
        + "  - {uid: C01-X, profile: no-such-model, tcp: {host: 10.1.0.9}}\n"
    )
    out = judge_push(push(text), running(), 1, Path("/box"))
    assert isinstance(out, Refused) and out.version == 2
    assert len(out.errors) == 1
    assert out.errors[0].startswith(
        "pushed config v2:7: devices[1].profile: no profile 'no-such-model'"
    )


def test_an_old_version_is_refused() -> None:
    out = judge_push(push(site(("C01-B01-EF1", "10.1.0.5")), version=3), running(), 3, Path("/box"))
    assert out == Refused(3, ["version 3 is not newer than the running config's (3)"])


def test_broker_buffer_and_gateway_change_only_on_the_box() -> None:
    head = SITE.replace("C01-GW", "C02-GW").replace("1883", "1884").replace("buffer.db", "b2.db")
    out = judge_push(push(site(("C01-B01-EF1", "10.1.0.5"), head=head)), running(), 1, Path("/box"))
    assert isinstance(out, Refused)
    assert [e.split(":")[0] for e in out.errors] == ["gateway", "broker", "buffer.path"]


def test_nothing_outside_the_declared_networks_is_reached() -> None:
    text = site(("C01-B01-EF1", "10.1.0.5"), ("C01-B01-EF2", "10.1.2.6"))
    out = judge_push(
        push(text, networks=["10.1.0.0/24", "/dev/ttyUSB0"]), running(), 1, Path("/box")
    )
    assert isinstance(out, Refused)
    assert out.errors == [
        "networks: 10.1.0.0/16 is not within the site's declared networks (10.1.0.0/24, /dev/ttyUSB0)",
        "devices: C01-B01-EF2 at 10.1.2.6 is outside the site's declared networks"
        " (10.1.0.0/24, /dev/ttyUSB0)",
    ]


def test_a_push_that_breaks_the_contract_is_refused_not_raised() -> None:
    out = judge_push(orjson.dumps({"version": 2, "config": 5}), running(), 1, Path("/box"))
    assert isinstance(out, Refused) and out.version == 0
    assert "wire contract" in out.errors[0] and any("config" in e for e in out.errors[1:])


def test_networks_cover_and_reach() -> None:
    n = Networks.of(["10.0.0.0/8", "/dev/ttyS0", "fd00::/8"])
    assert n.covers("10.2.0.0/16") and not n.covers("11.0.0.0/8") and not n.covers("0.0.0.0/0")
    assert n.covers("fd00:1::/32") and not n.covers("/dev/ttyS1")
    assert n.reaches(Tcp("10.9.9.9", 502)) and not n.reaches(Tcp("plc.local", 502))
    assert n.reaches(Serial("/dev/ttyS0", 9600, "N", 8, 1))
    assert outside(["not-a-net"], [], []) == [
        "the gateway's declared networks are not valid: not an IP network"
        " (192.168.10.0/24) nor a serial port (/dev/ttyUSB0):"
        " 'not-a-net' does not appear to be an IPv4 or IPv6 network"
    ]
