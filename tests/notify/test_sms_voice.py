"""SMS and voice calls through the providers' official SDKs, against a local double of their
endpoints (``tests.notify.provider_double``, a double, not the providers): an SMS delivered
with the provider's request id in the delivery log, provider errors stored as short categories
and retried or not, a P0 going from SMS to a voice call when nobody acknowledged it in time
(the dispatcher's clock fast-forwarded), and the access key secret never in the database in
clear, the logs, the delivery log or the audit log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from core.channel_addresses import BadAddress, check_address, mobile
from core.db import Conn
from core.errors import ConfigError
from core.settings import Settings
from lifecycle.acknowledge import acknowledge
from notify import phone_accounts
from notify.dispatcher import Dispatcher
from notify.phone_accounts import Account, AccountError
from notify.policy import Policy, PolicyError, reaches
from notify.providers import Endpoints, Phone, PhoneAccounts
from notify.recipients import Recipient
from notify.sms import permanent, positional, variables
from tests.notify.provider_double import ProviderDouble
from tests.notify.test_routing import Clock, notify

KEY = Fernet.generate_key().decode()
ALIYUN_ID, ALIYUN_SECRET = "LTAI-double-id", "aliyun-SECRET-never-shown-0123456789"
TENCENT_ID, TENCENT_SECRET = "AKID-double-id", "tencent-SECRET-never-shown-987654321"
PHONE = "13800138000"
POLICY = Policy(reminder_every={}, voice_after=timedelta(minutes=5))


@pytest.fixture
def double() -> Iterator[ProviderDouble]:
    d = ProviderDouble()
    yield d
    assert not d.rejected, f"requests the double refused: {d.rejected}"
    d.close()


@pytest.fixture
def firm(db: Conn) -> tuple[int, int]:
    """(community, its firm), with nobody on the roster and no account yet."""
    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, notify_groups, duty_shifts,"
        " contact_channels, phone_accounts CASCADE"
    )
    db.execute("TRUNCATE alarms, work_orders, escalation_steps CASCADE")
    db.execute("DELETE FROM people WHERE name LIKE 'sms-test %'")
    row = db.execute(
        "SELECT id, firm_id FROM communities WHERE firm_id IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def staff(db: Conn, community: int, name: str, *kinds: str) -> int:
    (pid,) = db.execute(
        "INSERT INTO people (name, role) VALUES (%s, 'duty_staff') RETURNING id",
        (f"sms-test {name}",),
    ).fetchone() or (0,)
    for kind in kinds:
        db.execute(
            "INSERT INTO contact_channels (person_id, kind, address) VALUES (%s, %s, %s)",
            (pid, kind, "+86" + PHONE if kind == "voice" else PHONE),
        )
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%s, 'duty_staff', %s, %s, %s)",
        (community, pid, now - timedelta(hours=1), now + timedelta(days=1)),
    )
    return int(pid)


def aliyun(firm_id: int, kind: str = "sms") -> Account:
    return Account(
        firm_id,
        kind,
        "aliyun",
        ALIYUN_ID,
        ALIYUN_SECRET,
        "守望",
        "SMS_0001" if kind == "sms" else "TTS_0001",
    )


def tencent(firm_id: int) -> Account:
    return Account(
        firm_id, "sms", "tencent", TENCENT_ID, TENCENT_SECRET, "守望", "1234567", "1400000001"
    )


def endpoints(d: ProviderDouble) -> Endpoints:
    return Endpoints(d.endpoint, d.endpoint, d.endpoint, "http")


def dispatcher(
    settings: Settings, http: httpx.Client, d: ProviderDouble, clock: Clock
) -> Dispatcher:
    return Dispatcher(
        settings.database_url,
        "d-sms",
        http,
        policy=POLICY,
        clock=clock,
        housekeeping_s=0,
        backoff_base_s=0.05,
        phones=PhoneAccounts(KEY, endpoints(d), 3.0),
    )


def send_p0(
    settings: Settings,
    db: Conn,
    double: ProviderDouble,
    community: int,
    code: str = "EL.TRAPPED",
    *,
    retried: bool = False,
) -> int:
    """A P0 of ``code`` in ``community`` through a dispatcher's round (and, if ``retried``, a
    second round once the backoff has passed); what the first round sent."""
    with httpx.Client() as http:
        d = dispatcher(settings, http, double, Clock())
        notify(db, community, "P0", code)
        sent = d.run_once()
        if retried:
            db.execute("UPDATE outbox SET claimed_until = NULL")  # the backoff, passed
            d.run_once()
        d.close()
    return sent


def deliveries(db: Conn) -> list[tuple[Any, ...]]:
    rows = db.execute(
        "SELECT c.kind, d.status, d.provider_request_id, d.provider_status, d.permanent, d.error"
        " FROM deliveries d JOIN contact_channels c ON c.id = d.channel_id ORDER BY d.id"
    ).fetchall()
    return [tuple(r) for r in rows]


def test_an_sms_is_delivered_with_the_providers_request_id_in_the_log(
    settings: Settings, db: Conn, double: ProviderDouble, firm: tuple[int, int]
) -> None:
    community, firm_id = firm
    phone_accounts.save(db, aliyun(firm_id), KEY)
    staff(db, community, "李", "sms")
    assert send_p0(settings, db, double, community) == 1
    [call] = double.calls
    assert (call.provider, call.action, call.key_id) == ("aliyun", "SendSms", ALIYUN_ID)
    assert call.params["PhoneNumbers"] == PHONE and call.params["TemplateCode"] == "SMS_0001"
    assert json.loads(call.params["TemplateParam"]) == {
        "event": "EL.TRAPPED",
        "place": "C1",
        "device": "EL-1",
        "level": "P0",
    }
    (delivery,) = db.execute(
        "SELECT outbox_id || '.' || channel_id FROM deliveries"
    ).fetchone() or ("",)
    assert call.params["OutId"] == delivery  # the delivery id, for the provider's records
    assert deliveries(db) == [("sms", "accepted", "double-1", "OK", False, "")]


def test_tencent_cloud_sms_is_sent_by_position_in_e164(
    settings: Settings, db: Conn, double: ProviderDouble, firm: tuple[int, int]
) -> None:
    community, firm_id = firm
    phone_accounts.save(db, tencent(firm_id), KEY)
    staff(db, community, "王", "sms")
    send_p0(settings, db, double, community, "FP.LOW_PRESSURE")
    [call] = double.calls
    assert (call.provider, call.key_id) == ("tencent", TENCENT_ID)
    assert call.params["PhoneNumberSet"] == ["+86" + PHONE]
    assert call.params["SmsSdkAppId"] == "1400000001"
    assert call.params["TemplateParamSet"] == ["FP.LOW_PRESSURE", "C1", "EL-1", "P0"]
    assert deliveries(db) == [("sms", "accepted", "double-1", "Ok", False, "")]


@pytest.mark.parametrize(
    ("account", "answer", "error", "is_permanent"),
    [
        (
            "aliyun",
            ("code", "isv.BUSINESS_LIMIT_CONTROL"),
            "aliyun isv.BUSINESS_LIMIT_CONTROL",
            False,
        ),
        ("aliyun", ("code", "isv.MOBILE_NUMBER_ILLEGAL"), "aliyun isv.MOBILE_NUMBER_ILLEGAL", True),
        ("aliyun", ("http", 400, "Throttling.User"), "aliyun Throttling.User", False),
        (
            "aliyun",
            ("http", 404, "InvalidAccessKeyId.NotFound"),
            "aliyun InvalidAccessKeyId.NotFound",
            True,
        ),
        ("aliyun", ("http", 503, "ServiceUnavailable"), "aliyun ServiceUnavailable", False),
        (
            "tencent",
            ("code", "LimitExceeded.PhoneNumberDailyLimit"),
            "tencent LimitExceeded.PhoneNumberDailyLimit",
            False,
        ),
        (
            "tencent",
            ("http", 200, "AuthFailure.SecretIdNotFound"),
            "tencent AuthFailure.SecretIdNotFound",
            True,
        ),
        ("tencent", ("http", 200, "InternalError.Timeout"), "tencent InternalError.Timeout", False),
    ],
)
def test_provider_errors_are_short_categories_retried_or_not(
    double: ProviderDouble,
    account: str,
    answer: tuple[object, ...],
    error: str,
    is_permanent: bool,
) -> None:
    a = aliyun(1) if account == "aliyun" else tencent(1)
    double.script.answers.append(answer)
    r = Recipient(1, 1, "sms", PHONE, "")
    got = Phone(a, endpoints(double), 3.0).send(
        "7.1", r, {"kind": "alarm_opened", "severity": "P0"}
    )
    assert (got.ok, got.error, got.permanent) == (False, error, is_permanent)
    assert got.request_id.startswith("double-") and got.status == error.split(" ", 1)[1]


def test_a_provider_that_does_not_answer_is_retried() -> None:
    gone = ProviderDouble()
    ep = endpoints(gone)
    gone.close()  # nothing listens there now
    r = Recipient(1, 1, "sms", PHONE, "")
    for a in (aliyun(1), tencent(1)):
        got = Phone(a, ep, 1.0).send("7.1", r, {"severity": "P0"})
        assert not got.ok and not got.permanent and "no answer" in got.error, got


def test_the_refusal_is_stored_and_the_row_retried(
    settings: Settings, db: Conn, double: ProviderDouble, firm: tuple[int, int]
) -> None:
    community, firm_id = firm
    phone_accounts.save(db, aliyun(firm_id), KEY)
    staff(db, community, "赵", "sms")
    double.script.answers.append(("code", "isv.BUSINESS_LIMIT_CONTROL"))
    send_p0(settings, db, double, community, retried=True)
    assert deliveries(db) == [
        (
            "sms",
            "failed",
            "double-1",
            "isv.BUSINESS_LIMIT_CONTROL",
            False,
            "aliyun isv.BUSINESS_LIMIT_CONTROL",
        ),
        ("sms", "accepted", "double-2", "OK", False, ""),
    ]


def test_a_firm_without_an_account_fails_for_good_saying_why(
    settings: Settings, db: Conn, double: ProviderDouble, firm: tuple[int, int]
) -> None:
    community, firm_id = firm
    staff(db, community, "孙", "sms")
    send_p0(settings, db, double, community)
    [(kind, status, _, _, perm, error)] = deliveries(db)
    assert (kind, status, perm) == ("sms", "failed", True)
    assert f"no SMS account for firm {firm_id}" in error
    assert not double.calls


def test_a_p0_nobody_acknowledges_goes_from_sms_to_a_voice_call(
    settings: Settings, db: Conn, double: ProviderDouble, firm: tuple[int, int]
) -> None:
    community, firm_id = firm
    phone_accounts.save(db, aliyun(firm_id), KEY)
    phone_accounts.save(db, aliyun(firm_id, "voice"), KEY)
    staff(db, community, "周", "sms", "voice")
    clock = Clock()
    with httpx.Client() as http:
        d = dispatcher(settings, http, double, clock)
        trapped, _ = notify(db, community, "P0", "EL.TRAPPED")
        acked, _ = notify(db, community, "P0", "WS.PUMP_FAILURE")
        p1, _ = notify(db, community, "P1", "EL.DOOR_FAULT")
        d.run_once()
        assert [c.action for c in double.calls] == ["SendSms", "SendSms"], "P0 at once, by SMS"
        clock.advance(minutes=4)
        d.run_once()  # the P1's group, by SMS; no voice call before the set time
        assert [c.action for c in double.calls] == ["SendSms"] * 3
        acknowledge(db, acked, actor="sms-test 周", at=clock.now)
        clock.advance(minutes=2)
        for _ in range(3):
            d.run_once()
        clock.advance(hours=2)
        d.run_once()
        d.close()
    voice = [c for c in double.calls if c.action == "SingleCallByTts"]
    assert len(voice) == 1, "one call, for the unacknowledged P0 only (never the P1)"
    assert voice[0].params["CalledNumber"] == PHONE
    assert voice[0].params["TtsCode"] == "TTS_0001"
    assert json.loads(voice[0].params["TtsParam"])["event"] == "EL.TRAPPED"
    kinds = db.execute(
        "SELECT o.alarm_id, c.kind, d.status, d.provider_status FROM deliveries d"
        " JOIN outbox o ON o.id = d.outbox_id JOIN contact_channels c ON c.id = d.channel_id"
        " WHERE o.kind = 'voice_call'"
    ).fetchall()
    assert kinds == [(trapped, "voice", "accepted", "OK")]
    assert db.execute(
        "SELECT count(*) FROM outbox WHERE alarm_id = %s AND kind = 'voice_call'", (p1,)
    ).fetchone() == (0,)


def test_keys_are_encrypted_at_rest_and_never_logged_nor_stored_in_clear(
    settings: Settings,
    db: Conn,
    double: ProviderDouble,
    firm: tuple[int, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    community, firm_id = firm
    caplog.set_level(logging.DEBUG)
    phone_accounts.save(db, tencent(firm_id), KEY)
    staff(db, community, "吴", "sms")
    double.script.answers += [("http", 200, "AuthFailure.SignatureFailure")]
    send_p0(settings, db, double, community)
    assert double.calls, "the provider was called"
    (stored,) = db.execute(
        "SELECT access_key_secret FROM phone_accounts WHERE firm_id = %s", (firm_id,)
    ).fetchone() or ("",)
    assert TENCENT_SECRET not in stored
    assert Fernet(KEY.encode()).decrypt(stored.encode()).decode() == TENCENT_SECRET
    dumps = [
        str(db.execute("SELECT array_agg(d::text) FROM deliveries d").fetchone()),
        str(db.execute("SELECT array_agg(a::text) FROM audit_log a").fetchone()),
        caplog.text,
        repr(phone_accounts.load(db, firm_id, "sms", KEY)),
        b"".join(c.raw for c in double.calls).decode("utf-8", "replace"),
    ]
    for text in dumps:
        assert TENCENT_SECRET not in text


def test_a_changed_key_cannot_open_the_secret_and_says_so(db: Conn, firm: tuple[int, int]) -> None:
    _, firm_id = firm
    phone_accounts.save(db, aliyun(firm_id), KEY)
    with pytest.raises(ConfigError, match="cannot decrypt"):
        phone_accounts.load(db, firm_id, "sms", Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match="not a Fernet key"):
        phone_accounts.load(db, firm_id, "sms", "not-a-key")
    assert phone_accounts.load(db, firm_id, "voice", KEY) is None


@pytest.mark.parametrize(
    ("account", "why"),
    [
        (Account(1, "voice", "tencent", "id", "s", "签", "1", "14"), "no voice channel"),
        (Account(1, "sms", "aliyun", "id", "s", "", "SMS_1"), "sign name"),
        (Account(1, "sms", "tencent", "id", "s", "签", "1", ""), "SmsSdkAppId"),
        (Account(1, "sms", "huawei", "id", "s", "签", "1"), "aliyun or tencent"),
        (Account(1, "sms", "aliyun", "", "s", "签", "1"), "access key id"),
        (Account(1, "sms", "aliyun", "id", "x" * 300, "签", "1"), "access key secret"),
    ],
)
def test_an_account_that_cannot_send_is_refused(account: Account, why: str) -> None:
    with pytest.raises(AccountError, match=why):
        phone_accounts.check(account)


# -- pure -------------------------------------------------------------------------------------


def test_phone_numbers_are_mainland_mobiles() -> None:
    assert mobile("+8613800138000") == mobile("13800138000") == "13800138000"
    for bad in ("12800138000", "1380013800", "+1 2025550100", "13800138000\n", "＋8613800138000"):
        with pytest.raises(BadAddress, match=r"mainland China mobile|spaces or control"):
            check_address("sms", bad)
    check_address("voice", "13900139000")


def test_only_a_voice_call_reaches_a_voice_channel() -> None:
    assert reaches("voice_call", "voice") and not reaches("voice_call", "sms")
    assert reaches("alarm_opened", "sms") and not reaches("alarm_opened", "voice")
    assert not reaches("reminder", "voice") and not reaches("platform_alarm_opened", "voice")


def test_the_wait_before_a_voice_call_is_checked() -> None:
    kw: dict[str, object] = {
        "grouped": [],
        "group_wait_s": 0,
        "group_interval_s": 0,
        "quiet_hours": "",
        "quiet_severities": [],
        "timezone": "Asia/Shanghai",
        "reminder_minutes": {},
    }
    assert Policy.build(**kw, voice_after_s=90).voice_after == timedelta(seconds=90)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="voice call"):
        Policy.build(**kw, voice_after_s=0)  # type: ignore[arg-type]


def test_template_variables_are_short_printable_and_in_order() -> None:
    payload = {
        "kind": "alarm_opened",
        "severity": "P0",
        "name": {"zh": "电梯困人", "en": "Passenger trapped"},
        "code": "EL.TRAPPED",
        "community_name": "阳光花园" * 10,
        "building": "3号楼",
        "device": "EL-\x00-0001",
    }
    v = variables(payload)
    assert v["event"] == "电梯困人" and v["level"] == "P0" and v["device"] == "EL--0001"
    assert len(v["place"]) == 20
    assert positional(v) == [v["event"], v["place"], v["device"], v["level"]]
    group = {"kind": "group", "severity": "P1", "count": 3, "items": [payload]}
    assert variables(group)["event"] == "电梯困人 等3项"
    assert variables({})["event"] == ""


def test_which_codes_are_permanent() -> None:
    assert permanent("isv.MOBILE_NUMBER_ILLEGAL") and permanent("AuthFailure.SecretIdNotFound")
    assert not permanent("isv.BUSINESS_LIMIT_CONTROL") and not permanent("InternalError.Timeout")
    assert not permanent("LimitExceeded.PhoneNumberDailyLimit") and not permanent("unknown")
