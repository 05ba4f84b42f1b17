"""Shared: the wire contract between devices, gateways and the platform (version 1, revision 5).

One definition serves the simulator (which publishes), the gateway (which authorises topics) and
ingest (which decodes). ``docs/wire-contract.md`` is its prose; the pydantic models below are its
schema, and the fast decoders are checked against them by property tests.

Topics::

    sw/v1/d/{device}/telemetry   one sample, or many, of one device's metrics
    sw/v1/d/{device}/event       discrete events: fault codes, panel states
    sw/v1/d/{device}/status      online/offline, retained; the device's MQTT last will
    sw/v1/g/{gateway}/batch      samples and events of many devices, from a site gateway
    sw/v1/g/{gateway}/status     the gateway's own online/offline
    sw/v1/g/{gateway}/config     a gateway's answer to a pushed config (revision 5)
    sw/v1/g/{gateway}/cmd/stored the platform to a gateway: the batches it stored (revision 4)
    sw/v1/g/{gateway}/cmd/config the platform to a gateway: a new site config (revision 5)
    sw/v1/g/{gateway}/cmd/state  the platform to a gateway: report your state now (revision 5)

Time ``ts`` is milliseconds since the Unix epoch (UTC) or an RFC 3339 string with an offset.
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    model_validator,
)

from core.errors import InvalidMessage

VERSION: Final = 1
PREFIX: Final = f"sw/v{VERSION}"
UID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Channel(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"
    BATCH = "batch"
    CONFIG = "config"  # a site gateway's answer to a pushed config (revision 5)


class Reason(StrEnum):
    """Why a message or a reading was rejected; stored in ``rejects.reason``."""

    OVERSIZE = "oversize"
    MALFORMED = "malformed"  # not JSON / not UTF-8
    INVALID = "invalid"  # JSON, but not the contract's shape
    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_MISMATCH = "device_mismatch"  # names a device the sender may not speak for
    UNKNOWN_METRIC = "unknown_metric"
    UNKNOWN_EVENT = "unknown_event"
    NOT_NUMERIC = "not_numeric"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_TS = "future_ts"
    STALE_TS = "stale_ts"
    INTERNAL = "internal"  # decoding one message failed unexpectedly; the message is kept
    RATE_LIMITED = "rate_limited"  # beyond its sender's messages a minute (ingest/flood.py)


# --- topics -------------------------------------------------------------------------------


def device_topic(uid: str, channel: Channel) -> str:
    return f"{PREFIX}/d/{uid}/{channel.value}"


def gateway_topic(uid: str, channel: Channel) -> str:
    return f"{PREFIX}/g/{uid}/{channel.value}"


# Notifications to duty apps travel outside the device tree, so ingest never sees them.
DUTY_PREFIX: Final = f"sw/duty/v{VERSION}"


def duty_topic(username: str) -> str:
    """Where the duty app signed in as ``username`` (``duty-<person id>``) reads its notifications."""
    return f"{DUTY_PREFIX}/{username}/notifications"


def parse_topic(topic: str) -> tuple[str, str, Channel]:
    """``sw/v1/d/EL-1/telemetry`` -> ("d", "EL-1", Channel.TELEMETRY)."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[2] not in ("d", "g"):
        raise InvalidMessage(
            Reason.BAD_TOPIC, f"topic {topic!r} is not {PREFIX}/d|g/<uid>/<channel>"
        )
    try:
        channel = Channel(parts[4])
    except ValueError:
        raise InvalidMessage(
            Reason.BAD_TOPIC, f"unknown channel {parts[4]!r} in {topic!r}"
        ) from None
    allowed = (
        (Channel.BATCH, Channel.STATUS, Channel.CONFIG)
        if parts[2] == "g"
        else (Channel.TELEMETRY, Channel.EVENT, Channel.STATUS)
    )
    if channel not in allowed:
        raise InvalidMessage(Reason.BAD_TOPIC, f"channel {channel} is not valid under /{parts[2]}/")
    return parts[2], parts[3], channel


# --- schema (pydantic) ---------------------------------------------------------------------

