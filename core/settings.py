"""Shared: the one settings object. Built in each command's `main`, never at import time.

Every value can be set by an environment variable named ``SHOUWANG_<FIELD>`` (for example
``SHOUWANG_DATABASE_URL``), or in ``<state_dir>/shouwang.env``, which the local stack writes;
environment variables win.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_state_dir() -> Path:
    return PROJECT_ROOT / ".state"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOUWANG_", extra="ignore")

    state_dir: Path = Field(default_factory=default_state_dir)

    # Logs (core/logs.py), on stderr: auto writes JSON lines when stderr is not a terminal and
    # human lines on one; json or human choose one whatever it is.
    log_format: Literal["auto", "json", "human"] = "auto"

    # Metrics (core/metrics.py, docs/operations.md): each long-running stage's Prometheus
    # endpoint, on metrics_host at its own port (0: any free port, -1: no endpoint). A stage is
    # stuck when its loop has not turned for health_stuck_after_s, or when work is pending and it
    # finished nothing for that long (`shouwang health --stage NAME`, the status line, the alert
    # rules). A stage's directories are the local paths whose disk use it reports.
    metrics_host: str = "127.0.0.1"
    metrics_port_ingest: int = Field(default=9461, ge=-1, le=65535)
    metrics_port_analytics: int = Field(default=9462, ge=-1, le=65535)
    metrics_port_notify: int = Field(default=9463, ge=-1, le=65535)
    metrics_port_api: int = Field(default=9464, ge=-1, le=65535)
    metrics_port_gateway: int = Field(default=9465, ge=-1, le=65535)
    health_stuck_after_s: float = Field(default=60.0, gt=0)

    # Database (TimescaleDB). The local stack listens on this port; point it elsewhere for an
    # external database.
    database_url: str = "postgresql://shouwang@127.0.0.1:54329/shouwang"

    # Broker.
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 18883
    # Connect to the broker over TLS (mqtt_port is then its TLS listener), checking its
    # certificate against mqtt_ca_file (empty: the system's trust store) and mqtt_host.
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_ingest_username: str = "svc-ingest"
    mqtt_ingest_password: SecretStr = SecretStr("")
    mqtt_analytics_username: str = "svc-analytics"
    mqtt_analytics_password: SecretStr = SecretStr("")
    mqtt_admin_username: str = "svc-admin"
    mqtt_admin_password: SecretStr = SecretStr("")
    # Files the gateway writes for Mosquitto, and the broker's pid file it signals to reload them.
    broker_password_file: Path | None = None
    broker_acl_file: Path | None = None
    broker_pid_file: Path | None = None

    # Ingest.
    ingest_client_id: str = "shouwang-ingest-0"
    ingest_share_group: str = "ingest"
    ingest_flush_seconds: float = 0.2
    ingest_flush_bytes: int = 1_000_000
    ingest_max_payload_bytes: int = 256 * 1024
    ingest_max_future_seconds: float = 300.0
    ingest_max_age_days: float = 30.0
    # Rejects stored per device (or topic) and minute; beyond it they are counted in
    # rejects_counted, not stored, so one device's flood cannot fill the disk.
    ingest_reject_limit_per_minute: int = 120
    # Payload bytes an ingest worker holds (received, not yet committed) before it stops reading
    # from the broker, which then keeps the backlog in the worker's session.
    ingest_max_buffer_bytes: int = 64 * 1024 * 1024
    # Messages a minute (sustained) and at once (burst) one device, and one site gateway, may
    # send; beyond that a message is not stored but rejected as rate_limited (counted beyond the
    # reject limit), so one sender cannot fill the disk or load analytics. A message counts once
    # per started KiB of payload. Defaults: 5 times the fastest device the registry allows (one
    # report a second) and 50 times the demo's (every 10 s); the burst is 10 minutes of the
    # fastest device, far above a device's in-flight messages sent again after a reconnect.
    # A gateway's batches carry its devices' readings: 10 times a device's allowance. Each
    # ingest worker keeps its own count (docs/operations.md section 14).
    ingest_device_messages_per_minute: float = Field(default=300.0, gt=0)
    ingest_device_burst_messages: float = Field(default=600.0, ge=1)
    ingest_gateway_messages_per_minute: float = Field(default=3000.0, gt=0)
    ingest_gateway_burst_messages: float = Field(default=6000.0, ge=1)
    # After ingest was not reading from the broker (its start, a lost connection, a full buffer)
    # for some time, each sender may send that much more of its rate, up to this many seconds'
    # worth, for as long again: the backlog the broker held (0: none).
    ingest_catch_up_seconds: float = Field(default=3600.0, ge=0)
    # Readings (recent and archived) are kept retention_days; the per-minute rollup and events
    # (with device statuses) their own number of days, by default the same.
    retention_days: float = Field(default=400.0, gt=0)
    rollup_retention_days: float | None = Field(default=None, gt=0)
    events_retention_days: float | None = Field(default=None, gt=0)
    # Readings older than this are kept compactly (ingest/archive.py; native compression where
    # TimescaleDB has it); at least a day, as ingest guards readings older than 20 hours.
    archive_after_days: float = Field(default=2.0, ge=1.0)

    # Analytics.
    analytics_client_id: str = "shouwang-analytics"
    # The responsibility list in force (default: the shipped list) and a directory of county /
    # community override files (*.yaml).
    responsibility_list: Path | None = None
    responsibility_overrides: Path | None = None
    work_calendar: Path | None = None
    rejects_retention_days: float = 30.0
    # The audit log (who changed the registry, credentials, roster, tokens, lists, alarm and
    # work-order state): kept this many days, at least 180 (network logs: six months at least);
    # ingest's hourly retention pass deletes what is older.
    audit_retention_days: int = Field(default=1095, ge=180)
    # Analytics' failure behaviour (docs/operations.md §12); times on analytics' clock (the
    # wall clock, or the data's own time with clock=data).
    # After analytics starts and after the feed resumes from a feed silence, no device is judged
    # offline for this long (buffered data and reconnecting devices settle first); each device's
    # silence is counted from the resumption in any case, so a device is never judged before its
    # own offline silence (report interval x the list's intervals) has passed since then.
    analytics_offline_grace_s: float = 900.0
    # No reading reaching analytics for this long (ingest or the broker down or lagging) is one
    # platform alarm feed_silent (P1), and no device is judged offline meanwhile. Never shorter
    # than the shortest offline silence of the devices still reporting.
    analytics_feed_silent_s: float = 120.0
    # This share of the devices heard from, going silent within mass_silence_window_s of one
    # another, is one platform alarm mass_silence (P1) instead of an OFFLINE alarm and work order
    # each; only with at least mass_silence_min_devices devices heard from. Each OFFLINE alarm
    # waits the window before it is filed (when the rule can apply).
    analytics_mass_silence_share: float = 0.3
    analytics_mass_silence_min_devices: int = 20
    analytics_mass_silence_window_s: float = 60.0
    # A device whose detector state failed is kept out of detection this long (or until the
    # responsibility list changes), with a platform alarm detector_quarantined (P3).
    analytics_quarantine_s: float = 600.0
    # How often analytics re-reads the device registry, the list in force, models and calendar.
    analytics_refresh_s: float = 30.0
    # Each class model in use (a multivariate entry, a model trained once by hand) is retrained
    # this often on the last retrain_days of its devices' data, alarm episodes left out; the new
    # version becomes active, the old one is kept for rollback (0: never retrain).
    analytics_retrain_hours: float = Field(default=24.0, ge=0)
    analytics_retrain_days: float = Field(default=14.0, gt=0)
    # A multivariate entry whose alarms judged false over the last drift_days come at more than
    # drift_factor x its target rate per device-day (and at least drift_min_alarms of them) is
    # one platform alarm model_drift (P3).
    analytics_drift_days: float = Field(default=7.0, gt=0)
    analytics_drift_factor: float = Field(default=3.0, gt=1)
    analytics_drift_min_alarms: int = Field(default=3, ge=1)

    # HTTP API (`shouwang api`): where it listens, the URL clients reach it at (in links and the
    # OpenAPI servers list; empty: none), the most database connections it holds, and how long
    # a token's caller (role and scope) is kept before it is read again: a revocation or a scope
    # change made elsewhere takes effect within that time (0: every request reads it).
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_public_url: str = ""
    api_pool_size: int = 10
    api_token_cache_s: float = 5.0
    # Request limits (docs/api.md, Limits). A request body above api_max_body_bytes is refused
    # with 413 before anything reads it (an upload route: the CSV device import, the responsibility
    # list and holiday schedule YAML: api_max_upload_bytes); each token may make
    # api_write_burst writes at once, refilled at api_write_rate_per_s (beyond: 429); at most
    # api_stream_max live streams per API process, api_stream_max_per_token of them per token.
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    api_max_upload_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    api_write_rate_per_s: float = Field(default=5.0, gt=0)
    api_write_burst: int = Field(default=50, ge=1)
    api_stream_max: int = Field(default=500, ge=1)
    api_stream_max_per_token: int = Field(default=5, ge=1)

    # Notifications (the dispatcher). Severities not listed in notify_grouped_severities go out
    # at once to everyone on duty; grouped ones wait notify_group_wait_s for companions, then go
    # out together at most every notify_group_interval_s per community and party. Quiet hours
    # (local time, "22:00-07:00"; empty: none) hold back the quiet severities until they end.
    notify_grouped_severities: list[str] = ["P1", "P2", "P3"]
    notify_group_wait_s: float = 30.0
    notify_group_interval_s: float = 300.0
    notify_quiet_hours: str = "22:00-07:00"
    notify_quiet_severities: list[str] = ["P2", "P3"]
    notify_timezone: str = "Asia/Shanghai"
    # Reminders repeat to the people on duty until someone acknowledges, every so many minutes.
    notify_reminder_minutes: dict[str, float] = {"P0": 5, "P1": 15, "P2": 60, "P3": 240}
    notify_lease_s: float = 30.0
    notify_backoff_base_s: float = 1.0
    notify_smtp_host: str = ""
    notify_smtp_port: int = 25
    notify_smtp_sender: str = "shouwang@localhost"
    notify_mqtt_username: str = "svc-notify"
    notify_mqtt_password: SecretStr = SecretStr("")
    # Acknowledgement links in messages: signed with this secret, valid this long (each reminder
    # carries a new one), opening <notify_ack_url>/<token> (the API's acknowledgement page, which
    # sends a browser on to the duty pages: docs/pages.md).
    notify_ack_secret: SecretStr = SecretStr("")
    notify_ack_url: str = "http://127.0.0.1:8080/v1/ack"
    notify_ack_valid_hours: float = Field(default=0.5, gt=0)
    # Each send waits at most this long for each step: connecting, writing, each read of the
    # answer (HTTP, SMTP), the broker's acknowledgement (duty app). Sends run concurrently on
    # at most notify_concurrency threads, and at most notify_concurrency_per_firm of them for
    # one property firm's communities (the platform operators count as a firm of their own),
    # so one firm's dead endpoints cannot hold up another firm's notifications.
    notify_send_timeout_s: float = Field(default=5.0, gt=0)
    notify_concurrency: int = Field(default=32, ge=1)
    notify_concurrency_per_firm: int = Field(default=4, ge=1)
    # Where notify may send (docs/operations.md section 10, Addresses): webhooks and robots over
    # https only, unless notify_allow_http (local testing); never to a loopback, private,
    # link-local, multicast, unspecified or reserved address (IPv4 or IPv6, after the one DNS
    # lookup of a send) unless a network of notify_allowed_networks holds it (CIDRs, a JSON
    # list: ["10.20.0.0/16"]).
    notify_allow_http: bool = False
    notify_allowed_networks: list[IPvAnyNetwork] = []

    # SMS and voice calls (docs/notifications.md). Each firm's provider account is stored with
    # its access key secret encrypted by notify_phone_key (a Fernet key: `shouwang phone key`;
    # accounts: `shouwang phone account`); without it no SMS or voice call goes out. A P0
    # alarm nobody acknowledged within notify_voice_after_s gets a voice call on the voice
    # channels of the people on duty.
    # The endpoints are the providers' (host[:port]); notify_phone_protocol is https but for a
    # local test double.
    notify_phone_key: SecretStr = SecretStr("")
    notify_voice_after_s: float = Field(default=300.0, gt=0)
    notify_aliyun_sms_endpoint: str = "dysmsapi.aliyuncs.com"
    notify_aliyun_voice_endpoint: str = "dyvmsapi.aliyuncs.com"
    notify_tencent_sms_endpoint: str = "sms.tencentcloudapi.com"
    notify_phone_protocol: Literal["https", "http"] = "https"

    # The demo (`shouwang up`, scripts/demo.sh): a fault starts on a device of the demo firm's
    # communities every demo_fault_every_s (the first a minute in); 0 injects none.
    demo_fault_every_s: float = Field(default=180.0, ge=0)

    # Duty pages (/duty, docs/pages.md): session cookies are Secure (HTTPS; browsers also keep
    # them over plain HTTP to localhost and loopback addresses, as the demo serves the pages)
    # unless pages_cookie_secure is false (a plain-HTTP trial on a trusted network only); a
    # session lasts pages_session_hours, one opened from a notification's link
    # pages_link_session_minutes. pages_lockout_failures wrong
    # passwords in a row lock a login for pages_lockout_minutes; more than
    # pages_failures_per_phone / pages_failures_per_client failures within
    # pages_failure_window_minutes refuse further tries from that phone number / address.
    # An arrival photo is at most pages_photo_max_bytes (JPEG, PNG or WebP).
    pages_cookie_secure: bool = True
    pages_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    pages_link_session_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    pages_lockout_failures: int = Field(default=5, ge=1)
    pages_lockout_minutes: float = Field(default=15.0, gt=0)
    pages_failures_per_phone: int = Field(default=10, ge=1)
    pages_failures_per_client: int = Field(default=30, ge=1)
    pages_failure_window_minutes: float = Field(default=15.0, gt=0)
    pages_photo_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=8 * 1024 * 1024)
    # Residents' complaints from the notice board (docs/pages.md, "Complaints"): at most
    # complaints_per_phone_hour from one phone number and complaints_per_client_hour from one
    # client address within an hour; a photo is at most complaint_photo_max_bytes (JPEG or PNG).
    complaints_per_phone_hour: int = Field(default=5, ge=1)
    complaints_per_client_hour: int = Field(default=20, ge=1)
    complaint_photo_max_bytes: int = Field(default=3 * 1024 * 1024, ge=1024, le=8 * 1024 * 1024)

    # Dashboards (`shouwang dashboards publish`): Grafana's URL and credentials (a service
    # account token, or a user and password) and the organisation to publish into (empty: the
    # token's own); the data source as Grafana connects: the database's host:port as Grafana
    # reaches it (empty: as in database_url), the database name (empty: as in database_url) and
    # a dashboards login role from `shouwang dashboards grant-firm` / `grant-regulator`.
    grafana_url: str = "http://127.0.0.1:3000"
    grafana_token: SecretStr = SecretStr("")
    grafana_user: str = ""
    grafana_password: SecretStr = SecretStr("")
    grafana_org_id: int | None = None
    grafana_db_host: str = ""
    grafana_db_name: str = ""
    grafana_db_user: str = ""
    grafana_db_password: SecretStr = SecretStr("")
    # The Prometheus the platform-health dashboard reads (dashboards/prometheus), as Grafana
    # reaches it: `shouwang dashboards publish` (all audiences) publishes that dashboard and its
    # data source when it is set.
    grafana_prometheus_url: str = ""

    def metrics_port(self, stage: str) -> int:
        """The metrics port of a stage (one of core.metrics.STAGES)."""
        port: int = getattr(self, f"metrics_port_{stage}")
        return port

    def broker_files(self) -> tuple[Path, Path, Path]:
        d = self.state_dir / "mosquitto"
        return (
            self.broker_password_file or d / "passwd",
            self.broker_acl_file or d / "acl",
            self.broker_pid_file or d / "mosquitto.pid",
        )


def load_settings() -> Settings:
    """The settings of a command: environment variables, then ``<state_dir>/shouwang.env``."""
    state_dir = Path(os.environ.get("SHOUWANG_STATE_DIR") or default_state_dir())
    env_file = state_dir / "shouwang.env"
    try:
        return Settings(_env_file=env_file)
    except ValidationError as e:  # one line per setting, naming the variable, not a traceback
        wrong = "; ".join(
            f"SHOUWANG_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            f" (got {str(err.get('input'))[:60]!r})"
            for err in e.errors(include_url=False)
        )
        raise ConfigError(f"settings (environment, {env_file})", wrong) from None
