"""API: the broker follows credential changes, as ``shouwang broker sync`` makes it.

Runs on a synchronous connection (in a worker thread). Concurrent syncs, from this API or from
the command line, are serialised by ``broker.sync``'s advisory lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from broker.sync import platform_services, sync
from core.db import Conn
from core.errors import ConfigError
from core.settings import Settings

log = logging.getLogger("shouwang.api")


@dataclass(frozen=True, slots=True)
class BrokerSync:
    synced: bool  # the password file and ACL match the registry, and the broker was told
    detail: str


def sync_broker(conn: Conn, s: Settings) -> BrokerSync:
    """Write the broker's files from the registry (committed changes) and signal it.

    A broker that cannot be signalled (not running, no pid file) is reported, not raised: the
    registry change stands, and the next sync brings the broker in line.
    """
    passwd, acl, pid = s.broker_files()
    try:
        done = sync(
            conn,
            platform_services(s),
            passwd=passwd,
            acl=acl,
            pid_file=pid,
            share_group=s.ingest_share_group,
        )
    except ConfigError as e:
        log.warning("broker not brought in line: %s", e)
        return BrokerSync(False, f"{e}; run 'shouwang broker sync' once the broker runs")
    for line in done.skipped:
        log.warning("broker sync: %s", line)
    detail = f"{done.accounts} broker accounts; files {'updated' if done.changed else 'unchanged'}"
    if done.skipped:
        detail += f"; {len(done.skipped)} registry account(s) left out (see the API's log)"
    return BrokerSync(True, detail)
