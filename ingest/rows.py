"""Ingest: pure decoding of broker messages into rows, and of bad input into rejects.

Nothing here touches the network, the database or the clock: ``Decoder.decode`` takes a topic,
a payload and the receive time, and appends to a ``Batch``. Every message ends either as rows or
as rejects with a reason; none is dropped, and nothing a device sends raises out of ``decode``:
an unexpected failure on one message is that message's reject (``internal``). A device that sends
nothing but rejects is counted beyond ``reject_limit_per_minute`` instead of stored; a message
beyond its sender's rate limit (decided on receipt, ``ingest/flood.py``) is not decoded, only
rejected (``rate_limited``).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field

import orjson

from core.errors import InvalidMessage
from core.registry import DeviceRef, MetricSpec, Registry
from core.wire import (
    Channel,
    RawEvent,
    RawGatewayState,
    RawSample,
    Reason,
    decode_config_answer,
    decode_event,
    decode_gateway_batch,
    decode_gateway_status,
    decode_status,
    decode_telemetry,
    parse_topic,
    shown,
)

REJECT_PAYLOAD_LIMIT = 4096  # bytes of a rejected payload that are kept (its size is recorded)
REJECT_TEXT_LIMIT = 1000  # characters of a reject's detail, topic or uid
_MINUTE_MS = 60_000


def clean_text(text: str, limit: int = REJECT_TEXT_LIMIT) -> str:
    """Text the database accepts: no U+0000, no lone surrogates, at most ``limit`` characters."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Reject:
    received_ms: int
    topic: str
    device_uid: str | None
    reason: str
    detail: str
    payload: bytes
    payload_size: int

    @classmethod
    def of(
        cls,
        received_ms: int,
        topic: str,
        uid: str | None,
        reason: str,
        detail: str,
        body: bytes,
        size: int | None = None,
    ) -> Reject:
        """A reject the database will take: bounded, clean text and a prefix of the payload
        (``size``: the payload's real size, when ``body`` is already a prefix of it)."""
        return cls(
            received_ms,
            clean_text(topic),
            None if uid is None else clean_text(uid),
            reason,
            clean_text(detail),
            body[:REJECT_PAYLOAD_LIMIT],
            len(body) if size is None else size,
        )


