"""Notify: the channels a person is reached on, behind one interface. Each sends one
notification to one recipient and says whether the channel accepted it (``Sent``):

    webhook    the JSON body, signed by Standard Webhooks (``notify.webhook``); accepted on
               HTTP 2xx
    wecom      WeCom / DingTalk group robot, rendered in the person's language
    dingtalk   (``notify.robots``); accepted on HTTP 200 with ``errcode`` 0
    email      over SMTP; accepted once the server took it
    mqtt       the person's duty app, QoS 1 on their own topic (``notify.duty_app``)
    sms        the firm's SMS provider, Aliyun or Tencent Cloud, on its official SDK
    voice      (a P0's voice call) the firm's Aliyun voice account (``notify.providers``);
               accepted when the provider says so, its request id and status in the log

Each delivery has an id, ``<outbox id>.<channel id>`` (``p<notice id>.<channel id>`` for a
platform notice), the same on every retry, so a receiver that already has it can drop the
repeat.

Every HTTP send goes to the address ``core.channel_addresses.target`` checked, following no
redirect, and what is stored of a failure is a short category (``HTTP 500``, ``ReadTimeout: no
answer in time``, ``refused: private address``), never the remote answer nor a robot's URL (its
key is a credential).

``attempt`` is the one place a send can fail: whatever goes wrong while building or sending one
delivery, of whatever type, comes back as a failed ``Attempt`` with its error text, never as an
exception. A failure no retry can mend (an address that is not one, an address the mail server
refuses for good) is ``permanent``. Every wait of a send (connecting, writing, each read of the
answer, the broker's acknowledgement) is bounded by the channel's timeout, and at most
``MAX_ANSWER`` bytes of an HTTP answer are read.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

import httpx
import orjson

from core.channel_addresses import (
    STRICT,
    AddressPolicy,
    BadAddress,
    BadSecret,
    Refused,
    Target,
    check_address,
    shown,
    target,
)
from core.wire import duty_topic
from notify.duty_app import DutyApps
from notify.messages import render
from notify.recipients import Recipient
from notify.robots import dingtalk_body, dingtalk_url, robot_accepted, wecom_body
from notify.webhook import headers

__all__ = ["BadAddress", "Refused", "check_address"]  # where callers have long found them

log = logging.getLogger("shouwang.notify")

Sent = tuple[bool, int | None, str]
"""(accepted, HTTP status if the channel has one, error text when not accepted)"""

MAX_ANSWER = 64 * 1024
"""The most of an HTTP answer read: the status and an error text are all that is needed."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A provider's answer (SMS, voice): what ``Sent`` says, the provider's request id and
    status, and whether a refusal is one no retry can mend."""

    ok: bool
    error: str = ""
    request_id: str = ""
    status: str = ""
    http_status: int | None = None
    permanent: bool = False


class Channel(Protocol):
    def send(self, delivery: str, r: Recipient, payload: dict[str, Any]) -> Sent | Receipt: ...


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str
    port: int
    sender: str


def _post(
    http: httpx.Client, to: Target, body: bytes, hdrs: dict[str, str], timeout_s: float
) -> tuple[int, bytes]:
    """POST to the checked address, following no redirect, and read at most ``MAX_ANSWER``
    bytes of the answer: (status, answer)."""
    with http.stream(
        "POST",
        to.url,
        content=body,
        headers={**hdrs, "Host": to.host_header},
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        extensions={"sni_hostname": to.sni} if to.sni else None,
    ) as resp:
        got = bytearray()
        for chunk in resp.iter_bytes():
            got += chunk
            if len(got) >= MAX_ANSWER:
                break
        return resp.status_code, bytes(got[:MAX_ANSWER])


def _text(status: int) -> str:
    """What is stored of a refused answer: its status, never its body."""
    return f"HTTP {status} (redirect not followed)" if 300 <= status < 400 else f"HTTP {status}"


@dataclass(frozen=True, slots=True)
class Webhook:
    http: httpx.Client
    timeout_s: float = 5.0
    policy: AddressPolicy = STRICT

    def send(self, delivery: str, r: Recipient, payload: dict[str, Any]) -> Sent:
        body = orjson.dumps(payload)
        hdrs = headers(r.secret, body, int(time.time()), delivery)  # BadSecret: nothing sent
        to = target(r.kind, r.address, self.policy)
        status, _ = _post(self.http, to, body, hdrs, self.timeout_s)
        ok = 200 <= status < 300
        return ok, status, "" if ok else _text(status)


@dataclass(frozen=True, slots=True)
class Robot:
    """WeCom and DingTalk group robots (by the recipient's channel kind)."""

    http: httpx.Client
    timeout_s: float = 5.0
    policy: AddressPolicy = STRICT

    def send(self, delivery: str, r: Recipient, payload: dict[str, Any]) -> Sent:
        title, text = render(payload, r.language)
        if r.kind == "wecom":
            url, msg = r.address, wecom_body(title, text)
        else:
            url, msg = (
                dingtalk_url(r.address, r.secret, int(time.time() * 1000)),
                dingtalk_body(title, text),
            )
        status, answer = _post(
            self.http,
            target(r.kind, url, self.policy),
            orjson.dumps(msg),
            {"Content-Type": "application/json; charset=utf-8"},
            self.timeout_s,
        )
        try:
            parsed: Any = orjson.loads(answer)
        except orjson.JSONDecodeError:
            parsed = None
        ok = status == 200 and robot_accepted(parsed)
        if ok:
            return True, status, ""
        code = parsed.get("errcode") if isinstance(parsed, dict) else None
        return False, status, _text(status) + (f", errcode {code}" if isinstance(code, int) else "")


@dataclass(frozen=True, slots=True)
class Email:
    smtp: Smtp
    timeout_s: float = 5.0

    def send(self, delivery: str, r: Recipient, payload: dict[str, Any]) -> Sent:
        title, text = render(payload, r.language)
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = title, self.smtp.sender, r.address
        msg["Message-ID"] = make_msgid(idstring=f"shouwang.{delivery}")
        msg.set_content(text)
        with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=self.timeout_s) as client:
            client.send_message(msg)
        return True, None, ""


