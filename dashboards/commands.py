"""Dashboards: the commands behind ``shouwang dashboards``. Reads the settings and the list in force,
opens the connections, and hands values to the pure builders and the publishing step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from core.audit import cli_actor
from core.db import connect
from core.errors import ConfigError
from core.settings import Settings
from dashboards.access import (
    DEFAULT_REGULATOR_LOGIN,
    Credentials,
    grant_firm,
    grant_regulator,
    grant_township,
    revoke,
)
from dashboards.datasource import DatasourceSpec
from dashboards.files import export
from dashboards.folders import AUDIENCES, Placed, all_dashboards, platform_dashboards
from dashboards.publish import Change, publish_platform
from dashboards.publish import connect as grafana
from dashboards.publish import publish as run_publish
from responsibility import in_force
from responsibility.loader import ResponsibilityList


def list_in_force(s: Settings) -> ResponsibilityList:
    """The responsibility list in force, the one analytics runs (``responsibility.in_force``):
    the pinned file, else the newest published version, else the shipped list; the override
    files on top."""
    with connect(s.database_url) as conn:
        found = in_force.list_in_force(
            conn, pinned=s.responsibility_list, overrides_dir=s.responsibility_overrides
        )
    return found.rules


def chosen(s: Settings, audiences: Sequence[str]) -> tuple[Placed, ...]:
    unknown = sorted(set(audiences) - set(AUDIENCES))
    if unknown:
        raise ConfigError("--audience", f"unknown {unknown}; choose from {', '.join(AUDIENCES)}")
    placed = all_dashboards(list_in_force(s))
    return tuple(p for p in placed if not audiences or p.folder.audience in audiences)


def datasource_spec(s: Settings) -> DatasourceSpec:
    info = conninfo_to_dict(s.database_url)
    host = s.grafana_db_host or f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
    if not s.grafana_db_user:
        raise ConfigError(
            "SHOUWANG_GRAFANA_DB_USER",
            "set the dashboards login role Grafana connects as"
            " (create one with 'shouwang dashboards grant-firm CODE')",
        )
    return DatasourceSpec(
        url=host,
        database=s.grafana_db_name or str(info.get("dbname") or "shouwang"),
        user=s.grafana_db_user,
    )


def publish(s: Settings, audiences: Sequence[str], *, update_password: bool) -> list[Change]:
    placed = chosen(s, audiences)
    spec = datasource_spec(s)
    password = s.grafana_db_password.get_secret_value() or None
    with grafana(
        s.grafana_url,
        token=s.grafana_token.get_secret_value(),
        user=s.grafana_user,
        password=s.grafana_password.get_secret_value(),
        org_id=s.grafana_org_id,
    ) as api:
        changes = run_publish(api, placed, spec, password=password, update_password=update_password)
        if s.grafana_prometheus_url and not audiences:  # the platform operators' dashboards
            platform = platform_dashboards(s.health_stuck_after_s)
            changes += publish_platform(api, platform, s.grafana_prometheus_url)
        return changes


def export_files(s: Settings, directory: Path, *, database: str, user: str | None) -> list[Path]:
    return export(
        directory,
        chosen(s, ()),
        database=database,
        user=user or DEFAULT_REGULATOR_LOGIN,
        platform=platform_dashboards(s.health_stuck_after_s),
    )


def grant(
    s: Settings,
    *,
    firm: str | None,
    role: str | None,
    password: str | None,
    township: str | None = None,
) -> Credentials:
    """A firm's login role (``firm``), a township's (``township``), or the regulator's (neither).
    The password: as given, else SHOUWANG_GRAFANA_DB_PASSWORD, else a new one."""
    password = password or s.grafana_db_password.get_secret_value() or None
    host = s.grafana_db_host or None
    with connect(s.database_url, autocommit=True, actor=cli_actor()) as conn:
        if firm is not None:
            return grant_firm(conn, firm, role=role, password=password, host=host)
        if township is not None:
            return grant_township(conn, township, role=role, password=password, host=host)
        return grant_regulator(conn, role or DEFAULT_REGULATOR_LOGIN, password=password, host=host)


def drop(s: Settings, role: str) -> bool:
    with connect(s.database_url, autocommit=True, actor=cli_actor()) as conn:
        return revoke(conn, role)


def credentials_text(c: Credentials) -> str:
    """What to enter in Grafana's PostgreSQL data source (or the SHOUWANG_GRAFANA_DB_* vars)."""
    return "\n".join(
        (
            f"host: {c.url}",
            f"database: {c.database}",
            f"user: {c.role}",
            f"password: {c.password}",
            "sslmode: disable",
            "scope: "
            + (
                f"firm {c.firm}"
                if c.firm
                else f"township {c.township}"
                if c.township
                else "every firm (regulator)"
            ),
        )
    )