Timestamp = StrictInt | Annotated[AwareDatetime, Strict()]
Value = StrictInt | StrictFloat


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ts: Timestamp
    values: Annotated[dict[str, Value], Field(min_length=1)]


class TelemetryOne(Sample):
    """``sw/v1/d/{device}/telemetry`` with one sample."""


class TelemetryMany(BaseModel):
    """``sw/v1/d/{device}/telemetry`` with many samples."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    samples: Annotated[list[Sample], Field(min_length=1)]


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ts: Timestamp
    code: Annotated[str, Field(min_length=1, max_length=32)]
    active: StrictBool = True
    detail: dict[str, Any] = Field(default_factory=dict)


class Status(BaseModel):
    """``.../status``. The last will carries ``{"online": false}`` without ``ts``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    online: StrictBool
    ts: Timestamp | None = None
    reason: str = ""


NonNegative = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]


class GatewayState(BaseModel):
    """What a site gateway reports about itself in its status (revision 4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    buffer_entries: NonNegative
    buffer_bytes: NonNegative
    buffer_max_bytes: NonNegative
    dropped: NonNegative  # entries its buffer's byte limit pushed out, since it was created
    clock_offset_ms: Annotated[StrictInt, Field(ge=-(2**62), le=2**62)] | None = None
    devices: NonNegative
    devices_online: NonNegative
    # Revision 5: the version of the pushed config it runs (0: its own file's, none pushed).
    config_version: NonNegative | None = None


class GatewayStatus(Status):
    """``sw/v1/g/{gateway}/status``: a status, and from revision 4 the gateway's state."""

    state: GatewayState | None = None


class BatchSample(Sample):
    device: Annotated[str, Field(pattern=UID_PATTERN)]


class BatchEvent(Event):
    device: Annotated[str, Field(pattern=UID_PATTERN)]


class BatchStatus(BaseModel):
    """A device's online/offline, as the gateway that polls it sees it (revision 4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    device: Annotated[str, Field(pattern=UID_PATTERN)]
    online: StrictBool
    ts: Timestamp
    reason: Annotated[str, Field(max_length=1000)] = ""


SEQ_MAX: Final = 2**63 - 1
MAX_TEXT: Final = 1000  # characters of a status reason (and of a problem in a config answer)


class Batch(BaseModel):
    """``sw/v1/g/{gateway}/batch``: what a site gateway forwards for the devices behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    samples: list[BatchSample] = Field(default_factory=list)
    events: list[BatchEvent] = Field(default_factory=list)
    # Revision 4: the devices' status as the gateway sees it, and the batch's sequence range,
    # which the platform names in its storage acknowledgement (``cmd/stored``).
    statuses: list[BatchStatus] = Field(default_factory=list)
    seq: (
        tuple[
            Annotated[StrictInt, Field(ge=0, le=SEQ_MAX)],
            Annotated[StrictInt, Field(ge=0, le=SEQ_MAX)],
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _not_empty(self) -> Batch:
        if not self.samples and not self.events and not self.statuses:
            raise ValueError("a batch holds at least one sample, event or status")
        if self.seq is not None and self.seq[0] > self.seq[1]:
            raise ValueError("'seq' is [first, last] with first <= last")
        return self


class Stored(BaseModel):
    """``sw/v1/g/{gateway}/cmd/stored`` (revision 4): the platform committed the batches with
    these sequence ranges (rows or rejects); the gateway may forget them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    stored: Annotated[
        list[tuple[Annotated[StrictInt, Field(ge=0)], Annotated[StrictInt, Field(ge=0)]]],
        Field(min_length=1),
    ]
    ts: StrictInt


COMMAND: Final = "cmd"
STORED: Final = "stored"
CONFIG: Final = "config"  # revision 5: a site config pushed to the gateway
STATE: Final = "state"  # revision 5: the platform asks for the gateway's state
MAX_PUSHED_CONFIG: Final = 1024 * 1024  # characters of a pushed site config's YAML
MAX_ANSWER_ERRORS: Final = 100


class ConfigPush(BaseModel):
    """``sw/v1/g/{gateway}/cmd/config`` (revision 5): a whole site config (YAML, as the
    gateway's config file holds it), its version (each push to a gateway has a higher one), the
    networks the gateway's registration declares (nothing outside them may be reached), and the
    platform's clock when it was sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Annotated[StrictInt, Field(ge=1, le=2**31 - 1)]
    config: Annotated[str, Field(min_length=1, max_length=MAX_PUSHED_CONFIG)]
    networks: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=255)]],
        Field(min_length=1, max_length=256),
    ]
    ts: StrictInt


