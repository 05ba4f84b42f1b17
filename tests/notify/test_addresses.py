"""Where notify may send, and how it signs. A webhook's address is checked when it is sent, after
the one DNS lookup whose answer the request then goes to: loopback, private, link-local and the
like are refused unless the operator allow-lists them, redirects are not followed, and what is
stored of a failure is a short category. Deliveries verify with the Standard Webhooks reference
verifier (``standardwebhooks``), and a replay under another id does not. Real loopback servers
count every request they get; nothing is mocked."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks import WebhookVerificationError

from core.channel_addresses import (
    STRICT,
    AddressPolicy,
    BadAddress,
    BadSecret,
    Refused,
    check_address,
    check_secret,
    system_resolve,
    target,
)
from core.db import Conn
from core.settings import Settings
from notify.dispatcher import Dispatcher
from notify.webhook import as_standard, new_secret, sign
from tests.conftest import clear_people, make_certificates
from tests.notify.test_dispatch import LOCAL, SECRET
from tests.notify.test_resilience import deliveries, staff
from tests.notify.test_routing import notify


class Counter:
    """An HTTP server on one loopback address that records every request (headers and body)
    and answers ``status`` (a redirect to ``location`` when given)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        status: int = 204,
        location: str = "",
        certificates: Path | None = None,
    ) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                counter.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "27")
                self.end_headers()
                self.wfile.write(b"internal secret answer text")

            def log_message(self, *_: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.server = Server((host, 0), Handler)
        if certificates is not None:  # https, with a certificate naming its host name only
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(certificates / "server.crt", certificates / "server.key")
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.host = host
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def community(db: Conn) -> int:
    """Nobody on the roster, no notifications, no alarms; one community."""
    clear_people(db)
    db.execute(
        "TRUNCATE alarms, work_orders, work_order_transitions, work_order_breaches,"
        " escalation_steps CASCADE"
    )
    row = db.execute("SELECT min(id) FROM communities").fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


@pytest.fixture
def counter() -> Iterator[Counter]:
    c = Counter()
    yield c
    c.close()


def run_once(settings: Settings, policy: AddressPolicy, http_ca: Path | None = None) -> None:
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(http_ca)) if http_ca is not None else True
    )
    with httpx.Client(timeout=5, verify=verify) as http:
        d = Dispatcher(settings.database_url, "d-addresses", http, addresses=policy)
        assert d.run_once() == 1
        d.close()


def test_a_delivery_verifies_with_the_reference_verifier_and_a_replay_under_another_id_does_not(
    settings: Settings, db: Conn, community: int, counter: Counter
) -> None:
    secret = new_secret()
    pid = staff(db, community, "值班员 甲", [])
    db.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret)"
        " VALUES (%s, 'webhook', %s, %s)",
        (pid, counter.url(), secret),
    )
    _, oid = notify(db, community, "P0", "EL.TRAPPED")
    run_once(settings, LOCAL)
    assert len(counter.requests) == 1
    _, hdrs, body = counter.requests[0]
    assert hdrs["webhook-id"].startswith(f"{oid}.")
    payload = Verifier(secret).verify(body, hdrs)
    assert payload["code"] == "EL.TRAPPED"
    for changed in (
        {"webhook-id": f"{oid + 1}.{hdrs['webhook-id'].split('.')[1]}"},  # a replay, another id
        {"webhook-timestamp": str(int(hdrs["webhook-timestamp"]) + 1)},
        {"webhook-signature": sign(new_secret(), hdrs["webhook-id"], 0, body)},
    ):
        with pytest.raises(WebhookVerificationError):
            Verifier(secret).verify(body, {**hdrs, **changed})
    with pytest.raises(WebhookVerificationError):  # the body changed
        Verifier(secret).verify(body.replace(b"EL.TRAPPED", b"EL.TRAPPEX"), hdrs)


def test_signatures_match_the_standard_webhooks_test_vector_and_old_secrets_still_verify() -> None:
    # The specification's example (github.com/standard-webhooks/standard-webhooks).
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
    # A secret stored before the scheme is the Standard Webhooks secret whsec_ + its base64.
    now = int(time.time())
    hdrs = {
        "webhook-id": "7.3",
        "webhook-timestamp": str(now),
        "webhook-signature": sign("an old secret", "7.3", now, b"{}"),
    }
    assert Verifier(as_standard("an old secret")).verify(b"{}", hdrs) == {}


