"""The multivariate model: relations that break are found, bytes round-trip, and the database
keeps versions that the running analytics can pick up."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from analytics.models import history, latest, save, train_from_history
from analytics.multivariate import DEFAULT_FEATURES, Episodes, Model, train
from core.catalogue import DeviceClass, metrics_by_class
from core.db import Conn
from core.errors import ConfigError
from tests.analytics.history_helpers import pump_room_with_history
from tests.analytics.test_baseline import DAY, STEP, T0, pump_room

FEATURES = DEFAULT_FEATURES["pump_room"]
TRAINED_AT = datetime(2027, 1, 11, tzinfo=UTC)


def rows(days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ts, cols = pump_room(days, seed)
    return ts, np.column_stack([cols[f] for f in FEATURES])


@pytest.fixture(scope="module")
def model() -> Model:
    _, x = rows(14, 1)
    return train(
        x[: int(10 * DAY / STEP)], FEATURES, trained_at=TRAINED_AT, device_class="pump_room"
    )


def test_default_features_are_metrics_of_their_class() -> None:
    specs = metrics_by_class()
    for cls, names in DEFAULT_FEATURES.items():
        assert set(names) <= set(specs[DeviceClass(cls)]), cls


def test_broken_relations_are_found_and_named_normal_days_stay_quiet(model: Model) -> None:
    ts, x = rows(14, 1)
    ts, x = ts[int(10 * DAY / STEP) :], x[int(10 * DAY / STEP) :].copy()  # days the model never saw
    faults = {  # column: (start, change) -- each lasts 30 minutes, every value stays in range
        "pump1_current": (T0 + 10 * DAY + 10 * 3600, 2.0),  # worn pump: +2 A at the same flow
        "zone_mid_pressure": (T0 + 11 * DAY + 3 * 3600, -0.015),  # a leak in the mid zone
        "flow": (T0 + 12 * DAY + 15 * 3600, 10.0),  # flow meter reads high, pumps disagree
    }
    for col, (start, change) in faults.items():
        x[(ts >= start) & (ts < start + 1800), FEATURES.index(col)] += change
    found = Episodes(model.threshold, window=6, min_hits=3).update(ts, model.score(x))
    for col, (start, _) in faults.items():
        hits = [a for a in found if start <= a.at <= start + 1800]
        assert hits, f"{col} fault not found"
        delay = hits[0].at - start
        named = model.explain(x[hits[0].index])
        print(f"{col}: found after {delay / 60:.0f} min, score {hits[0].score:.1f}, named {named}")
        assert delay <= 10 * 60
        assert named[0] == col
    false = [a for a in found if not any(s <= a.at <= s + 1800 for s, _ in faults.values())]
    print(f"{len(false)} false anomalies in 4 days: {false}")
    assert len(false) <= 1


def test_model_round_trips_through_bytes_without_pickle(model: Model) -> None:
    blob = model.to_bytes()
    assert blob[:2] == b"PK", "an npz archive"
    back = Model.from_bytes(blob)
    _, x = rows(14, 2)
    np.testing.assert_array_equal(back.score(x), model.score(x))
    assert (back.version, back.features, back.threshold, back.trained_at) == (
        model.version,
        model.features,
        model.threshold,
        model.trained_at,
    )


def test_version_is_time_and_content() -> None:
    _, x = rows(14, 1)
    a = train(x[:5000], FEATURES, trained_at=TRAINED_AT)
    b = train(x[:5000], FEATURES, trained_at=TRAINED_AT)
    c = train(x[:6000], FEATURES, trained_at=TRAINED_AT)
    assert re.fullmatch(r"20270111T000000Z-[0-9a-f]{12}", a.version)
    assert a.version == b.version != c.version
    assert a.score(x[:5000]).mean() < a.threshold
    with_gap = x[:3].copy()
    with_gap[1, 2] = np.nan
    assert np.isnan(a.score(with_gap)[1]) and np.isfinite(a.score(with_gap)[[0, 2]]).all()


def test_episodes_are_independent_of_cuts_and_survive_json() -> None:
    rng = np.random.default_rng(5)
    ts = np.arange(5000.0) * 10
    scores = rng.exponential(1.0, 5000)
    scores[1000:1010] = 9.0
    scores[3000:3300:2] = 9.0  # one long anomaly, half its rows above the threshold
    scores[3340:3343] = 9.0  # too soon after it to be a new one
    scores[4000:4003] = 9.0
    whole = Episodes(5.0, quiet_seconds=600).update(ts, scores)
    expected = [(10020.0, 10000.0), (30040.0, 30000.0), (40020.0, 40000.0)]
    assert [(a.at, a.since) for a in whole] == expected
    e, got = Episodes(5.0, quiet_seconds=600), []
    for lo in range(0, 5000, 777):
        got += [(a.at, a.score) for a in e.update(ts[lo : lo + 777], scores[lo : lo + 777])]
        e = Episodes.from_state(json.loads(json.dumps(e.to_state(), allow_nan=False)))
    assert got == [(a.at, a.score) for a in whole]


# --- in the database ----------------------------------------------------------------------------


@pytest.fixture
def pump_room_device(db: Conn) -> Iterator[int]:
    """A registered pump room with three days of readings of its model features."""
    ts, x = rows(3, 3)
    with pump_room_with_history(db, "t-analytics", ts, x, FEATURES) as device:
        yield device
        db.execute("DELETE FROM detector_models WHERE version LIKE '20270111T000000Z-%'")


def test_train_save_and_pick_up_a_new_version(db: Conn, pump_room_device: int) -> None:
    start = datetime.fromtimestamp(T0, UTC)
    got = history(db, "pump_room", FEATURES, start, start + timedelta(days=3))
    np.testing.assert_array_equal(got, rows(3, 3)[1])

    first = train_from_history(
        db, "pump_room", start, start + timedelta(days=2), trained_at=TRAINED_AT
    )
    assert first.n_train == int(2 * DAY / STEP) and first.features == FEATURES
    assert latest(db, "pump_room", None) is None
    save(db, first)
    picked = latest(db, "pump_room", None)
    assert picked is not None and picked.version == first.version
    assert latest(db, "pump_room", first.version) is None, "nothing new: nothing to load"

    second = train_from_history(
        db, "pump_room", start + timedelta(days=1), start + timedelta(days=3), trained_at=TRAINED_AT
    )
    save(db, second)
    picked = latest(db, "pump_room", first.version)
    assert picked is not None and picked.version == second.version
    _, x = rows(3, 3)
    np.testing.assert_array_equal(picked.score(x), second.score(x))
    active: dict[str, bool] = dict(
        db.execute(
            "SELECT version, active FROM detector_models WHERE device_class = 'pump_room'"
        ).fetchall()
    )
    assert active == {first.version: False, second.version: True}
    with pytest.raises(psycopg.errors.UniqueViolation):
        save(db, second)


def test_training_says_what_is_missing(db: Conn, pump_room_device: int) -> None:
    start = datetime.fromtimestamp(T0, UTC)
    with pytest.raises(ConfigError, match="complete rows"):
        train_from_history(db, "pump_room", start - timedelta(days=9), start)
    with pytest.raises(ConfigError, match="not metrics of the class"):
        train_from_history(db, "pump_room", start, start + timedelta(days=1), features=["nope"])
