"""Multivariate alarms in the stream: episodes that end once the signal has been normal for the
hold time (no quiet period hiding a later fault), the list entry's settings, and the detail that
says which sensors disagree and in which direction, down to the alarms table."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from analytics.__main__ import build
from analytics.learned import Learned, LearnedRule, compile_learned
from analytics.multivariate import DEFAULT_FEATURES, Model, train
from core.db import Conn
from core.settings import Settings
from core.severity import Severity
from lifecycle.alarms import Kind, Lifecycle, Policy
from responsibility.loader import default_list
from responsibility.model import MultivariateFiling
from simulators.behaviour import PumpRoom

T0 = 1795651200.0
STEP = 60.0
FEATURES = DEFAULT_FEATURES["pump_room"]
CODE = "PR.ANOMALY"


def rows(start: float, n: int, seed: int) -> list[tuple[float, dict[str, float]]]:
    p = PumpRoom(random.Random(seed))
    return [(start + i * STEP, p.sample(start + i * STEP)) for i in range(n)]


@pytest.fixture(scope="module")
def model() -> Model:
    history = rows(T0, 3 * 1440, seed=3)
    x = np.array([[v[f] for f in FEATURES] for _, v in history])
    return train(
        x, FEATURES, trained_at=datetime(2026, 11, 1, tzinfo=UTC), device_class="pump_room"
    )


def broken(v: dict[str, float]) -> dict[str, float]:
    return dict(v, pump1_current=v["pump1_current"] + 4.0)  # same flow, 4 A more current


def test_deviations_are_signed_and_square_to_what_a_repair_takes_off(model: Model) -> None:
    _, v = rows(T0 + 5 * 86400, 1, seed=9)[0]
    row = np.array([[v[f] for f in FEATURES]])
    d = model.deviations(row)
    assert d.shape == (1, len(FEATURES))
    # For the nearest component, repairing feature j alone takes exactly d_j^2 off the squared
    # score; ``repaired`` takes the best component, so it can only take off as much or more.
    taken = model.score(row)[:, None] ** 2 - model.repaired(row) ** 2
    assert np.all(taken >= d**2 - 1e-6)
    up = row.copy()
    up[0, FEATURES.index("pump1_current")] += 4.0
    top = model.contributions(up[0])
    assert len(top) == 3 and top[0][0] == "pump1_current" and top[0][1] > 3.0
    down = row.copy()
    down[0, FEATURES.index("zone_mid_pressure")] -= 0.03
    assert model.contributions(down[0], most=1)[0][0] == "zone_mid_pressure"
    assert model.contributions(down[0], most=1)[0][1] < -2.0
    assert abs(top[0][1]) >= abs(top[1][1]) >= abs(top[2][1])
    assert model.contributions(np.full(len(FEATURES), np.nan)) == []
    assert np.isnan(model.deviations(np.full((1, len(FEATURES)), np.nan))).all()
    again = Model.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(again.deviations(up), model.deviations(up))


def run(
    learned: Learned, lifecycle: Lifecycle, samples: list[tuple[float, dict[str, float]]]
) -> list[tuple[Kind, float, dict[str, object]]]:
    out = []
    for t, v in samples:
        for obs in learned.on_sample(1, "pump_room", t, v):
            for tr in lifecycle.observe(obs):
                out.append((tr.kind, tr.t, dict(tr.alarm.detail)))
        for tr in lifecycle.tick(t):
            out.append((tr.kind, tr.t, dict(tr.alarm.detail)))
    return out


def test_an_episode_ends_after_the_hold_and_a_later_fault_opens_a_new_alarm(model: Model) -> None:
    rule = LearnedRule(CODE, "multivariate", score_above=1.0, confirm_s=120.0, hold_s=600.0)
    learned = Learned({"pump_room": [rule]})
    learned.set_model(model)
    lifecycle = Lifecycle(lambda _d, _c: Policy(Severity.P3, hold_seconds=300.0))
    start = T0 + 4 * 86400
    day = rows(start, 6 * 60, seed=11)  # six hours
    faulty = [
        (t, broken(v) if 60 <= i < 90 or 180 <= i < 200 else v) for i, (t, v) in enumerate(day)
    ]
    changes = run(learned, lifecycle, faulty)
    opened = [(t, d) for k, t, d in changes if k is Kind.OPEN]
    cleared = [t for k, t, _ in changes if k is Kind.CLEAR]
    assert len(opened) == 2, changes
    first, second = opened
    assert start + 60 * STEP <= first[0] <= start + 65 * STEP, "confirmed within minutes"
    assert start + 180 * STEP <= second[0] <= start + 185 * STEP, "the later fault is its own"
    # The first ended once normal for the hold (600 s) and cleared after the list's hold (300 s).
    assert len(cleared) >= 1 and cleared[0] == pytest.approx(start + 89 * STEP + 600 + 300, abs=120)
    for _, detail in opened:
        contributions = detail["contributions"]
        assert isinstance(contributions, list) and len(contributions) == 3
        assert contributions[0]["metric"] == "pump1_current" and contributions[0]["z"] > 0
        assert detail["peak"] > 1.0  # type: ignore[operator]


def test_a_retrained_version_keeps_open_episodes_other_features_start_afresh(
    model: Model,
) -> None:
    rule = LearnedRule(CODE, "multivariate", score_above=1.0, confirm_s=0.0, hold_s=600.0)
    learned = Learned({"pump_room": [rule]})
    learned.set_model(model)
    t, v = rows(T0 + 4 * 86400, 1, seed=1)[0]
    [obs] = learned.on_sample(1, "pump_room", t, broken(v))
    assert obs.active and obs.detail["contributions"][0]["metric"] == "pump1_current"
    assert learned.episodes[(1, CODE)].open is not None
    learned.set_model(model)  # a retrained version: same features
    assert learned.episodes[(1, CODE)].open is not None, "no flap at a scheduled retraining"
    history = rows(T0, 1440, seed=3)
    fewer = FEATURES[:4]
    x = np.array([[s[f] for f in fewer] for _, s in history])
    learned.set_model(
        train(x, fewer, trained_at=datetime(2026, 11, 2, tzinfo=UTC), device_class="pump_room")
    )
    assert (1, CODE) not in learned.episodes
    learned.forget(1)
    assert not learned.held


def test_list_entries_set_confirm_hold_and_target_with_defaults_for_old_lists() -> None:
    entries = default_list().entries.values()
    [rule] = compile_learned(e for e in entries if e.code == CODE)["pump_room"]
    assert (rule.confirm_s, rule.hold_s, rule.target_false_per_device_day) == (120.0, 900.0, 0.05)
    f = MultivariateFiling.model_validate(
        {
            "detector": "multivariate",
            "score_above": 1.0,
            "confirm_seconds": 300,
            "hold_seconds": 1800,
            "target_false_alarms_per_device_day": 0.01,
        }
    )
    assert (f.confirm_seconds, f.hold_seconds, f.target_false_alarms_per_device_day) == (
        300,
        1800,
        0.01,
    )
    for bad in (
        {"hold_seconds": 0},
        {"confirm_seconds": -1},
        {"target_false_alarms_per_device_day": 0},
    ):
        with pytest.raises(ValidationError):
            MultivariateFiling.model_validate(
                {"detector": "multivariate", "score_above": 1.0, **bad}
            )


def test_the_alarm_row_carries_the_explanation(settings: Settings, db: Conn, model: Model) -> None:
    db.execute(
        "TRUNCATE alarms, work_orders, work_order_transitions, escalation_steps, outbox CASCADE"
    )
    service = build(settings, clock="data")
    try:
        device = next(d for d in service.devices.values() if d.device_class == "pump_room")
        service.learned.set_model(model)
        start = T0 + 4 * 86400
        transitions = []
        for t, v in rows(start, 60, seed=5):  # an hour of a pump drawing 4 A too much
            transitions += service._sample(device.id, t, broken(v))
        service._apply(transitions)
        detail, detector = db.execute(
            "SELECT detail, detector FROM alarms WHERE device_id = %s AND event_code = %s",
            (device.id, CODE),
        ).fetchone() or (None, None)
        assert detector == "multivariate"
        assert detail is not None and detail["contributions"][0]["metric"] == "pump1_current"
        assert detail["contributions"][0]["z"] > 0 and len(detail["contributions"]) == 3
        (payload,) = db.execute(
            "SELECT o.payload FROM outbox o JOIN alarms a ON a.id = o.alarm_id"
            " WHERE a.device_id = %s AND o.kind = 'alarm_opened'",
            (device.id,),
        ).fetchone() or (None,)
        assert payload is not None and payload["detail"] == detail, "notify sees it too"
    finally:
        service.conn.close()
        db.execute(
            "TRUNCATE alarms, work_orders, work_order_transitions, escalation_steps, outbox CASCADE"
        )
