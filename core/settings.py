"""Shared: the one settings object. Built in each command's `main`, never at import time.

Every value can be set by an environment variable named ``SHOUWANG_<FIELD>`` (for example
``SHOUWANG_DATABASE_URL``), or in ``<state_dir>/shouwang.env``, which the local stack writes;
environment variables win.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_state_dir() -> Path:
    return PROJECT_ROOT / ".state"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOUWANG_", extra="ignore")

    state_dir: Path = Field(default_factory=default_state_dir)

    # Database (TimescaleDB). The local stack listens on this port; point it elsewhere for an
    # external database.
    database_url: str = "postgresql://shouwang@127.0.0.1:54329/shouwang"

    # Broker.
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 18883
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
    retention_days: float = 400.0

    # Analytics.
    analytics_client_id: str = "shouwang-analytics"
    # The responsibility list in force (default: the shipped list) and a directory of county /
    # community override files (*.yaml).
    responsibility_list: Path | None = None
    responsibility_overrides: Path | None = None
    work_calendar: Path | None = None
    rejects_retention_days: float = 30.0

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
    return Settings(_env_file=state_dir / "shouwang.env")
