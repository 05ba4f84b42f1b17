"""Ingest: the shell. Builds the consumer from settings and runs it; with several workers, runs
each as its own process, all sharing the broker subscription."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import replace

import psycopg
from psycopg.conninfo import conninfo_to_dict

from core.db import connect
from core.errors import ServiceUnavailable
from core.logs import configure
from core.metrics import serve
from core.settings import Settings, load_settings
from ingest.consumer import Consumer, IngestConfig, retire_session
from ingest.metrics import directories, is_local

log = logging.getLogger("shouwang.ingest")


def config_from(s: Settings, client_id: str) -> IngestConfig:
    return IngestConfig(
        client_id=client_id,
        username=s.mqtt_ingest_username,
        password=s.mqtt_ingest_password.get_secret_value(),
        host=s.mqtt_host,
        port=s.mqtt_port,
        share_group=s.ingest_share_group,
        flush_seconds=s.ingest_flush_seconds,
        flush_bytes=s.ingest_flush_bytes,
        max_payload_bytes=s.ingest_max_payload_bytes,
        max_future_ms=int(s.ingest_max_future_seconds * 1000),
        max_age_ms=int(s.ingest_max_age_days * 86_400_000),
        reject_limit_per_minute=s.ingest_reject_limit_per_minute,
        max_buffer_bytes=s.ingest_max_buffer_bytes,
        device_messages_per_minute=s.ingest_device_messages_per_minute,
        device_burst_messages=s.ingest_device_burst_messages,
        gateway_messages_per_minute=s.ingest_gateway_messages_per_minute,
        gateway_burst_messages=s.ingest_gateway_burst_messages,
        catch_up_s=s.ingest_catch_up_seconds,
        retention_days=s.retention_days,
        rollup_retention_days=s.rollup_retention_days,
        events_retention_days=s.events_retention_days,
        archive_after_days=s.archive_after_days,
        rejects_retention_days=s.rejects_retention_days,
        audit_retention_days=s.audit_retention_days,
    )


def main(
    s: Settings,
    *,
    client_id: str | None = None,
    shared: bool = False,
    metrics_port: int | None = None,
) -> None:
    """Run one worker until SIGTERM or SIGINT; its metrics on ``metrics_port`` (default: the
    settings' ``metrics_port_ingest``)."""
    cfg = replace(config_from(s, client_id or s.ingest_client_id), shared=shared)
    port = s.metrics_port("ingest") if metrics_port is None else metrics_port
    paths = directories(s.state_dir, data_directory(s.database_url))
    heartbeat, _port = serve("ingest", s.metrics_host, port, paths)
    consumer = Consumer(cfg, s.database_url, heartbeat)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
        signal.signal(signal.SIGINT, lambda *_: consumer.stop())
    consumer.run()
    st = consumer.stats
    log.info(
        "stopped: %d messages, %d readings, rejects %s", st.messages, st.readings, dict(st.rejects)
    )


def data_directory(database_url: str) -> str | None:
    """The database's data directory when the database is on this machine and tells it (a
    role without pg_read_all_settings is not told; a database down at start: none)."""
    host = str(conninfo_to_dict(database_url).get("host") or "")
    if not is_local(host):
        return None
    try:
        with connect(database_url, autocommit=True, application_name="shouwang-ingest") as conn:
            row = conn.execute("SHOW data_directory").fetchone()
    except (ServiceUnavailable, psycopg.Error) as e:
        log.info("not reporting the database's disk: %s", str(e).splitlines()[0])
        return None
    return None if row is None else str(row[0])


def retire_worker(s: Settings, client_id: str) -> None:
    """Drop a worker id's persistent session. Messages the broker still held for it are lost
    with it: retire only a worker that has drained (stopped cleanly after catching up)."""
    retire_session(config_from(s, client_id))
    log.info("retired the broker session of %s", client_id)


if __name__ == "__main__":  # python -m ingest: as `shouwang ingest` with its defaults
    settings = load_settings()
    configure("ingest", fmt=settings.log_format)
    main(settings)