class StateRequest(BaseModel):
    """``sw/v1/g/{gateway}/cmd/state`` (revision 5): report your state now (on your status)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ts: StrictInt


class ConfigAnswer(BaseModel):
    """``sw/v1/g/{gateway}/config`` (revision 5): the gateway applied the pushed ``version``,
    or refused it with its problems (``file:line: path: what to fix``) and runs the config it
    ran before."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]  # 0: a push it could not read
    applied: StrictBool
    errors: Annotated[
        list[Annotated[str, Field(max_length=MAX_TEXT)]], Field(max_length=MAX_ANSWER_ERRORS)
    ] = Field(default_factory=list)
    ts: StrictInt


def gateway_command_topic(uid: str, command: str) -> str:
    """``sw/v1/g/{uid}/cmd/{command}``: from the platform to a gateway, outside what devices
    and gateways publish (the ACL lets only the platform write there)."""
    return f"{PREFIX}/g/{uid}/{COMMAND}/{command}"


def is_command_topic(topic: str) -> bool:
    """A message the platform sent to a device or gateway (``.../cmd/...``), not one of theirs."""
    parts = topic.split("/", 5)
    return len(parts) == 6 and parts[4] == COMMAND and f"{parts[0]}/{parts[1]}" == PREFIX


# --- encoders (publishers) -----------------------------------------------------------------


def encode_sample(ts_ms: int, values: dict[str, float]) -> bytes:
    return orjson.dumps({"ts": ts_ms, "values": values})


def encode_samples(samples: list[tuple[int, dict[str, float]]]) -> bytes:
    return orjson.dumps({"samples": [{"ts": t, "values": v} for t, v in samples]})


def encode_event(
    ts_ms: int, code: str, *, active: bool = True, detail: dict[str, Any] | None = None
) -> bytes:
    return orjson.dumps({"ts": ts_ms, "code": code, "active": active, "detail": detail or {}})


def encode_status(
    online: bool, ts_ms: int | None = None, reason: str = "", state: GatewayState | None = None
) -> bytes:
    body: dict[str, Any] = {"online": online}
    if ts_ms is not None:
        body["ts"] = ts_ms
    if reason:
        body["reason"] = reason
    if state is not None:
        body["state"] = state.model_dump()
    return orjson.dumps(body)


def encode_batch(
    samples: list[tuple[str, int, dict[str, float]]],
    events: list[tuple[str, int, str, bool]] | None = None,
) -> bytes:
    return orjson.dumps(
        {
            "samples": [{"device": d, "ts": t, "values": v} for d, t, v in samples],
            "events": [
                {"device": d, "ts": t, "code": c, "active": a} for d, t, c, a in events or []
            ],
        }
    )


def join_batch(
    seq: tuple[int, int] | None, samples: list[bytes], events: list[bytes], statuses: list[bytes]
) -> bytes:
    """A batch from entries already encoded one by one (``orjson.dumps`` of a batch sample,
    event or status): what a gateway that buffers entries sends, without decoding them again."""
    parts = [b"{"]
    if seq is not None:
        parts.append(b'"seq":[%d,%d],' % seq)
    parts += [b'"samples":[', b",".join(samples), b'],"events":[', b",".join(events), b"]"]
    if statuses:
        parts += [b',"statuses":[', b",".join(statuses), b"]"]
    parts.append(b"}")
    return b"".join(parts)


def encode_stored(ranges: list[tuple[int, int]], ts_ms: int) -> bytes:
    return orjson.dumps({"stored": ranges, "ts": ts_ms})


def encode_config_push(version: int, config: str, networks: list[str], ts_ms: int) -> bytes:
    return orjson.dumps({"version": version, "config": config, "networks": networks, "ts": ts_ms})


