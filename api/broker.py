"""API: the broker follows credential changes, as ``shouwang broker sync`` makes it.

Runs on a synchronous connection (in a worker thread). Concurrent syncs, from this API or from
the command line, are serialised by an advisory lock, so the password file and ACL are written
by one writer at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from broker.sync import platform_services, sync
from core.db import Conn
from core.errors import ConfigError
from core.settings import Settings

log = logging.getLogger("shouwang.api")
_LOCK_KEY = 0x5357_4252  # "SWBR"


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
    conn.commit()
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        n, changed = sync(
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
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        conn.commit()
    return BrokerSync(True, f"{n} broker accounts; files {'updated' if changed else 'unchanged'}")
