"""Notify: the signed generic webhook, by Standard Webhooks (https://www.standardwebhooks.com;
pure signing with the ``standardwebhooks`` package; ``notify.channels`` sends it).

The body is the notification's JSON. Headers:

    webhook-id         <outbox id>.<channel id> (p<notice id>.<channel id> for a platform
                       notice): the same for every retry, so a receiver can drop a repeat it
                       already accepted
    webhook-timestamp  Unix seconds when signed
    webhook-signature  v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">

keyed with the channel's secret, a Standard Webhooks secret: ``whsec_`` + the base64 of 24 to 64
random bytes (``new_secret``; ``core.channel_addresses.check_secret``). A receiver verifies with
any Standard Webhooks library, e.g. ``standardwebhooks.Webhook(secret).verify(body, headers)``,
which refuses a timestamp more than five minutes off and, since the id is signed, a replay under
another id. A secret stored before this scheme (no ``whsec_`` prefix) keys the HMAC with its
UTF-8 bytes: the receiver's secret is then ``as_standard(old)``, ``whsec_`` + their base64. A
webhook without a secret is not sent (``BadSecret``: "no signing secret").
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook

from core.channel_addresses import SECRET_PREFIX, secret_key


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def as_standard(secret: str) -> str:
    """The Standard Webhooks secret a receiver verifies with, for a stored secret."""
    return SECRET_PREFIX + base64.b64encode(secret_key(secret)).decode()


def sign(secret: str, delivery: str, timestamp: int, body: bytes) -> str:
    when = datetime.fromtimestamp(timestamp, UTC)
    return Webhook(secret_key(secret)).sign(delivery, when, body.decode("utf-8"))


def headers(secret: str, body: bytes, timestamp: int, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "webhook-id": delivery,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, delivery, timestamp, body),
    }
