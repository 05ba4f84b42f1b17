"""The database goes away under notify (through a relay the test cuts): the dispatcher stays up,
waits for it with backoff and says so, and loses nothing it has in hand. A send that completes
during the outage is logged when the database is back and not sent again; a row that fell due
meanwhile goes out once it is back; a dispatcher started during the outage waits for it; a claim
whose commit the outage cut off is in hand, not lost to its lease. Killed during the outage, the
next dispatcher sends what was accepted but never logged once more, with the same delivery id."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import notify.outbox as outbox_module
from core.db import Conn
from core.settings import Settings
from notify.dispatcher import Dispatcher
from notify.outbox import Claim
from tests.analytics.test_db_outage import relayed, wait_for
from tests.background import running
from tests.conftest import clear_people, free_port, settings_env, shouwang
from tests.notify.test_dispatch import LOCAL, LOCAL_ENV, SECRET, outbox_rows

OUTAGE_S = 10.0


class SlowReceiver:
    """A webhook receiver that takes ``delay_s`` to answer 204 and keeps the first copy of each
    delivery id (as receivers drop repeats); counts requests as they arrive and as answered."""

    def __init__(self, delay_s: float) -> None:
        self.arrived = 0
        self.answered = 0
        self.accepted: dict[str, dict[str, object]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.arrived += 1
                time.sleep(delay_s)
                with receiver.lock:
                    receiver.answered += 1
                    receiver.accepted.setdefault(self.headers["webhook-id"], json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[SlowReceiver]:
    r = SlowReceiver(delay_s=2.0)
    yield r
    r.close()


@pytest.fixture
def community(db: Conn, receiver: SlowReceiver) -> int:
    """One person on duty now for the first community, reachable on the receiver; no alarm,
    work order or notification left by other tests (their reminders and escalations would reach
    the receiver too)."""
    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions,"
        " work_order_breaches, escalation_steps, platform_alarms, platform_notices,"
        " platform_deliveries CASCADE"
    )
    clear_people(db)
    (community_id,) = db.execute("SELECT id FROM communities ORDER BY id LIMIT 1").fetchone() or (
        0,
    )
    (person,) = db.execute(
        "INSERT INTO people (name, role) VALUES ('值班员 赵', 'duty_staff') RETURNING id"
    ).fetchone() or (0,)
    db.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret)"
        " VALUES (%s, 'webhook', %s, %s)",
        (person, receiver.url, SECRET),
    )
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%s, 'duty_staff', %s, %s, %s)",
        (community_id, person, now - timedelta(hours=1), now + timedelta(hours=1)),
    )
    return int(community_id)


def done(db: Conn, oid: int) -> bool:
    return db.execute(
        "SELECT done_at IS NOT NULL FROM outbox WHERE id = %s", (oid,)
    ).fetchone() == (True,)


def accepted_log(db: Conn) -> list[tuple[int, int]]:
    return [
        (int(o), int(n))
        for o, n in db.execute(
            "SELECT outbox_id, count(*) FROM deliveries WHERE status = 'accepted' GROUP BY 1"
        )
    ]


def test_a_send_completed_during_the_outage_is_logged_after_it_and_not_sent_again(
    settings: Settings,
    db: Conn,
    receiver: SlowReceiver,
    community: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with relayed(settings.database_url) as relay, httpx.Client(timeout=5) as http:
        d = Dispatcher(
            relay.url(settings.database_url),
            "outage-notify",
            http,
            lease_s=3.0,
            backoff_base_s=0.2,
            addresses=LOCAL,
        )
        [oid] = outbox_rows(db, community, 1)
        with (
            caplog.at_level(logging.WARNING, logger="shouwang.notify"),
            running(d.run, d.stop, "notify") as thread,
        ):
            wait_for(lambda: receiver.arrived == 1, 10, "the send under way")
            relay.cut()
            cut_at = time.monotonic()
            wait_for(lambda: receiver.answered == 1, 5, "accepted during the outage")
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
            assert thread.is_alive(), "notify stays up through the outage"
            assert accepted_log(db) == [], "not logged yet: the database is away"
            assert not done(db, oid)
            unavailable = [r for r in caplog.records if "DATABASE UNAVAILABLE" in r.getMessage()]
            assert 3 <= len(unavailable) <= 20, "once per attempt, with backoff: no flood"

            relay.restore()
            wait_for(lambda: done(db, oid), 30, "the row finished")
            time.sleep(1.0)
            assert thread.is_alive()
    assert receiver.arrived == 1, "not sent again: the result waited in memory to be logged"
    assert list(receiver.accepted) == [f"{oid}.{channel(db)}"]
    assert accepted_log(db) == [(oid, 1)]


def channel(db: Conn) -> int:
    (c,) = db.execute("SELECT min(id) FROM contact_channels").fetchone() or (0,)
    return int(c)


def test_a_dispatcher_started_during_the_outage_waits_and_then_delivers_once(
    settings: Settings, db: Conn, receiver: SlowReceiver, community: int
) -> None:
    with relayed(settings.database_url) as relay, httpx.Client(timeout=5) as http:
        relay.cut()
        [oid] = outbox_rows(db, community, 1)  # due while the database is away from notify
        stop = threading.Event()
        made: list[Dispatcher] = []

        def run() -> None:
            d = Dispatcher(
                relay.url(settings.database_url),
                "outage-notify-start",
                http,
                stop=stop,
                addresses=LOCAL,
            )
            made.append(d)
            d.run()

        def halt() -> None:
            stop.set()
            for d in made:
                d.stop()

        with running(run, halt, "notify") as thread:
            time.sleep(5.0)
            assert thread.is_alive() and not made, "it waits for the database"
            assert receiver.arrived == 0
            relay.restore()
            wait_for(lambda: done(db, oid), 30, "delivered after the outage")
            time.sleep(1.0)
    assert receiver.arrived == 1 and len(receiver.accepted) == 1
    assert accepted_log(db) == [(oid, 1)]


def test_a_claim_whose_commit_the_outage_cut_off_is_in_hand(
    settings: Settings,
    db: Conn,
    receiver: SlowReceiver,
    community: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database commits the claim, then goes away before notify hears so. Once back,
    notify asks it whether the claim committed and delivers the row at once, instead of
    claiming again and finding it leased (for the whole lease) to itself."""
    real = outbox_module.claim
    with relayed(settings.database_url) as relay, httpx.Client(timeout=5) as http:

        def armed(conn: Conn, *args: object, **kw: object) -> list[Claim]:
            claims = real(conn, *args, **kw)  # type: ignore[arg-type]
            if claims and not relay.swallowed:
                relay.swallow_next_commit(conn)
            return claims

        monkeypatch.setattr(outbox_module, "claim", armed)
        [oid] = outbox_rows(db, community, 1)
        d = Dispatcher(
            relay.url(settings.database_url),
            "outage-notify-claim",
            http,
            lease_s=60,
            addresses=LOCAL,
        )
        with running(d.run, d.stop, "notify"):
            wait_for(lambda: relay.swallowed == 1, 10, "the claim's commit swallowed")
            relay.cut()
            time.sleep(2.0)
            relay.restore()
            wait_for(lambda: done(db, oid), 15, "delivered well within the 60 s lease")
    assert db.execute("SELECT attempts FROM outbox WHERE id = %s", (oid,)).fetchone() == (1,)
    assert receiver.arrived == 1
    assert accepted_log(db) == [(oid, 1)]


