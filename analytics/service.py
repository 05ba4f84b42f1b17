"""Analytics: the shell. Takes ingest's feed of accepted data, runs the detectors, keeps the
alarm lifecycle and files work orders; commits, and only then acknowledges the feed.

Its clock is the wall clock in production, or the data's own time (``clock="data"``) for
fast-forwarded simulations and replays, where "now" is the newest reading seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.reasoncodes import ReasonCode

from analytics.conditions import DeviceView
from analytics.engine import Engine, compile_rules
from analytics.learned import Learned, compile_learned
from analytics.models import latest
from analytics.rollup import roll_up
from analytics.store import (
    DeviceInfo,
    apply,
    cleared_elsewhere,
    load_devices,
    load_open_alarms,
    record_breaches,
)
from core.db import Conn, connect
from core.feed import EVENTS_TOPIC, READINGS_TOPIC, unpack_events, unpack_readings
from core.holiday_schedule import ScheduleWarning
from core.holiday_store import calendar_in_force, fingerprint
from core.mqtt import new_client
from core.workcalendar import WorkCalendar
from lifecycle.alarms import Lifecycle, Observation, Policy, Transition, policy_of
from responsibility.in_force import InForce
from responsibility.loader import ResponsibilityList
from responsibility.model import Entry

log = logging.getLogger("shouwang.analytics")
ROLLUP_EVERY_S = 15.0  # how often the per-minute rollup of readings catches up
ROLLUP_STEP = timedelta(minutes=30)  # the most one pass recomputes (a backlog takes several)


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    client_id: str
    username: str
    password: str
    host: str
    port: int
    clock: str = "wall"  # wall | data
    tick_seconds: float = 0.2
    data_tick_seconds: float = (
        5.0  # with clock="data": how often, in data time, time-driven checks run
    )
    # The list in force now, given the one in force here (returned as it is while it stays in
    # force: responsibility.in_force); None when a file is pinned, which no publication changes.
    list_in_force: Callable[[Conn, InForce], InForce] | None = None


@dataclass(slots=True)
class Stats:
    samples: int = 0
    events: int = 0
    transitions: int = 0
    opened: int = 0


@dataclass
class Analytics:
    cfg: AnalyticsConfig
    database_url: str
    in_force: InForce
    calendar: WorkCalendar
    conn: Conn = field(init=False)
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.conn = connect(self.database_url, autocommit=True, application_name=self.cfg.client_id)
        self.devices: dict[int, DeviceInfo] = load_devices(self.conn)
        self.metric_names: dict[int, str] = dict(
            self.conn.execute("SELECT id, name FROM metrics").fetchall()
        )
        self._build_detectors()
        self._models_checked_at = 0.0
        self._calendar_mark = fingerprint(self.conn)
        self._calendar_warned: date | None = None
        self.lifecycle = Lifecycle(self._policy)
        for alarm in load_open_alarms(self.conn):
            self.lifecycle.open[(alarm.device_id, alarm.code)] = alarm
        self.watermark = 0.0
        self._next_data_tick = 0.0
        self._buffer: list[tuple[str, bytes, int, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._last_breach_check = 0.0
        self.client, self._props = new_client(
            self.cfg.client_id,
            self.cfg.username,
            self.cfg.password,
            persistent=True,
            manual_ack=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    @property
    def entries(self) -> ResponsibilityList:
        """The responsibility list in force, its override files applied."""
        return self.in_force.rules

    def _entry(self, device_id: int, code: str) -> Entry | None:
        dev = self.devices.get(device_id)
        scoped = (
            self.entries.for_community(dev.community_code, dev.county_code)
            if dev is not None
            else self.entries.entries
        )
        return scoped.get(code)

    def _policy(self, device_id: int, code: str) -> Policy | None:
        return policy_of(self._entry(device_id, code), self.calendar.hours_per_day)

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        if rc.is_failure:
            log.error("broker refused analytics: %s", rc)
            return
        client.subscribe([(READINGS_TOPIC, 1), (EVENTS_TOPIC, 1)])
        self._connected.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._buffer.append((msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    def run(self) -> None:
        self.client.connect_async(
            self.cfg.host, self.cfg.port, keepalive=30, clean_start=False, properties=self._props
        )
        self.client.loop_start()
        # The rollup has a thread and connection of its own: detection never waits for it.
        rollup = threading.Thread(target=self._rollup_loop, name="rollup", daemon=True)
        rollup.start()
        try:
            while not self._stop.wait(self.cfg.tick_seconds):
                self.step()
        finally:
            self.step()
            self.client.disconnect()
            self.client.loop_stop()
            rollup.join(30)
            self.conn.close()

    def _rollup_loop(self) -> None:
        """Keep the per-minute rollup current: a pass every ``ROLLUP_EVERY_S``, a backlog caught
        up in bounded steps (``ROLLUP_STEP``)."""
        with connect(
            self.database_url, autocommit=True, application_name="shouwang-rollup"
        ) as conn:
            while not self._stop.is_set():
                wait = ROLLUP_EVERY_S
                try:
                    now = datetime.now(UTC)
                    _, done = roll_up(conn, now, max_span=ROLLUP_STEP)
                    if done is not None and done < now - ROLLUP_STEP:
                        wait = 0.5  # behind (a first run, or after downtime): keep going
                except psycopg.Error as e:  # the next pass tries again
                    log.error("rollup pass failed: %s", e)
                self._stop.wait(wait)

    def stop(self) -> None:
        self._stop.set()

    def refresh_models(self) -> None:
        """Pick up a newly trained (or rolled back) model version without a restart."""
        for cls in self.learned.classes_with_models():
            known = self.learned.models.get(cls)
            model = latest(self.conn, cls, None if known is None else known.version)
            if model is not None:
                self.learned.set_model(model)
                log.info("%s: using model %s", cls, model.version)

    def _build_detectors(self) -> None:
        """The rule engine and learned detectors for the list in force."""
        self.engine = Engine(compile_rules(self.entries.entries.values()))
        self.learned = Learned(compile_learned(self.entries.entries.values()))
        for d in self.devices.values():
            self.engine.add_device(_view(d))
        # Device fault codes still raised survive a restart: the device will not say them again.
        for device_id, code in self.conn.execute(
            "SELECT device_id, code FROM (SELECT DISTINCT ON (device_id, code) device_id, code, active"
            " FROM events WHERE ts > now() - interval '30 days' ORDER BY device_id, code, ts DESC) e"
            " WHERE active"
        ).fetchall():
            if device_id in self.engine.views:
                self.engine.views[device_id].active_codes.add(code)

    def refresh_list(self) -> bool:
        """Switch to the list in force when it changed: a version published since (detector
        windows start afresh; open alarms and their work orders stay as filed). Return whether
        the list changed."""
        if self.cfg.list_in_force is None:
            return False
        newer = self.cfg.list_in_force(self.conn, self.in_force)
        if newer is self.in_force:
            return False
        log.info("responsibility list %s -> %s", self.entries.version, newer.rules.version)
        self.in_force = newer
        self._build_detectors()
        if self.learned.classes_with_models():
            self.refresh_models()
        return True

    def refresh_calendar(self) -> bool:
        """Take holiday schedules loaded since (deadlines of work orders filed from now on)."""
        mark = fingerprint(self.conn)
        if mark == self._calendar_mark:
            return False
        self._calendar_mark = mark
        self.calendar = calendar_in_force(self.conn, self.calendar)
        log.info("holiday schedules in force: %s", sorted(self.calendar.schedules.years))
        self._calendar_warned = None
        return True

    def warn_calendar(self, today: date) -> list[ScheduleWarning]:
        """Once a day (and after a change): this or next year's holiday schedule missing."""
        if self._calendar_warned == today:
            return []
        self._calendar_warned = today
        warnings = self.calendar.warnings(today)
        for w in warnings:
            log.warning("%s", w)
        return warnings

    def forget_cleared(self) -> None:
        """Alarms cleared by hand are closed here too, so the next fault opens a new alarm."""
        ids = {a.id: key for key, a in self.lifecycle.open.items() if a.id is not None}
        for alarm_id in cleared_elsewhere(self.conn, list(ids)):
            self.lifecycle.open.pop(ids[alarm_id], None)
            log.info("alarm %s was cleared by hand", alarm_id)

    def step(self) -> None:
        if time.monotonic() - self._models_checked_at > 30.0:
            self._models_checked_at = time.monotonic()
            self.refresh_list()
            self.refresh_models()
            self.refresh_calendar()
            self.warn_calendar(datetime.now(self.calendar.tz).date())
        with self._lock:
            items, self._buffer = self._buffer, []
        transitions: list[Transition] = []
        for topic, payload, *_ in items:
            try:
                transitions.extend(self._process(topic, payload))
            except (
                ValueError,
                KeyError,
                TypeError,
            ) as e:  # one bad feed message: log, count, go on
                log.error("feed message on %s not understood: %s", topic, e)
        now = self.watermark if self.cfg.clock == "data" else time.time()
        if now and self.cfg.clock == "wall":
            transitions.extend(self._tick(now))
        if transitions:
            apply(
                self.conn,
                transitions,
                entry_of=self._entry,
                devices=self.devices,
                calendar=self.calendar,
                list_version=str(self.entries.version),
            )
            self.stats.transitions += len(transitions)
            self.stats.opened += sum(1 for t in transitions if t.kind == "open")
        if now and time.monotonic() - self._last_breach_check > 5.0:
            self._last_breach_check = time.monotonic()
            record_breaches(self.conn, now)
            self.forget_cleared()
        for _topic, _payload, mid, qos in items:
            if qos:
                self.client.ack(mid, qos)

    def _process(self, topic: str, payload: bytes) -> list[Transition]:
        out: list[Transition] = []
        if topic == READINGS_TOPIC:
            for t, device_id, values in _samples(unpack_readings(payload), self.metric_names):
                self._ensure_device(device_id)
                self.stats.samples += 1
                if self.cfg.clock == "data" and t >= self._next_data_tick:
                    # The data's own clock ticks as the stream passes, however fast it arrives.
                    out.extend(self._tick(self._next_data_tick))
                    self._next_data_tick = max(
                        self._next_data_tick + self.cfg.data_tick_seconds, t - 60
                    )
                self.watermark = max(self.watermark, t)
                out.extend(self._observe(self.engine.on_sample(device_id, t, values)))
                view = self.engine.views.get(device_id)
                if view is not None and self.learned.rules.get(view.device_class):
                    out.extend(
                        self._observe(
                            self.learned.on_sample(device_id, view.device_class, t, values)
                        )
                    )
        elif topic == EVENTS_TOPIC:
            events, _statuses = unpack_events(payload)
            for ts_ms, device_id, code, active, _detail in sorted(events):
                self._ensure_device(device_id)
                self.stats.events += 1
                out.extend(
                    self._observe(self.engine.on_event(device_id, ts_ms / 1000, code, active))
                )
        return out

    def _tick(self, now: float) -> list[Transition]:
        """What time alone decides: silence (offline), hold times, severity raises."""
        out = self._observe(self.engine.on_tick(now))
        out.extend(self.lifecycle.tick(now))
        return out

    def _observe(self, observations: list[Observation]) -> list[Transition]:
        out = []
        for obs in observations:
            out.extend(self.lifecycle.observe(obs))
        return out

    def _ensure_device(self, device_id: int) -> None:
        if device_id not in self.devices:
            self.devices = load_devices(self.conn)
            if device_id in self.devices:
                self.engine.add_device(_view(self.devices[device_id]))


def _view(d: DeviceInfo) -> DeviceView:
    return DeviceView(
        d.id,
        d.device_class,
        float(d.report_interval_s),
        float(d.attributes.get("rated_speed", 1.0)),
    )


def _samples(
    rows: np.ndarray[Any, Any], names: dict[int, str]
) -> list[tuple[float, int, dict[str, float]]]:
    """Readings grouped into per-device samples, in time order."""
    grouped: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    for ts, dev, met, val in zip(
        rows["ts"].tolist(),
        rows["device"].tolist(),
        rows["metric"].tolist(),
        rows["value"].tolist(),
        strict=True,
    ):
        grouped[(ts, dev)][names[met]] = val
    return [(ts / 1000, dev, values) for (ts, dev), values in sorted(grouped.items())]
