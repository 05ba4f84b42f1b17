"""Gateway: its metrics (module-level, in the process's default registry) and the pure choice of
a poll's outcome.

The heartbeat (``core/metrics.py``) says ``progressed`` with the entries the platform
acknowledged and ``pending`` with the entries the buffer holds. The endpoint listens on the
settings' ``metrics_host``:``metrics_port_gateway`` (``SHOUWANG_METRICS_PORT_GATEWAY``, 9465;
``shouwang health --stage gateway`` on the box reads it).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge

from gateway.connector import Poll

log = logging.getLogger("shouwang.gateway")

POLLS = Counter(
    "shouwang_gateway_polls",
    "polls of a device, by outcome (ok, error, timeout)",
    ["device", "outcome"],
)
BUFFER_ENTRIES = Gauge("shouwang_gateway_buffer_entries", "entries the buffer holds")
BUFFER_BYTES = Gauge("shouwang_gateway_buffer_bytes", "bytes of the entries the buffer holds")
PUBLISHED = Counter(
    "shouwang_gateway_published", "entries published to the broker in batches (sent again too)"
)
ACKNOWLEDGED = Counter(
    "shouwang_gateway_acknowledged", "entries the platform said it stored (then forgotten)"
)
DROPPED = Counter(
    "shouwang_gateway_dropped", "entries the buffer's byte limit pushed out before they were sent"
)
BROKER_CONNECTED = Gauge("shouwang_gateway_broker_connected", "1 while connected to the broker")

_TIMEOUT_SIGNS = ("TimeoutError", "timed out", "No response received")


def poll_outcome(poll: Poll) -> str:
    """``ok`` when the device answered, ``timeout`` when it did not answer in time, else
    ``error`` (refused connection, a Modbus exception, an answer not fitting the profile)
    (pure)."""
    if poll.decoded is not None:
        return "ok"
    if any(sign in poll.error for sign in _TIMEOUT_SIGNS):
        return "timeout"
    return "error"
