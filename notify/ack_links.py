"""Notify: acknowledgement links, and each person's copy of a message carrying them (pure).

A link is ``<url>/<token>``: signed, expiring and single-use (``lifecycle.acknowledge``), made
out to the person who receives it, so the acknowledgement records who it was. A link for one
person on their own channel opens that alarm on the duty pages for them alone; a link posted to
a group robot (WeCom, DingTalk), which anyone in the group can follow, always asks for a
sign-in (docs/pages.md).

A resident's complaint has no alarm, and the signed links are made out for an alarm: its notice
carries the plain address of its duty page, ``<pages url>/duty/complaints/<work order>``, which
asks whoever follows it to sign in (:func:`with_page_links`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from lifecycle.acknowledge import GROUP, make_token
from notify.recipients import Recipient

# Channels whose messages a whole chat group reads.
GROUP_KINDS: Final = frozenset({"wecom", "dingtalk"})


@dataclass(frozen=True, slots=True)
class AckLinks:
    """Signed, expiring, single-use acknowledgement links: ``<url>/<token>``."""

    secret: str
    url: str
    valid: timedelta = timedelta(minutes=30)

    def link(
        self, alarm_id: int, person: str, now: datetime, *, person_id: int | None = None
    ) -> str:
        expires = int((now + self.valid).timestamp())
        token = make_token(self.secret, alarm_id, person, expires, person_id=person_id)
        return f"{self.url.rstrip('/')}/{token}"

    def personal(
        self,
        payload: dict[str, Any],
        person: str,
        now: datetime,
        *,
        person_id: int | None = None,
    ) -> dict[str, Any]:
        """The payload as ``person`` receives it: each open alarm in it (one, or a group's
        items) with their own link; a cleared alarm needs none. With ``person_id`` (a roster
        id, or ``GROUP``) the links open the duty pages as described above."""

        def linked(p: dict[str, Any]) -> dict[str, Any]:
            if p.get("kind") == "alarm_cleared" or p.get("alarm_id") is None:
                return p
            url = self.link(int(p["alarm_id"]), person, now, person_id=person_id)
            return {**p, "ack_url": url}

        if payload.get("kind") == "group":
            return {**payload, "items": [linked(p) for p in payload.get("items", [])]}
        return linked(payload)

    def for_recipient(self, payload: dict[str, Any], r: Recipient, now: datetime) -> dict[str, Any]:
        """The payload as ``r`` receives it on ``r``'s channel: a personal link on the person's
        own channel, a sign-in link on a group robot."""
        person_id = GROUP if r.kind in GROUP_KINDS else r.person_id
        return self.personal(payload, r.name or str(r.person_id), now, person_id=person_id)


COMPLAINT_KINDS: Final = frozenset({"complaint_filed", "complaint_escalation"})


def pages_origin(url: str) -> str:
    """The scheme and host of ``url`` (the acknowledgement page's, which the duty pages share):
    where the duty pages are; "" for a URL without them."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def with_page_links(payload: dict[str, Any], pages_url: str) -> dict[str, Any]:
    """The payload with each complaint in it (one, or a group's items) carrying ``page_url``, its
    duty page under ``pages_url`` (sign-in needed); unchanged without a ``pages_url``."""
    base = pages_url.rstrip("/")

    def linked(p: dict[str, Any]) -> dict[str, Any]:
        wo = p.get("work_order_id")
        if not base or p.get("kind") not in COMPLAINT_KINDS or not isinstance(wo, int):
            return p
        return {**p, "page_url": f"{base}/duty/complaints/{wo}"}

    if payload.get("kind") == "group":
        return {**payload, "items": [linked(p) for p in payload.get("items", [])]}
    return linked(payload)
