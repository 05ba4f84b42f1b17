"""Notify's metrics (notify/metrics.py) against the real database and real local HTTP: deliveries
by channel and outcome (a receiver that accepts, a closed local port that refuses), the time of
each send, the backlog and the age of its oldest row as the outbox holds them, and the stage's
heartbeat. The registry is the process's: every figure is read as a difference, or against
what the test put in the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY

from core.db import Conn
from core.settings import Settings
from notify.dispatcher import Dispatcher
from tests.conftest import clear_people, free_port
from tests.notify.test_dispatch import LOCAL, SECRET, Receiver, outbox_rows


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def duty(db: Conn, receiver: Receiver) -> int:
    """A duty person on shift now for the first community with two webhooks: the receiver,
    and a closed port on loopback (nothing listens: refused). Returns the community id."""
    clear_people(db)
    (community_id,) = db.execute("SELECT id FROM communities ORDER BY id LIMIT 1").fetchone() or (
        0,
    )
    (person,) = db.execute(
        "INSERT INTO people (name, role) VALUES ('值班员 赵', 'duty_staff') RETURNING id"
    ).fetchone() or (0,)
    for url in (receiver.url, f"http://127.0.0.1:{free_port()}/hook"):
        db.execute(
            "INSERT INTO contact_channels (person_id, kind, address, secret)"
            " VALUES (%s, 'webhook', %s, %s)",
            (person, url, SECRET),
        )
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%s, 'duty_staff', %s, %s, %s)",
        (community_id, person, now - timedelta(hours=1), now + timedelta(hours=1)),
    )
    return int(community_id)


@pytest.fixture
def dispatcher(settings: Settings) -> Iterator[Dispatcher]:
    with httpx.Client(timeout=5) as http:
        d = Dispatcher(settings.database_url, "metrics-d1", http, addresses=LOCAL)
        yield d
        d.close()


def deliveries(outcome: str) -> float:
    return sample("shouwang_notify_deliveries_total", channel="webhook", outcome=outcome)


def test_deliveries_are_counted_by_channel_and_outcome(
    db: Conn, receiver: Receiver, duty: int, dispatcher: Dispatcher
) -> None:
    [oid] = outbox_rows(db, duty, 1)
    accepted, failed = deliveries("accepted"), deliveries("failed")
    timed = sample("shouwang_notify_delivery_seconds_count", channel="webhook")
    progress = sample("shouwang_stage_progress_total", stage="notify")

    assert dispatcher.run_once() == 1

    assert len(receiver.accepted) == 1
    log: dict[str, int] = {
        str(status): int(n)
        for status, n in db.execute(
            "SELECT status, count(*) FROM deliveries WHERE outbox_id = %s GROUP BY 1", (oid,)
        )
    }
    assert log == {"accepted": 1, "failed": 1}
    assert deliveries("accepted") - accepted == 1
    assert deliveries("failed") - failed == 1
    assert sample("shouwang_notify_delivery_seconds_count", channel="webhook") - timed == 2
    assert sample("shouwang_stage_progress_total", stage="notify") - progress == 2


def test_the_backlog_and_its_oldest_row_are_what_the_outbox_holds(
    db: Conn, duty: int, dispatcher: Dispatcher
) -> None:
    due, done, retrying, grouped = outbox_rows(db, duty, 4)
    # Acknowledged: housekeeping writes no reminder or voice call for them (that would be due).
    db.execute("UPDATE alarms SET state = 'acknowledged', acknowledged_at = now()")
    db.execute(
        "UPDATE outbox SET created_at = clock_timestamp() - interval '90 seconds' WHERE id = %s",
        (due,),
    )
    db.execute("UPDATE outbox SET done_at = clock_timestamp() WHERE id = %s", (done,))
    db.execute(
        "UPDATE outbox SET claimed_by = 'elsewhere', created_at = clock_timestamp()"
        " - interval '1 hour', claimed_until = clock_timestamp() + interval '1 minute'"
        " WHERE id = %s",
        (retrying,),
    )
    # P2 is grouped: it waits for its batch, and is not due before.
    db.execute(
        "UPDATE outbox SET severity = 'P2', created_at = clock_timestamp() - interval '1 day'"
        " WHERE id = %s",
        (grouped,),
    )

    assert dispatcher.show_backlog() == 1
    assert sample("shouwang_notify_outbox_backlog") == 1
    assert sample("shouwang_notify_outbox_oldest_seconds") == pytest.approx(90, abs=5)
    assert sample("shouwang_stage_pending", stage="notify") == 1

    # The retry's lease runs out: due again, and the oldest.
    db.execute(
        "UPDATE outbox SET claimed_until = clock_timestamp() - interval '1 second' WHERE id = %s",
        (retrying,),
    )
    db.execute("UPDATE outbox SET batch_id = id WHERE id = %s", (grouped,))  # batched: due
    dispatcher._last_housekeeping = -1e9  # housekeeping runs at most every second
    dispatcher.step()
    assert sample("shouwang_notify_outbox_backlog") == 3
    assert sample("shouwang_notify_outbox_oldest_seconds") == pytest.approx(86400, abs=5)
    assert sample("shouwang_stage_pending", stage="notify") == 3

    db.execute("UPDATE outbox SET done_at = clock_timestamp()")
    assert dispatcher.show_backlog() == 0
    assert sample("shouwang_notify_outbox_backlog") == 0
    assert sample("shouwang_notify_outbox_oldest_seconds") == 0
    assert sample("shouwang_stage_pending", stage="notify") == 0


def test_each_turn_of_the_loop_beats(dispatcher: Dispatcher, db: Conn) -> None:
    db.execute("UPDATE outbox SET done_at = clock_timestamp() WHERE done_at IS NULL")
    before = sample("shouwang_stage_heartbeat_timestamp_seconds", stage="notify")
    started = datetime.now(UTC).timestamp()
    assert dispatcher.step() == 0, "nothing to do"
    beat = sample("shouwang_stage_heartbeat_timestamp_seconds", stage="notify")
    assert beat >= started and beat >= before
