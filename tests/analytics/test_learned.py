"""The learned detectors inside the stream: a class model trained on normal history flags a
pump-current fault at unchanged flow, and a new model version is picked up without a restart."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np

from analytics.__main__ import build
from analytics.learned import Learned, LearnedRule
from analytics.models import save
from analytics.multivariate import DEFAULT_FEATURES, train
from core.db import Conn
from core.settings import Settings
from simulators.behaviour import PumpRoom

T0 = 1795651200.0
FEATURES = DEFAULT_FEATURES["pump_room"]


def pump_room_rows(
    days: float, step: float = 60.0, seed: int = 3
) -> list[tuple[float, dict[str, float]]]:
    p = PumpRoom(random.Random(seed))
    return [(T0 + i * step, p.sample(T0 + i * step)) for i in range(int(days * 86400 / step))]


def model_from(rows: list[tuple[float, dict[str, float]]], when: datetime):  # type: ignore[no-untyped-def]
    x = np.array([[v[f] for f in FEATURES] for _, v in rows])
    return train(x, FEATURES, trained_at=when, device_class="pump_room")


def test_multivariate_rule_flags_a_broken_relation_and_stays_quiet_on_normal_data() -> None:
    history = pump_room_rows(4)
    model = model_from(history[: len(history) * 3 // 4], datetime(2026, 11, 1, tzinfo=UTC))
    learned = Learned(
        {"pump_room": [LearnedRule("PR.MULTIVARIATE", "multivariate", score_above=1.0)]}
    )
    learned.set_model(model)
    normal_alarms = [
        o
        for t, v in history[len(history) * 3 // 4 :]
        for o in learned.on_sample(1, "pump_room", t, v)
        if o.active
    ]
    assert len(normal_alarms) <= 3, "the model is quiet on a normal day it was not trained on"

    t_fault = history[-1][0] + 60
    later = pump_room_rows(5)[len(history) : len(history) + 120]
    hits = []
    for t, v in later:
        broken = dict(v, pump1_current=v["pump1_current"] + 4.0)  # same flow, more current
        hits += [(t, o) for o in learned.on_sample(1, "pump_room", t, broken) if o.active]
    assert hits, "a pump drawing 4 A more at the same flow is flagged"
    assert hits[0][0] - t_fault < 15 * 60


def test_a_new_model_version_is_picked_up_without_a_restart(settings: Settings, db: Conn) -> None:
    db.execute("DELETE FROM detector_models WHERE device_class = 'pump_room'")
    service = build(settings, clock="data")
    service.refresh_models()
    assert "pump_room" not in service.learned.models
    rows = pump_room_rows(2)
    first = model_from(rows, datetime(2026, 11, 1, tzinfo=UTC))
    save(db, first)
    service.refresh_models()
    assert service.learned.models["pump_room"].version == first.version
    second = model_from(rows[::2], datetime(2026, 11, 2, tzinfo=UTC))
    save(db, second)
    service.refresh_models()
    assert service.learned.models["pump_room"].version == second.version
    service.conn.close()
    db.execute("DELETE FROM detector_models WHERE device_class = 'pump_room'")
