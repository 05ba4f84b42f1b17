"""Scheduled retraining and the drift alarm: the decisions alone, then on the real database with
fast-forwarded history (readings and alarms inserted with past timestamps)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analytics.__main__ import config_from
from analytics.learned import Learned, LearnedRule
from analytics.models import false_alarms, save, train_from_history
from analytics.multivariate import DEFAULT_FEATURES, Model, train
from analytics.retraining import PAD_S, Drift, Span, due, padded
from analytics.upkeep import RETRY_S, Upkeep, UpkeepConfig
from core.db import Conn
from core.outlasting_db import Database
from core.settings import Settings
from lifecycle.platform import PlatformKind, open_alarms
from tests.analytics.history_helpers import pump_room_with_history
from tests.analytics.test_baseline import DAY, STEP, T0, pump_room
from tests.notify.test_maintenance import window

FEATURES = DEFAULT_FEATURES["pump_room"]
CODE = "PR.ANOMALY"
DAYS = 3
FAULT = (T0 + 1.5 * DAY, T0 + 1.5 * DAY + 6 * 3600)  # a pump drawing 4 A too much, 6 hours
OWN = (T0 + 2.5 * DAY, T0 + 2.5 * DAY + 2 * 3600)  # an anomaly that never became an alarm


# --- the decisions ------------------------------------------------------------------------------


def test_retraining_is_due_only_for_a_model_in_use_and_only_when_enabled() -> None:
    assert due(0.0, 86400.0, 86400.0) and not due(0.0, 86399.0, 86400.0)
    assert not due(None, 1e9, 86400.0), "the first model is trained by hand"
    assert not due(0.0, 1e9, 0.0), "0: retraining off"
    assert padded([Span(1, 100.0, 200.0)], 50.0) == [Span(1, 50.0, 250.0)]


def test_drift_needs_the_factor_and_enough_alarms() -> None:
    d = Drift(CODE, false_alarms=4, device_days=10.0, target=0.1, factor=3.0)
    assert d.rate == pytest.approx(0.4) and d.drifting(min_alarms=3)
    assert not d.drifting(min_alarms=5), "too few to call it drift"
    assert not Drift(CODE, 3, 10.0, 0.1, 3.0).drifting(3), "0.3 is not above 3 x 0.1"
    assert Drift(CODE, 3, 0.0, 0.1, 3.0).rate == 0.0, "no device-days watched: no rate"


def test_the_learned_detector_remembers_its_own_anomalies() -> None:
    ts, cols = pump_room(4, 3)
    x = np.column_stack([cols[f] for f in FEATURES])
    model = train(
        x[: int(3 * DAY / STEP)],
        FEATURES,
        trained_at=datetime(2027, 1, 4, tzinfo=UTC),
        device_class="pump_room",
    )
    learned = Learned({"pump_room": [LearnedRule(CODE, "multivariate", hold_s=600.0)]})
    learned.set_model(model)
    lo = int(3 * DAY / STEP)
    for i in range(lo, lo + 240):
        row = dict(zip(FEATURES, x[i].tolist(), strict=True))
        if lo + 60 <= i < lo + 120:
            row["pump1_current"] += 4.0
        learned.on_sample(7, "pump_room", float(ts[i]), row)
    [span] = learned.anomalies["pump_room"]
    assert span.device_id == 7
    assert ts[lo + 60] <= span.start <= ts[lo + 63] and span.end == pytest.approx(ts[lo + 119])
    assert learned.anomaly_spans("pump_room", 0.0) == [span]
    assert learned.anomaly_spans("fire_water", 0.0) == []


# --- on the database ----------------------------------------------------------------------------


@pytest.fixture
def device(db: Conn) -> Iterator[int]:
    """A pump room with three days of history, a 6-hour fault on day 2 under an alarm."""
    ts, cols = pump_room(DAYS, 3)
    x = np.column_stack([cols[f] for f in FEATURES])
    x[(ts >= FAULT[0]) & (ts < FAULT[1]), FEATURES.index("pump1_current")] += 4.0
    with pump_room_with_history(db, "t-retrain", ts, x, FEATURES) as dev:
        db.execute(
            "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
            " last_triggered_at, cleared_at, cleared_reason, list_version)"
            " VALUES (%s, 'PR.BASELINE', 'P3', 'cleared', 'baseline', %s, %s, %s, 'recovered', 't')",
            (dev, _dt(FAULT[0]), _dt(FAULT[0]), _dt(FAULT[1])),
        )
        db.execute("DELETE FROM detector_models WHERE device_class = 'pump_room'")
        db.execute("DELETE FROM platform_alarms WHERE kind = 'model_drift'")
        yield dev
        db.execute("DELETE FROM detector_models WHERE device_class = 'pump_room'")
        db.execute("DELETE FROM platform_alarms WHERE kind = 'model_drift'")


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    d = Database(database_url, "test-upkeep", threading.Event(), logging.getLogger("test"))
    yield d
    d.close()


def learned_with(model: Model | None, target: float = 0.05) -> Learned:
    rule = LearnedRule(CODE, "multivariate", target_false_per_device_day=target)
    learned = Learned({"pump_room": [rule]})
    if model is not None:
        learned.set_model(model)
    return learned


def first_model(db: Conn) -> Model:
    """The model a person trained by hand on the first day."""
    start = _dt(T0)
    model = train_from_history(db, "pump_room", start, start + timedelta(days=1), trained_at=start)
    save(db, model)
    return model


def fault_rows_flagged(model: Model) -> float:
    ts, cols = pump_room(DAYS, 3)
    x = np.column_stack([cols[f] for f in FEATURES])
    inside = (ts >= FAULT[0]) & (ts < FAULT[1])
    x[inside, FEATURES.index("pump1_current")] += 4.0
    return float((model.score(x[inside]) > model.threshold).mean())


def test_retraining_leaves_alarms_and_own_anomalies_out_and_keeps_the_old_version(
    db: Conn, device: int, database: Database
) -> None:
    first = first_model(db)
    learned = learned_with(first)
    learned.anomalies["pump_room"] = (Span(device, *OWN),)
    upkeep = Upkeep(UpkeepConfig(retrain_every_s=DAY, retrain_days=DAYS))
    now = T0 + DAYS * DAY

    assert upkeep.retrain(database, learned, "pump_room", T0 + 0.5 * DAY) is None, "not due"
    version = upkeep.retrain(database, learned, "pump_room", now)
    assert version is not None and version != first.version
    rows: dict[str, bool] = dict(
        db.execute(
            "SELECT version, active FROM detector_models WHERE device_class = 'pump_room'"
        ).fetchall()
    )
    assert rows == {first.version: False, version: True}, "the old version kept for rollback"

    (blob,) = db.execute(
        "SELECT blob FROM detector_models WHERE version = %s", (version,)
    ).fetchone() or (b"",)
    fresh = Model.from_bytes(bytes(blob))
    ts, _ = pump_room(DAYS, 3)
    left_out = np.zeros(len(ts), dtype=bool)
    for lo, hi in (FAULT, OWN):
        left_out |= (ts >= lo - PAD_S) & (ts < hi + PAD_S)
    assert fresh.n_train == int((~left_out).sum())
    assert fresh.trained_at == _dt(now) and fresh.features == first.features

    # What leaving the fault out is for: trained on it, the model takes it for normal.
    careless = train_from_history(db, "pump_room", _dt(T0), _dt(now), trained_at=_dt(now))
    assert fault_rows_flagged(fresh) > 0.9
    assert fault_rows_flagged(careless) < 0.5

    assert upkeep.retrain(database, learned, "pump_room", now + 3600) is None, "just retrained"


def test_a_too_short_window_is_logged_and_skipped(
    db: Conn, device: int, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    first = first_model(db)
    upkeep = Upkeep(UpkeepConfig(retrain_every_s=3600.0, retrain_days=0.1))
    with caplog.at_level(logging.WARNING, logger="shouwang.analytics"):
        upkeep.run(database, learned_with(first), T0 + 1.55 * DAY)  # 2.4 h, mostly the fault
    assert upkeep.skipped == ["pump_room"] and upkeep.retrained == []
    assert "model not retrained" in caplog.text and "complete rows" in caplog.text
    upkeep.run(database, learned_with(first), T0 + 1.55 * DAY + 600)
    assert upkeep.skipped == ["pump_room"], "not tried again at every check"
    upkeep.run(database, learned_with(first), T0 + 1.55 * DAY + RETRY_S)
    assert upkeep.skipped == ["pump_room", "pump_room"], "tried again an hour later"
    (n,) = db.execute(
        "SELECT count(*) FROM detector_models WHERE device_class = 'pump_room'"
    ).fetchone() or (0,)
    assert n == 1


def test_false_alarms_above_target_raise_model_drift_and_clear_when_back(
    db: Conn, device: int, database: Database
) -> None:
    now = T0 + 10 * DAY
    (n_devices,) = db.execute(
        "SELECT count(*) FROM devices WHERE device_class = 'pump_room' AND active"
    ).fetchone() or (0,)
    target = 0.01
    needed = int(3 * target * 7 * n_devices) + 3  # above 3 x target, at least the minimum
    for i in range(needed):
        at = now - 6 * DAY + i * 3600
        db.execute(
            "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
            " last_triggered_at, cleared_at, cleared_reason, list_version) VALUES"
            " (%s, %s, 'P3', 'cleared', 'multivariate', %s, %s, %s, 'recovered', 't')",
            (device, CODE, _dt(at), _dt(at), _dt(at + 1800)),
        )
    learned = learned_with(None, target)
    upkeep = Upkeep(UpkeepConfig(retrain_every_s=0.0))

    upkeep.run(database, learned, now)
    [alarm] = open_alarms(db, (PlatformKind.MODEL_DRIFT,))
    assert alarm.subject == CODE and alarm.detail["false_alarms"] == needed
    assert alarm.detail["target"] == target and alarm.detail["device_class"] == "pump_room"
    upkeep.run(database, learned, now + 3600)
    [again] = open_alarms(db, (PlatformKind.MODEL_DRIFT,))
    assert again.triggers == 1, "drift that goes on is one alarm, not one a check"

    restarted = Upkeep(UpkeepConfig(retrain_every_s=0.0))  # adopts the open alarm
    restarted.run(database, learned, now + 8 * DAY)  # the false alarms are out of the window
    assert open_alarms(db, (PlatformKind.MODEL_DRIFT,)) == []
    (reason,) = db.execute(
        "SELECT cleared_reason FROM platform_alarms WHERE kind = 'model_drift'"
    ).fetchone() or ("",)
    assert reason == "within_target"


def test_alarms_in_a_maintenance_window_are_not_false_alarms(db: Conn, device: int) -> None:
    """A fire drill or a repair sets detectors off on purpose: those alarms do not count towards
    a learned model's false-alarm rate."""
    now = T0 + 10 * DAY
    for i in range(4):
        at = now - 2 * DAY + i * 3600
        db.execute(
            "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
            " last_triggered_at, cleared_at, cleared_reason, list_version) VALUES"
            " (%s, %s, 'P3', 'cleared', 'multivariate', %s, %s, %s, 'recovered', 't')",
            (device, CODE, _dt(at), _dt(at), _dt(at + 1800)),
        )
    since, until = _dt(now - 7 * DAY), _dt(now)
    try:
        assert false_alarms(db, "pump_room", CODE, since, until)[0] == 4
        window(db, device, _dt(now - 2 * DAY - 60), _dt(now - 2 * DAY + 1.5 * 3600))
        assert false_alarms(db, "pump_room", CODE, since, until)[0] == 2
    finally:
        db.execute("TRUNCATE maintenance_windows CASCADE")


def test_settings_reach_the_upkeep(settings: Settings) -> None:
    cfg = config_from(settings.model_copy(update={"analytics_retrain_hours": 6.0})).upkeep
    assert cfg.retrain_every_s == 6 * 3600.0 and cfg.retrain_days == 14.0
    assert (cfg.drift_days, cfg.drift_factor, cfg.drift_min_alarms) == (7.0, 3.0, 3)
