"""Dashboards: the PostgreSQL data source every dashboard reads (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from dashboards.model import DATASOURCE_TYPE, Datasource

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
