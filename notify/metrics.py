"""Notify: its metrics (module-level, in the process's default registry).

- ``shouwang_notify_outbox_backlog``: the outbox rows that are due and not delivered: not
  done, not held under a lease (in a dispatcher's hands, or waiting for a retry after a
  backoff), and claimable as they are (a batch's lead, an escalation, or a severity that is not
  grouped: rows of grouped severities wait for their batch). ``notify.outbox.backlog``.
- ``shouwang_notify_outbox_oldest_seconds``: how long ago the oldest of them was written (0 if
  none).
- ``shouwang_notify_deliveries_total{channel,outcome}``: delivery attempts by channel kind
  (webhook, wecom, dingtalk, email, mqtt, sms, voice) and outcome (accepted, failed,
  failed_permanently), outbox rows and platform notices alike.
- ``shouwang_notify_delivery_seconds{channel}``: the time of each send that was made.

Both gauges are re-read at each housekeeping round. The heartbeat (``core/metrics.py``) says
``progressed`` with each delivery attempt and ``pending`` with the backlog.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BACKLOG = Gauge(
    "shouwang_notify_outbox_backlog", "outbox rows due and not delivered (claimable now)"
)
OLDEST = Gauge(
    "shouwang_notify_outbox_oldest_seconds",
    "age of the oldest outbox row due and not delivered (0 if none)",
)
DELIVERIES = Counter(
    "shouwang_notify_deliveries",
    "delivery attempts, by channel kind and outcome (accepted, failed, failed_permanently)",
    ["channel", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "shouwang_notify_delivery_seconds",
    "time of one send, by channel kind",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def outcome(ok: bool, permanent: bool) -> str:
    """An attempt's outcome label (pure), as the delivery log line names it."""
    return "accepted" if ok else ("failed_permanently" if permanent else "failed")
