"""Analytics: the shell. Takes ingest's feed of accepted data, runs the detectors, keeps the
alarm lifecycle and files work orders; commits, and only then acknowledges the feed.

Its clock is the wall clock in production, or the data's own time (``clock="data"``) for
fast-forwarded simulations and replays, where "now" is the newest reading seen.

It never stops for one device or one message (docs/operations.md §12): a feed message it cannot
read is logged and skipped; anything that fails while one device's data is handled quarantines
that device's detector state (a platform alarm) and every other device goes on; a device taken
out of the registry has its open alarms closed. The platform's own trouble is not the devices'
fault: while the feed is silent, and for a grace period after it resumes (and after a start), no
device is judged offline; a silent feed is one platform alarm, and so is a large share of the
devices going silent together. Nor does it stop for the database going away: it waits for it
where it is (``core.outlasting_db``), holds what it has in memory and acknowledges nothing until
the alarm changes made from it are committed, each exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from analytics import metrics
from analytics.conditions import DeviceView
from analytics.engine import Engine, compile_rules
from analytics.health import NEVER, FeedWatch, MassSilence
from analytics.learned import Learned, compile_learned
from analytics.models import latest
from analytics.rollup import roll_up
from analytics.store import (
    DeviceInfo,
    active_codes,
    apply,
    cleared_elsewhere,
    close_device_alarms,
    device_uid,
    dt,
    load_devices,
    load_open_alarms,
    record_breaches,
)
from analytics.upkeep import Upkeep, UpkeepConfig
from core.db import Conn
from core.feed import EVENTS_TOPIC, READINGS_TOPIC, unpack_events, unpack_readings
from core.holiday_schedule import ScheduleWarning
from core.holiday_store import calendar_in_force, fingerprint
from core.metrics import Heartbeat
from core.mqtt import new_client
from core.outlasting_db import Database, Stopping
from core.severity import Severity
from core.workcalendar import WorkCalendar
from lifecycle.alarms import Kind, Lifecycle, Observation, Policy, Transition, policy_of
from lifecycle.alarms import correlation_id as alarm_correlation_id
from lifecycle.platform import PlatformKind, clear_alarm, open_alarms, raise_alarm
from lifecycle.work_orders import filed_for
from responsibility.in_force import InForce
from responsibility.loader import ResponsibilityList
from responsibility.model import Entry

log = logging.getLogger("shouwang.analytics")
ROLLUP_EVERY_S = 15.0  # how often the per-minute rollup of readings catches up
ROLLUP_STEP = timedelta(minutes=30)  # the most one pass recomputes (a backlog takes several)
# The database gone is not one device's or one message's fault. Every statement goes through
# ``self.db`` (``core.outlasting_db``), which waits for the database where it is: the step
# pauses, its state in memory as it was, nothing acknowledged. What it raises is the
# statement's own error, handled like any other; a stop while it waits raises ``Stopping``,
# which no handler of one device's or one message's failures takes (not an ``Exception``).


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
    # Failure behaviour: the analytics_* settings of the same names (core.settings).
    refresh_seconds: float = 30.0
    offline_grace_s: float = 900.0
    feed_silent_s: float = 120.0
    mass_silence_share: float = 0.3
    mass_silence_min_devices: int = 20
    mass_silence_window_s: float = 60.0
    quarantine_s: float = 600.0
    # Scheduled retraining and the drift alarm: the analytics_retrain_* and analytics_drift_*
    # settings (analytics.upkeep).
    upkeep: UpkeepConfig = field(default_factory=UpkeepConfig)


@dataclass(slots=True)
class Stats:
    samples: int = 0
    events: int = 0
    transitions: int = 0
    opened: int = 0
    bad_messages: int = 0  # feed messages that could not be read (skipped, acknowledged)
    quarantined: int = 0  # device detector states set aside after a failure
    retired: int = 0  # devices no longer active whose alarms were closed
    feed_silences: int = 0
    mass_silences: int = 0


@dataclass
class Analytics:
    cfg: AnalyticsConfig
    database_url: str
    in_force: InForce
    calendar: WorkCalendar
    stats: Stats = field(default_factory=Stats)
    wall_clock: Callable[[], float] = time.time  # the wall clock (tests move it)
    # Set to stop (``stop()``); also ends a wait for the database, the one at the start included.
    stopping: threading.Event = field(default_factory=threading.Event)
    # The stage's liveness on its metrics endpoint (``core.metrics``; ``main`` passes the one
    # ``serve`` returned).
    heartbeat: Heartbeat = field(default_factory=lambda: Heartbeat("analytics"))

    def __post_init__(self) -> None:
        self._stop = self.stopping
        self._held_messages = 0  # feed messages of the step under way: not acknowledged yet
        self._held_changes: list[Transition] = []  # those of the step under way, not committed
        self._buffer: list[tuple[str, bytes, int, int]] = []
        self._lock = threading.Lock()
        # Connected once the database answers: a start during an outage waits for it.
        self.db = Database(
            self.database_url, self.cfg.client_id, self._stop, log, holding=self._holding
        )
        self.devices: dict[int, DeviceInfo] = self.db.read(load_devices)
        self.metric_names: dict[int, str] = dict(
            self.db.read(lambda c: c.execute("SELECT id, name FROM metrics").fetchall())
        )
        self.feed = FeedWatch(self.cfg.offline_grace_s)
        self.mass = MassSilence(
            self.cfg.mass_silence_share,
            self.cfg.mass_silence_min_devices,
            self.cfg.mass_silence_window_s,
        )
        self.quarantined: dict[int, float] = {}  # device -> out of detection until (clock)
        self._probation: dict[int, float] = {}  # device -> its quarantine alarm clears then
        self._resync: set[int] = set()  # devices whose open alarms are re-read after the step
        self._unknown: dict[int, float] = {}  # device ids not in the registry -> looked up at
        self._min_silence: float | None = None  # cache: the shortest offline silence of all
        self._silent_after: tuple[float, float] | None = None  # cache: (feed time, threshold)
        self._adopt_platform_alarms()
        self.upkeep = Upkeep(self.cfg.upkeep)
        self.upkeep_thread: threading.Thread | None = None  # while running
        self._build_detectors()
        self._refreshed_at = float("-inf")  # the first step takes models, list and calendar
        self._calendar_mark = self.db.read(fingerprint)
        self._calendar_warned: date | None = None
        self.lifecycle = Lifecycle(self._policy)
        gone: set[int] = set()
        for alarm in self.db.read(load_open_alarms):
            if alarm.device_id in self.devices:
                self.lifecycle.adopt([alarm])
            else:
                gone.add(alarm.device_id)
        for device_id in sorted(gone):  # deactivated while analytics was not running
            self._retire(device_id, None)
        self.watermark = 0.0
        self._next_data_tick = 0.0
        # The metrics read from the database (analytics.metrics): before the first reading, what
        # was committed before the start counts as processed (in data time: the newest then).
        self._processed_from = (
            self.wall_clock()
            if self.cfg.clock == "wall"
            else self.db.read(metrics.newest_committed) or 0.0
        )
        self._figures_at = float("-inf")
        self._connected = threading.Event()
        self.rollup_thread: threading.Thread | None = None  # while running
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
    def conn(self) -> Conn:
        """The database connection now (replaced after an outage: do not keep it)."""
        return self.db.conn

    def _holding(self) -> str:
        """What analytics holds while it waits for the database, for the log."""
        return (
            f"; holding {self._held_messages + len(self._buffer)} feed message(s), not"
            f" acknowledged, and {len(self._held_changes)} alarm change(s), not committed"
        )

    def _raise(self, kind: PlatformKind, subject: str = "", **kw: Any) -> None:
        self.db.write(lambda c: raise_alarm(c, kind, subject, **kw))

    def _clear(self, kind: PlatformKind, subject: str = "", **kw: Any) -> None:
        self.db.write(lambda c: clear_alarm(c, kind, subject, **kw))

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

    def _uid(self, device_id: int) -> str:
        dev = self.devices.get(device_id)
        return dev.uid if dev is not None else f"#{device_id}"

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
        self.rollup_thread = rollup
        rollup.start()
        upkeep = threading.Thread(target=self._upkeep_loop, name="upkeep", daemon=True)
        self.upkeep_thread = upkeep
        upkeep.start()
        try:
            while not self._stop.wait(self.cfg.tick_seconds):
                self.step()
            self.step()  # what came before the stop
        except Stopping:
            log.error(
                "stopped while waiting for the database: %d feed messages not acknowledged (the"
                " broker delivers them again at the next start) and %d alarm changes not"
                " committed (found again from them)",
                self._held_messages + len(self._buffer),
                len(self._held_changes),
            )
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            rollup.join(30)
            upkeep.join(60)
            self.db.close()

    def _rollup_loop(self) -> None:
        """Keep the per-minute rollup current: a pass every ``ROLLUP_EVERY_S``, a backlog caught
        up in bounded steps (``ROLLUP_STEP``). Waits for the database like the rest, and
        nothing that fails in a pass ends it (a pass can be repeated at any point)."""
        try:
            db = Database(self.database_url, f"{self.cfg.client_id}-rollup", self._stop, log)
        except Stopping:
            return
        try:
            while not self._stop.is_set():
                wait = ROLLUP_EVERY_S
                try:
                    now = datetime.now(UTC)
                    _, done = db.write(partial(roll_up, now=now, max_span=ROLLUP_STEP))
                    if done is not None and done < now - ROLLUP_STEP:
                        wait = 0.5  # behind (a first run, or after downtime): keep going
                except Stopping:
                    return
                except Exception as e:  # the next pass tries again
                    log.error("rollup pass failed: %s: %s", type(e).__name__, e, exc_info=e)
                self._stop.wait(wait)
        finally:
            db.close()

    def _upkeep_loop(self) -> None:
        """Model upkeep (``analytics.upkeep``): retraining when due and the drift check, every
        refresh period, on a thread and connection of its own so that training never holds
        detection up. Nothing that fails in a pass ends it."""
        try:
            db = Database(self.database_url, f"{self.cfg.client_id}-upkeep", self._stop, log)
        except Stopping:
            return
        try:
            while not self._stop.wait(self.cfg.refresh_seconds):
                now = self.watermark if self.cfg.clock == "data" else self.wall_clock()
                try:
                    if now:
                        self.upkeep.run(db, self.learned, now)
                except Stopping:
                    return
                except Exception as e:  # the next pass tries again
                    log.error("model upkeep failed: %s: %s", type(e).__name__, e, exc_info=e)
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()

    # -- what analytics watches: the list, models, calendar, devices ---------------------------

    def refresh_models(self) -> None:
        """Pick up a newly trained (or rolled back) model version without a restart."""
        for cls in self.learned.classes_with_models():
            known = self.learned.models.get(cls)
            version = None if known is None else known.version
            model = self.db.read(partial(latest, device_class=cls, known_version=version))
            if model is not None:
                self.learned.set_model(model)
                log.info("%s: using model %s", cls, model.version)

    def _build_detectors(self) -> None:
        """The rule engine and learned detectors for the list in force. Detector windows start
        afresh; quarantined devices are back in detection (on probation)."""
        self.engine = Engine(compile_rules(self.entries.entries.values()))
        before = getattr(self, "learned", None)
        self.learned = Learned(compile_learned(self.entries.entries.values()))
        if before is not None:  # the models' own anomalies stay left out of retraining
            self.learned.anomalies = dict(before.anomalies)
        now = self._now()
        for device_id in list(self.quarantined):
            self._release(device_id, now, add_view=False)
        codes = self.db.read(active_codes)
        for d in self.devices.values():
            self._add_view(d, codes.get(d.id, {}))
        self._views_changed()
        if self.mass.active or self.mass.pending:
            self._end_mass(now, reason="list_changed")

    def _add_view(self, d: DeviceInfo, codes: dict[str, float] | None = None) -> None:
        """Watch a device afresh (``codes``: its fault codes still raised; read when None)."""
        try:
            view = _view(d)
        except Exception as e:  # e.g. attributes the view cannot take: this device only
            self._quarantine(d.id, e, self._now())
            return
        view.silence_from = self.feed.silence_from
        view.active_codes |= (
            self.db.read(lambda c: active_codes(c, d.id)).get(d.id, {}) if codes is None else codes
        )
        self.engine.add_device(view)
        self._views_changed()

    def _drop_state(self, device_id: int) -> None:
        """Forget everything the detectors hold for a device."""
        self.engine.forget(device_id)
        self.learned.forget(device_id)
        self.mass.forget(device_id)
        self._views_changed()

    def _views_changed(self) -> None:
        self._min_silence = None
        self._silent_after = None

    def refresh_list(self) -> bool:
        """Switch to the list in force when it changed: a version published since (detector
        windows start afresh; open alarms and their work orders stay as filed). Return whether
        the list changed."""
        if self.cfg.list_in_force is None:
            return False
        find, held = self.cfg.list_in_force, self.in_force
        newer = self.db.read(lambda c: find(c, held))
        if newer is self.in_force:
            return False
        log.info("responsibility list %s -> %s", self.entries.version, newer.rules.version)
        self.in_force = newer
        self._build_detectors()
        if self.learned.classes_with_models():
            self.refresh_models()
        return True

    def refresh_devices(self) -> bool:
        """Take the registry as it is now: devices added are watched, devices changed are
        watched afresh (a quarantine ends), devices no longer active are retired: their open
        alarms are closed (``device_deactivated``; work orders stay as they are) and their
        detector state dropped. Return whether anything changed."""
        fresh = self.db.read(load_devices)
        old = self.devices
        gone = [d for d in old if d not in fresh]
        changed = [d for d, info in fresh.items() if old.get(d) != info]
        self.devices = fresh
        for device_id in gone:
            self._retire(device_id, old[device_id])
        now = self._now()
        codes = self.db.read(active_codes) if len(changed) > 20 else None  # one query for many
        for device_id in changed:
            before = old.get(device_id)
            if device_id in self.quarantined:
                self._release(device_id, now, add_view=True)
            elif before is None or _view_key(before) != _view_key(fresh[device_id]):
                self._drop_state(device_id)
                self._add_view(
                    fresh[device_id], None if codes is None else codes.get(device_id, {})
                )
        for device_id in fresh:
            self._unknown.pop(device_id, None)
        if gone or changed:
            log.info("device registry: %d added or changed, %d retired", len(changed), len(gone))
        return bool(gone or changed)

    def _retire(self, device_id: int, info: DeviceInfo | None) -> None:
        """A device no longer active (deactivated, or gone from the registry)."""
        closed = self.db.write(lambda c: close_device_alarms(c, device_id, "device_deactivated"))
        self.lifecycle.forget_device(device_id)
        self._drop_state(device_id)
        self._resync.discard(device_id)
        uid = info.uid if info is not None else self.db.read(lambda c: device_uid(c, device_id))
        if (
            self.quarantined.pop(device_id, None) is not None
            or self._probation.pop(device_id, None) is not None
        ):
            self._clear(PlatformKind.DETECTOR_QUARANTINED, uid, reason="device_deactivated")
        self.stats.retired += 1
        log.info(
            "device %s is no longer active: %d open alarms closed (device_deactivated),"
            " work orders kept as they are",
            uid,
            closed,
        )

    def _known(self, device_id: int) -> bool:
        """Whether the device is in the registry; an unknown one makes analytics re-read it (at
        most once per refresh period per device id)."""
        if device_id in self.devices:
            return True
        looked = self._unknown.get(device_id)
        if looked is None or time.monotonic() - looked > self.cfg.refresh_seconds:
            self._unknown[device_id] = time.monotonic()
            self.refresh_devices()
        return device_id in self.devices

    def refresh_calendar(self) -> bool:
        """Take holiday schedules loaded since (deadlines of work orders filed from now on)."""
        mark = self.db.read(fingerprint)
        if mark == self._calendar_mark:
            return False
        self._calendar_mark = mark
        held = self.calendar
        self.calendar = self.db.read(lambda c: calendar_in_force(c, held))
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
        for alarm_id in self.db.read(lambda c: cleared_elsewhere(c, list(ids))):
            alarm = self.lifecycle.open.pop(ids[alarm_id], None)
            extra: dict[str, object] = {"alarm_id": alarm_id}
            if alarm is not None:
                extra["cid"] = alarm_correlation_id(alarm, self._uid(alarm.device_id))
            log.info("alarm %s was cleared by hand", alarm_id, extra=extra)

    # -- the step ------------------------------------------------------------------------------

    def _now(self, fallback: float | None = None) -> float:
        """Analytics' clock: the wall clock, or the newest reading's time (``fallback`` or the
        wall clock before the first)."""
        if self.cfg.clock == "data":
            return getattr(self, "watermark", 0.0) or (
                fallback if fallback is not None else self.wall_clock()
            )
        return self.wall_clock()

    def step(self) -> None:
        self.heartbeat.beat()
        wall = self.wall_clock()
        if self.cfg.clock == "wall" and self.feed.start(wall):
            self._resume(wall, grace=True)
        if time.monotonic() - self._refreshed_at > self.cfg.refresh_seconds:
            self._refreshed_at = time.monotonic()
            self._refresh()
        with self._lock:
            items, self._buffer = self._buffer, []
        self._held_messages = len(items)
        transitions: list[Transition] = []
        self._held_changes = transitions
        done_before = self.stats.samples + self.stats.events
        started = time.perf_counter()
        for topic, payload, *_ in items:
            try:
                transitions.extend(self._process(topic, payload, wall))
            except Exception as e:  # one feed message not understood: log, count, go on
                self.stats.bad_messages += 1
                log.error("feed message on %s not understood: %s: %s", topic, type(e).__name__, e)
        now = self.watermark if self.cfg.clock == "data" else wall
        if now:
            self._watch_feed(now)
        if now and self.cfg.clock == "wall":
            transitions.extend(self._tick(now))
        if items or (now and self.cfg.clock == "wall"):
            metrics.TICK_SECONDS.observe(time.perf_counter() - started)
        self._apply(transitions)  # waits for the database, if it must, until committed
        self._held_changes = []
        self._resync_alarms()
        self.heartbeat.progressed(self.stats.samples + self.stats.events - done_before)
        self._show_figures(changed=bool(transitions))
        if now and time.monotonic() - self._last_breach_check > 5.0:
            self._last_breach_check = time.monotonic()
            self.db.write(lambda c: record_breaches(c, now))
            self.forget_cleared()
        for _topic, _payload, mid, qos in items:
            if qos:
                self.client.ack(mid, qos)
        self._held_messages = 0

    def _show_figures(self, *, changed: bool) -> None:
        """The metrics read from the database (``analytics.metrics``): feed lag and pending
        readings every few seconds, open alarms then and after a step that changed alarms. A
        failure is logged and tried again next time; detection goes on."""
        due = time.monotonic() - self._figures_at >= metrics.REFRESH_EVERY_S
        if not (due or changed):
            return
        try:
            if due:
                self._figures_at = time.monotonic()
                processed = self.watermark or self._processed_from
                newest = self.db.read(metrics.newest_committed)
                metrics.FEED_LAG.set(metrics.feed_lag(newest, processed))
                self.heartbeat.pending(
                    self.db.read(partial(metrics.readings_after, t=processed))
                    if newest is not None and newest > processed
                    else 0
                )
            metrics.show_open_alarms(self.db.read(metrics.open_alarms))
        except Exception as e:
            log.error("reading the metrics failed: %s: %s", type(e).__name__, e)

    def _refresh(self) -> None:
        """Re-read the registry, the list in force, models and calendar; one failing (a model
        that does not load, say) is logged and tried again next time, the rest goes on."""
        for what, refresh in (
            ("device registry", self.refresh_devices),
            ("responsibility list", self.refresh_list),
            ("models", self.refresh_models),
            ("holiday schedules", self.refresh_calendar),
            ("holiday schedule warnings", lambda: self.warn_calendar(self._today())),
        ):
            try:
                refresh()
            except Exception as e:
                log.error(
                    "re-reading the %s failed (%s: %s); kept as it was", what, type(e).__name__, e
                )

    def _today(self) -> date:
        return datetime.now(self.calendar.tz).date()

    def _apply(self, transitions: list[Transition]) -> None:
        """Write the step's transitions in one transaction. Those of devices no longer in the
        registry are dropped; when the batch fails for any other reason than a lost database,
        each device's part is written on its own and a device whose part fails is quarantined."""
        known = [t for t in transitions if t.alarm.device_id in self.devices]
        if len(known) < len(transitions):
            log.warning(
                "%d alarm changes of devices no longer in the registry dropped",
                len(transitions) - len(known),
            )
        if not known:
            return
        try:
            self._write(known)
        except Exception as e:
            log.error(
                "alarm changes refused (%s: %s); writing them device by device",
                type(e).__name__,
                e,
            )
            by_device: dict[int, list[Transition]] = defaultdict(list)
            for t in known:
                by_device[t.alarm.device_id].append(t)
            for device_id, part in by_device.items():
                try:
                    self._write(part)
                except Exception as e2:
                    self._quarantine(device_id, e2, self._now())

    def _write(self, transitions: list[Transition]) -> None:
        """One transaction, committed exactly once (``Database.write``): while the database is
        away it waits here with the transitions, which are written when it is back; a commit
        the outage cut off is not written again if it went through."""

        def write(c: Conn) -> dict[int, int]:
            apply(
                c,
                transitions,
                entry_of=self._entry,
                devices=self.devices,
                calendar=self.calendar,
                list_version=str(self.entries.version),
            )
            opened = [t.alarm.id for t in transitions if t.kind == Kind.OPEN]
            return filed_for(c, [i for i in opened if i is not None])

        filed = self.db.write(write)
        for t in transitions:
            if t.kind == Kind.OPEN:
                metrics.ALARMS_OPENED.labels(str(t.alarm.severity)).inc()
        self.stats.transitions += len(transitions)
        self.stats.opened += sum(1 for t in transitions if t.kind == "open")
        self._log_transitions(transitions, filed)

    def _log_transitions(self, transitions: list[Transition], filed: dict[int, int]) -> None:
        """One line per alarm opened, raised or cleared and per work order filed (all rare),
        each with the alarm's correlation id (``lifecycle.alarms.correlation_id``)."""
        for t in transitions:
            if t.kind not in (Kind.OPEN, Kind.RAISE, Kind.CLEAR):
                continue
            a = t.alarm
            uid = self._uid(a.device_id)
            fields = {
                "cid": alarm_correlation_id(a, uid),
                "alarm_id": a.id,
                "device": uid,
                "code": a.code,
                "severity": a.severity,
            }
            log.info(
                "alarm %s %s: %s %s (%s)",
                a.id,
                {Kind.OPEN: "opened", Kind.RAISE: "raised", Kind.CLEAR: "cleared"}[t.kind],
                uid,
                a.code,
                a.severity,
                extra=fields | {"transition": str(t.kind), "detector": a.detector},
            )
            wo = filed.get(a.id) if t.kind == Kind.OPEN and a.id is not None else None
            if wo is not None:
                log.info(
                    "work order %s filed for alarm %s: %s %s (%s)",
                    wo,
                    a.id,
                    uid,
                    a.code,
                    a.severity,
                    extra=fields | {"work_order_id": wo},
                )

    def _resync_alarms(self) -> None:
        """Devices quarantined in this step: their open alarms as the database has them (what
        the failed handling had half done in memory is gone)."""
        for device_id in sorted(self._resync):
            self.lifecycle.forget_device(device_id)
            if device_id in self.devices:
                self.lifecycle.adopt(self.db.read(partial(load_open_alarms, device_id=device_id)))
        self._resync.clear()

    def _process(self, topic: str, payload: bytes, wall: float | None = None) -> list[Transition]:
        """One feed message. Its decoding failing fails the message; anything failing while
        one device's data is handled quarantines that device and the rest goes on."""
        wall = self.wall_clock() if wall is None else wall
        out: list[Transition] = []
        if topic == READINGS_TOPIC:
            for t, device_id, values in _samples(unpack_readings(payload), self.metric_names):
                self.stats.samples += 1
                self._heard(t if self.cfg.clock == "data" else min(t, wall))
                if self.cfg.clock == "data" and t >= self._next_data_tick:
                    # The data's own clock ticks as the stream passes, however fast it arrives.
                    out.extend(self._tick(self._next_data_tick))
                    self._next_data_tick = max(
                        self._next_data_tick + self.cfg.data_tick_seconds, t - 60
                    )
                self.watermark = max(self.watermark, t)
                if not self._known(device_id) or device_id in self.quarantined:
                    continue
                try:
                    out.extend(self._sample(device_id, t, values))
                except Exception as e:
                    self._quarantine(device_id, e, self._now(t))
        elif topic == EVENTS_TOPIC:
            events, _statuses = unpack_events(payload)
            for ts_ms, device_id, code, active, _detail in sorted(events, key=lambda e: e[:4]):
                self.stats.events += 1
                if not self._known(device_id) or device_id in self.quarantined:
                    continue
                try:
                    out.extend(
                        self._observe(self.engine.on_event(device_id, ts_ms / 1000, code, active))
                    )
                except Exception as e:
                    self._quarantine(device_id, e, self._now(ts_ms / 1000))
        return out

    def _sample(self, device_id: int, t: float, values: dict[str, float]) -> list[Transition]:
        out = self._observe(self.engine.on_sample(device_id, t, values))
        view = self.engine.views.get(device_id)
        if view is not None and self.learned.rules.get(view.device_class):
            out.extend(
                self._observe(self.learned.on_sample(device_id, view.device_class, t, values))
            )
        return out

    def _tick(self, now: float) -> list[Transition]:
        """What time alone decides: silence (offline), hold times, severity raises; and
        quarantines that end."""
        self._end_quarantines(now)
        out: list[Transition] = []
        # Silence is judged on the feed's time: while nothing arrives, nobody falls silent.
        judge = now if self.cfg.clock == "data" else min(now, self.feed.newest)
        if self.feed.may_judge(judge):
            out.extend(self._judge_silence(judge))
        out.extend(
            self.lifecycle.tick(
                now,
                skip=self.quarantined,
                on_error=lambda device_id, e: self._quarantine(device_id, e, now),
            )
        )
        return out

    def _observe(self, observations: list[Observation]) -> list[Transition]:
        out = []
        for obs in observations:
            out.extend(self.lifecycle.observe(obs))
        return out

    # -- silence: the feed's, many devices' at once, one device's ------------------------------

    def _judge_silence(self, t: float) -> list[Transition]:
        """Offline judgments at ``t``; those with no OFFLINE alarm open go through the mass
        silence check first."""
        direct: list[Observation] = []
        held: list[Observation] = []
        watched: set[int] = set()
        for device_id in list(self.engine.views):
            try:
                observations = self.engine.tick_device(device_id, t)
            except Exception as e:
                self._quarantine(device_id, e, t)
                continue
            for obs in observations:
                watched.add(obs.device_id)
                (direct if (obs.device_id, obs.code) in self.lifecycle.open else held).append(obs)
        verdict = self.mass.step(held, len(watched), t)
        if verdict.ended is not None:
            self._mass_ended(verdict.ended, t)
        if verdict.wave:
            self._mass_wave(verdict.wave, len(watched), t)
        out: list[Transition] = []
        for obs in [*direct, *verdict.release]:
            try:
                out.extend(self.lifecycle.observe(obs))
            except Exception as e:
                self._quarantine(obs.device_id, e, t)
        return out

    def _mass_wave(self, devices: list[int], watched: int, t: float) -> None:
        self.stats.mass_silences += 1
        uids = [self._uid(d) for d in devices]
        log.error(
            "%d of %d devices went silent together (%s%s): one platform alarm mass_silence,"
            " no OFFLINE alarm for them while it lasts",
            len(devices),
            watched,
            ", ".join(uids[:10]),
            ", …" if len(uids) > 10 else "",
        )
        self._raise(
            PlatformKind.MASS_SILENCE,
            severity=Severity.P1,
            at=dt(t),
            detail={
                "silent": len(self.mass.silenced),
                "watched": watched,
                "devices": uids[:50],
            },
        )

    def _mass_ended(self, still_silent: list[int], t: float) -> None:
        self._clear(PlatformKind.MASS_SILENCE, reason="devices_back", at=dt(t))
        log.warning(
            "mass silence over: %d devices still silent are judged one by one after %.0f s",
            len(still_silent),
            self.cfg.offline_grace_s,
        )
        self._resume(t, grace=True)

    def _end_mass(self, t: float, *, reason: str) -> None:
        self.mass.silenced.clear()
        self.mass.pending.clear()
        if self.mass.active:
            self.mass.active = False
            self._clear(PlatformKind.MASS_SILENCE, reason=reason, at=dt(t))

    def _resume(self, t: float, *, grace: bool) -> None:
        """The feed flows (again) from ``t``: every device's silence counts from then; with
        ``grace`` nobody is judged offline for the grace period."""
        self.feed.resume(t, grace=grace)
        for view in self.engine.views.values():
            view.silence_from = self.feed.silence_from
        self.mass.reset()

    def _heard(self, t: float) -> None:
        """A reading at feed time ``t``: a gap in the feed before it restarts the devices'
        silence; in data time a gap longer than the feed silence was a feed silence."""
        if self.feed.start(t):
            self._resume(t, grace=True)
        jump = self.feed.jump(t)
        if jump > self._gap_floor():
            shortest = self._shortest_silence(self.feed.newest)
            if shortest is not None and jump > shortest / 2:
                threshold = max(self.cfg.feed_silent_s, shortest)
                if jump > threshold and not self.feed.silent:
                    self._feed_silent(self.feed.newest + threshold, threshold)
                self.feed.heard(t)
                if self.cfg.clock == "data" and self.feed.silent:
                    self._feed_flows(t)
                else:
                    self._resume(t, grace=False)
                return
        self.feed.heard(t)

    def _watch_feed(self, now: float) -> None:
        """After a step: the feed silent for too long, or flowing again."""
        lag = self.feed.lag(now)
        if self.feed.silent:
            if self.feed.newest != NEVER and lag <= self.feed.silent_after:
                self._feed_flows(now)
        elif lag > self.cfg.feed_silent_s:
            threshold = self._feed_silent_after()
            if lag > threshold:
                self._feed_silent(now, threshold)

    def _feed_silent_after(self) -> float:
        """How long the feed may be silent: the setting, and never shorter than the shortest
        offline silence of the devices still reporting (cached while the feed stands)."""
        cached = self._silent_after
        if cached is not None and cached[0] == self.feed.newest:
            return cached[1]
        shortest = self._shortest_silence(self.feed.newest)
        threshold = max(self.cfg.feed_silent_s, shortest or 0.0)
        self._silent_after = (self.feed.newest, threshold)
        return threshold

    def _feed_silent(self, at: float, threshold: float) -> None:
        self.feed.silent, self.feed.silent_after = True, threshold
        self.mass.reset()
        self.stats.feed_silences += 1
        newest = None if self.feed.newest == NEVER else dt(self.feed.newest).isoformat()
        log.error(
            "no reading from the feed for %.0f s (ingest or the broker down or lagging; newest"
            " reading %s): platform alarm feed_silent; no device is judged offline meanwhile",
            threshold,
            newest,
        )
        self._raise(
            PlatformKind.FEED_SILENT,
            severity=Severity.P1,
            at=dt(at),
            detail={"newest_reading": newest, "silent_after_s": threshold},
        )

    def _feed_flows(self, at: float) -> None:
        self.feed.silent = False
        self._clear(PlatformKind.FEED_SILENT, reason="feed_resumed", at=dt(at))
        log.warning(
            "the feed flows again: devices are judged offline again after %.0f s",
            self.cfg.offline_grace_s,
        )
        self._resume(at, grace=True)

    def _gap_floor(self) -> float:
        """Half the shortest offline silence of any device watched: a feed gap shorter than
        that cannot make a reporting device look silent."""
        if self._min_silence is None:
            silences = [
                s
                for v in self.engine.views.values()
                if (s := self.engine.offline_silence(v)) is not None
            ]
            self._min_silence = min(silences, default=float("inf"))
        return self._min_silence / 2

    def _shortest_silence(self, at: float) -> float | None:
        """The shortest offline silence among the devices still reporting at ``at``; among all
        heard from when none is, among all watched when none has been heard (None: no device
        has an offline rule)."""
        alive: float | None = None
        heard: float | None = None
        for view in self.engine.views.values():
            if view.last_seen == NEVER:
                continue
            s = self.engine.offline_silence(view)
            if s is None:
                continue
            heard = s if heard is None else min(heard, s)
            if at - view.last_seen <= s:
                alive = s if alive is None else min(alive, s)
        if alive is not None or heard is not None:
            return alive if alive is not None else heard
        floor = self._gap_floor() * 2
        return None if floor == float("inf") else floor

    # -- quarantine ----------------------------------------------------------------------------

    def _quarantine(self, device_id: int, error: Exception, now: float) -> None:
        """Set a device's detector state aside after ``error``: out of detection for the
        quarantine period, its open alarms re-read from the database, a platform alarm."""
        uid = self._uid(device_id)
        self.stats.quarantined += 1
        log.error(
            "device %s: detector failed (%s: %s); its detector state is dropped and it is out of"
            " detection for %.0f s",
            uid,
            type(error).__name__,
            error,
            self.cfg.quarantine_s,
            exc_info=error,
        )
        self._drop_state(device_id)
        self.quarantined[device_id] = now + self.cfg.quarantine_s
        self._probation.pop(device_id, None)
        self._resync.add(device_id)
        self._raise(
            PlatformKind.DETECTOR_QUARANTINED,
            uid,
            severity=Severity.P3,
            at=dt(now),
            detail={
                "device_id": device_id,
                "error": f"{type(error).__name__}: {error}"[:500],
                "until": dt(now + self.cfg.quarantine_s).isoformat(),
            },
        )

    def _release(self, device_id: int, now: float, *, add_view: bool) -> None:
        """End a device's quarantine: watched afresh, its alarm cleared once it has run clean
        for another quarantine period."""
        self.quarantined.pop(device_id, None)
        self._probation[device_id] = now + self.cfg.quarantine_s
        dev = self.devices.get(device_id)
        if add_view and dev is not None:
            self._add_view(dev)
        log.info("device %s is back in detection after its quarantine", self._uid(device_id))

    def _end_quarantines(self, now: float) -> None:
        for device_id, until in list(self.quarantined.items()):
            if now >= until:
                self._release(device_id, now, add_view=True)
        for device_id, until in list(self._probation.items()):
            if now >= until and device_id not in self.quarantined:
                del self._probation[device_id]
                self._clear(
                    PlatformKind.DETECTOR_QUARANTINED,
                    self._uid(device_id),
                    reason="ran_clean",
                    at=dt(now),
                )

    def _adopt_platform_alarms(self) -> None:
        """At a start: a feed silence still open is cleared once data flows; the others this
        stage raised rested on state a restart has lost (raised again if still true)."""
        kinds = (
            PlatformKind.FEED_SILENT,
            PlatformKind.MASS_SILENCE,
            PlatformKind.DETECTOR_QUARANTINED,
        )
        for alarm in self.db.read(lambda c: open_alarms(c, kinds)):
            if alarm.kind is PlatformKind.FEED_SILENT:
                self.feed.silent, self.feed.silent_after = True, self.cfg.feed_silent_s
            else:
                self._clear(alarm.kind, alarm.subject, reason="analytics_restarted")


def _view_key(d: DeviceInfo) -> tuple[str, int, Any]:
    """What a device's view is made of: a change means watching it afresh."""
    return (d.device_class, d.report_interval_s, d.attributes.get("rated_speed"))


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
