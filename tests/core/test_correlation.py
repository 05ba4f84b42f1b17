"""The correlation id (pure): one derivation, the same id whichever stage computes it from what
it holds (ingest the message, analytics the alarm, notify the notification's payload), and log
lines that carry what a delivery may say without its secrets."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core import logs
from core.correlation import CID_LENGTH, at, correlation_id, of_notice
from lifecycle.alarms import Alarm
from lifecycle.alarms import correlation_id as alarm_correlation_id

UID = "E-0001-EL-01"
TS_MS = 1_764_547_200_123


def test_the_same_message_has_the_same_id_and_another_message_another() -> None:
    cid = correlation_id(UID, TS_MS)
    assert cid == correlation_id(UID, TS_MS)
    assert cid != correlation_id(UID, TS_MS + 1)
    assert cid != correlation_id("E-0001-EL-02", TS_MS)
    assert len(cid) == CID_LENGTH and int(cid, 16) >= 0


def test_the_logs_module_uses_the_same_derivation() -> None:
    assert logs.correlation_id is correlation_id


def test_every_stage_computes_the_id_ingest_logged() -> None:
    """Ingest has (uid, ts in ms); analytics the alarm opened at ts / 1000 (and, adopted from
    the database, the same time in microseconds); notify the payload analytics wrote, with
    ``opened_at`` in ISO 8601. Over many timestamps, all agree."""
    rng = random.Random(17)
    for _ in range(2000):
        ts_ms = rng.randrange(1_500_000_000_000, 2_100_000_000_000)
        ingest = correlation_id(UID, ts_ms)
        alarm = Alarm(1, "EL.TRAPPED", "P0", "event_code", ts_ms / 1000, ts_ms / 1000)
        assert alarm_correlation_id(alarm, UID) == ingest
        opened = datetime.fromtimestamp(ts_ms / 1000, UTC)
        assert at(UID, opened) == ingest
        assert of_notice({"device": UID, "opened_at": opened.isoformat()}) == ingest
        other_zone = opened.astimezone(timezone(timedelta(hours=8))).isoformat()
        assert of_notice({"device": UID, "opened_at": other_zone}) == ingest


def test_a_notice_without_a_device_or_a_time_has_no_id() -> None:
    assert of_notice({"kind": "platform_alarm_opened", "subject": "ingest"}) is None
    assert of_notice({"device": UID}) is None
    assert of_notice({"device": UID, "opened_at": "yesterday"}) is None
    assert of_notice({"device": "", "opened_at": "2026-12-01T08:00:00+00:00"}) is None


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda: correlation_id("", TS_MS), "device's uid"),
        (lambda: correlation_id(UID, 1.5), "whole epoch ms"),  # type: ignore[arg-type]
        (lambda: correlation_id(UID, True), "whole epoch ms"),
        (lambda: at(UID, datetime(2026, 12, 1, 8, 0)), "aware time"),
        (lambda: at(UID, float("nan")), "finite time"),
    ],
)
def test_bad_input_says_what_is_wrong(call: object, says: str) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=says):
        call()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # a robot's URL in a connection error: DingTalk's token and signature, WeCom's key
        (
            "ConnectError for url 'https://oapi.dingtalk.com/robot/send?access_token=d1ngT0ken"
            "&timestamp=1764547200000&sign=c2lnbmF0dXJl%3D'",
            ("d1ngT0ken", "c2lnbmF0dXJl"),
        ),
        ("POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=w3c0mK3y", ("w3c0mK3y",)),
        # a webhook channel's secret and a signature made with it
        (
            "secret whsec_c2hvdXdhbmcgdGVzdCB3ZWJob29rIHNlY3JldCAzMkI= refused",
            ("c2hvdXdhbmcgdGVzdCB3ZWJob29rIHNlY3JldCAzMkI",),
        ),
        (
            "webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
            ("K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN",),
        ),
        # a phone provider's keys (Tencent's signed header, Aliyun's secret in a dict)
        (
            "Authorization: TC3-HMAC-SHA256 Credential=AKIDx/2026-12-01/sms/tc3_request,"
            " SignedHeaders=content-type;host, Signature=9f8e7d6c5b4a",
            ("9f8e7d6c5b4a",),
        ),
        ("{'AccessKeySecret': 'al1yunS3cret', 'RegionId': 'cn-hangzhou'}", ("al1yunS3cret",)),
        ("access_key_secret=al1yunS3cret", ("al1yunS3cret",)),
        # an acknowledgement link
        ("https://sw.example.cn/v1/ack/12.p3.YQ.1764.abc.M4c", ("12.p3.YQ.1764.abc.M4c",)),
    ],
)
def test_what_a_delivery_line_may_carry_is_logged_without_its_secrets(
    text: str, secret: tuple[str, ...]
) -> None:
    shown = logs.redact(text)
    for s in secret:
        assert s not in shown, shown
    assert "***" in shown


def test_redaction_leaves_ordinary_words_alone() -> None:
    text = "outbox 12 delivered to person 3 on webhook channel 4; design=ok, signed off"
    assert logs.redact(text) == text
