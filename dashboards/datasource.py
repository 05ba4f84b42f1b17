"""Dashboards: the PostgreSQL data source the dashboards read, and the Prometheus one the
platform-health dashboard reads (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from dashboards.model import DATASOURCE_TYPE, PROMETHEUS_TYPE, Datasource

NAME: Final = "shouwang"
UID: Final = "shouwang"
REF: Final = Datasource(UID)


@dataclass(frozen=True, slots=True)
class DatasourceSpec:
    """How Grafana connects: ``url`` is host:port of the database as Grafana reaches it, and
    ``user`` a dashboards login role (``shouwang dashboards grant-firm``)."""

    url: str
    database: str
    user: str
    sslmode: str = "disable"
    # TimescaleDB: Grafana then writes $__timeGroup as time_bucket(...)
    timescaledb: bool = True
    # the shortest $__interval Grafana picks: the time series read the per-minute rollup
    # (readings_1m), so no interval is shorter than its rows
    min_interval: str = "1m"
    postgres_version: int = 1500
    name: str = NAME
    uid: str = UID

    def json_data(self) -> dict[str, Any]:
        return {
            "connMaxLifetime": 14400,
            "database": self.database,
            "maxIdleConns": 4,
            "maxOpenConns": 4,
            "postgresVersion": self.postgres_version,
            "sslmode": self.sslmode,
            "timeInterval": self.min_interval,
            "timescaledb": self.timescaledb,
        }

    def json(self) -> dict[str, Any]:
        """The data source as Grafana's HTTP API takes it (without the password)."""
        return {
            "access": "proxy",
            "basicAuth": False,
            "isDefault": False,
            "jsonData": self.json_data(),
            "name": self.name,
            "type": DATASOURCE_TYPE,
            "uid": self.uid,
            "url": self.url,
            "user": self.user,
        }


# The platform operators' Prometheus (dashboards/prometheus), read by the platform-health
# dashboard; its scrape interval is Grafana's shortest $__interval.
PROMETHEUS_NAME: Final = "shouwang-prometheus"
PROMETHEUS_UID: Final = "shouwang-prometheus"
PROMETHEUS_REF: Final = Datasource(PROMETHEUS_UID, PROMETHEUS_TYPE)
PROMETHEUS_SCRAPE_INTERVAL: Final = "15s"


def prometheus_json(url: str) -> dict[str, Any]:
    """The Prometheus data source at ``url`` as Grafana's HTTP API and provisioning take it."""
    return {
        "access": "proxy",
        "isDefault": False,
        "jsonData": {"httpMethod": "POST", "timeInterval": PROMETHEUS_SCRAPE_INTERVAL},
        "name": PROMETHEUS_NAME,
        "type": PROMETHEUS_TYPE,
        "uid": PROMETHEUS_UID,
        "url": url,
    }