@dataclass(frozen=True, slots=True)
class DutyApp:
    """The person's duty app: QoS 1 on its own topic; accepted once the broker has it."""

    apps: DutyApps

    def send(self, delivery: str, r: Recipient, payload: dict[str, Any]) -> Sent:
        title, text = render(payload, r.language)
        message = orjson.dumps({"id": delivery, "title": title, "text": text, **payload})
        ok, error = self.apps.publish(duty_topic(r.address), message)
        return ok, None, error


def configured(
    http: httpx.Client,
    smtp: Smtp | None = None,
    duty_apps: DutyApps | None = None,
    *,
    timeout_s: float = 5.0,
    policy: AddressPolicy = STRICT,
) -> dict[str, Channel]:
    """The channels this dispatcher can send on, by ``contact_channels.kind``: the HTTP ones
    always (to the addresses ``policy`` allows), e-mail with an SMTP server, the duty app with a
    broker connection."""
    robot = Robot(http, timeout_s, policy)
    channels: dict[str, Channel] = {
        "webhook": Webhook(http, timeout_s, policy),
        "wecom": robot,
        "dingtalk": robot,
    }
    if smtp is not None:
        channels["email"] = Email(smtp, timeout_s)
    if duty_apps is not None:
        channels["mqtt"] = DutyApp(duty_apps)
    return channels


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    http_status: int | None
    error: str
    latency_ms: float
    permanent: bool = False  # no retry can mend it
    request_id: str = ""  # the provider's (SMS, voice)
    provider_status: str = ""


def failed(error: str, *, permanent: bool = False, latency_ms: float = 0.0) -> Attempt:
    return Attempt(False, None, error, latency_ms, permanent)


def _refused_for_good(e: smtplib.SMTPRecipientsRefused) -> bool:
    codes = [v[0] for v in e.recipients.values() if isinstance(v, tuple) and v]
    return bool(codes) and all(isinstance(c, int) and c >= 500 for c in codes)


def attempt(
    channel: Channel, delivery: str, r: Recipient, build: Callable[[], dict[str, Any]]
) -> Attempt:
    """Build the recipient's payload, check the address, send once, and time it. Nothing
    raises: every error, of any type, is a failed attempt, permanent when no retry can mend it."""
    began = time.perf_counter()
    status: int | None = None
    permanent = False
    try:
        payload = build()
        check_address(r.kind, r.address)
        sent = channel.send(delivery, r, payload)
        if isinstance(sent, Receipt):
            return Attempt(
                sent.ok,
                sent.http_status,
                sent.error,
                (time.perf_counter() - began) * 1000,
                sent.permanent and not sent.ok,
                sent.request_id,
                sent.status,
            )
        ok, status, error = sent
    except (Refused, BadSecret) as e:
        ok, error, permanent = False, str(e), True
    except BadAddress as e:
        ok, error, permanent = False, f"bad address: {e}", True
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
        ok, error, permanent = False, f"bad address: {type(e).__name__}", True
    except httpx.TimeoutException as e:
        ok, error = False, f"{type(e).__name__}: no answer in time"
    except httpx.HTTPError as e:  # the category only: no text from the remote end
        ok, error = False, type(e).__name__
    except smtplib.SMTPNotSupportedError as e:  # e.g. a non-ASCII address, no SMTPUTF8 there
        ok, error, permanent = False, f"address not supported by the mail server: {e}", True
    except smtplib.SMTPRecipientsRefused as e:
        ok, permanent = False, _refused_for_good(e)
        error = f"{'address refused' if permanent else 'SMTPRecipientsRefused'}: {e.recipients}"
    except (OSError, smtplib.SMTPException) as e:
        ok, error = False, f"{type(e).__name__}: {e}"
    except Exception as e:  # a bug or a hostile answer: this delivery fails, the stage goes on
        log.exception(
            "delivery %s to %s (%s): unexpected error", delivery, r.kind, shown(r.address)
        )
        ok, error = False, f"internal error: {type(e).__name__}: {e}"
    return Attempt(ok, status, error, (time.perf_counter() - began) * 1000, permanent)
