"""Notify: acknowledgement links, and each person's copy of a message carrying them (pure).

A link is ``<url>/<token>``: signed, expiring and single-use (``lifecycle.acknowledge``), made
out to the person who receives it, so the acknowledgement records who it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lifecycle.acknowledge import make_token


@dataclass(frozen=True, slots=True)
class AckLinks:
    """Signed, expiring, single-use acknowledgement links: ``<url>/<token>``."""

    secret: str
    url: str
    valid: timedelta = timedelta(hours=24)

    def link(self, alarm_id: int, person: str, now: datetime) -> str:
        expires = int((now + self.valid).timestamp())
        return f"{self.url.rstrip('/')}/{make_token(self.secret, alarm_id, person, expires)}"

    def personal(self, payload: dict[str, Any], person: str, now: datetime) -> dict[str, Any]:
        """The payload as ``person`` receives it: each open alarm in it (one, or a group's
        items) with their own link; a cleared alarm needs none."""

        def linked(p: dict[str, Any]) -> dict[str, Any]:
            if p.get("kind") == "alarm_cleared" or p.get("alarm_id") is None:
                return p
            return {**p, "ack_url": self.link(int(p["alarm_id"]), person, now)}

        if payload.get("kind") == "group":
            return {**payload, "items": [linked(p) for p in payload.get("items", [])]}
        return linked(payload)