def test_a_webhook_without_a_signing_secret_fails_for_good_and_nothing_is_sent(
    settings: Settings, db: Conn, community: int, counter: Counter
) -> None:
    pid = staff(db, community, "值班员 甲", [])
    db.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret)"
        " VALUES (%s, 'webhook', %s, NULL), (%s, 'webhook', %s, '')",
        (pid, counter.url("/a"), pid, counter.url("/b")),
    )
    notify(db, community, "P0", "EL.TRAPPED")
    run_once(settings, LOCAL)
    assert counter.requests == []
    assert [(s, p, e) for _, _, s, p, e in deliveries(db)] == [
        ("failed", True, "no signing secret"),
        ("failed", True, "no signing secret"),
    ]


def test_webhooks_to_internal_addresses_are_refused_and_nothing_is_sent(
    settings: Settings, db: Conn, community: int, counter: Counter
) -> None:
    """Loopback (by address and by name), private, link-local (the cloud metadata address),
    IPv6 loopback, IPv4-mapped IPv6 and a redirect to loopback from an allow-listed host."""
    v6 = Counter("::1")
    redirector = Counter("127.0.0.2", status=302, location=counter.url("/redirected"))
    try:
        urls = {
            "loopback": counter.url("/by-ip"),
            "private": f"http://10.0.0.1:{counter.port}/hook",
            "link-local": "http://169.254.169.254/latest/meta-data/",
            "v6 loopback": v6.url(),
            "mapped": f"http://[::ffff:127.0.0.1]:{counter.port}/mapped",
            "name": f"http://localhost:{counter.port}/by-name",
            "redirect": redirector.url(),
        }
        staff(db, community, "值班员 甲", [("webhook", u) for u in urls.values()])
        notify(db, community, "P0", "EL.TRAPPED")
        # http allowed (the servers are plain http), and only the redirector's address.
        policy = AddressPolicy(True, (ipaddress.ip_network("127.0.0.2/32"),))
        run_once(settings, policy)
        assert counter.requests == [] and v6.requests == [], "nothing reached loopback"
        assert len(redirector.requests) == 1, "the allow-listed one was sent to"
        errors = {str(a): (s, p, e) for _, a, s, p, e in deliveries(db)}
        assert errors == {
            urls["loopback"]: ("failed", True, "refused: loopback address"),
            urls["private"]: ("failed", True, "refused: private address"),
            urls["link-local"]: ("failed", True, "refused: link-local address"),
            urls["v6 loopback"]: ("failed", True, "refused: loopback address"),
            urls["mapped"]: ("failed", True, "refused: loopback address"),
            urls["name"]: ("failed", True, "refused: loopback address"),
            urls["redirect"]: ("failed", False, "HTTP 302 (redirect not followed)"),
        }
        # Allow-listed, loopback is sent to (the redirect again is not followed).
        clear_people(db)
        staff(db, community, "值班员 乙", [("webhook", counter.url("/allowed"))])
        notify(db, community, "P0", "EL.TRAPPED.2")
        run_once(settings, LOCAL)
        assert [path for path, _, _ in counter.requests] == ["/allowed"]
    finally:
        v6.close()
        redirector.close()


def test_a_failed_answer_is_stored_as_its_status_not_its_body(
    settings: Settings, db: Conn, community: int
) -> None:
    broken = Counter(status=500)
    try:
        staff(db, community, "值班员 甲", [("webhook", broken.url())])
        notify(db, community, "P0", "EL.TRAPPED")
        run_once(settings, LOCAL)
    finally:
        broken.close()
    assert len(broken.requests) == 1
    assert [(s, e) for _, _, s, _, e in deliveries(db)] == [("failed", "HTTP 500")]


def test_over_tls_the_checked_address_is_reached_under_the_name_and_its_certificate_checked(
    settings: Settings, db: Conn, community: int, tmp_path: Path
) -> None:
    """The name resolves (once) to loopback, allow-listed; the connection goes to that address
    while TLS names the host (SNI) and checks the certificate against it: a URL by the bare IP,
    which the certificate does not name, fails the check."""
    name = "hooks.shouwang.test"
    certs = make_certificates(tmp_path / "tls", name)
    server = Counter(certificates=certs)
    try:
        staff(
            db,
            community,
            "值班员 甲",
            [
                ("webhook", f"https://{name}:{server.port}/by-name"),
                ("webhook", f"https://127.0.0.1:{server.port}/by-ip"),
            ],
        )
        notify(db, community, "P0", "EL.TRAPPED")
        policy = AddressPolicy(
            False,
            (ipaddress.ip_network("127.0.0.0/8"),),
            resolve=lambda host, port: (
                ["127.0.0.1"] if host == name else system_resolve(host, port)
            ),
        )
        run_once(settings, policy, http_ca=certs / "ca.crt")
    finally:
        server.close()
    assert [(path, hdrs["Host"]) for path, hdrs, _ in server.requests] == [
        ("/by-name", f"{name}:{server.port}")
    ]
    errors = {str(a).rsplit("/", 1)[1]: (s, e) for _, a, s, _, e in deliveries(db)}
    assert errors == {"by-name": ("accepted", ""), "by-ip": ("failed", "ConnectError")}