def encode_state_request(ts_ms: int) -> bytes:
    return orjson.dumps({"ts": ts_ms})


def encode_config_answer(version: int, applied: bool, errors: list[str], ts_ms: int) -> bytes:
    """An answer; more problems than an answer holds are summed up in its last line."""
    if len(errors) > MAX_ANSWER_ERRORS:
        n = len(errors) - MAX_ANSWER_ERRORS + 1
        errors = [*errors[: MAX_ANSWER_ERRORS - 1], f"{n} more problem(s) not listed"]
    errors = [e if len(e) <= MAX_TEXT else e[: MAX_TEXT - 1] + "…" for e in errors]
    return orjson.dumps({"version": version, "applied": applied, "errors": errors, "ts": ts_ms})


def decode_config_answer(payload: bytes) -> ConfigAnswer:
    """A gateway's answer (rare: validated by the model); InvalidMessage when it is not one."""
    obj = loads(payload)
    try:
        return ConfigAnswer.model_validate(obj)
    except ValidationError as e:
        raise InvalidMessage(Reason.INVALID, f"not a config answer: {shown(str(e))}") from None


def decode_stored(payload: bytes) -> tuple[list[tuple[int, int]], int]:
    """The ranges of a ``cmd/stored`` message and the platform's clock when it was sent
    (validated by the model: it comes from the platform, so speed does not matter)."""
    m = Stored.model_validate_json(payload)
    return [(a, b) for a, b in m.stored], m.ts


# --- fast decoders (ingest) ----------------------------------------------------------------
# They accept exactly what the models above accept (tests/core/test_wire.py holds them to it),
# but return plain tuples: ingest handles tens of thousands of samples a second.

RawSample = tuple[int, dict[str, Any]]  # (ts_ms, values)
RawEvent = tuple[int, str, bool, dict[str, Any]]  # (ts_ms, code, active, detail)


def loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        if b"NaN" in payload or b"Infinity" in payload:
            # Not JSON, but common from device firmware: decode it anyway so that the finite
            # readings in the message are kept and each NaN/Infinity is rejected on its own.
            try:
                return json.loads(payload)
            except (ValueError, RecursionError):
                pass
        raise InvalidMessage(Reason.MALFORMED, f"not valid JSON: {e}") from None


MAX_DETAIL_DEPTH: Final = 8  # nesting of an event's detail object
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 120, 120


def shown(value: Any) -> str:
    """A bounded rendering of anything a device sent, for reject details: never deeper than a few
    levels nor longer than a few hundred characters, whatever the input."""
    return _SHOWN.repr(value)


