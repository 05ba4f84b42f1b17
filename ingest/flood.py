"""Ingest: the flood guard. A token bucket per sender (device or gateway) bounds how fast one
sender's messages are stored, so a sender publishing valid messages as fast as it can (a
compromised terminal, a firmware loop) cannot fill the disk or load analytics through the feed.

Pure: the caller passes the time (ingest's monotonic clock, at receipt) and says which senders
are registered; nothing here reads a clock, the network or the database.

- Each sender has ``burst`` tokens, refilled at ``per_minute`` a minute. A message takes one
  token per started KiB of its payload (at least one; at most ``burst``, so a full bucket always
  admits one message), so packing many readings into large messages buys no extra rate. A
  message without enough tokens is not admitted: ingest rejects it as ``rate_limited``.
- While ingest is not reading from the broker (its start, a lost broker connection, its buffer
  full while the database is away), the broker holds what senders publish and hands it over
  faster than it was sent. ``not_reading(seconds)`` makes up for that: every sender gets a
  spare ``per_minute`` × that time (at most ``catch_up_s``) on top of its bucket, usable for as
  long again afterwards, so a backlog is not taken for a flood. At its start ingest does not
  know how long it was away and assumes ``catch_up_s``.
- Memory: one small entry per sender heard from (callers pass registered senders only); an
  entry idle long enough to have refilled is dropped, which changes nothing (a new one is the
  same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

KIB: Final = 1024
SWEEP_EVERY_S: Final = 60.0  # how often idle entries are dropped
MIN_SPARE_WINDOW_S: Final = 60.0  # a catch-up's spare lasts at least this long

Kind = Literal["d", "g"]  # as in the topic: sw/v1/{d|g}/{uid}/...


@dataclass(frozen=True, slots=True)
class Allowance:
    """What one sender may send: ``per_minute`` messages a minute on average and ``burst`` at
    once, a message counting once per started KiB of payload."""

    per_minute: float
    burst: float

    def __post_init__(self) -> None:
        if not self.per_minute > 0:
            raise ValueError(f"messages per minute must be above 0, not {self.per_minute}")
        if not self.burst >= 1:
            raise ValueError(f"the burst must be at least 1 message, not {self.burst}")

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0

    def cost(self, size: int) -> float:
        return float(min(self.burst, max(1, -(-size // KIB))))

    def describe(self, who: str) -> str:
        return (
            f"{who} sent more than {self.per_minute:g} messages a minute (burst {self.burst:g};"
            f" a message counts once per started KiB): not stored"
        )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float  # when tokens was last brought up to date
    spare: float  # catch-up tokens of episode ``episode``, used after ``tokens``
    episode: int


class FloodGuard:
    def __init__(
        self, device: Allowance, gateway: Allowance, *, catch_up_s: float, now: float
    ) -> None:
        if catch_up_s < 0:
            raise ValueError(f"the catch-up time must be 0 s or more, not {catch_up_s}")
        self.allowances: dict[Kind, Allowance] = {"d": device, "g": gateway}
        self.catch_up_s = catch_up_s
        self._buckets: dict[Kind, dict[str, _Bucket]] = {"d": {}, "g": {}}
        # The current catch-up: what it makes up for, until when. The start is one.
        self._episode = 1
        self._episode_s = catch_up_s
        self._episode_until = now + max(catch_up_s, MIN_SPARE_WINDOW_S) if catch_up_s else now
        self._swept_at = now

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def admit(self, kind: Kind, uid: str, size: int, now: float) -> bool:
        """Whether ``uid``'s message of ``size`` payload bytes, received at ``now``, is within
        its allowance (and if so, take its cost)."""
        allowance = self.allowances[kind]
        buckets = self._buckets[kind]
        b = buckets.get(uid)
        if b is None:
            b = buckets[uid] = _Bucket(allowance.burst, now, 0.0, 0)
        elif now > b.at:
            b.tokens = min(allowance.burst, b.tokens + (now - b.at) * allowance.per_second)
            b.at = now
        catching_up = now < self._episode_until
        if b.episode != self._episode:
            b.episode = self._episode
            b.spare = allowance.per_second * self._episode_s if catching_up else 0.0
        elif not catching_up:
            b.spare = 0.0
        if now - self._swept_at >= SWEEP_EVERY_S:
            self._sweep(now)
        cost = allowance.cost(size)
        if b.tokens >= cost:
            b.tokens -= cost
        elif b.tokens + b.spare >= cost:
            b.spare -= cost - b.tokens
            b.tokens = 0.0
        else:
            return False
        return True

    def not_reading(self, seconds: float, now: float) -> None:
        """Ingest did not read from the broker for ``seconds`` (until ``now``): the broker held
        what senders published meanwhile, and hands it over now."""
        if seconds <= 0 or not self.catch_up_s:
            return
        carried = self._episode_s if now < self._episode_until else 0.0
        self._episode += 1
        self._episode_s = min(self.catch_up_s, carried + seconds)
        self._episode_until = now + max(self._episode_s, MIN_SPARE_WINDOW_S)

    def _sweep(self, now: float) -> None:
        """Drop entries that have refilled and hold no spare a new entry would not get."""
        self._swept_at = now
        catching_up = now < self._episode_until
        for kind, buckets in self._buckets.items():
            allowance = self.allowances[kind]
            full_after = allowance.burst / allowance.per_second
            idle = [
                uid
                for uid, b in buckets.items()
                if now - b.at >= full_after and not (catching_up and b.episode == self._episode)
            ]
            for uid in idle:
                del buckets[uid]