@dataclass(slots=True)
class Batch:
    """Rows decoded from many messages, written together in one transaction."""

    ts_ms: array[int] = field(default_factory=lambda: array("q"))
    device: array[int] = field(default_factory=lambda: array("i"))
    metric: array[int] = field(default_factory=lambda: array("h"))
    value: array[float] = field(default_factory=lambda: array("d"))
    # (ts_ms, device_id, code, active, detail)
    events: list[tuple[int, int, str, bool, dict[str, object]]] = field(default_factory=list)
    # (ts_ms, device_id, online, reason)
    statuses: list[tuple[int, int, bool, str]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # Rejects beyond a device's limit, counted not stored: (minute in ms, device uid, reason) -> n
    suppressed: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    messages: int = 0
    # Gateway batches that carried a sequence range: (gateway uid, first, last), acknowledged
    # to the gateway once this batch is committed (``cmd/stored``).
    stored: list[tuple[str, int, int]] = field(default_factory=list)
    # Site gateways' own statuses: (ts_ms, gateway_id, online, reason, state, received_ms,
    # clock), clock: (the platform's clock minus the gateway's in ms, the timestamp window) when
    # known (wire contract revision 5: an offset beyond the window is flagged, not rejected).
    gateway_states: list[
        tuple[int, int, bool, str, RawGatewayState | None, int, tuple[int, int] | None]
    ] = field(default_factory=list)
    # Site gateways' answers to pushed configs: (gateway_id, version, applied, errors, received_ms)
    config_answers: list[tuple[int, int, bool, list[str], int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts_ms)


def _trace(b: Batch) -> tuple[int, int, int, int, int, int, int]:
    return (
        len(b.ts_ms),
        len(b.events),
        len(b.statuses),
        len(b.rejects),
        b.suppressed.total(),
        len(b.gateway_states),
        len(b.config_answers),
    )


@dataclass(slots=True)
class Decoder:
    registry: Registry
    max_payload_bytes: int = 256 * 1024
    max_future_ms: int = 300_000
    max_age_ms: int = 30 * 86_400_000
    reject_limit_per_minute: int = 120
    unknown_devices: set[str] = field(default_factory=set)
    # (minute in ms, device uid) -> rejects stored for it in that minute
    _rejects_this_minute: Counter[tuple[int, str]] = field(default_factory=Counter)
    traceless: int = 0

    def decode(self, topic: str, payload: bytes, received_ms: int, batch: Batch) -> None:
        """Decode one message into ``batch``: rows, rejects, or (beyond the limit) counted rejects.
        ``traceless`` counts a message that leaves none of these, which would be a bug (a site
        gateway's own status, which left nothing before revision 4, is a ``gateway_state`` row)."""
        batch.messages += 1
        before = _trace(batch)
        self._decode(topic, payload, received_ms, batch)
        if _trace(batch) == before:
            self.traceless += 1

    def _decode(self, topic: str, payload: bytes, received_ms: int, batch: Batch) -> None:
        uid: str | None = None
        try:
            if len(payload) > self.max_payload_bytes:
                raise InvalidMessage(
                    Reason.OVERSIZE, f"{len(payload)} bytes; the limit is {self.max_payload_bytes}"
                )
            kind, uid, channel = parse_topic(topic)
            if kind == "g":
                self._gateway(uid, channel, payload, received_ms, topic, batch)
                return
            dev = self._device(uid)
            if channel is Channel.TELEMETRY:
                self._samples(dev, decode_telemetry(payload), received_ms, topic, batch)
            elif channel is Channel.EVENT:
                self._event(dev, decode_event(payload), received_ms, topic, batch)
            else:
                online, ts, reason = decode_status(payload)
                if ts is not None:  # a will, sent by the broker, has no ts: it is allowed
                    self._check_ts(ts, received_ms)
                batch.statuses.append((received_ms if ts is None else ts, dev.id, online, reason))
        except InvalidMessage as e:
            self.reject(batch, Reject.of(received_ms, topic, uid, e.reason, e.detail, payload))
        except Exception as e:  # anything else on one message is its reject
            detail = f"decoding failed unexpectedly: {type(e).__name__}: {shown(str(e))}"
            self.reject(batch, Reject.of(received_ms, topic, uid, Reason.INTERNAL, detail, payload))

    def rate_limited(
        self, topic: str, prefix: bytes, size: int, received_ms: int, batch: Batch, detail: str
    ) -> None:
        """A message beyond its sender's rate limit (``ingest/flood.py``), of which ``prefix``
        was kept: not decoded, a ``rate_limited`` reject (counted beyond the reject limit)."""
        batch.messages += 1
        parts = topic.split("/")
        uid = parts[3] if len(parts) == 5 else None
        self.reject(
            batch,
            Reject.of(received_ms, topic, uid, Reason.RATE_LIMITED, detail, prefix, size),
        )

    def reject(self, batch: Batch, r: Reject) -> None:
        """Keep ``r``, or count it once its device has had its share of rejects this minute."""
        minute = r.received_ms - r.received_ms % _MINUTE_MS
        who = r.device_uid or r.topic
        key = (minute, who)
        if self._rejects_this_minute[key] >= self.reject_limit_per_minute:
            batch.suppressed[(minute, who, r.reason)] += 1
            return
        if len(self._rejects_this_minute) > 100_000:  # old minutes: forget them
            self._rejects_this_minute = Counter(
                {k: n for k, n in self._rejects_this_minute.items() if k[0] >= minute}
            )
        self._rejects_this_minute[key] += 1
        batch.rejects.append(r)

    def _device(self, uid: str) -> DeviceRef:
        dev = self.registry.devices.get(uid)
        if dev is None:
            self.unknown_devices.add(uid)
            raise InvalidMessage(Reason.UNKNOWN_DEVICE, f"device {uid!r} is not in the registry")
        return dev

    def _gateway(
        self, uid: str, channel: Channel, payload: bytes, received_ms: int, topic: str, batch: Batch
    ) -> None:
        gw_id = self.registry.gateways.get(uid)
        if gw_id is None:
            self.unknown_devices.add(uid)
            raise InvalidMessage(Reason.UNKNOWN_DEVICE, f"gateway {uid!r} is not in the registry")
        if channel is Channel.STATUS:  # the gateway's own, not its devices'
            self._gateway_status(gw_id, payload, received_ms, batch)
            return
        if channel is Channel.CONFIG:  # its answer to a pushed config
            a = decode_config_answer(payload)
            batch.config_answers.append((gw_id, a.version, a.applied, a.errors, received_ms))
            return
        decoded = decode_gateway_batch(payload)
        for dev_uid, sample in decoded.samples:
            dev = self._forwarded(dev_uid, gw_id, uid, received_ms, topic, batch)
            if dev is not None:
                self._samples(dev, [sample], received_ms, topic, batch)
        for dev_uid, event in decoded.events:
            dev = self._forwarded(dev_uid, gw_id, uid, received_ms, topic, batch)
            if dev is not None:
                try:
                    self._event(dev, event, received_ms, topic, batch)
                except InvalidMessage as e:
                    self._reject_part(batch, received_ms, topic, dev_uid, e, {"event": event[1]})
        for dev_uid, (ts, online, reason) in decoded.statuses:
            dev = self._forwarded(dev_uid, gw_id, uid, received_ms, topic, batch)
            if dev is not None:
                try:
                    self._check_ts(ts, received_ms)
                    batch.statuses.append((ts, dev.id, online, reason))
                except InvalidMessage as e:
                    self._reject_part(batch, received_ms, topic, dev_uid, e, {"status": ts})
        if decoded.seq is not None:
            batch.stored.append((uid, *decoded.seq))

    def _forwarded(
        self, dev_uid: str, gw_id: int, gw_uid: str, received_ms: int, topic: str, batch: Batch
    ) -> DeviceRef | None:
        dev = self.registry.devices.get(dev_uid)
        if dev is None:
            self.unknown_devices.add(dev_uid)
            err = InvalidMessage(
                Reason.UNKNOWN_DEVICE, f"device {dev_uid!r} is not in the registry"
            )
        elif dev.gateway_id != gw_id:
            err = InvalidMessage(
                Reason.DEVICE_MISMATCH,
                f"gateway {gw_uid!r} is not registered to forward {dev_uid!r}",
            )
        else:
            return dev
        self._reject_part(batch, received_ms, topic, dev_uid, err, {"device": dev_uid})
        return None

    def _gateway_status(self, gw_id: int, payload: bytes, received_ms: int, batch: Batch) -> None:
        """A gateway's own status. Its clock's offset, as it measured it, or its status stamped
        ahead of the platform's clock by more than the window: kept with the state, for the
        ``gateway_clock`` platform alarm; such a status is stored at the platform's time rather
        than rejected (a status stamped far in the past is still rejected as stale)."""
        online, ts, reason, state = decode_gateway_status(payload)
        offset = None if state is None else state[4]
        if ts is None:  # a will, sent by the broker, has no ts: it is allowed
            ts = received_ms
        elif ts > received_ms + self.max_future_ms:
            offset = received_ms - ts  # no round trip explains that: its clock is ahead
            ts = received_ms
        else:
            self._check_ts(ts, received_ms)
        clock = None if offset is None else (offset, self.max_future_ms)
        batch.gateway_states.append((ts, gw_id, online, reason, state, received_ms, clock))

    def _check_ts(self, ts: int, received_ms: int) -> None:
        if ts > received_ms + self.max_future_ms:
            raise InvalidMessage(
                Reason.FUTURE_TS,
                f"ts {ts} is {(ts - received_ms) / 1000:.0f} s ahead of the platform's clock",
            )
        if ts < received_ms - self.max_age_ms:
            raise InvalidMessage(
                Reason.STALE_TS, f"ts {ts} is {(received_ms - ts) / 86_400_000:.1f} days old"
            )

    def _samples(
        self, dev: DeviceRef, samples: list[RawSample], received_ms: int, topic: str, batch: Batch
    ) -> None:
        specs = self.registry.metrics.get(dev.device_class, {})
        ts_a, dev_a, met_a, val_a = batch.ts_ms, batch.device, batch.metric, batch.value
        did = dev.id
        for ts, values in samples:
            try:
                self._check_ts(ts, received_ms)
            except InvalidMessage as e:
                self._reject_part(
                    batch, received_ms, topic, dev.uid, e, {"ts": ts, "values": values}
                )
                continue
            for name, v in values.items():
                spec = specs.get(name)
                t = type(v)
                if spec is not None and (t is float or t is int) and spec.lo <= v <= spec.hi:
                    ts_a.append(ts)
                    dev_a.append(did)
                    met_a.append(spec.id)
                    val_a.append(v)
                else:
                    self._bad_reading(batch, received_ms, topic, dev, ts, name, v, spec)

    def _bad_reading(
        self,
        batch: Batch,
        received_ms: int,
        topic: str,
        dev: DeviceRef,
        ts: int,
        name: str,
        v: object,
        spec: MetricSpec | None,
    ) -> None:
        if spec is None:
            reason, detail = Reason.UNKNOWN_METRIC, f"{dev.device_class} has no metric {name!r}"
        elif type(v) is not float and type(v) is not int:
            reason, detail = Reason.NOT_NUMERIC, f"metric {name!r} value {shown(v)} is not a number"
        elif isinstance(v, float) and not math.isfinite(v):
            reason, detail = Reason.NOT_FINITE, f"metric {name!r} value {v!r} is not finite"
        else:
            reason, detail = (
                Reason.OUT_OF_RANGE,
                f"metric {name!r} value {v!r} is outside its physical range {spec.lo:g}..{spec.hi:g}",
            )
        self._reject_part(
            batch,
            received_ms,
            topic,
            dev.uid,
            InvalidMessage(reason, detail),
            {"ts": ts, "metric": name, "value": shown(v)},
        )

    def _event(
        self, dev: DeviceRef, event: RawEvent, received_ms: int, topic: str, batch: Batch
    ) -> None:
        ts, code, active, detail = event
        self._check_ts(ts, received_ms)
        if code not in self.registry.event_codes.get(dev.device_class, ()):
            raise InvalidMessage(
                Reason.UNKNOWN_EVENT, f"{dev.device_class} has no event code {code!r}"
            )
        batch.events.append((ts, dev.id, code, active, detail))

    def _reject_part(
        self,
        batch: Batch,
        received_ms: int,
        topic: str,
        uid: str | None,
        e: InvalidMessage,
        part: dict[str, object],
    ) -> None:
        try:
            body = orjson.dumps(part, default=shown)
        except orjson.JSONEncodeError:  # nested beyond orjson's limit
            body = shown(part).encode()
        self.reject(batch, Reject.of(received_ms, topic, uid, e.reason, e.detail, body))
