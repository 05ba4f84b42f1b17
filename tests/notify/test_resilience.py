"""No endpoint and no address can stop or delay notifications: the dispatcher against real
loopback servers that misbehave (never answer, answer garbage, hang up, answer with NUL bytes or
megabytes) and against addresses that are not addresses. Every error is a failed delivery in the
log, permanent ones are not retried, and one firm's dead endpoints do not hold up another
firm's P0. Nothing is mocked: real sockets, the real database."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from psycopg.types.json import Jsonb

from core.db import Conn
from core.settings import Settings
from notify.ack_links import AckLinks
from notify.channels import BadAddress, Smtp, check_address
from notify.dispatcher import Dispatcher
from notify.duty_app import DutyApps
from notify.outbox import storable
from tests.conftest import NOTIFY_PASSWORD, Broker, clear_people, free_port
from tests.notify.test_dispatch import LOCAL, SECRET, Receiver
from tests.notify.test_routing import notify


class BlackHole:
    """A TCP server on loopback that accepts every connection and never answers; counts how
    many connections are open at once."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = int(self.listener.getsockname()[1])
        self.open = 0
        self.max_open = 0
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        while not self._stop.is_set():
            # Hang-ups first: a client that gave up is no longer open when the next connects.
            ready = sorted(sel.select(0.05), key=lambda kv: kv[0].fileobj is self.listener)
            for key, _ in ready:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    conn, _ = self.listener.accept()
                    sel.register(conn, selectors.EVENT_READ)
                    self.open += 1
                    self.connections += 1
                    self.max_open = max(self.max_open, self.open)
                else:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:  # the client gave up
                        sel.unregister(sock)
                        sock.close()
                        self.open -= 1
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Hostile:
    """An HTTP server whose every path misbehaves in its own way."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/nul":
                    self._answer(500, b"broken\x00answer \xff\xfe with NUL")
                elif self.path == "/huge":
                    self._answer(500, b"x" * (8 * 1024 * 1024))
                elif self.path == "/hangup":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                elif self.path == "/garbage":
                    self.wfile.write(b"\x00\x01 this is not HTTP at all\r\n\r\n")
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                else:
                    self._answer(404, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the dispatcher stopped reading, as it should
                    self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def two_firms(db: Conn) -> tuple[int, int]:
    """Nobody on the roster, no notifications; two communities of different property firms."""
    clear_people(db)
    db.execute(
        "TRUNCATE alarms, work_orders, work_order_transitions, work_order_breaches,"
        " escalation_steps CASCADE"
    )
    rows = db.execute(
        "SELECT DISTINCT ON (firm_id) id FROM communities WHERE firm_id IS NOT NULL"
        " ORDER BY firm_id, id LIMIT 2"
    ).fetchall()
    assert len(rows) == 2, "the test county has communities of two firms"
    return int(rows[0][0]), int(rows[1][0])


def staff(
    db: Conn, community_id: int, name: str, channels: list[tuple[str, str]], **shift: datetime
) -> int:
    """A duty person on shift now for the community, with these (kind, address) channels."""
    (pid,) = db.execute(
        "INSERT INTO people (name, role) VALUES (%s, 'duty_staff') RETURNING id", (name,)
    ).fetchone() or (0,)
    for kind, address in channels:
        db.execute(
            "INSERT INTO contact_channels (person_id, kind, address, secret)"
            " VALUES (%s, %s, %s, %s)",
            (pid, kind, address, SECRET),
        )
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%s, 'duty_staff', %s, %s, %s)",
        (
            community_id,
            pid,
            shift.get("starts_at", now - timedelta(hours=1)),
            shift.get("ends_at", now + timedelta(hours=1)),
        ),
    )
    return int(pid)


def count(db: Conn, query: str, *params: object) -> int:
    row = db.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


def deliveries(db: Conn) -> list[tuple[object, ...]]:
    """(outbox, address, status, permanent, error) of every attempt, in order."""
    return db.execute(
        "SELECT d.outbox_id, c.address, d.status, d.permanent, d.error FROM deliveries d"
        " JOIN contact_channels c ON c.id = d.channel_id ORDER BY d.id"
    ).fetchall()


def wait_until(cond: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


MALFORMED = [
    ("webhook", "not a url"),
    ("webhook", "http://[::1"),
    ("webhook", "ftp://example.org/hook"),
    ("webhook", ""),
    ("webhook", "http://"),
    ("email", "duty.example.org"),
    ("email", "duty@example.org\r\nBcc: everyone@example.org"),
    ("wecom", "gopher://qyapi.example/cgi-bin/webhook/send"),
    ("dingtalk", "oapi.dingtalk.example/robot/send?access_token=t"),
    ("mqtt", "duty-7/+"),
]


@pytest.mark.parametrize(("kind", "address"), MALFORMED)
def test_a_malformed_address_is_a_permanent_failure_and_the_stage_keeps_working(
    settings: Settings,
    db: Conn,
    broker: Broker,
    receiver: Receiver,
    two_firms: tuple[int, int],
    kind: str,
    address: str,
) -> None:
    community, _ = two_firms
    staff(db, community, "坏地址 甲", [(kind, address)])
    staff(db, community, "值班员 乙", [("webhook", receiver.url)])
    # Both: the bad channel fails, the good one of the same person still gets it.
    staff(db, community, "值班员 丙", [(kind, address + " "), ("webhook", receiver.url + "?c")])
    _, first = notify(db, community, "P0", "EL.TRAPPED")
    apps = DutyApps(
        broker.host, broker.port, "svc-notify", NOTIFY_PASSWORD, client_id=f"notify-bad-{kind}"
    )
    with httpx.Client(timeout=5) as http:
        d = Dispatcher(
            settings.database_url,
            "d-bad",
            http,
            backoff_base_s=0.05,
            smtp=Smtp("127.0.0.1", free_port(), "shouwang@example.org"),  # never reached
            duty_apps=apps,
            addresses=LOCAL,
        )
        loop = threading.Thread(target=d.run, kwargs={"poll_s": 0.02})
        loop.start()
        try:
            assert wait_until(lambda: len(receiver.accepted) == 2, 10), "the others got it"
            # The stage is still running: the next notification goes out too.
            _, second = notify(db, community, "P0", "EL.TRAPPED.2")
            assert wait_until(lambda: len(receiver.accepted) == 4, 10)
            assert wait_until(
                lambda: count(db, "SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0, 10
            )
            time.sleep(0.3)  # a few more rounds: nothing is retried
            assert loop.is_alive()
        finally:
            d.stop()
            loop.join(15)
    assert not loop.is_alive()
    bad = [r for r in deliveries(db) if r[1] != receiver.url and not str(r[1]).endswith("?c")]
    assert sorted((o, status, permanent) for o, _, status, permanent, _ in bad) == [
        (first, "failed", True),
        (first, "failed", True),
        (second, "failed", True),
        (second, "failed", True),
    ], "each bad channel failed once per notification, permanently, and was not retried"
    assert all(str(e).startswith("bad address") for *_, e in bad), bad
    assert db.execute("SELECT bool_or(undeliverable) FROM outbox").fetchone() == (False,)


def test_when_every_channel_is_permanently_bad_the_row_finishes_undeliverable(
    settings: Settings,
    db: Conn,
    two_firms: tuple[int, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    community, _ = two_firms
    staff(db, community, "坏地址 甲", [("webhook", "http://[::1"), ("email", "nobody")])
    staff(db, community, "坏地址 乙", [("wecom", "qyapi")])
    _, oid = notify(db, community, "P0", "EL.TRAPPED")
    with httpx.Client(timeout=5) as http:
        d = Dispatcher(
            settings.database_url, "d-undeliverable", http, backoff_base_s=0.01, addresses=LOCAL
        )
        assert d.run_once() == 1
        time.sleep(0.05)
        assert d.run_once() == 0, "finished: not claimed again"
        d.close()
    assert db.execute(
        "SELECT done_at IS NOT NULL, undeliverable, superseded FROM outbox WHERE id = %s", (oid,)
    ).fetchone() == (True, True, False)
    log = deliveries(db)
    assert sorted((str(a), s, p) for _, a, s, p, _ in log) == [
        ("http://[::1", "failed", True),
        ("nobody", "failed", True),  # no SMTP server configured: permanent here too
        ("qyapi", "failed", True),
    ]
    assert any("no email channel in this dispatcher" in str(e) for *_, e in log)
    assert any("undeliverable" in r.getMessage() for r in caplog.records)


def test_misbehaving_endpoints_are_failed_deliveries_and_the_rest_go_out(
    settings: Settings, db: Conn, receiver: Receiver, two_firms: tuple[int, int]
) -> None:
    community, _ = two_firms
    hostile = Hostile()
    try:
        paths = ["/nul", "/huge", "/hangup", "/garbage", "/missing"]
        for p in paths:
            staff(db, community, f"怪 {p}", [("webhook", hostile.url(p))])
        staff(db, community, "值班员 乙", [("webhook", receiver.url)])
        _, oid = notify(db, community, "P0", "EL.TRAPPED")
        with httpx.Client(timeout=5) as http:
            d = Dispatcher(
                settings.database_url, "d-hostile", http, send_timeout_s=3, addresses=LOCAL
            )
            began = time.monotonic()
            d.run_once()
            elapsed = time.monotonic() - began
            d.close()
    finally:
        hostile.close()
    assert len(receiver.accepted) == 1
    assert elapsed < 3, "nothing hung"
    errors = {str(a).rsplit("/", 1)[1]: (s, p, e) for _, a, s, p, e in deliveries(db)}
    assert errors.pop("hook")[0] == "accepted"
    assert {k: (s, p) for k, (s, p, _) in errors.items()} == {
        p[1:]: ("failed", False) for p in paths
    }, "transient: retried later"
    # The status, never the answer's body (an internal service's answer is nobody's to read).
    assert errors["nul"][2] == "HTTP 500" and errors["huge"][2] == "HTTP 500"
    assert errors["hangup"][2] in ("RemoteProtocolError", "ReadError")
    assert errors["garbage"][2] in ("RemoteProtocolError", "ReadError")
    assert errors["missing"][2] == "HTTP 404"
    assert db.execute(
        "SELECT done_at IS NULL, attempts FROM outbox WHERE id = %s", (oid,)
    ).fetchone() == (True, 1), "held for a retry of the failed ones"


def test_an_error_of_any_kind_while_building_a_delivery_is_a_failed_delivery(
    settings: Settings, db: Conn, receiver: Receiver, two_firms: tuple[int, int]
) -> None:
    community, _ = two_firms
    staff(db, community, "值班员 乙", [("webhook", receiver.url)])
    _, broken = notify(db, community, "P0", "EL.BROKEN")
    # A payload no acknowledgement link can be made for (its alarm id is not a number).
    db.execute(
        "UPDATE outbox SET payload = payload || %s WHERE id = %s",
        (Jsonb({"alarm_id": "not-a-number"}), broken),
    )
    _, fine = notify(db, community, "P0", "EL.TRAPPED")
    with httpx.Client(timeout=5) as http:
        d = Dispatcher(
            settings.database_url,
            "d-build",
            http,
            ack=AckLinks("ack-secret", "https://duty.example/v1/ack"),
            addresses=LOCAL,
        )
        assert d.run_once() == 2
        d.close()
    assert [p["code"] for p in receiver.accepted.values()] == ["EL.TRAPPED"]
    log = {o: (s, p, e) for o, _, s, p, e in deliveries(db)}
    status, permanent, error = log[broken]
    assert (status, permanent) == ("failed", False)
    assert str(error).startswith("internal error: ValueError")
    assert log[fine][0] == "accepted"


def test_addresses_are_checked_before_anything_is_sent() -> None:
    for kind, address in MALFORMED:
        with pytest.raises(BadAddress):
            check_address(kind, address)
    for kind, address in [
        ("webhook", "https://hooks.example.org/a?b=c"),
        ("webhook", "http://[::1]:8080/hook"),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"),
        ("email", "值班@example.org"),
        ("mqtt", "duty-12"),
    ]:
        check_address(kind, address)
    assert storable("a\x00b\ud800c") == "a\\0b?c"


def test_a_firm_whose_endpoints_hang_does_not_delay_another_firms_p0(
    settings: Settings, db: Conn, receiver: Receiver, two_firms: tuple[int, int]
) -> None:
    firm_a, firm_b = two_firms
    dead = BlackHole()
    timeout_s, per_firm = 3.0, 2
    try:
        staff(db, firm_a, "A 值班", [("webhook", dead.url)])
        staff(db, firm_b, "B 值班", [("webhook", receiver.url)])
        a_rows = [notify(db, firm_a, "P0", f"A.{i}")[1] for i in range(8)]
        _, b_row = notify(db, firm_b, "P0", "B.TRAPPED")  # written last
        with httpx.Client(timeout=30) as http:  # each send's own deadline applies
            d = Dispatcher(
                settings.database_url,
                "d-firms",
                http,
                batch=5,
                send_timeout_s=timeout_s,
                concurrency=8,
                concurrency_per_firm=per_firm,
                addresses=LOCAL,
            )
            loop = threading.Thread(target=d.run, kwargs={"poll_s": 0.02})
            began = time.monotonic()
            loop.start()
            try:
                assert wait_until(lambda: receiver.accepted, timeout_s), "B's P0 arrived"
                b_elapsed = time.monotonic() - began
                a_logged = "SELECT count(*) FROM deliveries WHERE outbox_id = ANY(%s)"
                a_logged_then = count(db, a_logged, a_rows)
                assert wait_until(lambda: count(db, a_logged, a_rows) >= per_firm, timeout_s * 3)
                a_elapsed = time.monotonic() - began
            finally:
                d.stop()
                loop.join(3 * timeout_s + 10)
    finally:
        dead.close()
    assert b_elapsed < timeout_s and a_logged_then == 0, (
        "B's P0 went out while A's sends were still waiting for their dead endpoint"
    )
    assert a_elapsed >= timeout_s * 0.9, "A's sends waited for their deadline ..."
    assert a_elapsed < timeout_s * 3, "... and no longer"
    assert dead.max_open <= per_firm, "at most the firm's bound of sends at once"
    assert list(receiver.accepted) == [
        f"{b_row}.{db.execute('SELECT max(id) FROM contact_channels').fetchone()[0]}"  # type: ignore[index]
    ]
    a_errors = db.execute(
        "SELECT DISTINCT status, permanent, split_part(error, ':', 1) FROM deliveries"
        " WHERE outbox_id = ANY(%s)",
        (a_rows,),
    ).fetchall()
    assert a_errors == [("failed", False, "ReadTimeout")]
    assert db.execute(
        "SELECT count(*) FROM outbox WHERE id = ANY(%s) AND done_at IS NULL", (a_rows,)
    ).fetchone() == (len(a_rows),), "A's notifications wait for a retry"
    assert (
        count(
            db,
            "SELECT count(*) FROM outbox WHERE id = ANY(%s)"
            " AND claimed_until > now() + interval '10 seconds'",
            a_rows,
        )
        == 0
    ), "stopping gave back the rows in hand (or set them for a retry), not held for a lease"


def test_concurrent_dispatchers_never_deliver_a_row_to_a_channel_twice(
    settings: Settings, db: Conn, two_firms: tuple[int, int]
) -> None:
    receiver = Receiver(delay_s=0.01)
    receiver.server.socket.listen(128)  # 18 senders at once: more than the default backlog
    try:
        for community in two_firms:
            staff(db, community, f"{community} 甲", [("webhook", receiver.url + f"?{community}a")])
            staff(
                db,
                community,
                f"{community} 乙",
                [("webhook", receiver.url + f"?{community}b"), ("webhook", receiver.url + "?b2")],
            )
        rows = [notify(db, c, "P0", f"EL.{c}.{i}")[1] for i in range(20) for c in two_firms]
        expected = 3 * len(rows)
        with httpx.Client(timeout=5) as http:
            ds = [
                Dispatcher(
                    settings.database_url,
                    f"d-many-{i}",
                    http,
                    batch=4,
                    concurrency=6,
                    concurrency_per_firm=3,
                    addresses=LOCAL,
                )
                for i in range(3)
            ]
            threads = [threading.Thread(target=d.run, kwargs={"poll_s": 0.02}) for d in ds]
            for t in threads:
                t.start()
            try:
                assert wait_until(lambda: len(receiver.accepted) >= expected, 30)
                assert wait_until(
                    lambda: count(db, "SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0,
                    10,
                )
            finally:
                for d in ds:
                    d.stop()
                for t in threads:
                    t.join(15)
    finally:
        receiver.close()
    assert len(receiver.accepted) == expected
    assert receiver.requests == expected, "nothing was posted twice"
    assert db.execute(
        "SELECT count(*), count(DISTINCT (outbox_id, channel_id)) FROM deliveries"
        " WHERE status = 'accepted'"
    ).fetchone() == (expected, expected)
    by = {r[0] for r in db.execute("SELECT DISTINCT claimed_by FROM outbox").fetchall()}
    assert len(by) >= 2, f"the dispatchers shared the work: {by}"


def test_a_mail_server_that_refuses_for_good_or_never_answers(
    settings: Settings, db: Conn, receiver: Receiver, two_firms: tuple[int, int]
) -> None:
    from aiosmtpd.controller import Controller

    class Refusing:
        async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
            self, server: object, session: object, envelope: object, address: str, options: object
        ) -> str:
            return "550 5.1.1 no such mailbox"

    community, _ = two_firms
    staff(db, community, "邮箱 甲", [("email", "gone@example.org")])
    staff(db, community, "值班员 乙", [("webhook", receiver.url)])
    _, oid = notify(db, community, "P0", "EL.TRAPPED")
    port = free_port()
    smtp = Controller(Refusing(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        with httpx.Client(timeout=5) as http:
            d = Dispatcher(
                settings.database_url,
                "d-smtp",
                http,
                smtp=Smtp("127.0.0.1", port, "shouwang@example.org"),
                addresses=LOCAL,
            )
            d.run_once()
            d.close()
    finally:
        smtp.stop()
    (_, _, status, permanent, error), _ = sorted(deliveries(db), key=lambda r: str(r[1]))
    assert (status, permanent) == ("failed", True)
    assert str(error).startswith("address refused") and "550" in str(error)
    assert db.execute(
        "SELECT done_at IS NOT NULL FROM outbox WHERE id = %s", (oid,)
    ).fetchone() == (True,), "the other recipient has it: done"

    # A mail server that accepts the connection and never says a word: a timeout, retried.
    silent = BlackHole()
    try:
        _, second = notify(db, community, "P0", "EL.TRAPPED.2")
        with httpx.Client(timeout=5) as http:
            d = Dispatcher(
                settings.database_url,
                "d-smtp-silent",
                http,
                smtp=Smtp("127.0.0.1", silent.port, "shouwang@example.org"),
                send_timeout_s=1,
                addresses=LOCAL,
            )
            began = time.monotonic()
            d.run_once()
            elapsed = time.monotonic() - began
            d.close()
    finally:
        silent.close()
    assert 0.9 <= elapsed < 5
    failed = db.execute(
        "SELECT d.permanent, d.error FROM deliveries d JOIN contact_channels c"
        " ON c.id = d.channel_id WHERE d.outbox_id = %s AND c.kind = 'email'",
        (second,),
    ).fetchall()
    assert [(p, "timed out" in str(e)) for p, e in failed] == [(False, True)], failed
    assert db.execute("SELECT done_at IS NULL FROM outbox WHERE id = %s", (second,)).fetchone() == (
        True,
    ), "retried later"


def test_a_row_whose_lease_another_dispatcher_took_is_not_sent_by_this_one(
    settings: Settings,
    db: Conn,
    two_firms: tuple[int, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    community, _ = two_firms
    dead = BlackHole()
    try:
        staff(db, community, "A 值班", [("webhook", dead.url)])
        first, *taken = [notify(db, community, "P0", f"A.{i}")[1] for i in range(3)]
        with httpx.Client(timeout=30) as http:
            d = Dispatcher(
                settings.database_url,
                "d-lease",
                http,
                lease_s=0.9,
                backoff_base_s=30,
                send_timeout_s=2,
                concurrency_per_firm=1,  # the first row's send holds the firm's only slot
                addresses=LOCAL,
            )
            loop = threading.Thread(target=d.run, kwargs={"poll_s": 0.02})
            loop.start()
            try:
                assert wait_until(lambda: dead.connections == 1, 2)
                # Another dispatcher takes the two rows still waiting for the slot.
                db.execute(
                    "UPDATE outbox SET claimed_by = 'thief', claimed_until = now() + interval"
                    " '1 minute' WHERE id = ANY(%s)",
                    (taken,),
                )
                assert wait_until(
                    lambda: (
                        count(db, "SELECT count(*) FROM deliveries WHERE outbox_id = %s", first)
                        == 1
                    ),
                    5,
                )
                time.sleep(0.5)  # the slot is free again: nothing of the taken rows follows
            finally:
                d.stop()
                loop.join(10)
    finally:
        dead.close()
    assert dead.connections == 1, "only the first row was sent"
    assert count(db, "SELECT count(*) FROM deliveries WHERE outbox_id = ANY(%s)", taken) == 0
    assert db.execute(
        "SELECT DISTINCT claimed_by FROM outbox WHERE id = ANY(%s)", (taken,)
    ).fetchall() == [("thief",)], "left to the dispatcher that holds them"
    assert sum("lease lost" in r.getMessage() for r in caplog.records) == 2
