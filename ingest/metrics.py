"""Ingest: its metrics (module-level, in the process's default registry) and the pure choices
behind them: a message's kind, the directories the endpoint reports.

The heartbeat (``core/metrics.py``) says ``progressed`` with the readings each flush committed
and ``pending`` with the messages received and not committed yet. With ``shouwang ingest
--workers N`` each worker is its own process on its own port: ``metrics_port_ingest + i`` for
worker ``i`` (``shouwang/stages.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from core.wire import PREFIX, Channel

log = logging.getLogger("shouwang.ingest")

MESSAGES = Counter(
    "shouwang_ingest_messages",
    "messages ingest committed (as rows or rejects), by the topic's kind (its channel;"
    " unknown for a topic outside the contract)",
    ["kind"],
)
READINGS = Counter("shouwang_ingest_readings", "readings committed")
REJECTS = Counter(
    "shouwang_ingest_rejects",
    "rejects committed (stored, or counted beyond a sender's reject limit), by reason",
    ["reason"],
)
FLUSH_ROWS = Histogram(
    "shouwang_ingest_flush_rows",
    "readings per flush",
    buckets=(0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
)
FLUSH_SECONDS = Histogram(
    "shouwang_ingest_flush_seconds",
    "time to decode, commit and acknowledge one flush",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BROKER_CONNECTED = Gauge(
    "shouwang_ingest_broker_connected", "1 while connected and subscribed to the broker, else 0"
)
DATABASE_SIZE = Gauge(
    "shouwang_database_size_bytes", "the database's size (pg_database_size), read once a minute"
)

DATABASE_SIZE_EVERY_S = 60.0
KINDS = frozenset(c.value for c in Channel)


def message_kind(topic: str) -> str:
    """The kind label of a message's topic: its channel (telemetry, event, status, batch,
    config), or ``unknown`` for a topic that is not the contract's (pure)."""
    parts = topic.split("/")
    if len(parts) == 5 and f"{parts[0]}/{parts[1]}" == PREFIX and parts[4] in KINDS:
        return parts[4]
    return "unknown"


LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})


def is_local(host: str) -> bool:
    """Whether a database host (from its URL; empty or a socket directory: local) is this
    machine (pure)."""
    return host in LOCAL_HOSTS or host.startswith("/")


def directories(state_dir: Path, data_directory: str | None) -> list[Path]:
    """What the ingest endpoint reports the disk of: the broker's state, and the database's
    data directory when it is on this machine and readable (pure but for the access check)."""
    out = [state_dir / "mosquitto"]
    if data_directory:
        p = Path(data_directory)
        if p.is_dir():
            out.append(p)
    return out