def storable(text: str) -> bool:
    """Whether PostgreSQL can store ``text``: no U+0000 and valid UTF-8 (no lone surrogates)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_detail(detail: dict[str, Any]) -> None:
    """An event's detail must be storable as jsonb: shallow, and no U+0000 in keys or strings."""
    stack: list[tuple[Any, int]] = [(detail, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DETAIL_DEPTH:
            raise InvalidMessage(
                Reason.INVALID, f"'detail' nests deeper than {MAX_DETAIL_DEPTH} levels"
            )
        items = (
            node.items() if type(node) is dict else enumerate(node) if type(node) is list else ()
        )
        for k, v in items:
            for text in (k, v):
                if type(text) is str and not storable(text):
                    raise InvalidMessage(
                        Reason.INVALID,
                        "'detail' holds U+0000 or a lone surrogate, which cannot be stored",
                    )
            if type(v) in (dict, list):
                stack.append((v, depth + 1))


def parse_ts(raw: Any) -> int:
    if type(raw) is int:
        return raw
    if isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidMessage(Reason.INVALID, f"ts {shown(raw)} is not RFC 3339") from None
        if dt.tzinfo is None:
            raise InvalidMessage(Reason.INVALID, f"ts {shown(raw)} has no UTC offset")
        return math.floor(dt.timestamp() * 1000)
    raise InvalidMessage(
        Reason.INVALID, f"ts must be epoch milliseconds or RFC 3339, not {shown(raw)}"
    )


def _sample(obj: Any, keys: frozenset[str]) -> RawSample:
    if type(obj) is not dict or obj.keys() - keys or "ts" not in obj or "values" not in obj:
        raise InvalidMessage(
            Reason.INVALID, f"a sample is an object with 'ts' and 'values': {str(obj)[:200]}"
        )
    values = obj["values"]
    if type(values) is not dict or not values:
        raise InvalidMessage(Reason.INVALID, "'values' is a non-empty object of metric: number")
    return parse_ts(obj["ts"]), values


_SAMPLE_KEYS = frozenset(("ts", "values"))
_BATCH_SAMPLE_KEYS = frozenset(("ts", "values", "device"))
_EVENT_KEYS = frozenset(("ts", "code", "active", "detail"))
_BATCH_EVENT_KEYS = _EVENT_KEYS | {"device"}


def decode_telemetry(payload: bytes) -> list[RawSample]:
    obj = loads(payload)
    if type(obj) is dict and "samples" in obj:
        samples = obj["samples"]
        if len(obj) != 1 or type(samples) is not list or not samples:
            raise InvalidMessage(Reason.INVALID, "'samples' is a non-empty list and the only key")
        return [_sample(s, _SAMPLE_KEYS) for s in samples]
    return [_sample(obj, _SAMPLE_KEYS)]


def _event(obj: Any, keys: frozenset[str]) -> RawEvent:
    if type(obj) is not dict or obj.keys() - keys or "ts" not in obj or "code" not in obj:
        raise InvalidMessage(
            Reason.INVALID, f"an event is an object with 'ts' and 'code': {shown(obj)}"
        )
    code, active, detail = obj["code"], obj.get("active", True), obj.get("detail", {})
    if type(code) is not str or not 1 <= len(code) <= 32:
        raise InvalidMessage(Reason.INVALID, "'code' is a string of 1 to 32 characters")
    if type(active) is not bool or type(detail) is not dict:
        raise InvalidMessage(Reason.INVALID, "'active' is a boolean and 'detail' an object")
    _check_detail(detail)
    return parse_ts(obj["ts"]), code, active, detail


def decode_event(payload: bytes) -> RawEvent:
    return _event(loads(payload), _EVENT_KEYS)


def decode_status(payload: bytes) -> tuple[bool, int | None, str]:
    return _status_of(loads(payload))


def _status_of(obj: Any) -> tuple[bool, int | None, str]:
    if type(obj) is not dict or "online" not in obj or obj.keys() - {"online", "ts", "reason"}:
        raise InvalidMessage(
            Reason.INVALID, "status is an object with 'online' (and 'ts', 'reason')"
        )
    online, ts, reason = obj["online"], obj.get("ts"), obj.get("reason", "")
    if type(online) is not bool or type(reason) is not str:
        raise InvalidMessage(Reason.INVALID, "'online' is a boolean and 'reason' a string")
    if len(reason) > MAX_TEXT or not storable(reason):
        raise InvalidMessage(
            Reason.INVALID,
            f"'reason' is text of at most {MAX_TEXT} characters, without U+0000 or lone surrogates",
        )
    return online, None if ts is None else parse_ts(ts), reason


RawStatus = tuple[int, bool, str]  # (ts_ms, online, reason)


@dataclass(frozen=True, slots=True)
class GatewayBatch:
    samples: list[tuple[str, RawSample]]
    events: list[tuple[str, RawEvent]]
    statuses: list[tuple[str, RawStatus]]
    seq: tuple[int, int] | None


# (buffer_entries, buffer_bytes, buffer_max_bytes, dropped, clock_offset_ms, devices,
# devices_online, config_version)
RawGatewayState = tuple[int, int, int, int, int | None, int, int, int | None]
_STATE_KEYS = (
    "buffer_entries",
    "buffer_bytes",
    "buffer_max_bytes",
    "dropped",
    "clock_offset_ms",
    "devices",
    "devices_online",
    "config_version",
)
_OPTIONAL_STATE_KEYS = ("clock_offset_ms", "config_version")


def decode_gateway_status(
    payload: bytes,
) -> tuple[bool, int | None, str, RawGatewayState | None]:
    """A gateway's own status: as a device's, plus its optional ``state`` (revision 4)."""
    obj = loads(payload)
    state = obj.pop("state", None) if type(obj) is dict else None
    online, ts, reason = _status_of(obj)
    if state is None:
        return online, ts, reason, None
    if type(state) is not dict or set(state) - set(_STATE_KEYS):
        raise InvalidMessage(
            Reason.INVALID, f"'state' is an object with {', '.join(_STATE_KEYS)}: {shown(state)}"
        )
    offset = state.get("clock_offset_ms")
    if offset is not None:
        offset = _int_in(state, "clock_offset_ms", -(2**62), 2**62)
    version = state.get("config_version")
    if version is not None:
        version = _int_in(state, "config_version", 0, SEQ_MAX)
    counts = [_int_in(state, k, 0, SEQ_MAX) for k in _STATE_KEYS if k not in _OPTIONAL_STATE_KEYS]
    b_entries, b_bytes, b_max, dropped, devices, online_n = counts
    raw = (b_entries, b_bytes, b_max, dropped, offset, devices, online_n, version)
    return online, ts, reason, raw


def _int_in(obj: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = obj.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise InvalidMessage(Reason.INVALID, f"state.{key} is an integer in {lo}..{hi}")
    return v


def decode_batch(payload: bytes) -> tuple[list[tuple[str, RawSample]], list[tuple[str, RawEvent]]]:
    b = decode_gateway_batch(payload)
    return b.samples, b.events


def decode_gateway_batch(payload: bytes) -> GatewayBatch:
    obj = loads(payload)
    if type(obj) is not dict or obj.keys() - {"samples", "events", "statuses", "seq"}:
        raise InvalidMessage(
            Reason.INVALID, "a batch is an object with 'samples', 'events', 'statuses' and 'seq'"
        )
    samples, events = obj.get("samples", []), obj.get("events", [])
    statuses, seq = obj.get("statuses", []), obj.get("seq")
    if type(samples) is not list or type(events) is not list or type(statuses) is not list:
        raise InvalidMessage(Reason.INVALID, "'samples', 'events' and 'statuses' are lists")
    if not samples and not events and not statuses:
        raise InvalidMessage(Reason.INVALID, "a batch holds at least one sample, event or status")
    out_s = []
    for s in samples:
        ts_values = _sample(s, _BATCH_SAMPLE_KEYS)
        out_s.append((_device_of(s), ts_values))
    out_e = [(_device_of(e), _event(e, _BATCH_EVENT_KEYS)) for e in events]
    out_st = [(_device_of(st), _batch_status(st)) for st in statuses]
    return GatewayBatch(out_s, out_e, out_st, None if seq is None else _seq(seq))


def _seq(raw: Any) -> tuple[int, int]:
    if (
        type(raw) is not list
        or len(raw) != 2
        or type(raw[0]) is not int
        or type(raw[1]) is not int
        or not 0 <= raw[0] <= raw[1] <= SEQ_MAX
    ):
        raise InvalidMessage(
            Reason.INVALID,
            f"'seq' is [first, last], integers with 0 <= first <= last: {shown(raw)}",
        )
    return raw[0], raw[1]


def _batch_status(obj: Any) -> RawStatus:
    if (
        type(obj) is not dict
        or obj.keys() - {"device", "online", "ts", "reason"}
        or "online" not in obj
        or "ts" not in obj
    ):
        raise InvalidMessage(
            Reason.INVALID,
            f"a batch status has 'device', 'online', 'ts' (and 'reason'): {shown(obj)}",
        )
    online, reason = obj["online"], obj.get("reason", "")
    if type(online) is not bool or type(reason) is not str:
        raise InvalidMessage(Reason.INVALID, "'online' is a boolean and 'reason' a string")
    if len(reason) > MAX_TEXT or not storable(reason):
        raise InvalidMessage(
            Reason.INVALID,
            f"'reason' is text of at most {MAX_TEXT} characters, without U+0000 or lone surrogates",
        )
    return parse_ts(obj["ts"]), online, reason


def _device_of(obj: dict[str, Any]) -> str:
    dev = obj.get("device")
    if type(dev) is not str or not dev:
        raise InvalidMessage(Reason.INVALID, "each batch entry names its 'device'")
    return dev
