"""Gateway: the site config, one YAML file per site box (pure apart from reading files).

It names the gateway, how it reaches the broker, where it buffers, the networks its devices may
sit on, and each device with its profile and connection::

    gateway: C01-GW                  # the gateway's uid, as registered
    broker:
      host: mqtt.example.org
      port: 8883
      tls: true
      ca_file: ca.pem                # relative paths are taken from this file's folder
      password_file: gateway.secret  # the password 'shouwang broker issue C01-GW' printed
    buffer:
      path: /var/lib/shouwang-gateway/buffer.db
      max_bytes: 268435456           # oldest data is dropped (and counted) beyond this
    uplink:
      batch_interval_s: 2
      batch_max_bytes: 131072        # under the platform's payload limit (256 KiB)
      max_kib_per_minute: 2400       # under the platform's rate limit for a gateway
      ack_timeout_s: 30              # a batch not confirmed by then is sent again
      state_every_s: 60              # how often the gateway reports its state
    profiles_dir: profiles           # optional: models of this site beyond the shipped ones
    networks: [192.168.10.0/24, /dev/ttyUSB0]
    devices:
      - uid: C01-PR
        profile: pump-room-controller
        tcp: {host: 192.168.10.21, port: 502}
        unit: 1
        poll_s: 5
        timeout_s: 1
        retries: 1
      - uid: C01-B01-EF1
        profile: residual-current-monitor
        serial: {port: /dev/ttyUSB0, baudrate: 9600, parity: N}
        unit: 3

A device may be reached only on a declared network: a TCP host inside one of the declared IP
networks, a serial port among the declared ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from core.located_yaml import Document, Problem, ProblemsError, located
from core.wire import UID_PATTERN
from sites.documents import parse_document, read_document
from sites.networks import Networks, Serial, Tcp, parse_network
from sites.profiles import NAME_PATTERN, Profile, ProfileError, load_profiles

MAX_CONFIG_BYTES: Final = 4 * 1024 * 1024
MAX_DEVICES: Final = 5000
MIN_BUFFER_BYTES: Final = 4096  # a few dozen entries: for tests, not for a site


class SiteConfigError(ProblemsError):
    what = "the site config"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Broker(_Model):
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 1883
    tls: bool = False
    ca_file: str | None = None
    password_file: Annotated[str, Field(min_length=1)]
    keepalive_s: Annotated[StrictInt, Field(ge=5, le=3600)] = 30


class _Buffer(_Model):
    path: Annotated[str, Field(min_length=1)]
    max_bytes: Annotated[StrictInt, Field(ge=MIN_BUFFER_BYTES, le=2**40)] = 256 * 1024 * 1024


class _Uplink(_Model):
    batch_interval_s: Annotated[float, Field(ge=0.05, le=300)] = 2.0
    batch_max_bytes: Annotated[StrictInt, Field(ge=4096, le=256 * 1024)] = 128 * 1024
    # Under the platform's rate limit for a gateway (3,000 a minute, one per started KiB).
    max_kib_per_minute: Annotated[float, Field(ge=60, le=10_000_000)] = 2400.0
    ack_timeout_s: Annotated[float, Field(ge=1, le=3600)] = 30.0
    state_every_s: Annotated[float, Field(ge=1, le=3600)] = 60.0

    @model_validator(mode="after")
    def _batch_fits_the_rate(self) -> _Uplink:
        if self.batch_max_bytes > self.max_kib_per_minute * 1024:
            raise ValueError("batch_max_bytes is more than max_kib_per_minute allows at once")
        return self


class _Tcp(_Model):
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 502


class _Serial(_Model):
    port: Annotated[str, Field(min_length=1, max_length=255)]
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1


class _Device(_Model):
    uid: Annotated[str, Field(pattern=UID_PATTERN)]
    profile: Annotated[str, Field(pattern=NAME_PATTERN)]
    tcp: _Tcp | None = None
    serial: _Serial | None = None
    unit: Annotated[StrictInt, Field(ge=0, le=247)] = 1
    poll_s: Annotated[float, Field(ge=0.1, le=86400)] = 5.0
    timeout_s: Annotated[float, Field(ge=0.05, le=60)] = 1.0
    retries: Annotated[StrictInt, Field(ge=0, le=10)] = 1

    @model_validator(mode="after")
    def _one_connection(self) -> _Device:
        if (self.tcp is None) == (self.serial is None):
            raise ValueError("give exactly one of 'tcp' and 'serial'")
        return self


class _Site(_Model):
    gateway: Annotated[str, Field(pattern=UID_PATTERN)]
    broker: _Broker
    buffer: _Buffer
    uplink: _Uplink = _Uplink()
    profiles_dir: str | None = None
    networks: Annotated[list[str], Field(min_length=1, max_length=256)]
    devices: Annotated[list[_Device], Field(min_length=1, max_length=MAX_DEVICES)]


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    uid: str
    profile: Profile
    link: Tcp | Serial
    unit: int
    poll_s: float
    timeout_s: float
    retries: int


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str
    port: int
    tls: bool
    ca_file: Path | None
    password_file: Path
    keepalive_s: int


@dataclass(frozen=True, slots=True)
class SiteConfig:
    gateway: str
    broker: BrokerConfig
    buffer_path: Path
    buffer_max_bytes: int
    batch_interval_s: float
    batch_max_bytes: int
    max_kib_per_minute: float
    ack_timeout_s: float
    state_every_s: float
    networks: tuple[str, ...]
    devices: tuple[DeviceConfig, ...]
    source: str


def parse_site_config(data: bytes, source: str, base: Path) -> SiteConfig:
    """A site config from its bytes; relative paths are taken from ``base``. Raises
    :class:`SiteConfigError` with every problem, or :class:`ProfileError` for a bad profile."""
    doc, raw, problems = parse_document(
        data, source, _Site, SiteConfigError, max_bytes=MAX_CONFIG_BYTES, what="a site config"
    )
    profiles = load_profiles(None if raw.profiles_dir is None else base / raw.profiles_dir)
    nets = _networks(doc, raw, problems)
    devices: list[DeviceConfig] = []
    seen: dict[str, int] = {}
    for i, d in enumerate(raw.devices):
        if d.uid in seen:
            problems.append(
                located(doc, ("devices", i, "uid"), f"{d.uid} is already devices[{seen[d.uid]}]")
            )
        seen.setdefault(d.uid, i)
        profile = profiles.get(d.profile)
        if profile is None:
            known = ", ".join(sorted(profiles))
            msg = f"no profile {d.profile!r}; known: {known} (or add one to profiles_dir)"
            problems.append(located(doc, ("devices", i, "profile"), msg))
            continue
        link: Tcp | Serial = (
            Tcp(d.tcp.host, d.tcp.port) if d.tcp is not None else Serial(*_serial_fields(d.serial))
        )
        if not nets.reaches(link):
            key = "tcp" if isinstance(link, Tcp) else "serial"
            msg = "not on a declared network: list its network (or serial port) under 'networks'"
            if isinstance(link, Tcp):
                msg += "; a TCP device is given by IP address"
            problems.append(located(doc, ("devices", i, key), msg))
        devices.append(DeviceConfig(d.uid, profile, link, d.unit, d.poll_s, d.timeout_s, d.retries))
    if problems:
        raise SiteConfigError(problems)
    b = raw.broker
    return SiteConfig(
        gateway=raw.gateway,
        broker=BrokerConfig(
            b.host,
            b.port,
            b.tls,
            None if b.ca_file is None else base / b.ca_file,
            base / b.password_file,
            b.keepalive_s,
        ),
        buffer_path=base / raw.buffer.path,
        buffer_max_bytes=raw.buffer.max_bytes,
        batch_interval_s=raw.uplink.batch_interval_s,
        batch_max_bytes=raw.uplink.batch_max_bytes,
        max_kib_per_minute=raw.uplink.max_kib_per_minute,
        ack_timeout_s=raw.uplink.ack_timeout_s,
        state_every_s=raw.uplink.state_every_s,
        networks=tuple(raw.networks),
        devices=tuple(devices),
        source=source,
    )


def _serial_fields(s: _Serial | None) -> tuple[str, int, str, int, int]:
    assert s is not None
    return s.port, s.baudrate, s.parity, s.bytesize, s.stopbits


def _networks(doc: Document, raw: _Site, problems: list[Problem]) -> Networks:
    good = []
    for i, n in enumerate(raw.networks):
        try:
            parse_network(n)
        except ValueError as e:
            problems.append(located(doc, ("networks", i), str(e)))
        else:
            good.append(n)
    return Networks.of(good)


def load_site_config(path: Path) -> SiteConfig:
    return parse_site_config(read_document(path, SiteConfigError), str(path), path.parent)


__all__ = [
    "ProfileError",
    "Serial",
    "SiteConfig",
    "SiteConfigError",
    "Tcp",
    "load_site_config",
    "parse_site_config",
]
