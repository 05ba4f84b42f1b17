"""Analytics: acknowledging an alarm, by an API call or a signed, expiring, single-use link.

Acknowledging records who and when on the alarm, moves its work order to "responded" (the
responsible party has taken it on) and cancels the escalation still pending. A link carries
``<alarm id>.<person>.<expiry>.<token id>.<signature>``; the signature is HMAC-SHA256 with the
platform's secret, and the token id is recorded when used, so a link works once.

A link made out to one person on the roster also carries their id
(``<alarm id>.p<person id>.<person>.<expiry>.<token id>.<signature>``): it opens that alarm on
the duty pages for them alone. One posted to a group (a WeCom or DingTalk robot) carries
``g`` instead: whoever follows it must sign in (docs/pages.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from core.db import Conn
from lifecycle.work_orders import TransitionError, transition


class AckError(ValueError):
    pass


GROUP: int = 0  # the person id of a link posted to a group: sign-in required


@dataclass(frozen=True, slots=True)
class AckToken:
    alarm_id: int
    person: str
    expires: int  # Unix seconds
    token_id: str
    # The roster person the link is made out to; GROUP for a group's link; None for a link
    # that names a person only (acknowledging is all it does).
    person_id: int | None = None

    @property
    def for_group(self) -> bool:
        return self.person_id == GROUP


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _mac(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())


def make_token(
    secret: str, alarm_id: int, person: str, expires: int, *, person_id: int | None = None
) -> str:
    """A signed link token; ``person_id``: the roster person it is for (``GROUP``: a group's)."""
    if person_id is not None and person_id < 0:
        raise ValueError("person_id is a roster id (or GROUP)")
    who = "" if person_id is None else ("g." if person_id == GROUP else f"p{person_id}.")
    body = f"{alarm_id}.{who}{_b64(person.encode())}.{expires}.{secrets.token_urlsafe(9)}"
    return f"{body}.{_mac(secret, body)}"


def _person_id(part: str) -> int:
    if part == "g":
        return GROUP
    if not part.startswith("p") or not part[1:].isdigit():
        raise ValueError(part)
    return int(part[1:])


def read_token(secret: str, token: str, *, now: float) -> AckToken:
    """The token's content, if its signature holds and it has not expired."""
    try:
        parts = token.split(".")
        person_id = _person_id(parts.pop(1)) if len(parts) == 6 else None
        alarm, person, expires, token_id, mac = parts
        who = "" if person_id is None else token.split(".")[1] + "."
        body = f"{alarm}.{who}{person}.{expires}.{token_id}"
        pad = "=" * (-len(person) % 4)
        decoded = AckToken(
            int(alarm),
            base64.urlsafe_b64decode(person + pad).decode(),
            int(expires),
            token_id,
            person_id,
        )
    except ValueError:
        raise AckError(
            "this acknowledgement link is malformed; use the link from the message as it is"
        ) from None
    if not hmac.compare_digest(_mac(secret, body), mac):
        raise AckError("this acknowledgement link is not valid")
    if now > decoded.expires:
        raise AckError(
            "this acknowledgement link has expired; acknowledge in the duty app or reply to the duty room"
        )
    return decoded


def acknowledge(
    conn: Conn, alarm_id: int, *, actor: str, at: datetime, token_id: str | None = None
) -> None:
    """Record the acknowledgement; the work order becomes "responded" if it was only "occurred"."""
    with conn.transaction():
        if token_id is not None:
            used = conn.execute(
                "INSERT INTO ack_tokens_used (token_id, alarm_id, used_by) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING token_id",
                (token_id, alarm_id, actor),
            ).fetchone()
            if used is None:
                raise AckError("this acknowledgement link was already used")
        row = conn.execute(
            "UPDATE alarms SET state = 'acknowledged', acknowledged_at = coalesce(acknowledged_at, %s),"
            " acknowledged_by = coalesce(acknowledged_by, %s) WHERE id = %s AND state <> 'cleared'"
            " RETURNING id",
            (at, actor, alarm_id),
        ).fetchone()
        if row is None:
            raise AckError(f"alarm {alarm_id} is not open")
        wo = conn.execute(
            "SELECT id, status FROM work_orders WHERE alarm_id = %s", (alarm_id,)
        ).fetchone()
        if wo is not None and wo[1] == "occurred":
            try:
                transition(conn, int(wo[0]), "responded", actor=actor, at=at, note="acknowledged")
            except TransitionError as e:  # raced with another transition: theirs stands
                raise AckError(str(e)) from e
