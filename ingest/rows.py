"""Ingest: pure decoding of broker messages into rows, and of bad input into rejects.

Nothing here touches the network, the database or the clock: ``Decoder.decode`` takes a topic,
a payload and the receive time, and appends to a ``Batch``. Every message ends either as rows or
as rejects with a reason; none is dropped.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

import orjson

from core.errors import InvalidMessage
from core.registry import DeviceRef, MetricSpec, Registry
from core.wire import (
    Channel,
    RawEvent,
    RawSample,
    Reason,
    decode_batch,
    decode_event,
    decode_status,
    decode_telemetry,
    parse_topic,
)

REJECT_PAYLOAD_LIMIT = 4096  # bytes kept of an oversize payload


@dataclass(frozen=True, slots=True)
class Reject:
    received_ms: int
    topic: str
    device_uid: str | None
    reason: str
    detail: str
    payload: bytes
    payload_size: int


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
    messages: int = 0

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass(slots=True)
class Decoder:
    registry: Registry
    max_payload_bytes: int = 256 * 1024
    max_future_ms: int = 300_000
    max_age_ms: int = 30 * 86_400_000
    unknown_devices: set[str] = field(default_factory=set)

    def decode(self, topic: str, payload: bytes, received_ms: int, batch: Batch) -> None:
        batch.messages += 1
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
                batch.statuses.append((received_ms if ts is None else ts, dev.id, online, reason))
        except InvalidMessage as e:
            size = len(payload)
            kept = payload[:REJECT_PAYLOAD_LIMIT] if e.reason == Reason.OVERSIZE else payload
            batch.rejects.append(Reject(received_ms, topic, uid, e.reason, e.detail, kept, size))

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
        if channel is Channel.STATUS:
            decode_status(payload)  # validated; a gateway's own status is not a device's
            return
        samples, events = decode_batch(payload)
        for dev_uid, sample in samples:
            dev = self._forwarded(dev_uid, gw_id, uid, received_ms, topic, batch)
            if dev is not None:
                self._samples(dev, [sample], received_ms, topic, batch)
        for dev_uid, event in events:
            dev = self._forwarded(dev_uid, gw_id, uid, received_ms, topic, batch)
            if dev is not None:
                try:
                    self._event(dev, event, received_ms, topic, batch)
                except InvalidMessage as e:
                    self._reject_part(batch, received_ms, topic, dev_uid, e, {"event": event[1]})

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
            reason, detail = Reason.NOT_NUMERIC, f"metric {name!r} value {v!r} is not a number"
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
            {"ts": ts, "metric": name, "value": repr(v)},
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

    @staticmethod
    def _reject_part(
        batch: Batch,
        received_ms: int,
        topic: str,
        uid: str | None,
        e: InvalidMessage,
        part: dict[str, object],
    ) -> None:
        body = orjson.dumps(part, default=repr)
        batch.rejects.append(Reject(received_ms, topic, uid, e.reason, e.detail, body, len(body)))
