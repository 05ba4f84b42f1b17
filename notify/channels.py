"""Notify: the channels a person is reached on, behind one interface. Each sends one
notification to one recipient and says whether the channel accepted it (``Sent``):

    webhook    the JSON body, signed (``notify.webhook``); accepted on HTTP 2xx
    wecom      WeCom / DingTalk group robot, rendered in the person's language
    dingtalk   (``notify.robots``); accepted on HTTP 200 with ``errcode`` 0
    email      over SMTP; accepted once the server took it
    mqtt       the person's duty app, QoS 1 on their own topic (``notify.duty_app``)

Each channel names the delivery ``<outbox id>.<channel id>`` the same way on every retry, so a
receiver that already has it can drop the repeat.
"""

from __future__ import annotations

import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

import httpx
import orjson

from core.wire import duty_topic
from notify.duty_app import DutyApps
from notify.messages import render
from notify.recipients import Recipient
from notify.robots import dingtalk_body, dingtalk_url, robot_accepted, wecom_body
from notify.webhook import headers

Sent = tuple[bool, int | None, str]
"""(accepted, HTTP status if the channel has one, error text when not accepted)"""


class Channel(Protocol):
    def send(self, outbox_id: int, r: Recipient, payload: dict[str, Any]) -> Sent: ...


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str
    port: int
    sender: str


@dataclass(frozen=True, slots=True)
class Webhook:
    http: httpx.Client

    def send(self, outbox_id: int, r: Recipient, payload: dict[str, Any]) -> Sent:
        body = orjson.dumps(payload)
        resp = self.http.post(
            r.address,
            content=body,
            headers=headers(r.secret, body, int(time.time()), f"{outbox_id}.{r.channel_id}"),
        )
        ok = 200 <= resp.status_code < 300
        return ok, resp.status_code, "" if ok else resp.text[:500]


@dataclass(frozen=True, slots=True)
class Robot:
    """WeCom and DingTalk group robots (by the recipient's channel kind)."""

    http: httpx.Client

    def send(self, outbox_id: int, r: Recipient, payload: dict[str, Any]) -> Sent:
        title, text = render(payload, r.language)
        if r.kind == "wecom":
            url, msg = r.address, wecom_body(title, text)
        else:
            url, msg = (
                dingtalk_url(r.address, r.secret, int(time.time() * 1000)),
                dingtalk_body(title, text),
            )
        resp = self.http.post(url, json=msg)
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        ok = resp.status_code == 200 and robot_accepted(answer)
        return ok, resp.status_code, "" if ok else resp.text[:500]


@dataclass(frozen=True, slots=True)
class Email:
    smtp: Smtp

    def send(self, outbox_id: int, r: Recipient, payload: dict[str, Any]) -> Sent:
        title, text = render(payload, r.language)
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = title, self.smtp.sender, r.address
        msg["Message-ID"] = make_msgid(idstring=f"shouwang.{outbox_id}.{r.channel_id}")
        msg.set_content(text)
        with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=10) as client:
            client.send_message(msg)
        return True, None, ""


@dataclass(frozen=True, slots=True)
class DutyApp:
    """The person's duty app: QoS 1 on its own topic; accepted once the broker has it."""

    apps: DutyApps

    def send(self, outbox_id: int, r: Recipient, payload: dict[str, Any]) -> Sent:
        title, text = render(payload, r.language)
        message = orjson.dumps(
            {"id": f"{outbox_id}.{r.channel_id}", "title": title, "text": text, **payload}
        )
        ok, error = self.apps.publish(duty_topic(r.address), message)
        return ok, None, error


def configured(
    http: httpx.Client, smtp: Smtp | None = None, duty_apps: DutyApps | None = None
) -> dict[str, Channel]:
    """The channels this dispatcher can send on, by ``contact_channels.kind``: the HTTP ones
    always, e-mail with an SMTP server, the duty app with a broker connection."""
    robot = Robot(http)
    channels: dict[str, Channel] = {"webhook": Webhook(http), "wecom": robot, "dingtalk": robot}
    if smtp is not None:
        channels["email"] = Email(smtp)
    if duty_apps is not None:
        channels["mqtt"] = DutyApp(duty_apps)
    return channels


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    http_status: int | None
    error: str
    latency_ms: float


def attempt(channel: Channel, outbox_id: int, r: Recipient, payload: dict[str, Any]) -> Attempt:
    """Send once and time it; a transport error is a failed attempt, not an exception."""
    began = time.perf_counter()
    status: int | None = None
    try:
        ok, status, error = channel.send(outbox_id, r, payload)
    except (httpx.HTTPError, OSError, smtplib.SMTPException) as e:
        ok, error = False, f"{type(e).__name__}: {e}"
    return Attempt(ok, status, error, (time.perf_counter() - began) * 1000)