def test_killed_during_the_outage_what_was_accepted_unlogged_goes_once_more_with_its_id(
    settings: Settings, db: Conn, receiver: SlowReceiver, community: int, tmp_path: Path
) -> None:
    """SIGKILL while the database is away, after a send was accepted and before it could be
    logged: the next dispatcher takes the row after its lease and sends it once more, with the
    same delivery id, so the receiver has it once (docs/operations.md §13)."""
    with relayed(settings.database_url) as relay:
        env = (
            settings_env(settings)
            | LOCAL_ENV
            | {
                "SHOUWANG_DATABASE_URL": relay.url(settings.database_url),
                "SHOUWANG_NOTIFY_LEASE_S": "2",
                "SHOUWANG_NOTIFY_BACKOFF_BASE_S": "0.2",
                "COLUMNS": "300",
            }
        )
        [oid] = outbox_rows(db, community, 1)
        with (tmp_path / "victim.log").open("wb") as out:
            victim = subprocess.Popen(shouwang("notify", "--name", "victim"), env=env, stderr=out)
        try:
            wait_for(lambda: receiver.arrived == 1, 20, "the send under way")
            relay.cut()
            wait_for(lambda: receiver.answered == 1, 5, "accepted during the outage")
            time.sleep(3.0)
            assert victim.poll() is None, "still up"
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
        finally:
            if victim.poll() is None:
                victim.kill()
        relay.restore()
        assert accepted_log(db) == [] and not done(db, oid)
        with (tmp_path / "survivor.log").open("wb") as out:
            survivor = subprocess.Popen(
                shouwang("notify", "--name", "survivor"), env=env, stderr=out
            )
        try:
            wait_for(lambda: done(db, oid), 30, "delivered by the next dispatcher")
        finally:
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(20) == 0
    assert "DATABASE UNAVAILABLE" in (tmp_path / "victim.log").read_text(errors="replace")
    assert receiver.arrived == 2, "sent once more: its acceptance was never logged"
    assert list(receiver.accepted) == [f"{oid}.{channel(db)}"], "the same delivery id both times"
    assert accepted_log(db) == [(oid, 1)]
