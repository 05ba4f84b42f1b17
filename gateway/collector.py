"""Gateway: what a poll becomes in the buffer (pure): a sample of the device's metrics, the events
whose state changed, and the device's status when it stops or starts answering.

Every entry is one batch entry of the wire contract (``core/wire.py``), encoded once here and
kept as bytes in the buffer until the platform confirms it.
"""

from __future__ import annotations

import orjson

from core.wire import MAX_TEXT, storable
from gateway.connector import Poll
from gateway.store import Kind
from sites.converter import active_codes, edges

Item = tuple[Kind, bytes]


class Collector:
    """Remembers, per device, whether it answered last time and which event codes were active,
    so that statuses and events are sent on change only."""

    def __init__(self) -> None:
        self._online: dict[str, bool] = {}
        self._codes: dict[str, dict[str, bool]] = {}
        self.polls = 0
        self.silent_polls = 0
        self.unusable_values = 0

    def collect(self, poll: Poll) -> list[Item]:
        uid, ts = poll.device.uid, poll.ts_ms
        self.polls += 1
        out: list[Item] = []
        if poll.decoded is None:
            self.silent_polls += 1
            if self._online.get(uid) is not False:
                out.append((Kind.STATUS, _status(uid, ts, online=False, reason=poll.error)))
                self._online[uid] = False
            return out
        if self._online.get(uid) is not True:
            out.append((Kind.STATUS, _status(uid, ts, online=True, reason="answering")))
            self._online[uid] = True
        d = poll.decoded
        self.unusable_values += len(d.unusable)
        if d.values:
            out.append((Kind.SAMPLE, orjson.dumps({"device": uid, "ts": ts, "values": d.values})))
        points = poll.device.profile.points
        now = active_codes(points, d.discrete)
        for code, active in edges(self._codes.get(uid), now):
            which = sorted(
                p.name
                for p in points
                if p.event is not None
                and p.event.code == code
                and d.discrete.get(p.name) in p.event.active_values
            )
            body = {"device": uid, "ts": ts, "code": code, "active": active, "detail": {}}
            if which:
                body["detail"] = {"points": which}
            out.append((Kind.EVENT, orjson.dumps(body)))
        self._codes[uid] = now
        return out

    def online(self) -> dict[str, bool]:
        return dict(self._online)


def _status(uid: str, ts: int, *, online: bool, reason: str) -> bytes:
    """A status entry; the reason (an error's text) made storable and short enough."""
    if not storable(reason):
        reason = reason.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()
    text = reason if len(reason) <= MAX_TEXT else reason[: MAX_TEXT - 1] + "…"
    return orjson.dumps({"device": uid, "ts": ts, "online": online, "reason": text})