def test_the_request_goes_to_the_address_that_was_checked() -> None:
    """The name is looked up once: the URL carries the checked IP, the Host header and SNI the
    name (no second lookup that DNS rebinding could answer differently)."""
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])
    policy = AddressPolicy(resolve=lambda host, port: next(answers))
    to = target("webhook", "https://hooks.example.org:8443/in?x=1", policy)
    assert str(to.url) == "https://93.184.215.14:8443/in?x=1"
    assert (to.host_header, to.sni) == ("hooks.example.org:8443", "hooks.example.org")
    with pytest.raises(Refused, match="refused: loopback address"):
        target("webhook", "https://hooks.example.org/in", policy)
    # Every address of the name must be allowed, not just the first.
    mixed = AddressPolicy(resolve=lambda host, port: ["93.184.215.14", "10.1.2.3"])
    with pytest.raises(Refused, match="private"):
        target("webhook", "https://hooks.example.org/in", mixed)


@pytest.mark.parametrize(
    ("kind", "address", "why"),
    [
        ("webhook", "http://hooks.example.org/in", "https only"),
        ("webhook", "https://user:pw@hooks.example.org/in", "credentials"),
        ("webhook", "https://127.0.0.1/in", "refused: loopback"),
        ("webhook", "https://10.0.0.1/in", "refused: private"),
        ("webhook", "https://169.254.169.254/", "refused: link-local"),
        ("webhook", "https://[::1]/in", "refused: loopback"),
        ("webhook", "https://[::ffff:10.0.0.1]/in", "refused: private"),
        ("webhook", "https://[fe80::1]/in", "refused: link-local"),
        ("webhook", "https://224.0.0.1/in", "refused: multicast"),
        ("webhook", "https://0.0.0.0/in", "refused: unspecified"),
        ("webhook", "https://240.0.0.1/in", "refused"),
        ("wecom", "https://qyapi.weixin.qq.com.evil.example/cgi-bin/webhook/send?key=k", "must"),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/other?key=k", "must"),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", "must"),
        ("dingtalk", "https://oapi.dingtalk.com/robot/send?token=t", "must"),
        ("dingtalk", "http://oapi.dingtalk.com/robot/send?access_token=t", "https only"),
        ("email", "Boss <boss@example.org>", "spaces"),
        ("email", "a@example.org,b@example.org", "not"),
        ("email", "a@example.org\nBcc: b@example.org", "control"),
        ("mqtt", "duty-0", "duty-<person id>"),
        ("mqtt", "svc-admin", "duty-<person id>"),
    ],
)
def test_addresses_notify_may_not_send_to_are_refused_before_any_lookup(
    kind: str, address: str, why: str
) -> None:
    with pytest.raises(BadAddress, match=why):
        check_address(kind, address, STRICT)
    # A robot's key never appears in the error.
    with pytest.raises(BadAddress) as e:
        check_address(kind, address, STRICT)
    assert "key=k" not in str(e.value) and "access_token=t" not in str(e.value)


def test_the_allow_list_and_allow_http_open_exactly_what_they_name() -> None:
    lab = AddressPolicy(True, (ipaddress.ip_network("10.1.0.0/16"),))
    check_address("webhook", "http://10.1.2.3:8080/in", lab)
    with pytest.raises(Refused):
        check_address("webhook", "http://10.2.0.1/in", lab)
    with pytest.raises(BadAddress, match="https only"):
        check_address(
            "webhook", "http://10.1.2.3:8080/in", AddressPolicy(False, lab.allowed_networks)
        )
    check_address("webhook", "https://hooks.example.org/in", STRICT)
    check_address("webhook", "https://8.8.8.8/in", STRICT)
    check_address("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", STRICT)
    check_address("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=t", STRICT)
    check_address("email", "值班@example.org", STRICT)
    check_address("mqtt", "duty-12", STRICT)


def test_a_new_webhook_secret_is_a_standard_webhooks_secret() -> None:
    check_secret(new_secret())
    check_secret(SECRET)
    for bad, why in [
        (None, "needs a signing secret"),
        ("", "needs a signing secret"),
        ("s3cret", "Standard Webhooks secret"),
        ("whsec_not base64!", "base64"),
        ("whsec_QUJD", "3 bytes"),
    ]:
        with pytest.raises(BadSecret, match=why):
            check_secret(bad)
