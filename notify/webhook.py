"""Notify: the signed generic webhook (pure signing; ``notify.channels`` sends it).

The body is the notification's JSON. Headers:

    X-Shouwang-Delivery   <outbox id>.<channel id>: the same for every retry, so a receiver
                          can drop a repeat it already accepted
    X-Shouwang-Timestamp  Unix seconds when signed
    X-Shouwang-Signature  v1=<hex HMAC-SHA256 of "<timestamp>.<body>" with the channel's secret>

A receiver recomputes the signature and refuses a timestamp older than its tolerance (replay).
"""

from __future__ import annotations

import hashlib
import hmac

TOLERANCE_S = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def headers(secret: str, body: bytes, timestamp: int, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Shouwang-Delivery": delivery,
        "X-Shouwang-Timestamp": str(timestamp),
        "X-Shouwang-Signature": sign(secret, body, timestamp),
    }


def verify(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """What a receiver checks: the signature, and that the timestamp is fresh."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), signature)
