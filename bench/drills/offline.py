"""Drills: the platform's outage is not the devices' fault, checked on the real processes.

While analytics watches a drill's devices, an outage of ingest or the broker longer than the
offline rule's silence must file no OFFLINE alarm and no work order for a device that kept
reporting, one ``feed_silent`` platform alarm must be, and a device that really went silent
during the outage (the drill's *victim*, silenced in the simulator from a data time) must still
be detected once data flows again. The offline silences and codes are analytics' own
(``analytics.engine`` on the list in force), so the drill expects what analytics would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from analytics.__main__ import in_force
from analytics.conditions import DeviceView
from analytics.engine import Engine, compile_rules
from core.db import Conn
from core.settings import Settings


@dataclass(frozen=True)
class Watch:
    codes: list[str]  # the list's entries that file on silence (EL.OFFLINE, …)
    silence_s: dict[int, float]  # device id -> its offline silence (report interval × intervals)

    @property
    def shortest_s(self) -> float | None:
        return min(self.silence_s.values(), default=None)


def watch(s: Settings, conn: Conn, device_ids: list[int]) -> Watch:
    """What analytics watches of these devices for silence, from the list in force."""
    entries = list(in_force(s, conn).rules.entries.values())
    engine = Engine(compile_rules(entries))
    silence: dict[int, float] = {}
    for i, cls, interval, attrs in conn.execute(
        "SELECT id, device_class, report_interval_s, attributes FROM devices WHERE id = ANY(%s)",
        (device_ids,),
    ).fetchall():
        speed = float((attrs or {}).get("rated_speed", 1.0))
        s_ = engine.offline_silence(DeviceView(int(i), str(cls), float(interval), speed))
        if s_ is not None:
            silence[int(i)] = s_
    codes = sorted(str(e.code) for e in entries if any(f.detector == "offline" for f in e.filing))
    return Watch(codes, silence)


def pick_victim(conn: Conn, community: str, w: Watch) -> tuple[int, str]:
    """A device of ``community`` with an offline rule and no OFFLINE alarm open (else a new
    one could not be filed): a direct one before one behind a gateway, not an elevator (the
    drills' faults are elevators)."""
    row = conn.execute(
        "SELECT d.id, d.uid FROM devices d JOIN communities c ON c.id = d.community_id"
        " WHERE d.active AND c.code = %s AND d.id = ANY(%s) AND NOT EXISTS (SELECT 1 FROM"
        " alarms a WHERE a.device_id = d.id AND a.state <> 'cleared' AND a.event_code = ANY(%s))"
        " ORDER BY d.gateway_id IS NOT NULL, d.device_class = 'elevator', d.id LIMIT 1",
        (community, list(w.silence_s), w.codes),
    ).fetchone()
    if row is None:
        raise SystemExit(
            f"no device of {community} with an offline rule and no OFFLINE alarm open to go"
            " silent in the drill: clear those alarms, or run with --no-victim"
        )
    return int(row[0]), str(row[1])


@dataclass(frozen=True)
class Filed:
    others: int  # OFFLINE alarms of devices other than the victim
    others_work_orders: int
    victim_at: datetime | None  # the victim's OFFLINE alarm committed at
    victim_work_order: bool


def filed(
    conn: Conn, device_ids: list[int], w: Watch, since: datetime, victim: int | None
) -> Filed:
    """OFFLINE alarms and work orders committed since ``since`` for these devices."""
    rows = conn.execute(
        "SELECT a.device_id, a.committed_at, EXISTS (SELECT 1 FROM work_orders w"
        " WHERE w.alarm_id = a.id) FROM alarms a WHERE a.device_id = ANY(%s)"
        " AND a.event_code = ANY(%s) AND a.committed_at >= %s ORDER BY a.committed_at",
        (device_ids, w.codes, since),
    ).fetchall()
    others = [(d, wo) for d, _at, wo in rows if d != victim]
    mine = [(at, wo) for d, at, wo in rows if d == victim]
    return Filed(
        len(others),
        sum(1 for _d, wo in others if wo),
        mine[0][0] if mine else None,
        bool(mine and mine[0][1]),
    )


def victim_alarm_at(conn: Conn, victim: int, w: Watch, since: datetime) -> datetime | None:
    row = conn.execute(
        "SELECT min(committed_at) FROM alarms WHERE device_id = %s AND event_code = ANY(%s)"
        " AND committed_at >= %s",
        (victim, w.codes, since),
    ).fetchone()
    return row[0] if row else None


def expectation(
    gap_s: float | None, threshold_s: float, *, wall_clock: bool
) -> tuple[str, int, int]:
    """What the feed's silence calls for: (words, fewest, most) ``feed_silent`` alarms. On the
    data clock a backlog held by the broker leaves no gap in the data's own time, so none is
    due, nor any OFFLINE alarm; within 2 s of the threshold either is right."""
    if not wall_clock:
        return "none (data clock: the held backlog leaves no gap in data time)", 0, 1
    if gap_s is None:
        return "unknown (no reading stored after the outage)", 0, 1
    if gap_s > threshold_s + 2:
        return f"one feed_silent ({gap_s:.0f} s > {threshold_s:.0f} s)", 1, 1
    if gap_s < threshold_s - 2:
        return f"none ({gap_s:.0f} s < {threshold_s:.0f} s)", 0, 0
    return f"at most one feed_silent ({gap_s:.0f} s ≈ {threshold_s:.0f} s)", 0, 1
